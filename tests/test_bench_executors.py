"""Grid execution: skipping finished cells, resuming a half-finished grid, failures, local pool vs
in-process vs Ray, and one end-to-end grid with the real experiment runner."""

from __future__ import annotations

import functools
import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ncal.bench import is_complete, load_results, run_grid
from ncal.bench.grid import load_grid

TIMING_COLS = ["train_seconds", "select_seconds"]


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


def _nearest_centroid_accuracy(x_tr, y_tr, x_te, y_te) -> float:
    classes = np.unique(y_tr)
    centroids = np.stack([x_tr[y_tr == c].mean(axis=0) for c in classes])
    d = ((x_te[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
    return float(np.mean(classes[np.argmin(d, axis=1)] == y_te))


def fake_runner(config: dict, cell_dir: Path) -> None:
    """Deterministic stand-in for ``run_experiment``: nearest-centroid AL on sklearn digits.

    Honours the run-directory contract (config.json, rounds.jsonl appended per round, summary.json
    with status "complete") and resumes after the last written round. ``strategy_params.fail``
    makes it raise after writing that many rounds (to simulate a crash).
    """
    cell_dir = Path(cell_dir)
    cell_dir.mkdir(parents=True, exist_ok=True)
    x, y = _digits()
    perm = np.random.default_rng(1234).permutation(len(y))
    pool, test = perm[:1200], perm[1200:1500]
    seed = int(config["seed"])
    # symmetric noise drawn from the seed only: identical for every strategy (paired design)
    eta = 0.3 if config["noise"] == "sym:0.3" else 0.0
    nrng = np.random.default_rng(seed)
    flip = nrng.random(len(y)) < eta
    y_noisy = np.where(flip, (y + 1 + nrng.integers(0, 9, len(y))) % 10, y)
    if config["strategy"] == "random":
        order = pool[np.random.default_rng(seed).permutation(len(pool))]
    else:
        order = pool[
            np.random.default_rng([seed, zlib.crc32(config["strategy"].encode())]).permutation(
                len(pool)
            )
        ]
    (cell_dir / "config.json").write_text(json.dumps({"settings": config, "ncal_version": "test"}))
    path = cell_dir / "rounds.jsonl"
    done = len(path.read_text().splitlines()) if path.exists() else 0
    initial, query, rounds = int(config["initial"]), int(config["query"]), int(config["rounds"])
    fail = config.get("strategy_params", {}).get("fail")
    for r in range(done, rounds + 1):
        if fail is not None and r == fail:
            raise RuntimeError(f"simulated crash before round {r}")
        n = initial + r * query
        idx = order[:n]
        acc = _nearest_centroid_accuracy(x[idx], y_noisy[idx], x[test], y[test])
        nxt = order[n : n + query] if r < rounds else order[:0]
        row = {
            "round": r,
            "strategy": config["strategy"],
            "seed": seed,
            "n_labeled": n,
            "test_accuracy": acc,
            "noise_rate_labeled": float(flip[idx].mean()),
            "noise_rate_batch": float(flip[nxt].mean()) if len(nxt) else None,
            "selected": nxt.tolist(),
            "class_histogram": np.bincount(y_noisy[idx], minlength=10).tolist(),
            "nc": {"nc1": float(1.0 / (1 + r) + 0.01 * seed), "etf_M": 0.5 - 0.01 * r},
            "eval": {"ood": {"msp": {"auroc": 0.6 + 0.01 * r}}},
            "train_seconds": 0.01,
            "select_seconds": 0.001,
            "reached_terminal": True,
        }
        with open(path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    (cell_dir / "summary.json").write_text(json.dumps({"status": "complete", "rounds": rounds + 1}))


def counting_runner(config: dict, cell_dir: Path) -> None:
    """``fake_runner`` that also records each call (to see which cells a rerun touched)."""
    with open(Path(cell_dir).parent / "calls.log", "a") as fh:
        fh.write(Path(cell_dir).name + "\n")
    fake_runner(config, cell_dir)


def grid_dict(out: Path, **over) -> dict:
    g = {
        "name": "fake",
        "datasets": ["digits"],
        "noise": ["none", "sym:0.3"],
        "strategies": ["random", "entropy", {"name": "margin", "label": "margin-lbl"}],
        "seeds": 2,
        "budget": {"initial": 30, "query": 20, "rounds": 3},
        "out": str(out),
    }
    g.update(over)
    return g


def results_without_timing(path: Path) -> pd.DataFrame:
    df = load_results(path).drop(columns=TIMING_COLS)
    return df.sort_values(["cell", "round"]).reset_index(drop=True)


def test_in_process_grid_runs_every_cell_and_writes_manifest(tmp_path) -> None:
    res = run_grid(grid_dict(tmp_path / "g"), workers=1, quiet=True, cell_runner=fake_runner)
    assert res.count("complete") == 12 and res.ok
    manifest = json.loads((tmp_path / "g" / "cells.json").read_text())
    assert len(manifest) == 12
    for c in manifest:
        d = tmp_path / "g" / c["relpath"]
        assert is_complete(d)
        cell = json.loads((d / "cell.json").read_text())
        assert cell["config"] == c["config"] and cell["strategy"] == c["strategy"]
        assert len((d / "rounds.jsonl").read_text().splitlines()) == 4
    df = load_results(tmp_path / "g")
    assert len(df) == 12 * 4
    assert set(df["strategy"]) == {"random", "entropy", "margin-lbl"}
    assert (tmp_path / "g" / "grid.json").exists()
    runs = (tmp_path / "g" / "bench_runs.jsonl").read_text().splitlines()
    assert json.loads(runs[0])["ran"] == 12


def test_rerun_skips_complete_cells_and_resumes_the_rest(tmp_path) -> None:
    out = tmp_path / "g"
    grid = grid_dict(out)
    run_grid(grid, workers=1, quiet=True, cell_runner=fake_runner)
    reference = results_without_timing(out)
    cells = load_grid(grid).cells()
    # interrupt: one cell lost its last two rounds and summary, one cell never started
    half = out / cells[4].relpath
    lines = (half / "rounds.jsonl").read_text().splitlines()
    (half / "rounds.jsonl").write_text("\n".join(lines[:2]) + "\n")
    (half / "summary.json").unlink()
    missing = out / cells[9].relpath
    for f in missing.iterdir():
        f.unlink()
    missing.rmdir()

    res = run_grid(grid, workers=1, quiet=True, cell_runner=counting_runner)
    assert res.count("skipped") == 10 and res.count("complete") == 2
    calls = sorted(p.read_text() for p in out.rglob("calls.log"))
    assert sorted(c.strip() for c in calls) == sorted([half.name, missing.name])
    pd.testing.assert_frame_equal(results_without_timing(out), reference)
    # a third run has nothing to do
    res = run_grid(grid, workers=1, quiet=True, cell_runner=counting_runner)
    assert res.count("skipped") == 12


def test_failed_cell_is_reported_others_finish_and_rerun_retries(tmp_path) -> None:
    out = tmp_path / "g"
    grid = grid_dict(
        out,
        strategies=["random", {"name": "entropy", "params": {"fail": 2}}],
        seeds=1,
        noise=["none"],
    )
    res = run_grid(grid, workers=1, quiet=True, cell_runner=fake_runner)
    assert res.count("complete") == 1 and res.count("failed") == 1 and not res.ok
    failed = next(o for o in res.outcomes if o.status == "failed")
    assert "simulated crash before round 2" in failed.error
    d = out / failed.relpath
    assert len((d / "rounds.jsonl").read_text().splitlines()) == 2 and not is_complete(d)
    res = run_grid(grid, workers=1, quiet=True, cell_runner=fake_runner)
    assert res.count("skipped") == 1 and res.count("failed") == 1


def test_process_pool_gives_the_same_results_as_in_process(tmp_path) -> None:
    grid = grid_dict(tmp_path / "a", seeds=[0, 3], noise=["sym:0.3"])
    run_grid(grid, workers=1, quiet=True, cell_runner=fake_runner)
    res = run_grid(grid, workers=2, quiet=True, cell_runner=fake_runner, out=tmp_path / "b")
    assert res.count("complete") == 6
    pd.testing.assert_frame_equal(
        results_without_timing(tmp_path / "a"), results_without_timing(tmp_path / "b")
    )


def test_bad_executor_arguments(tmp_path) -> None:
    from ncal.errors import NcalError

    g = grid_dict(tmp_path / "g")
    with pytest.raises(NcalError, match="executor"):
        run_grid(g, executor="dask", cell_runner=fake_runner)
    with pytest.raises(NcalError, match="workers"):
        run_grid(g, workers=0, cell_runner=fake_runner)
    with pytest.raises(NcalError, match="address"):
        run_grid(g, address="auto", cell_runner=fake_runner)


def test_ray_executor_gives_the_same_results_as_local(tmp_path) -> None:
    grid = grid_dict(
        tmp_path / "local", noise=["sym:0.3"], seeds=2, strategies=["random", "entropy"]
    )
    run_grid(grid, workers=1, quiet=True, cell_runner=fake_runner)
    res = run_grid(
        grid, executor="ray", workers=2, quiet=True, cell_runner=fake_runner, out=tmp_path / "ray"
    )
    assert res.count("complete") == 4, [o.error for o in res.outcomes]
    pd.testing.assert_frame_equal(
        results_without_timing(tmp_path / "local"), results_without_timing(tmp_path / "ray")
    )
    # resume through Ray too: everything is finished, nothing runs
    res = run_grid(
        grid, executor="ray", workers=2, quiet=True, cell_runner=fake_runner, out=tmp_path / "ray"
    )
    assert res.count("skipped") == 4


def test_real_runner_on_a_tiny_digits_grid(tmp_path) -> None:
    from ncal.bench import aubc_per_seed

    grid = {
        "datasets": ["digits"],
        "noise": ["sym:0.2"],
        "strategies": ["random", "entropy"],
        "seeds": 1,
        "budget": {"initial": 40, "query": 30, "rounds": 2},
        "pool_size": 300,
        "train": {"epochs_max": 4, "ff_window": 2, "batch_size": 32, "num_threads": 1},
        "experiment": {"test_size": 200},
        "out": str(tmp_path / "g"),
    }
    res = run_grid(grid, workers=1, quiet=True)
    assert res.count("complete") == 2, [o.error for o in res.outcomes]
    df = load_results(tmp_path / "g")
    assert sorted(df["n_labeled"].unique()) == [40, 70, 100]
    assert df["test_accuracy"].between(0.2, 1.0).all()
    # paired design: both strategies share the initial set, hence the round-0 model and accuracy
    r0 = df[df["round"] == 0].set_index("strategy")["test_accuracy"]
    assert r0["random"] == r0["entropy"]
    per_seed = aubc_per_seed(df)
    assert len(per_seed) == 2 and per_seed["aubc"].between(0.2, 1.0).all()
    res = run_grid(grid, workers=1, quiet=True)
    assert res.count("skipped") == 2


def test_invalid_experiment_settings_fail_before_any_cell_runs(tmp_path) -> None:
    from ncal.errors import NcalError

    with pytest.raises(NcalError, match="ood_dataset"):
        run_grid(grid_dict(tmp_path / "g", evals=["ood"]), workers=1, quiet=True)
    with pytest.raises(NcalError, match="epochs_max"):
        run_grid(grid_dict(tmp_path / "g", train={"epochs_max": 0}), workers=1, quiet=True)
    assert not (tmp_path / "g").exists()
