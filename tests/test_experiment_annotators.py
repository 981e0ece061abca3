"""Several annotators in the simulated loop: annotation budget, relabels, consensus training,
the annotation log in the records, resume, and the unchanged single-oracle path."""

from __future__ import annotations

import numpy as np
import pytest

import test_experiment_run as run_tests
from ncal.consensus import consensus_labels, latest_per_pair
from ncal.errors import NcalError
from ncal.experiment import ExperimentConfig, run_experiment
from ncal.experiment.annotations import (
    AnnotationLog,
    batch_noise_rate,
    buy,
    labeled_annotations,
    log_record,
    round_labels,
)
from ncal.experiment.problem import build_problem
from ncal.experiment.step import with_relabel_signals
from ncal.signals import Signals

TIMING = {"train_seconds", "select_seconds", "ff_seconds", "train_info"}
THREE = ["oracle:0.15", "oracle:0.3", "oracle:0.45"]
# the fields of a round record before annotators existed, and the ones they added
OLD_FIELDS = {
    "budget_fraction", "class_histogram", "ff_seconds", "geometry_test", "n_labeled",
    "n_labeled_in_label_set", "nc", "nc_clean", "nc_test", "noise_rate_batch",
    "noise_rate_labeled", "query_ood", "reached_terminal", "round", "seed", "select_seconds",
    "selected", "selected_labels", "selected_scores", "strategy", "test_accuracy", "train_epochs",
    "train_info", "train_seconds",
}  # fmt: skip
NEW_FIELDS = {
    "annotations", "relabels", "consensus_purity", "selected_relabel", "batch_annotations",
    "consensus_method", "consensus_fallback", "annotator_reliability",
}  # fmt: skip


def tiny(**overrides) -> ExperimentConfig:
    """The tiny run of test_experiment_run, with three annotators and ActiveLab by default."""
    return run_tests.tiny(
        **{"strategy": "activelab", "model": "mlp", "annotators": THREE, **overrides}
    )


def strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def full_log(rows: list[dict], upto: int) -> dict[str, np.ndarray]:
    """The annotation log as stored: initial set plus the batches bought before round ``upto``."""
    parts = [rows[0]["initial_annotations"]] + [rows[r]["batch_annotations"] for r in range(upto)]
    return {
        key: np.asarray([v for p in parts for v in p[key]], dtype=np.int64)
        for key in ("item", "annotator", "label")
    }


# ------------------------------------------------------------------------------ config, no training


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"annotators": ["sym:abc"]}, "annotators"),
        ({"annotators": []}, "annotators"),
        ({"annotators": None, "annotator_errors": "correlated"}, "annotator_errors"),
        ({"annotators": None, "consensus": "ds"}, "consensus"),
        ({"annotator_errors": "sometimes"}, "annotator_errors"),
        ({"annotator_assignment": "first"}, "annotator_assignment"),
        ({"consensus": "vote"}, "consensus"),
        ({"noise": "sym:abc"}, "`noise`"),
    ],
)
def test_config_rejects_bad_annotator_settings(overrides: dict, match: str) -> None:
    with pytest.raises(NcalError, match=match):
        tiny(**overrides)


def test_config_defaults_apply_only_with_annotators() -> None:
    cfg = tiny()
    assert cfg.annotator_setting("consensus") == "auto"
    assert cfg.annotator_setting("annotator_errors") == "independent"
    assert cfg.annotator_setting("annotator_assignment") == "round_robin"
    # a config without annotators keeps the settings written before they existed (resumable)
    plain = tiny(annotators=None, strategy="margin").settings()
    assert {plain[k] for k in ("annotators", "annotator_errors", "consensus")} == {None}


def _hand_log() -> AnnotationLog:
    log = AnnotationLog()
    # item 5: 1, 1, 2 (annotators 0, 1, 2) -> 1; item 2: 0 -> 0; item 9: OOD -> -1;
    # item 7: annotator 0 says 3, later (relabel) 4: the latest of a pair wins -> 4
    log.extend([5, 2, 9, 7], [0, 1, 2, 0], [1, 0, -1, 3])
    log.extend([5, 5, 7], [1, 2, 0], [1, 2, 4])
    return log


