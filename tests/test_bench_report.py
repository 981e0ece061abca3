"""Reports of grid and run directories: files, tables, figures, CLI wiring (no training)."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
import yaml

from ncal.bench import aubc_per_seed, aubc_table, load_results, run_grid, write_report
from ncal.bench.report import fmt_p, fmt_pm
from ncal.cli import main
from test_bench_executors import fake_runner, grid_dict


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "g"
    run_grid(grid_dict(out), workers=1, quiet=True, cell_runner=fake_runner)
    return out


def test_load_results_flattens_metrics_and_drops_payloads(grid_dir) -> None:
    df = load_results(grid_dir)
    assert len(df) == 12 * 4
    assert {"nc.nc1", "nc.etf_M", "eval.ood.msp.auroc", "test_accuracy", "noise_rate_batch"} <= set(
        df.columns
    )
    assert not {"selected", "class_histogram"} & set(df.columns)
    assert set(df["budget"]) == {"30+20x3"} and set(df["status"]) == {"complete"}
    # the strategy column is the display label, the registry name is kept apart
    assert set(df.loc[df["strategy"] == "margin-lbl", "strategy_name"]) == {"margin"}


def test_grid_report_has_every_section_table_and_figure(grid_dir, tmp_path) -> None:
    paths = write_report(grid_dir, tmp_path / "rep")
    md = paths["markdown"].read_text()
    for heading in (
        "## Setup",
        "## How to read this",
        "## Learning curves",
        "## Area under the budget curve",
        "## Paired differences vs random",
        "## Pairwise-penalty matrix",
        "## Labels to reach 90%",
        "## Query purity",
        "## Training diagnostics",
        "## Neural-collapse metrics per round",
        "## Evaluation metrics per round",
        "### Machine and time",
    ):
        assert heading in md, heading
    names = {p.name for p in paths["figures"]}
    assert {
        "learning_curves.png",
        "aubc.png",
        "penalty_matrix.png",
        "query_purity.png",
        "nc_0.png",
        "eval_ood_0.png",
    } <= names
    for p in paths["figures"]:
        w, h = png_size(p)
        assert 300 < w < 4000 and 200 < h < 4000
        assert f"]({p.relative_to(tmp_path / 'rep').as_posix()})" in md  # linked, relative

    # AUBC table rows carry the values of the stats module
    df = load_results(grid_dir)
    table = aubc_table(aubc_per_seed(df)).set_index(["noise", "strategy"])
    r = table.loc[("sym:0.3", "entropy")]
    assert f"| digits | sym:0.3 | entropy | 2 | {fmt_pm(r['mean'] * 100, r['std'] * 100)} |" in md
    assert "| winner \\ loser | random | entropy | margin-lbl |" in md
    assert re.search(r"\| digits \| sym:0\.3 \| entropy \| 2 \| -?\d+\.\d\d ± \d+\.\d\d \| ", md)
    assert "cells: 12 (12 complete, 0 unfinished), 48 finished rounds" in md

    page = paths["html"].read_text()
    assert page.count('src="data:image/png;base64,') == len(paths["figures"])
    assert "figures/" not in re.sub(r"<figcaption>.*?</figcaption>", "", page)  # self-contained
    assert "<table>" in page and "<b>AUBC</b>" in page


def test_report_defaults_into_the_grid_dir_and_lists_unfinished_cells(tmp_path) -> None:
    out = tmp_path / "g"
    grid = grid_dict(
        out,
        noise=["sym:0.3"],
        seeds=1,
        strategies=["random", {"name": "entropy", "params": {"fail": 2}}],
    )
    run_grid(grid, workers=1, quiet=True, cell_runner=fake_runner)
    paths = write_report(out)
    assert paths["markdown"] == out / "report.md" and (out / "report.html").exists()
    md = paths["markdown"].read_text()
    assert "## Unfinished cells" in md and "| 2/4 |" in md
    assert "left out of AUBC" in md


def test_single_run_directory_report(grid_dir, tmp_path) -> None:
    cell = json.loads((grid_dir / "cells.json").read_text())[0]["relpath"]
    paths = write_report(grid_dir / cell, tmp_path / "one")
    md = paths["markdown"].read_text()
    assert "## Learning curves" in md and "## Pairwise-penalty matrix" not in md
    assert "No paired comparison" in md  # one strategy only
    assert "| digits | none | random | 1 |" in md  # one seed: mean without ± std


def test_empty_grid_report(tmp_path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "cells.json").write_text("[]")
    md = write_report(tmp_path / "g")["markdown"].read_text()
    assert "No finished rounds yet" in md


def test_formatting_helpers() -> None:
    assert fmt_pm(74.6123, 2.571) == "74.61 ± 2.57"
    assert fmt_pm(74.6123, float("nan")) == "74.61"
    assert fmt_p(0.0004) == "<0.001" and fmt_p(0.01234) == "0.012" and fmt_p(np.nan) == "—"


def test_cli_report_and_bench_on_a_finished_grid(grid_dir, tmp_path, capsys) -> None:
    assert main(["report", str(grid_dir), "--out", str(tmp_path / "r"), "--reach", "0.8"]) == 0
    assert "Labels to reach 80%" in (tmp_path / "r" / "report.md").read_text()
    # `ncal bench` on a grid whose cells are all finished: nothing runs
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(yaml.safe_dump(grid_dict(grid_dir)))
    before = (grid_dir / "bench_runs.jsonl").read_text().count("\n")
    assert main(["bench", str(cfg), "--quiet", "--no-report", "--workers", "1"]) == 0
    record = json.loads((grid_dir / "bench_runs.jsonl").read_text().splitlines()[before])
    assert record["skipped"] == 12 and record["ran"] == 0 and record["workers"] == 1
    assert not (grid_dir / "report.md").exists()
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "error:" in capsys.readouterr().err


# ------------------------------------------------------- hand-made run trees (annotations, warnings)


def _write_run(root, name, strategy, seed, rows, **settings) -> None:
    """One finished run directory written through the run store (no training)."""
    from ncal.experiment.store import RunStore

    store = RunStore(root / name)
    base = {"dataset": "digits", "noise": "sym:0.2", "strategy": strategy, "seed": seed}
    store.write_config({"settings": {**base, "initial": 10, "query": 10, "rounds": 2, **settings}})
    for r, row in enumerate(rows):
        store.append_round({"round": r, "strategy": strategy, "seed": seed, **row})
    store.write_summary({"status": "complete"})


def _annotation_tree(root, *, ff_zero=0.1, terminal=True, dirty=0.0):
    """random and relabel on 3 seeds; relabel buys relabels, so labels lag behind annotations."""
    for seed in range(3):
        rand = [
            {
                "annotations": 10,
                "n_labeled": 10,
                "test_accuracy": 0.5,
                "noise_rate_batch": 0.2,
                "query_ood": 0,
                "consensus_purity": 0.8,
            },
            {
                "annotations": 20,
                "n_labeled": 20,
                "test_accuracy": 0.6 + 0.01 * seed,
                "noise_rate_batch": 0.2,
                "query_ood": 2,
                "consensus_purity": 0.8,
            },
            {
                "annotations": 40,
                "n_labeled": 40,
                "test_accuracy": 0.7,
                "noise_rate_batch": None,
                "query_ood": 0,
                "consensus_purity": 0.8,
            },
        ]
        rel = [
            {
                "annotations": 10,
                "n_labeled": 10,
                "test_accuracy": 0.5,
                "noise_rate_batch": 0.2 + dirty + 0.01 * seed,
                "query_ood": 0,
                "consensus_purity": 0.8,
                "train_info": {"ff_zero_fraction": ff_zero},
                "reached_terminal": terminal,
            },
            {
                "annotations": 20,
                "n_labeled": 15,
                "test_accuracy": 0.68,
                "noise_rate_batch": 0.1,
                "query_ood": 0,
                "consensus_purity": 0.9,
                "train_info": {"ff_zero_fraction": ff_zero},
                "reached_terminal": True,
            },
            {
                "annotations": 40,
                "n_labeled": 25,
                "test_accuracy": 0.72 + 0.01 * seed,
                "noise_rate_batch": None,
                "query_ood": 0,
                "consensus_purity": 0.95,
                "train_info": {"ff_zero_fraction": ff_zero},
                "reached_terminal": True,
            },
        ]
        extra = {"annotators": ["oracle:0.1", "oracle:0.3"]}
        _write_run(root, f"random/s{seed}", "random", seed, rand, **extra)
        _write_run(root, f"relabel/s{seed}", "relabel", seed, rel, **extra)


def test_annotation_axis_aubc_summary_and_label_quality(tmp_path) -> None:
    from ncal.bench.stats import aubc

    _annotation_tree(tmp_path / "t")
    df = load_results(tmp_path / "t")
    per_seed = aubc_per_seed(df).set_index(["strategy", "seed"])["aubc"]
    # the area is over annotations (10, 20, 40), not over labels (10, 15, 25)
    assert per_seed[("relabel", 1)] == pytest.approx(aubc([10, 20, 40], [0.5, 0.68, 0.73]))
    assert per_seed[("random", 0)] == pytest.approx((10 * 0.55 + 20 * 0.65) / 30)
    paths = write_report(tmp_path / "t", tmp_path / "rep")
    summary = json.loads(paths["summary"].read_text())
    assert paths["summary"].name == "results_summary.json" and summary["axis"] == "annotations"
    (setting,) = summary["settings"]
    assert setting["dataset"] == "digits" and setting["noisy"] is True
    assert setting["ood_fraction"] == 0.0
    rel, rand = setting["strategies"]["relabel"], setting["strategies"]["random"]
    assert rel["seeds"] == [0, 1, 2]
    assert rel["aubc"] == pytest.approx([per_seed[("relabel", s)] for s in range(3)])
    assert rel["final_purity"] == pytest.approx(0.95)
    assert rand["final_purity"] == pytest.approx(0.8)
    # wrong: (rate_0 * 10 + 0.1 * 20) / 30 per seed, then the seed mean
    assert rel["wrong_rate"] == pytest.approx(
        np.mean([(0.2 + 0.01 * s) * 10 + 2 for s in range(3)]) / 30
    )
    # random: wrong among in-distribution annotations (20 - 2 OOD), over all 30 bought
    assert rand["wrong_rate"] == pytest.approx((0.2 * 10 + 0.2 * 18) / 30)
    assert rand["ood_share"] == pytest.approx(2 / 30) and rel["ood_share"] == 0.0
    # random ends at 0.7 (seed mean); relabel's mean curve 0.5, 0.68, 0.73 crosses it at 20 + 20 * 2/5
    assert rel["annotations_to_random_final"] == pytest.approx(28.0)
    assert rand["annotations_to_random_final"] == pytest.approx(40.0)
    md = paths["markdown"].read_text()
    assert "## Label quality and spending" in md and "| 10 annotations | 20 annotations |" in md
    assert "Annotations to reach 90%" in md
    assert "## Warnings" not in md


@pytest.mark.parametrize(
    ("kwargs", "present", "absent"),
    [
        ({"ff_zero": 0.9}, "feature fluctuation (FF) is degenerate", "terminal phase"),
        ({"ff_zero": 0.8}, None, "degenerate"),  # at the threshold: not above it
        (
            {"terminal": False},
            "did not reach the terminal phase (training accuracy >= tau) in 3 of 9 rounds",
            "degenerate",
        ),
        ({"dirty": 0.3}, "relabel: bought dirtier labels than random", "terminal phase"),
        ({"dirty": -0.1}, None, "dirtier"),
    ],
)
def test_warnings_appear_exactly_when_their_condition_holds(tmp_path, kwargs, present, absent):
    from ncal.bench.caveats import report_warnings

    _annotation_tree(tmp_path / "t", **kwargs)
    text = "\n".join(report_warnings(load_results(tmp_path / "t")))
    if present:
        assert present in text
    else:
        assert text == ""
    assert absent not in text


def test_metric_panel_titles_are_readable() -> None:
    from ncal.bench.titles import metric_title

    assert metric_title("nc2_equinorm_M") == "NC2: equinorm of class means"
    assert metric_title("ood.msp.auroc") == "ood.msp: AUROC"
    assert metric_title("something_new") == "something_new"
