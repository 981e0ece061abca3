"""Relabel-aware strategies: activelab (== cleanlab), good_random, label_cleaning, the relabel
wrapper; the budget counts annotations (new items + relabels)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

import ncal.strategies as S
import ncal.strategies.activelab
from ncal.strategies.label_cleaning import label_cleaning_scores
from ncal.strategies.relabel import consensus_weakness, split_budget
from strategy_contract import StrategyContract, make_signals


def relabel_signals(seed: int = 0) -> S.Signals:
    """Contract signals plus three annotators' labels and out-of-fold probabilities."""
    s = make_signals(seed=seed)
    rng = np.random.default_rng(seed + 1)
    n_l, c = s.labels_labeled.shape[0], s.num_classes
    ann = np.full((n_l, 3), -1, dtype=np.int64)
    ann[:, 0] = s.labels_labeled
    extra = rng.random((n_l, 2)) < 0.3
    ann[:, 1:][extra] = rng.integers(0, c, int(extra.sum()))
    s.annotations_labeled = ann
    s.probs_labeled_oof = rng.dirichlet(np.ones(c), size=n_l)
    return s


class RelabelContract(StrategyContract):
    """The shared contract, with the budget counted in annotations."""

    @pytest.fixture
    def signals(self) -> S.Signals:
        return relabel_signals()

    @pytest.mark.parametrize("k", [1, 7, 30])
    def test_exactly_k_valid_distinct(self, signals: S.Signals, k: int) -> None:
        sel = self.build().select(signals, k, np.random.default_rng(1))
        assert sel.n_annotations == k
        assert len(np.unique(sel.indices)) == sel.indices.size
        assert len(np.unique(sel.relabel)) == sel.relabel.size
        assert sel.indices.dtype == np.int64 and sel.relabel.dtype == np.int64
        if sel.relabel.size:
            assert sel.relabel.max() < signals.n_labeled

    def test_k_at_least_pool_returns_all(self, signals: S.Signals) -> None:
        total = signals.n_pool + signals.n_labeled
        for k in (total, total + 5):
            sel = self.build().select(signals, k, np.random.default_rng(1))
            assert sorted(sel.indices.tolist()) == list(range(signals.n_pool))
            assert sorted(sel.relabel.tolist()) == list(range(signals.n_labeled))


class TestActiveLab(RelabelContract):
    strategy_name = "activelab"

    def test_scores_equal_cleanlab_and_lowest_k_are_bought(self) -> None:
        from cleanlab.multiannotator import get_active_learning_scores

        s = relabel_signals(3)
        multi = np.where(s.annotations_labeled >= 0, s.annotations_labeled, np.nan)
        want_lab, want_pool = get_active_learning_scores(
            multi, s.probs_labeled_oof, s.probabilities()
        )
        got_lab, got_pool = ncal.strategies.activelab.activelab_scores(
            s.annotations_labeled, s.probs_labeled_oof, s.probabilities()
        )
        np.testing.assert_array_equal(got_lab, want_lab)
        np.testing.assert_array_equal(got_pool, want_pool)
        sel = S.get("activelab").select(s, 25)
        chosen = np.r_[want_pool[sel.indices], want_lab[sel.relabel]]
        rest = np.r_[np.delete(want_pool, sel.indices), np.delete(want_lab, sel.relabel)]
        assert chosen.max() <= rest.min()


class TestGoodRandom(RelabelContract):
    strategy_name = "good_random"

    def test_fewest_annotations_first(self) -> None:
        s = relabel_signals()
        n = s.n_pool
        sel = S.get("good_random").select(s, n + 5, np.random.default_rng(0))
        # all pool items (0 annotations) first, then 5 of the labeled items with one annotation
        assert sorted(sel.indices.tolist()) == list(range(n))
        counts = (s.annotations_labeled != -1).sum(axis=1)
        assert (counts[sel.relabel] == counts.min()).all() and sel.relabel.size == 5


class TestLabelCleaning(RelabelContract):
    strategy_name = "label_cleaning"

    def test_scores_hand_case(self) -> None:
        ann = np.array([[0, -1], [0, 1], [-1, -1]])
        p = np.array([[0.1, 0.9], [0.5, 0.5], [0.5, 0.5]])
        phi = label_cleaning_scores(ann, p)
        h = -(0.1 * np.log(0.1) + 0.9 * np.log(0.9))
        assert phi[0] == pytest.approx(-np.log(0.1) - h)
        assert phi[1] == pytest.approx(np.log(2) - np.log(2))
        assert phi[2] == -np.inf
        sel = S.get("label_cleaning").select(relabel_signals(), 10, np.random.default_rng(0))
        assert sel.indices.size == 0 and sel.relabel.size == 10


class TestRelabelWrapper(RelabelContract):
    strategy_name = "relabel"
    params: ClassVar[dict[str, Any]] = {"base": "margin", "share": 0.3}
    bad_params: ClassVar[list[dict[str, Any]]] = [
        {"share": 1.5},
        {"share": -0.1},
        {"share": "half"},
        {"base": "activelab"},
    ]
    param_cases: ClassVar[dict[str, list[tuple[Any, ...]]]] = {
        "base": [("entropy", None), ("activelab", ValueError), (3, TypeError)],
        "share": [(0.0, None), (1.0, None), (1.5, ValueError), ("x", TypeError)],
        "base_params": [({}, None, {}), ({"no": 1}, TypeError)],
    }

    def test_param_cases(self, signals: S.Signals) -> None:
        # the contract's check wants 5 new items; here 5 annotations, split by `share`
        for name, cases in self.param_cases.items():
            for value, error, *_ in cases:
                kwargs = {**self.params, name: value}
                if error is not None:
                    with pytest.raises(error):
                        S.get("relabel", **kwargs)
                    continue
                strat = S.get("relabel", **kwargs)
                assert S.get("relabel", **strat.params()).params() == strat.params()
                sel = strat.select(signals, 5, np.random.default_rng(0))
                assert sel.n_annotations == 5
                assert sel.relabel.size == round(strat.share * 5)

    def test_share_splits_the_budget(self) -> None:
        s = relabel_signals()
        sel = S.get("relabel", base="margin", share=0.3).select(s, 20)
        assert sel.relabel.size == 6 and sel.indices.size == 14
        np.testing.assert_array_equal(sel.indices, S.get("margin").select(s, 14).indices)
        weak = consensus_weakness(s.annotations_labeled, s.probs_labeled_oof)
        assert weak[sel.relabel].min() >= np.delete(weak, sel.relabel).max()
        assert sel.n_annotations == 20

    def test_share_error_names_share(self) -> None:
        with pytest.raises(ValueError, match="`share`"):
            S.get("relabel", share=2.0)


def test_consensus_weakness_hand_values():
    ann = np.array([[1, -1, -1], [1, 1, 1], [0, -1, -1]])
    p = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])
    np.testing.assert_allclose(consensus_weakness(ann, p), [0.45, 0.225, 0.05])


def test_split_budget_moves_shortfall():
    assert split_budget(10, 3, n_pool=100, n_labeled=50) == (7, 3)
    assert split_budget(10, 3, n_pool=100, n_labeled=1) == (9, 1)
    assert split_budget(10, 3, n_pool=4, n_labeled=50) == (4, 6)
