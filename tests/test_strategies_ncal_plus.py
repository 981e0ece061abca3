"""NCAL-R+ (``ncal_plus``): each part switched off gives ncal_r's picks; each part on does its job."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import pytest

import ncal.strategies as S
from strategy_contract import ParamCases, StrategyContract, make_signals
from test_strategies_core import CMAP_CASES
from test_strategies_ood import ood_blobs
from test_strategies_relabel import RelabelContract, relabel_signals

OFF = {"ood_gate": False, "reliability": False, "relabel": False}

PLUS_CASES: ParamCases = {
    **CMAP_CASES,
    "weights": [((0.5, 0.5), None), ([1, 3], None, (1.0, 3.0)), ((0, 0), ValueError)],
    "ood_gate": [(True, None), (False, None), (1, TypeError)],
    "reliability": [(True, None), (False, None), ("no", TypeError)],
    "relabel": [(False, None), (None, TypeError)],
    "threshold": [(0.0, None), (0.9, None), (1.1, ValueError)],
    "min_ood_share": [(0.0, None), (0.2, None), (-0.1, ValueError), ("a", TypeError)],
    "ood_scores": [
        (("knn",), None),
        (["energy", "class_mean", "knn"], None, ("energy", "class_mean", "knn")),
        (("x",), ValueError),
    ],
    "combine": [("rank", None), ("z", None), ("median", ValueError)],
    "ff_zero_share": [(1.0, None), (0.5, None), (-1, ValueError)],
    "ff": [("flips", None), ("margin_std", None), ("margin", ValueError)],
}


@pytest.fixture(autouse=True)
def _quiet():  # contract pools hold no OOD blob (degenerate mixture) and may have sparse FF
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


class TestNCALPlusNewItems(StrategyContract):
    strategy_name = "ncal_plus"
    params: ClassVar[dict[str, Any]] = {"relabel": False}
    param_cases: ClassVar[ParamCases] = PLUS_CASES
    bad_params: ClassVar[list[dict[str, Any]]] = [{"threshold": -0.5}, {"ood_scores": "energy"}]

    @pytest.fixture
    def signals(self) -> S.Signals:
        return relabel_signals()


class TestNCALPlusRelabel(RelabelContract):
    strategy_name = "ncal_plus"
    param_cases: ClassVar[ParamCases] = {
        **PLUS_CASES,
        "relabel": [(True, None), (None, TypeError)],
    }

    def test_param_cases(self, signals: S.Signals) -> None:
        # the contract's check wants 5 new items; here 5 annotations, some of them relabels
        for name, cases in self.param_cases.items():
            for value, error, *_ in cases:
                if error is not None:
                    with pytest.raises(error, match=f"`{name}`"):
                        S.get("ncal_plus", **{name: value})
                    continue
                strat = S.get("ncal_plus", **{name: value})
                assert S.get("ncal_plus", **strat.params()).params() == strat.params()
                assert strat.select(signals, 5).n_annotations == 5


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "flags", [{}, {"direction": "low", "centering": "frozen"}, {"weights": (1.0, 3.0)}]
)
def test_all_parts_off_equals_ncal_r(seed: int, flags: dict[str, Any]) -> None:
    sig = make_signals(seed=seed)
    want = S.get("ncal_r", **flags).select(sig, 25)
    got = S.get("ncal_plus", **OFF, **flags).select(sig, 25)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.scores, want.scores)


def test_constant_ff_warns_and_adds_nothing() -> None:
    sig = make_signals(seed=3)
    sig.ff_counts = np.zeros(sig.n_pool, dtype=np.int64)
    with pytest.warns(RuntimeWarning, match=r"FF is 0 for 100\.0% of the pool.*CMAP alone"):
        got = S.get("ncal_plus", **OFF, ff="flips").select(sig, 20)
    assert got.info["ff_degenerate"] and got.info["ff_zero_share"] == 1.0
    np.testing.assert_array_equal(got.indices, S.get("cmap").select(sig, 20).indices)


def test_sparse_ff_warns_above_the_zero_share_and_is_kept() -> None:
    sig = make_signals(seed=4)
    ff = np.zeros(sig.n_pool, dtype=np.int64)
    ff[[3, 50]] = 2  # 98.3 % zeros
    sig.ff_counts = ff
    with pytest.warns(RuntimeWarning, match=r"98\.3%.*FF is kept"):
        sparse = S.get("ncal_plus", **OFF, ff="flips").select(sig, 20)
    assert sparse.info["ff_degenerate"]
    np.testing.assert_array_equal(sparse.indices, S.get("ncal_r").select(sig, 20).indices)
    assert {3, 50} <= set(sparse.indices.tolist())  # the items that flip rank first
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        quiet = S.get("ncal_plus", **OFF, ff="flips", ff_zero_share=1.0).select(sig, 20)
    assert not quiet.info["ff_degenerate"]
    np.testing.assert_array_equal(quiet.indices, sparse.indices)


def test_gate_buys_far_fewer_ood_items_than_ncal_r() -> None:
    ood_r = ood_plus = 0
    for seed in range(3):
        sig, is_ood, _ = ood_blobs(seed=seed)
        ood_r += is_ood[S.get("ncal_r").select(sig, 40).indices].sum()
        gated = S.get("ncal_plus", ood_gate=True, reliability=False, relabel=False)
        ood_plus += is_ood[gated.select(sig, 40).indices].sum()
    assert ood_r >= 20 and ood_plus == 0


GATE_ONLY = {"ood_gate": True, "reliability": False, "relabel": False}


@pytest.mark.parametrize("seed", [0, 1])
def test_gate_abstains_without_ood_reports(seed: int) -> None:
    # the same OOD-rich pool: with 30 of 230 bought items reported "not in the label set" the gate
    # acts; with none reported it abstains and the picks are the gate-off picks
    sig, is_ood, _ = ood_blobs(seed=seed)
    reported = replace(sig, n_rejected_labeled=30)
    gated = S.get("ncal_plus", **GATE_ONLY).select(reported, 40)
    assert is_ood[gated.indices].sum() == 0 and "id_mixture" in gated.info
    ev = gated.info["ood_evidence"]
    assert ev["ood_reports"] == 30 and ev["ood_report_share"] == pytest.approx(
        30 / (30 + sig.n_labeled)
    )
    silent = S.get("ncal_plus", **GATE_ONLY).select(replace(sig, n_rejected_labeled=0), 40)
    assert "id_mixture" not in silent.info and silent.info["ood_evidence"]["ood_reports"] == 0
    np.testing.assert_array_equal(silent.indices, S.get("ncal_plus", **OFF).select(sig, 40).indices)
    # below the share the gate abstains; with min_ood_share=0 it always acts (version 2)
    few = replace(sig, n_rejected_labeled=1)
    assert (
        "id_mixture" not in S.get("ncal_plus", **GATE_ONLY, min_ood_share=0.05).select(few, 40).info
    )
    always = S.get("ncal_plus", **GATE_ONLY, min_ood_share=0.0)
    np.testing.assert_array_equal(
        always.select(replace(sig, n_rejected_labeled=0), 40).indices, gated.indices
    )
    # a workflow that cannot tell (None) leaves the decision to the mixture
    unknown = S.get("ncal_plus", **GATE_ONLY).select(sig, 40)
    assert unknown.info["ood_evidence"]["ood_reports"] is None
    np.testing.assert_array_equal(unknown.indices, gated.indices)


def test_n_rejected_labeled_is_validated() -> None:
    sig = make_signals(seed=0)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="`n_rejected_labeled` must be a non-negative integer"):
            replace(sig, n_rejected_labeled=bad).validate()
    replace(sig, n_rejected_labeled=np.int64(3)).validate()


def test_reliability_discount_avoids_items_annotators_get_wrong() -> None:
    for seed in range(3):
        sig, _, err = ood_blobs(n_ood=1, n_lab=150, scale=0.5, seed=seed)
        hard = err > 0.3
        plain = S.get("ncal_plus", **OFF).select(sig, 40).indices
        discounted = S.get("ncal_plus", **{**OFF, "reliability": True}).select(sig, 40)
        assert hard[plain].mean() >= 0.3
        assert hard[discounted.indices].mean() <= hard[plain].mean() / 2
        rel = discounted.info["reliability"]
        assert rel["source"] == "pairs" and 0.3 < rel["pair_agreement"] < 1.0
        assert rel["margin_dependent"] and rel["agreement_low"] < rel["agreement_high"]


def test_reliability_discount_leaves_the_ranking_to_annotators_who_agree() -> None:
    # perfect annotators on hard items too: the model's doubt there is not the annotators' error
    sig, _, _ = ood_blobs(n_ood=1, n_lab=150, scale=0.5, seed=0)
    sig.annotations_labeled = np.repeat(sig.labels_labeled[:, None], 3, axis=1)
    plain = S.get("ncal_plus", **OFF).select(sig, 40)
    discounted = S.get("ncal_plus", **{**OFF, "reliability": True}).select(sig, 40)
    np.testing.assert_array_equal(discounted.indices, plain.indices)
    assert discounted.info["reliability"]["pair_agreement"] == 1.0


def _annotations_against_the_model(
    sig: S.Signals, flipped: np.ndarray, noise: float, seed: int
) -> np.ndarray:
    """Three annotations per item that follow the out-of-fold prediction except for ``noise`` of
    them; the ``flipped`` items get one annotation, which contradicts the model."""
    rng = np.random.default_rng(seed)
    pred = sig.probs_labeled_oof.argmax(axis=1)
    ann = np.repeat(pred[:, None], 3, axis=1)
    wrong = rng.random(ann.shape) < noise
    ann[wrong] = (ann[wrong] + 1) % 4
    ann[flipped, 0] = (pred[flipped] + 1) % 4
    ann[flipped, 1:] = -1
    return ann


def test_relabel_competes_on_one_scale() -> None:
    sig, _, _ = ood_blobs(n_ood=0, seed=5)
    flipped = np.array([4, 9, 17, 30, 41])
    sig.annotations_labeled = _annotations_against_the_model(sig, flipped, noise=0.25, seed=0)
    sel = S.get("ncal_plus", ood_gate=False).select(sig, 12)
    assert set(flipped.tolist()) <= set(sel.relabel.tolist())
    assert sel.indices.size + sel.relabel.size == sel.n_annotations == 12
    assert sel.info["reliability"]["source"] == "pairs"
    gain = dict(zip(sel.relabel.tolist(), sel.info["relabel_gain"], strict=True))
    first = sorted(gain, key=gain.get, reverse=True)[: flipped.size]
    assert sorted(first) == flipped.tolist() and min(gain[i] for i in first) > 0.3


def test_clean_annotators_are_not_overruled_by_the_model() -> None:
    # same contradicted items, but the annotators never disagree among themselves
    sig, _, _ = ood_blobs(n_ood=0, seed=5)
    flipped = np.array([4, 9, 17, 30, 41])
    sig.annotations_labeled = _annotations_against_the_model(sig, flipped, noise=0.0, seed=0)
    sel = S.get("ncal_plus", ood_gate=False).select(sig, 12)
    assert sel.relabel.size == 0 and sel.indices.size == 12


def test_without_repeats_a_tenth_of_the_batch_measures_the_annotators() -> None:
    sig, _, _ = ood_blobs(n_ood=0, n_lab=100, seed=6)
    sig.annotations_labeled = np.where(
        np.arange(3)[None, :] == 0, sig.annotations_labeled[:, :1], -1
    )  # one annotation per item
    sel = S.get("ncal_plus", ood_gate=False).select(sig, 50)
    assert sel.info["reliability"]["source"] == "confident_model"
    assert sel.info["n_calibration"] == 5
    calibration = sel.relabel[:5]
    assert calibration.min() <= 10 and calibration.max() >= 90  # spread over the labeled set
    assert sel.n_annotations == 50