def test_round_labels_and_purity_on_a_hand_case() -> None:
    from ncal.consensus import consensus_purity

    log, labeled = _hand_log(), np.array([5, 2, 9, 7])
    got = round_labels(log, labeled, n_pool=10, num_classes=5, n_annotators=3, method="majority")
    np.testing.assert_array_equal(got.labels, [1, 0, -1, 4])
    assert got.method == "majority" and got.fallback_reason is None
    # `auto` falls back to the majority vote (only one item has three annotators) and says why
    auto = round_labels(log, labeled, n_pool=10, num_classes=5, n_annotators=3, method="auto")
    np.testing.assert_array_equal(auto.labels, got.labels)
    assert auto.method == "majority" and "three or more annotators" in auto.fallback_reason
    # single annotator: each item's own (latest) annotation
    single = AnnotationLog()
    single.extend([5, 2, 9, 5], [0, 0, 0, 0], [1, 0, -1, 3])
    plain = round_labels(single, labeled[:3], n_pool=10, num_classes=5, n_annotators=1, method=None)
    np.testing.assert_array_equal(plain.labels, [3, 0, -1])
    assert plain.method is None and plain.reliability is None
    # purity over in-distribution training items: item 5 right, 2 wrong, 7 right; 9 (OOD) left out
    y_true = np.array([1, 2, -1, 4])
    ood = np.array([False, False, True, False])
    assert consensus_purity(got.labels, y_true, mask=~ood) == pytest.approx(2 / 3)


def test_labeled_annotations_matrix() -> None:
    log = _hand_log()
    m = labeled_annotations(log, np.array([7, 5, 9]), n_pool=10, n_annotators=3)
    np.testing.assert_array_equal(m, [[4, -1, -1], [1, 1, 2], [-1, -1, -1]])


def test_batch_noise_rate_counts_annotations_of_in_distribution_items() -> None:
    y = np.array([0, 1, 2, -1])
    ood = np.array([False, False, False, True])
    # item 1 asked twice (a relabel): one wrong answer of two; item 3 is OOD and left out
    rate = batch_noise_rate(np.array([0, 1, 1, 3]), np.array([0, 1, 2, -1]), y, ood)
    assert rate == pytest.approx(1 / 3)
    assert batch_noise_rate(np.array([3]), np.array([-1]), y, ood) is None


class _Fixed:
    n_annotators = 2

    def annotate(self, items, round_):
        return np.asarray(items) % 2, np.asarray(items) + 10


def test_buy_logs_and_checks_a_stored_purchase() -> None:
    log = AnnotationLog()
    buy(_Fixed(), log, np.array([3, 4]), 1)
    assert log_record(log.items, log.annotators, log.labels) == {
        "item": [3, 4], "annotator": [1, 0], "label": [13, 14],
    }  # fmt: skip
    buy(_Fixed(), log, np.array([5]), 2, stored={"item": [5], "annotator": [1], "label": [15]})
    assert len(log) == 3
    with pytest.raises(NcalError, match="differ"):
        buy(_Fixed(), log, np.array([6]), 3, stored={"item": [6], "annotator": [0], "label": [1]})


def test_relabel_signals_are_out_of_fold_probabilities() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    feats = (np.eye(3)[y] * 3 + rng.normal(size=(30, 3))).astype(np.float32)
    base = Signals(probs_pool=np.full((4, 3), 1 / 3), features_labeled=feats, labels_labeled=y,
                   num_classes=3)  # fmt: skip
    ann = np.stack([y, np.full(30, -1)], axis=1)
    sig = with_relabel_signals(base, ann, seed=0, round_index=1)
    np.testing.assert_array_equal(sig.annotations_labeled, ann)
    assert sig.probs_labeled_oof.shape == (30, 3)
    np.testing.assert_allclose(sig.probs_labeled_oof.sum(axis=1), 1.0)
    # well-separated classes: the held-out fold is still predicted right
    assert np.mean(sig.probs_labeled_oof.argmax(1) == y) > 0.9
    again = with_relabel_signals(base, ann, seed=0, round_index=1)
    np.testing.assert_array_equal(again.probs_labeled_oof, sig.probs_labeled_oof)
    with pytest.raises(ValueError, match="one row per labeled item"):
        with_relabel_signals(base, ann[:5], seed=0, round_index=1)


# ------------------------------------------------------------------------------ the loop


