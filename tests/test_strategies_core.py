"""Core strategies: the shared contract plus value tests (docs/algorithms.md §0.3, §1.1, §1.2, §1.10)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ncal
import ncal.strategies as S
from ncal.geometry import cmap
from strategy_contract import ParamCases, StrategyContract, make_signals


# ----------------------------------------------------------------------------- contract
class TestRandom(StrategyContract):
    strategy_name = "random"


class TestLeastConfidence(StrategyContract):
    strategy_name = "least_confidence"


class TestMargin(StrategyContract):
    strategy_name = "margin"


class TestEntropy(StrategyContract):
    strategy_name = "entropy"


CMAP_CASES: ParamCases = {
    "direction": [("high", None), ("low", None), ("abs", None), ("sideways", ValueError)],
    "centering": [("none", None), ("frozen", None), ("moving", None), ("x", ValueError)],
    "mu_G": [("class_avg", None), ("sample_avg", None), ("median", ValueError)],
    "pair": [("signed", None), ("abs", None), ("squared", ValueError)],
    "empty_class": [
        ("formula", None),
        ("force_select", None),
        ("skip", None),
        ("ignore", ValueError),
    ],
    "expected": [(False, None), (True, None), ("yes", TypeError)],
    "block_size": [(8192, None), (7, None), (0, ValueError), (2.5, TypeError)],
}


class TestNCALR(StrategyContract):
    strategy_name = "ncal_r"
    param_cases: ClassVar[ParamCases] = {
        **CMAP_CASES,
        "weights": [
            ((0.5, 0.5), None),
            ([1, 3], None, (1.0, 3.0)),
            ((1.0, 0.0), None),
            ((-1, 1), ValueError),
            ((0, 0), ValueError),
            ((1, 2, 3), ValueError),
        ],
        "ff": [("flips", None), ("margin_std", None), ("margin", ValueError)],
        "ff_zero_share": [(0.95, None), (1.0, None), (1.5, ValueError)],
    }


class TestNCALRLow(TestNCALR):
    params: ClassVar[dict[str, Any]] = {"direction": "low", "centering": "frozen"}


class TestNCALRAbsMoving(TestNCALR):
    params: ClassVar[dict[str, Any]] = {
        "direction": "abs",
        "centering": "moving",
        "mu_G": "sample_avg",
        "pair": "abs",
    }


class TestNCALRExpected(TestNCALR):
    params: ClassVar[dict[str, Any]] = {"expected": True, "centering": "moving"}


class TestCMAPOnly(StrategyContract):
    strategy_name = "cmap"
    param_cases: ClassVar[ParamCases] = CMAP_CASES


class TestCMAPOnlyFrozenLow(TestCMAPOnly):
    params: ClassVar[dict[str, Any]] = {"centering": "frozen", "direction": "low"}


class TestFFOnly(StrategyContract):
    strategy_name = "ff"


# ----------------------------------------------------------------------------- selection utilities
def test_ncal_r_scores_is_mean_of_population_zscores() -> None:
    rng = np.random.default_rng(0)
    c, f = rng.normal(size=50), rng.integers(0, 5, 50).astype(float)

    def z(v):
        return (v - v.mean()) / np.sqrt(np.mean((v - v.mean()) ** 2))  # population std

    np.testing.assert_allclose(ncal.ncal_r_scores(c, f), (z(c) + z(f)) / 2, rtol=1e-13)
    np.testing.assert_allclose(
        ncal.ncal_r_scores(c, f, direction="low"), (z(-c) + z(f)) / 2, rtol=1e-13
    )
    np.testing.assert_allclose(
        ncal.ncal_r_scores(c, f, direction="abs"), (z(np.abs(c)) + z(f)) / 2, rtol=1e-13
    )
    # a constant signal contributes 0, not NaN
    np.testing.assert_allclose(ncal.ncal_r_scores(c, np.full(50, 3.0)), z(c) / 2, rtol=1e-13)
    assert np.all(ncal.ncal_r_scores(np.ones(4), np.zeros(4)) == 0.0)
    assert np.all(ncal.zscore(np.full(3, 7.0)) == 0.0)


def test_top_k_ties_to_lower_index_and_nan_raises() -> None:
    s = np.array([0.5, 0.9, 0.1, 0.9, 0.5, 0.9])
    np.testing.assert_array_equal(ncal.top_k(s, 4), [1, 3, 5, 0])
    np.testing.assert_array_equal(ncal.top_k(s, 10), [1, 3, 5, 0, 4, 2])
    np.testing.assert_array_equal(ncal.top_k(np.array([np.inf, 0.0, np.inf]), 2), [0, 2])
    assert ncal.top_k(s, 0).size == 0
    with pytest.raises(ValueError, match="NaN"):
        ncal.top_k(np.array([0.1, np.nan, 0.3]), 1)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.sampled_from([-np.inf, -1.0, -0.0, 0.0, 0.5, 2.0, np.inf]) | st.floats(-3, 3),
        min_size=1,
        max_size=60,
    ),
    k=st.integers(0, 70),
)
def test_top_k_equals_a_full_stable_sort(values: list[float], k: int) -> None:
    # the partition shortcut must pick exactly what sorting everything by (-score, index) picks
    s = np.array(values)
    want = np.lexsort((np.arange(s.size), -s))[:k]
    np.testing.assert_array_equal(ncal.top_k(s, k), want)


# ----------------------------------------------------------------------------- uncertainty values
P = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.4, 0.4, 0.2],
        [1.0, 0.0, 0.0],
        [0.34, 0.33, 0.33],
    ]
)


def _signals(probs: np.ndarray) -> S.Signals:
    return S.Signals(probs_pool=probs, num_classes=probs.shape[1])


def test_uncertainty_scores_hand_computed() -> None:
    lc = S.get("least_confidence").select(_signals(P), 4)
    np.testing.assert_array_equal(lc.indices, [3, 1, 0, 2])
    np.testing.assert_allclose(lc.scores, [0.66, 0.6, 0.3, 0.0], atol=1e-15)

    mg = S.get("margin").select(_signals(P), 4)
    np.testing.assert_array_equal(mg.indices, [1, 3, 0, 2])
    np.testing.assert_allclose(mg.scores, [0.0, -0.01, -0.5, -1.0], atol=1e-15)

    en = S.get("entropy").select(_signals(P), 4)
    h = [-(0.34 * np.log(0.34) + 2 * 0.33 * np.log(0.33)),
         -(2 * 0.4 * np.log(0.4) + 0.2 * np.log(0.2)),
         -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)),
         0.0]  # fmt: skip
    np.testing.assert_array_equal(en.indices, [3, 1, 0, 2])
    np.testing.assert_allclose(en.scores, h, rtol=1e-13, atol=1e-15)


def test_entropy_from_logits_equals_probability_formula() -> None:
    z = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [50.0, -50.0, 0.0]])
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    h = -(p * np.log(p)).sum(1)
    sel = S.get("entropy").select(S.Signals(logits_pool=z, num_classes=3), 3)
    np.testing.assert_array_equal(sel.indices, np.argsort(-h, kind="stable"))
    np.testing.assert_allclose(sel.scores, np.sort(h)[::-1], rtol=1e-12, atol=1e-300)


def test_probabilities_from_logits_blockwise_equal_whole_array_formula() -> None:
    # more rows than one block, float32 and integer logits, a memory-mapped-like read-only view
    rng = np.random.default_rng(3)
    for logits in (
        rng.normal(0, 4, (70_001, 5)).astype(np.float32),
        rng.integers(-30, 30, (70_001, 3)),
    ):
        logits.flags.writeable = False
        z = logits.astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        sig = S.Signals(logits_pool=logits, num_classes=logits.shape[1])
        np.testing.assert_array_equal(sig.log_probabilities(), logp)
        np.testing.assert_array_equal(sig.probabilities(), np.exp(logp))
    bad = np.zeros((70_001, 3))
    bad[69_000, 1] = np.nan
    with pytest.raises(ValueError, match="logits_pool"):
        S.Signals(logits_pool=bad, num_classes=3).probabilities()


def test_random_uses_only_the_given_rng() -> None:
    sig = make_signals()
    a = S.get("random").select(sig, 10, np.random.default_rng(3)).indices
    np.testing.assert_array_equal(a, np.random.default_rng(3).choice(sig.n_pool, 10, replace=False))
    with pytest.raises(ValueError, match="rng"):
        S.get("random").select(sig, 10)


# ----------------------------------------------------------------------------- NCAL-R values
def _hand_cmap(sig: S.Signals, **flags) -> np.ndarray:
    probs = sig.probabilities()
    return cmap(
        sig.features_labeled,
        sig.labels_labeled,
        sig.features_pool,
        probs.argmax(1),
        probs_pool=probs if flags.get("expected") else None,
        num_classes=sig.num_classes,
        **flags,
    )


@pytest.mark.parametrize(
    ("direction", "flags"),
    [
        ("high", {}),
        ("low", {"centering": "frozen"}),
        ("abs", {"centering": "moving", "mu_G": "sample_avg"}),
        ("high", {"pair": "abs", "expected": True}),
    ],
)
def test_ncal_r_selection_is_top_k_of_hand_composite(direction, flags) -> None:
    sig = make_signals(seed=4)
    c = _hand_cmap(sig, **flags)
    f = np.asarray(sig.ff_counts, dtype=float)
    cc = {"high": c, "low": -c, "abs": np.abs(c)}[direction]

    def z(v):
        return (v - v.mean()) / v.std()

    composite = (z(cc) + z(f)) / 2
    sel = S.get("ncal_r", direction=direction, **flags).select(sig, 25)
    np.testing.assert_array_equal(sel.indices, ncal.top_k(composite, 25))
    np.testing.assert_allclose(sel.scores, composite[sel.indices], rtol=1e-12)
    only = S.get("cmap", direction=direction, **flags).select(sig, 25)
    np.testing.assert_array_equal(only.indices, ncal.top_k(cc, 25))
    ff = S.get("ff").select(sig, 25)
    np.testing.assert_array_equal(ff.indices, ncal.top_k(f, 25))


def test_ncal_r_force_select_picks_candidates_of_an_unlabeled_class_first() -> None:
    sig = make_signals(seed=5)
    keep = sig.labels_labeled != 0  # class 0 has no labeled sample now
    sig.features_labeled = sig.features_labeled[keep]
    sig.labels_labeled = sig.labels_labeled[keep]
    pred = sig.probabilities().argmax(1)
    n0 = int((pred == 0).sum())
    assert 0 < n0 < 20
    sel = S.get("ncal_r", empty_class="force_select").select(sig, 20)
    np.testing.assert_array_equal(np.sort(sel.indices[:n0]), np.flatnonzero(pred == 0))
    skip = S.get("ncal_r", empty_class="skip").select(sig, sig.n_pool)
    assert set(skip.indices[-n0:].tolist()) == set(np.flatnonzero(pred == 0).tolist())
