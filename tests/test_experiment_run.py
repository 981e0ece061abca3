"""The active-learning loop end to end on real data (sklearn digits): determinism, resume, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ncal.errors import NcalError
from ncal.experiment import ExperimentConfig, RunStore, run_experiment

TIMING = {"train_seconds", "select_seconds", "ff_seconds", "train_info"}


def tiny(**overrides) -> ExperimentConfig:
    base = dict(
        dataset="digits",
        noise="sym:0.2",
        strategy="ncal_r",
        initial=40,
        query=30,
        rounds=2,
        seed=0,
        pool_size=600,
        test_size=300,
        train={"epochs_max": 12, "ff_window": 3, "batch_size": 32, "num_threads": 1},
    )
    base.update(overrides)
    return ExperimentConfig(**base)


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def test_run_records_every_round(tmp_path) -> None:
    rows = run_experiment(tiny(), tmp_path / "a", quiet=True)
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert [r["n_labeled"] for r in rows] == [40, 70, 100]
    for r in rows:
        assert 0.0 <= r["test_accuracy"] <= 1.0
        assert (
            r["test_accuracy"] > 0.3
        )  # digits is easy: far above chance (0.1) even with 40 noisy labels
        assert 0.0 <= r["noise_rate_labeled"] <= 1.0
        assert sum(r["class_histogram"]) == r["n_labeled"]
        assert "nc1" in r["nc"] or "error" in r["nc"]
    assert len(rows[0]["selected"]) == 30 and len(set(rows[0]["selected"])) == 30
    assert rows[-1]["selected"] == []
    # no pool sample is bought twice
    bought = rows[0]["selected"] + rows[1]["selected"]
    assert len(set(bought)) == len(bought)
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["settings"]["strategy"] == "ncal_r" and cfg["ncal_version"]
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["status"] == "complete"


def test_same_seed_same_run_and_paired_initial_set(tmp_path) -> None:
    a = run_experiment(tiny(), tmp_path / "a", quiet=True)
    b = run_experiment(tiny(), tmp_path / "b", quiet=True)
    assert strip(a) == strip(b)
    r = run_experiment(tiny(strategy="random"), tmp_path / "r", quiet=True)
    # paired design: same initial set, init and oracle → identical round-0 model and accuracy
    assert r[0]["test_accuracy"] == a[0]["test_accuracy"]
    assert r[0]["class_histogram"] == a[0]["class_histogram"]


def interrupt_after_first_round(config, out, monkeypatch) -> None:
    """Run ``config`` into ``out`` and stop it with a Ctrl-C right after round 0 is stored."""
    original = RunStore.append_round

    def crash_after_first(self, row):
        original(self, row)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(RunStore, "append_round", crash_after_first)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(config, out, quiet=True)


def test_resume_equals_uninterrupted(tmp_path, monkeypatch) -> None:
    full = run_experiment(tiny(), tmp_path / "full", quiet=True)
    interrupt_after_first_round(tiny(), tmp_path / "cut", monkeypatch)
    assert len(RunStore(tmp_path / "cut").read_rounds()) == 1
    resumed = run_experiment(tiny(), tmp_path / "cut", quiet=True)
    assert strip(resumed) == strip(full)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"dataset": "imagenet-42"}, "imagenet-42"),
        ({"strategy": "oracle_magic"}, "unknown strategy"),
        ({"noise": "sym:abc"}, "noise|sym"),
        ({"initial": 500, "query": 100, "rounds": 2}, "pool holds only 600"),
    ],
)
def test_clear_errors(tmp_path, overrides: dict, match: str) -> None:
    with pytest.raises((NcalError, ValueError), match=match):
        run_experiment(tiny(**overrides), tmp_path / "x", quiet=True)


def test_corrupt_run_directory(tmp_path) -> None:
    out = tmp_path / "c"
    run_experiment(tiny(rounds=1), out, quiet=True)
    (out / "summary.json").unlink()
    (out / "rounds.jsonl").write_text('{"round": 0, "oops\n')
    with pytest.raises(NcalError, match=r"corrupt|not valid JSON"):
        run_experiment(tiny(rounds=1), out, quiet=True)


def test_cli_run_and_errors(tmp_path, capsys) -> None:
    from ncal.cli import main

    code = main(
        [
            "run",
            "--dataset",
            "digits",
            "--strategy",
            "entropy",
            "--initial",
            "40",
            "--query",
            "20",
            "--rounds",
            "1",
            "--pool-size",
            "400",
            "--test-size",
            "200",
            "--train",
            "epochs_max=6",
            "--train",
            "ff_window=2",
            "--train",
            "num_threads=1",
            "--out",
            str(tmp_path / "cli"),
            "--quiet",
        ]
    )
    assert code == 0
    assert "rounds.jsonl" in capsys.readouterr().out
    assert main(["run", "--dataset", "nope", "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_every_evaluation_recorded_per_round(tmp_path) -> None:
    """OOD / shift / probe / GCD / long tail wired into the loop, on digits and an inverted-digits
    OOD set written as an npz dataset."""
    from ncal.data import load_dataset

    d = load_dataset("digits")
    inv = tmp_path / "inverted.npz"
    np.savez(
        inv, x_train=255 - d.x_train, y_train=d.y_train, x_test=255 - d.x_test, y_test=d.y_test
    )
    cfg = tiny(
        rounds=1,
        evals=["ood", "shift", "probe", "gcd", "longtail"],
        ood_dataset=f"npz:{inv}",
        probe_datasets=[f"npz:{inv}"],
    )
    rows = run_experiment(cfg, tmp_path / "ev", quiet=True)
    for r in rows:
        ev = r["eval"]
        for score in ("msp", "energy", "mahalanobis", "knn"):
            assert 0.0 <= ev["ood"][score]["auroc"] <= 1.0
            assert ev["ood"][score]["convention"] == "ID positive"
        # inverted digits are far from the training distribution: feature-space detectors see it
        assert ev["ood"]["mahalanobis"]["auroc"] > 0.8
        assert {"gaussian_blur_1", "rotation_5", "mean"} <= set(ev["shift"])
        assert 0.0 <= ev["probe"][f"npz:{inv}"]["test_accuracy"] <= 1.0
        assert {"all", "old", "new"} <= set(ev["gcd"])
        assert {"overall", "many", "medium", "few"} <= set(ev["longtail"])
        assert 0.0 < ev["longtail"]["overall"] <= 1.0
        assert "raw" in r["geometry_test"] and "nc1" in r["nc_clean"]


def test_pretrained_feature_path(tmp_path, monkeypatch) -> None:
    """Images → frozen EfficientNet-Lite0 features (cached) → MLP head, through the same loop."""
    monkeypatch.setenv("NCAL_CACHE", str(tmp_path / "cache"))
    rows = run_experiment(tiny(rounds=1, features="pretrained"), tmp_path / "pre", quiet=True)
    cfg = json.loads((tmp_path / "pre" / "config.json").read_text())
    assert cfg["resolved"]["model"] == "mlp"
    assert cfg["resolved"]["problem"]["input_shape"] == [1280]
    # 70 noisy labels, 12 epochs, 8×8 digits upsampled: far from great, but well above chance (0.1)
    assert rows[-1]["test_accuracy"] > 0.25
    with pytest.raises(NcalError, match="pretrained"):
        tiny(features="pretrained", evals=["shift"])


def test_ood_contaminated_pool_wastes_labels_and_counts_them(tmp_path, monkeypatch) -> None:
    from ncal.data import load_dataset
    from ncal.experiment import runner

    seen = []  # the strategies are told how many bought items were "not in the label set"
    real_select = runner.select_batch

    def spy(strategy, signals, k, **kw):
        seen.append((signals.n_rejected_labeled, signals.n_labeled))
        return real_select(strategy, signals, k, **kw)

    monkeypatch.setattr(runner, "select_batch", spy)

    d = load_dataset("digits")
    inv = tmp_path / "inverted.npz"
    np.savez(
        inv, x_train=255 - d.x_train, y_train=d.y_train, x_test=255 - d.x_test, y_test=d.y_test
    )
    cfg = tiny(strategy="random", pool_ood_dataset=f"npz:{inv}", pool_ood_fraction=0.3)
    rows = run_experiment(cfg, tmp_path / "ood", quiet=True)
    for r in rows[:-1]:
        labels = np.asarray(r["selected_labels"])
        assert r["query_ood"] == int((labels == -1).sum())  # "not in the label set" answers
    # random queries hit the 30% OOD share of the pool roughly in proportion
    total_ood = sum(r["query_ood"] for r in rows)
    assert 0.1 < total_ood / sum(len(r["selected"]) for r in rows) < 0.5
    # wasted labels count against the budget but are never trained on
    assert rows[-1]["n_labeled"] == 100
    assert rows[-1]["n_labeled_in_label_set"] < 100
    assert sum(rows[-1]["class_histogram"]) == rows[-1]["n_labeled_in_label_set"]
    assert [n for n, _ in seen] == [r["n_labeled"] - r["n_labeled_in_label_set"] for r in rows[:-1]]
    assert [n for _, n in seen] == [r["n_labeled_in_label_set"] for r in rows[:-1]]
    assert seen[-1][0] > 0


def test_ood_images_of_another_size_are_area_averaged_to_the_pool_size() -> None:
    """Fashion-MNIST (28 x 28) contaminates an 8 x 8 digits pool: resized, and the run records it."""
    from ncal.data import load_dataset, resize_images
    from ncal.experiment.problem import build_problem

    problem = build_problem(tiny(pool_ood_dataset="fashion_mnist", pool_ood_fraction=0.2))
    assert problem.x_pool.shape[1:] == (8, 8)
    assert int(problem.is_ood.sum()) == 150  # 20% of a 600 + 150 pool
    assert problem.info["pool_ood_resized_from"] == [28, 28]
    # the OOD rows are resized Fashion-MNIST images, not digits
    fashion = {r.tobytes() for r in resize_images(load_dataset("fashion_mnist").x_train, (8, 8))}
    assert all(r.tobytes() in fashion for r in problem.x_pool[problem.is_ood])
    assert np.all(problem.y_pool[problem.is_ood] == -1)


def test_resume_refuses_a_changed_dataset_file(tmp_path, monkeypatch) -> None:
    """The run records a fingerprint of its data; a resume on changed data is refused."""
    from sklearn.datasets import load_digits

    from ncal.errors import NcalError

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x[:600], y_train=y[:600], x_test=x[600:900], y_test=y[600:900])
    config = tiny(dataset=f"npz:{path}", pool_size=None, test_size=None, rounds=2, model="mlp")
    interrupt_after_first_round(config, tmp_path / "run", monkeypatch)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data_fingerprint"]

    x2 = x.copy()
    x2[0, 0] += 0.5  # one pixel of one pool image changed between the crash and the resume
    np.savez(path, x_train=x2[:600], y_train=y[:600], x_test=x[600:900], y_test=y[600:900])
    with pytest.raises(NcalError, match=r"fingerprint|data"):
        run_experiment(config, tmp_path / "run", quiet=True)
    np.savez(path, x_train=x[:600], y_train=y[:600], x_test=x[600:900], y_test=y[600:900])
    rows = run_experiment(config, tmp_path / "run", quiet=True)  # the original data resumes
    assert [r["round"] for r in rows] == [0, 1, 2]
