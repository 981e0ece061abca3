"""NCAL-R+ (``ncal_plus``): each part switched off gives ncal_r's picks; each part on does its job."""

from __future__ import annotations

import warnings
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
    assert not got.info["ff_dropped"]


def test_constant_ff_warns_and_is_dropped_explicitly() -> None:
    sig = make_signals(seed=3)
    sig.ff_counts = np.zeros(sig.n_pool, dtype=np.int64)
    with pytest.warns(RuntimeWarning, match=r"FF is 0 for 100\.0% of the pool"):
        got = S.get("ncal_plus", **OFF).select(sig, 20)
    assert got.info["ff_dropped"] and got.info["ff_zero_share"] == 1.0
    np.testing.assert_array_equal(got.indices, S.get("ncal_r").select(sig, 20).indices)


def test_sparse_ff_is_dropped_above_the_zero_share() -> None:
    sig = make_signals(seed=4)
    ff = np.zeros(sig.n_pool, dtype=np.int64)
    ff[[3, 50]] = 2  # 98.3 % zeros
    sig.ff_counts = ff
    with pytest.warns(RuntimeWarning, match=r"98\.3%"):
        dropped = S.get("ncal_plus", **OFF).select(sig, 20)
    np.testing.assert_array_equal(dropped.indices, S.get("cmap").select(sig, 20).indices)
    kept = S.get("ncal_plus", **OFF, ff_zero_share=1.0).select(sig, 20)
    np.testing.assert_array_equal(kept.indices, S.get("ncal_r").select(sig, 20).indices)
    assert not kept.info["ff_dropped"]


def test_gate_buys_far_fewer_ood_items_than_ncal_r() -> None:
    ood_r = ood_plus = 0
    for seed in range(3):
        sig, is_ood, _ = ood_blobs(seed=seed)
        ood_r += is_ood[S.get("ncal_r").select(sig, 40).indices].sum()
        gated = S.get("ncal_plus", ood_gate=True, reliability=False, relabel=False)
        ood_plus += is_ood[gated.select(sig, 40).indices].sum()
    assert ood_r >= 20 and ood_plus == 0


def test_reliability_discount_avoids_items_annotators_get_wrong() -> None:
    for seed in range(3):
        sig, _, err = ood_blobs(n_ood=1, n_lab=150, scale=0.5, seed=seed)
        hard = err > 0.3
        plain = S.get("ncal_plus", **OFF).select(sig, 40).indices
        discounted = S.get("ncal_plus", **{**OFF, "reliability": True}).select(sig, 40)
        assert hard[plain].mean() >= 0.3
        assert hard[discounted.indices].mean() <= hard[plain].mean() / 3
        assert 0.0 < discounted.info["reliability"]["mean_agreement"] < 1.0


def test_relabel_competes_on_one_scale() -> None:
    sig, _, _ = ood_blobs(n_ood=0, seed=5)
    oof_pred = sig.probs_labeled_oof.argmax(axis=1)
    flipped = np.array([4, 9, 17, 30, 41])
    ann = sig.annotations_labeled.copy()
    ann[:, :] = oof_pred[:, None]
    ann[flipped, 0] = (oof_pred[flipped] + 1) % 4  # one of three annotators contradicts the model
    ann[flipped, 1:] = -1
    sig.annotations_labeled = ann
    sel = S.get("ncal_plus", ood_gate=False).select(sig, 12)
    assert sorted(sel.relabel.tolist()) == flipped.tolist()
    assert sel.indices.size == 7 and sel.n_annotations == 12
    assert sel.info["n_relabel"] == 5 and min(sel.info["relabel_gain"]) > 0.3
