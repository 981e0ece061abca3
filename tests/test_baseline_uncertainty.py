"""BALD (array and streamed) and uncertainty scores vs hand computations and scikit-activeml."""

from __future__ import annotations

import numpy as np
import pytest

import ncal.strategies as S
from ncal.strategies.bald import BaldAccumulator, bald_scores
from ncal.strategies.uncertainty import entropy_scores, least_confidence_scores, margin_scores
from strategy_contract import StrategyContract, make_signals
from test_baseline_kernels import one_torch_thread  # noqa: F401  (autouse fixture)


class TestBaldContract(StrategyContract):
    strategy_name = "bald"


def _h(p: np.ndarray) -> float:
    p = np.asarray(p, dtype=float)
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum())


def test_bald_hand_made_passes() -> None:
    # sample 0: passes agree -> BALD 0; sample 1: confident but contradictory passes -> ~log 2;
    # sample 2: a zero probability (0 log 0 = 0) in one pass.
    mc = np.array(
        [
            [[0.5, 0.5], [1.0, 0.0], [0.2, 0.8]],
            [[0.5, 0.5], [0.0, 1.0], [0.6, 0.4]],
        ]
    )
    got = bald_scores(mc)
    expect = [
        _h([0.5, 0.5]) - 0.5 * (_h([0.5, 0.5]) + _h([0.5, 0.5])),
        _h([0.5, 0.5]) - 0.5 * (_h([1.0, 0.0]) + _h([0.0, 1.0])),
        _h([0.4, 0.6]) - 0.5 * (_h([0.2, 0.8]) + _h([0.6, 0.4])),
    ]
    np.testing.assert_allclose(got, expect, atol=1e-15)
    assert got[1] == pytest.approx(np.log(2))
    sel = S.get("bald").select(S.Signals(mc_probs_pool=mc), 2)
    assert sel.indices.tolist() == [1, 2]
    assert sel.info["passes"] == 2


def test_bald_streamed_equals_array_and_is_nonnegative() -> None:
    sig = make_signals(n=300)
    mc = sig.mc_probs_pool
    acc = BaldAccumulator()
    for p in mc:
        acc.update(p)
    np.testing.assert_allclose(acc.scores(), bald_scores(mc), atol=1e-14)
    np.testing.assert_allclose(bald_scores(iter(list(mc))), bald_scores(mc), atol=1e-14)
    mean = mc.mean(0)
    direct = -(mean * np.log(mean)).sum(1) + (mc * np.log(mc)).sum(2).mean(0)
    np.testing.assert_allclose(bald_scores(mc), direct, atol=1e-12)
    assert (bald_scores(mc) > -1e-12).all()


def test_bald_errors() -> None:
    with pytest.raises(ValueError, match="at least one MC pass"):
        BaldAccumulator().scores()
    with pytest.raises(ValueError, match="T passes"):
        bald_scores(np.ones((4, 3)))
    with pytest.raises(ValueError, match="no MC pass"):
        bald_scores(np.ones((0, 4, 3)))
    acc = BaldAccumulator()
    acc.update(np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match="shape"):
        acc.update(np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="negative"):
        acc.update(np.array([[1.5, -0.5], [0.5, 0.5], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="NaN"):
        bald_scores(np.full((2, 3, 2), np.nan))
    sig = make_signals()
    sig.mc_probs_pool = sig.mc_probs_pool[:, :50]
    with pytest.raises(ValueError, match="mc_probs_pool"):
        S.get("bald").select(sig, 3)


def _probs(n: int = 500, c: int = 7, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * rng.uniform(0.1, 6, size=(n, 1))
    e = np.exp(z - z.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    p[0] = 0.0
    p[0, 2] = 1.0  # a saturated row with exact zeros
    return p


def test_uncertainty_scores_equal_scikit_activeml() -> None:
    from skactiveml.pool import uncertainty_scores

    p = _probs()
    np.testing.assert_allclose(
        least_confidence_scores(p), uncertainty_scores(p, method="least_confident"), atol=1e-14
    )
    # skactiveml's margin is 1 - (p1 - p2); ours is -(p1 - p2): same ranking, offset 1
    np.testing.assert_allclose(
        margin_scores(p) + 1.0, uncertainty_scores(p, method="margin_sampling"), atol=1e-14
    )
    np.testing.assert_allclose(
        entropy_scores(p), uncertainty_scores(p, method="entropy"), atol=1e-13
    )


def test_entropy_selection_equals_scikit_activeml_query() -> None:
    from skactiveml.base import SkactivemlClassifier
    from skactiveml.pool import UncertaintySampling

    p = _probs(200, 5, 3)

    class Fixed(SkactivemlClassifier):
        def fit(self, X, y, sample_weight=None):
            return self

        def predict_proba(self, X):
            return p[X[:, 0].astype(int)]

    x = np.arange(200, dtype=float)[:, None]
    y = np.full(200, np.nan)
    theirs = UncertaintySampling(method="entropy", random_state=0).query(
        x, y, Fixed(classes=np.arange(5)), fit_clf=False, batch_size=15
    )
    ours = S.get("entropy").select(S.Signals(probs_pool=p), 15).indices
    assert sorted(ours.tolist()) == sorted(np.asarray(theirs).tolist())