def _check_annotation_records(rows: list[dict], config: ExperimentConfig, k: int) -> None:
    problem = build_problem(config)
    for r, row in enumerate(rows):
        assert row["annotations"] == 40 + r * k
        log = full_log(rows, r)
        assert log["item"].size == row["annotations"]
        assert row["n_labeled"] == np.unique(log["item"]).size
        # recompute the consensus from the stored log and the true labels
        keep = latest_per_pair(log["item"], log["annotator"])
        cons = consensus_labels(
            log["item"][keep], log["annotator"][keep], log["label"][keep], n_items=600,
            num_classes=10, method=row["consensus_method"], n_annotators=3,
        )  # fmt: skip
        items = np.unique(log["item"])
        lab, y = cons.labels[items], problem.y_pool[items]
        ind = (lab >= 0) & ~problem.is_ood[items]
        assert 0.0 <= row["consensus_purity"] <= 1.0
        assert row["consensus_purity"] == float(np.mean(lab[ind] == y[ind]))
        assert row["n_labeled_in_label_set"] == int((lab >= 0).sum())
        if r < len(rows) - 1:
            batch = row["batch_annotations"]
            assert len(batch["item"]) == k == len(row["selected"]) + row["relabels"]
            assert batch["item"] == row["selected"] + row["selected_relabel"]
            assert row["selected_labels"] == batch["label"][: len(row["selected"])]
            # relabels are items labeled before; new items are not
            assert set(row["selected_relabel"]) <= set(log["item"].tolist())
            assert not set(row["selected"]) & set(log["item"].tolist())
            wrong = np.asarray(batch["label"]) != problem.y_pool[batch["item"]]
            assert row["noise_rate_batch"] == float(np.mean(wrong))


def test_activelab_with_three_annotators_buys_k_annotations_per_round(tmp_path) -> None:
    pytest.importorskip("cleanlab")
    cfg = tiny()
    rows = run_experiment(cfg, tmp_path / "al", quiet=True)
    assert [r["annotations"] for r in rows] == [40, 70, 100]
    assert sum(r["relabels"] for r in rows) > 0
    _check_annotation_records(rows, cfg, 30)
    import json

    resolved = json.loads((tmp_path / "al" / "config.json").read_text())["resolved"]
    assert resolved["annotators"]["annotators"] == THREE
    assert resolved["annotators"]["consensus"] == "auto"
    assert resolved["annotators"]["assignment"] == "round_robin"


def test_relabel_wrapper_spends_its_share_and_resumes_identically(tmp_path, monkeypatch) -> None:
    cfg = tiny(
        strategy="relabel",
        strategy_params={"base": "margin", "share": 0.3},
        annotator_errors="correlated",
        consensus="majority",
    )
    full = run_experiment(cfg, tmp_path / "full", quiet=True)
    assert [r["relabels"] for r in full] == [9, 9, 0]
    assert all(r["consensus_method"] == "majority" for r in full)
    _check_annotation_records(full, cfg, 30)

    run_tests.interrupt_after_first_round(cfg, tmp_path / "cut", monkeypatch)
    resumed = run_experiment(cfg, tmp_path / "cut", quiet=True)
    assert strip(resumed) == strip(full)


def test_without_annotators_rows_keep_the_old_format_plus_new_fields(tmp_path) -> None:
    cfg = tiny(annotators=None, strategy="margin")
    rows = run_experiment(cfg, tmp_path / "plain", quiet=True)
    problem = build_problem(cfg)
    for r, row in enumerate(rows):
        assert set(row) == OLD_FIELDS | NEW_FIELDS | ({"initial_annotations"} if r == 0 else set())
        assert row["annotations"] == row["n_labeled"] == 40 + 30 * r
        assert row["relabels"] == 0 and row["selected_relabel"] == []
        assert row["consensus_method"] is None and row["annotator_reliability"] is None
        assert row["consensus_purity"] == pytest.approx(1 - row["noise_rate_labeled"])
        batch = row["batch_annotations"]
        assert batch["item"] == row["selected"] and batch["label"] == row["selected_labels"]
        assert set(batch["annotator"]) <= {0}
        if row["selected"]:
            labels, _ = problem.oracle.query(np.asarray(row["selected"]))
            assert row["selected_labels"] == labels.tolist()


def test_cli_annotator_options(tmp_path, capsys) -> None:
    from ncal.cli import build_parser, main
    from ncal.experiment.cli import _config_from_args

    out = str(tmp_path / "x")
    assert main(["run", "--annotator-errors", "correlated", "--out", out, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "annotator_errors" in err and "--annotator" in err and "Traceback" not in err
    assert main(["run", "--annotator", "sym:2", "--out", out, "--quiet"]) == 2
    assert "annotators" in capsys.readouterr().err
    args = build_parser().parse_args(
        ["run", "--annotator", "oracle:0.15", "--annotator", "sym:0.3", "--consensus", "ds",
         "--out", out]
    )  # fmt: skip
    cfg = _config_from_args(args)
    assert cfg.annotators == ["oracle:0.15", "sym:0.3"] and cfg.consensus == "ds"
    assert cfg.annotator_errors is None and cfg.annotator_assignment is None
    plain = _config_from_args(build_parser().parse_args(["run", "--out", out]))
    assert plain.annotators is None and plain.consensus is None
