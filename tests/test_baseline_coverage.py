"""CoreSet, CDAL, BADGE and the diversity wrapper: contract, brute-force and skactiveml parity."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from scipy.spatial.distance import cdist

import ncal.strategies as S
from ncal._utils.numeric import softmax
from strategy_contract import ParamCases, StrategyContract, make_signals
from test_baseline_kernels import (
    brute_kcenter,
    naive_kmeanspp,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    sym_kl_dense,
)

DEVICE_CASES = [("cpu", None), ("auto", None), ("tpu", ValueError), (7, TypeError)]
KCENTER_CASES: ParamCases = {
    "device": DEVICE_CASES,
    "candidates": [(8, None), (1, None), (0, ValueError), (2.5, TypeError)],
    "max_pending": [(4, None), (1, None), (-1, ValueError)],
}


class TestCoreSetContract(StrategyContract):
    strategy_name = "coreset"
    params: ClassVar[dict[str, Any]] = {"candidates": 8, "max_pending": 4}
    param_cases: ClassVar[ParamCases] = KCENTER_CASES


class TestCdalContract(StrategyContract):
    strategy_name = "cdal"
    params: ClassVar[dict[str, Any]] = {"candidates": 8}
    param_cases: ClassVar[ParamCases] = KCENTER_CASES


class TestBadgeContract(StrategyContract):
    strategy_name = "badge"
    params: ClassVar[dict[str, Any]] = {"device": "cpu"}
    param_cases: ClassVar[ParamCases] = {"device": [*DEVICE_CASES, ("gpu0", ValueError)]}


class TestDiverseKCenterContract(StrategyContract):
    strategy_name = "diverse"
    params: ClassVar[dict[str, Any]] = {"base": "entropy", "method": "kcenter", "top_m": 50}
    param_cases: ClassVar[ParamCases] = {
        "base": [
            ("entropy", None),
            ("coreset", None),
            (S.get("least_confidence"), None),
            ("no_such", ValueError),
            ("diverse", ValueError),
            (3, TypeError),
        ],
        "method": [("kcenter", None), ("kmeanspp", None), ("farthest", ValueError)],
        "top_m": [(None, None), (50, None), (0, ValueError)],
        "base_params": [(None, None, {}), ({}, None)],
        "device": DEVICE_CASES,
    }
    bad_params: ClassVar[list[dict[str, Any]]] = [
        {"base": S.get("entropy"), "base_params": {"x": 1}},  # base_params only with a name
        {"base": "coreset", "base_params": {"candidates": 0}},
    ]


class TestDiverseKMeansContract(TestDiverseKCenterContract):
    params: ClassVar[dict[str, Any]] = {"base": "margin", "method": "kmeanspp"}


def _coreset_signals(seed: int, n: int, nl: int, d: int, dtype=np.float64) -> S.Signals:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(5, d))
    fp = centers[rng.integers(0, 5, n)] + rng.normal(size=(n, d))
    fl = centers[rng.integers(0, 5, nl)] + rng.normal(size=(nl, d))
    return S.Signals(features_pool=fp.astype(dtype), features_labeled=fl.astype(dtype))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_coreset_equals_brute_force_greedy(seed: int, dtype: type) -> None:
    sig = _coreset_signals(seed, 400, 15, 12, dtype)
    k = 60
    sel = S.get("coreset", candidates=16, max_pending=8).select(sig, k)
    fp = sig.features_pool.astype(np.float64)
    fl = sig.features_labeled.astype(np.float64)
    ref = brute_kcenter(cdist(fp, fl).min(1), cdist(fp, fp), k)
    assert sel.indices.tolist() == ref
    assert sel.info["random_first"] is False
    # scores are Euclidean distances (not squared) to the nearest center at pick time
    np.testing.assert_allclose(sel.scores[0], cdist(fp[ref[:1]], fl).min(), rtol=1e-10)


def test_coreset_picks_do_not_depend_on_speed_knobs() -> None:
    sig = _coreset_signals(9, 500, 30, 6)
    a = S.get("coreset").select(sig, 120).indices
    b = S.get("coreset", candidates=1, max_pending=1).select(sig, 120).indices
    c = S.get("coreset", candidates=5000, max_pending=1000).select(sig, 120).indices
    assert a.tolist() == b.tolist() == c.tolist()


def test_coreset_empty_labeled_set_random_first_from_rng() -> None:
    sig = _coreset_signals(1, 100, 0, 4)
    sig.features_labeled = np.zeros((0, 4))
    a = S.get("coreset").select(sig, 10, np.random.default_rng(5))
    b = S.get("coreset").select(sig, 10, np.random.default_rng(5))
    assert a.info["random_first"] is True
    assert a.indices[0] == np.random.default_rng(5).integers(100)
    assert a.indices.tolist() == b.indices.tolist()
    assert np.isinf(a.scores[0])


def test_coreset_feature_width_mismatch_is_named() -> None:
    sig = _coreset_signals(0, 20, 5, 4)
    sig.features_labeled = np.zeros((5, 3))
    with pytest.raises(ValueError, match="features_labeled"):
        S.get("coreset").select(sig, 3)


def test_coreset_matches_scikit_activeml() -> None:
    from skactiveml.pool import CoreSet as SkCoreSet

    sig = _coreset_signals(3, 600, 25, 16)
    fp, fl = sig.features_pool, sig.features_labeled
    x = np.concatenate([fp, fl])
    y = np.full(len(x), np.nan)
    y[len(fp) :] = 0
    k = 50
    theirs = SkCoreSet(random_state=0).query(x, y, batch_size=k)
    ours = S.get("coreset").select(sig, k).indices
    assert ours.tolist() == np.asarray(theirs).tolist()


@pytest.mark.parametrize("seed", range(3))
def test_cdal_equals_brute_force_greedy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, nl, c = 300, 12, 6
    logits = rng.normal(size=(n, c)) * 3
    pl = softmax(rng.normal(size=(nl, c)) * 3)
    sig = S.Signals(logits_pool=logits, probs_labeled=pl)
    k = 40
    sel = S.get("cdal", candidates=8, max_pending=4).select(sig, k)
    p = softmax(logits)
    ref = brute_kcenter(sym_kl_dense(p, pl).min(1), sym_kl_dense(p, p), k)
    assert sel.indices.tolist() == ref
    np.testing.assert_allclose(sel.scores[0], sym_kl_dense(p[ref[:1]], pl).min(), rtol=1e-9)


def test_cdal_uses_logits_for_saturated_probabilities() -> None:
    """Logits with huge gaps give exact zeros in a softmax; the KL must stay finite."""
    logits = np.array([[0.0, 800.0, 0.0], [0.0, 0.0, 900.0], [1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    sig = S.Signals(logits_pool=logits, probs_labeled=softmax(np.array([[1.0, 2.0, 3.0]])))
    sel = S.get("cdal").select(sig, 4)
    assert np.isfinite(sel.scores).all()
    assert sel.indices[0] in (0, 1)


def test_cdal_bad_labeled_probabilities() -> None:
    sig = make_signals()
    sig.probs_labeled = -sig.probs_labeled
    with pytest.raises(ValueError, match="probs_labeled"):
        S.get("cdal").select(sig, 3)
    sig = make_signals()
    sig.probs_labeled = sig.probs_labeled[:, :2]
    with pytest.raises(ValueError, match="probs_labeled"):
        S.get("cdal").select(sig, 3)


@pytest.mark.parametrize("seed", range(3))
def test_badge_equals_naive_gradient_embedding_kmeanspp(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c, d = 150, 5, 7
    h = rng.normal(size=(n, d))
    logits = h @ rng.normal(size=(d, c))
    p = softmax(logits)
    # materialised gradient embeddings g = (e_ŷ - p) ⊗ h, shape (N, C·d)
    a = -p.copy()
    a[np.arange(n), p.argmax(1)] += 1.0
    g = (a[:, :, None] * h[:, None, :]).reshape(n, c * d)
    k = 30
    sel = S.get("badge").select(
        S.Signals(features_pool=h, logits_pool=logits), k, np.random.default_rng(7)
    )
    assert sel.indices.tolist() == naive_kmeanspp(g, k, np.random.default_rng(7), None)
    assert sel.indices[0] == int(np.argmax(np.linalg.norm(g, axis=1)))


def test_badge_float32_features_give_the_same_picks() -> None:
    """float32 features keep float32 dot products; on a small problem the picks do not change."""
    rng = np.random.default_rng(11)
    n, c, d = 300, 6, 16
    h = rng.normal(size=(n, d)).astype(np.float32)
    logits = h.astype(np.float64) @ rng.normal(size=(d, c))
    a = S.get("badge").select(
        S.Signals(features_pool=h, logits_pool=logits), 40, np.random.default_rng(1)
    )
    b = S.get("badge").select(
        S.Signals(features_pool=h.astype(np.float64), logits_pool=logits),
        40,
        np.random.default_rng(1),
    )
    assert a.indices.tolist() == b.indices.tolist()
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)


def test_badge_is_stochastic_and_needs_rng() -> None:
    sig = make_signals()
    with pytest.raises(ValueError, match="rng"):
        S.get("badge").select(sig, 5)
    a = S.get("badge").select(sig, 20, np.random.default_rng(1)).indices
    b = S.get("badge").select(sig, 20, np.random.default_rng(2)).indices
    assert a[0] == b[0]  # the first center is deterministic
    assert a.tolist() != b.tolist()


def test_badge_missing_signal_message() -> None:
    sig = make_signals()
    sig.features_pool = None
    with pytest.raises(ValueError, match="`badge` needs `features_pool`, `probs_pool`"):
        S.get("badge").select(sig, 3, np.random.default_rng(0))


def test_diverse_kcenter_is_kcenter_on_base_top_m() -> None:
    sig = make_signals(n=200, n_labeled=20)
    top = S.get("entropy").select(sig, 60).indices
    sel = S.get("diverse", base="entropy", method="kcenter", top_m=60).select(sig, 12)
    fp = sig.features_pool.astype(np.float64)[top]
    fl = sig.features_labeled.astype(np.float64)
    ref = brute_kcenter(cdist(fp, fl).min(1), cdist(fp, fp), 12)
    assert sel.indices.tolist() == top[ref].tolist()
    assert set(sel.indices) <= set(top)


def test_diverse_without_labeled_set_starts_at_best_candidate() -> None:
    sig = make_signals()
    sig.features_labeled = None
    top = S.get("margin").select(sig, 40).indices
    sel = S.get("diverse", base="margin", top_m=40).select(sig, 5)
    assert sel.indices[0] == top[0]


def test_diverse_kmeanspp_reproducible_and_within_top_m() -> None:
    sig = make_signals(n=200)
    from ncal.strategies.diversity import with_diversity

    strat = with_diversity(S.get("least_confidence"), method="kmeanspp", top_m=50)
    a = strat.select(sig, 10, np.random.default_rng(3))
    b = strat.select(sig, 10, np.random.default_rng(3))
    assert a.indices.tolist() == b.indices.tolist()
    assert set(a.indices) <= set(S.get("least_confidence").select(sig, 50).indices)
    assert strat.params() == {
        "base": "least_confidence",
        "base_params": {},
        "method": "kmeanspp",
        "top_m": 50,
        "device": "cpu",
    }
    with pytest.raises(ValueError, match="rng"):
        strat.select(sig, 3)


def test_diverse_default_top_m_is_ten_k_and_base_params_pass_through() -> None:
    sig = make_signals(n=300)
    sel = S.get("diverse", base="coreset", base_params={"candidates": 4}).select(sig, 7)
    assert sel.info["candidates"] == 70
    strat = S.get("diverse", base="coreset", base_params={"candidates": 4})
    assert strat.params()["base_params"]["candidates"] == 4
    with pytest.raises(ValueError, match="diverse"):
        S.get("diverse", base="diverse")
