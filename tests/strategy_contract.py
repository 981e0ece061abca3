"""The shared contract every strategy must honour. A strategy's test module subclasses
:class:`StrategyContract`, sets ``strategy_name`` (and optionally ``params`` / ``bad_params``), and
inherits every test below.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

import ncal.strategies as S


def make_signals(
    n: int = 120, n_labeled: int = 40, d: int = 8, c: int = 4, seed: int = 0
) -> S.Signals:
    """Realistic small signals: clustered features, a linear head, MC passes and FF counts."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, size=(c, d))
    y_pool = rng.integers(0, c, n)
    y_lab = np.concatenate([np.arange(c), rng.integers(0, c, n_labeled - c)])
    f_pool = np.abs(centers[y_pool] + rng.normal(0, 1.5, (n, d)))
    f_lab = np.abs(centers[y_lab] + rng.normal(0, 1.5, (n_labeled, d)))
    w = rng.normal(0, 0.5, (c, d))
    logits = f_pool @ w.T
    logits_lab = f_lab @ w.T

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    mc = softmax(logits[None] + rng.normal(0, 0.7, (6, n, c)))
    return S.Signals(
        probs_pool=softmax(logits),
        logits_pool=logits,
        features_pool=f_pool.astype(np.float32),
        features_labeled=f_lab.astype(np.float32),
        labels_labeled=y_lab,
        probs_labeled=softmax(logits_lab),
        ff_counts=rng.integers(0, 4, n),
        mc_probs_pool=mc,
        num_classes=c,
    )


class StrategyContract:
    strategy_name: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    # parameter dicts that must raise ValueError or TypeError at construction
    bad_params: ClassVar[list[dict[str, Any]]] = []

    def build(self) -> S.Strategy:
        return S.get(self.strategy_name, **self.params)

    @pytest.fixture
    def signals(self) -> S.Signals:
        return make_signals()

    def test_registered(self) -> None:
        assert self.strategy_name in S.available()

    @pytest.mark.parametrize("k", [1, 7, 30])
    def test_exactly_k_valid_distinct(self, signals: S.Signals, k: int) -> None:
        sel = self.build().select(signals, k, np.random.default_rng(1))
        assert sel.indices.shape == (k,)
        assert sel.indices.dtype == np.int64
        assert len(np.unique(sel.indices)) == k
        assert sel.indices.min() >= 0 and sel.indices.max() < signals.n_pool
        if sel.scores is not None:
            assert sel.scores.shape == (k,)

    def test_k_zero(self, signals: S.Signals) -> None:
        assert self.build().select(signals, 0, np.random.default_rng(1)).indices.size == 0

    def test_k_at_least_pool_returns_all(self, signals: S.Signals) -> None:
        n = signals.n_pool
        for k in (n, n + 5):
            sel = self.build().select(signals, k, np.random.default_rng(1))
            assert sorted(sel.indices.tolist()) == list(range(n))

    def test_reproducible_with_same_rng(self, signals: S.Signals) -> None:
        a = self.build().select(signals, 15, np.random.default_rng(7)).indices
        b = self.build().select(signals, 15, np.random.default_rng(7)).indices
        np.testing.assert_array_equal(a, b)

    def test_negative_k_raises(self, signals: S.Signals) -> None:
        with pytest.raises(ValueError, match="k"):
            self.build().select(signals, -1, np.random.default_rng(0))

    def test_non_integer_k_raises(self, signals: S.Signals) -> None:
        with pytest.raises(TypeError, match="k"):
            self.build().select(signals, 2.5, np.random.default_rng(0))  # type: ignore[arg-type]

    def test_missing_signal_named(self) -> None:
        strat = self.build()
        needs = [n for n in strat.required_signals()]
        if not needs:
            pytest.skip("strategy needs no signals")
        full = make_signals()
        kwargs = {n: getattr(full, n) for n in S.base.SIGNAL_NAMES}
        dropped = needs[-1]
        kwargs[dropped] = None
        if dropped == "probs_pool":
            kwargs["logits_pool"] = None
        kwargs.setdefault("ff_counts", full.ff_counts)
        with pytest.raises(ValueError, match=f"`{self.strategy_name}` needs"):
            strat.select(S.Signals(**kwargs), 3, np.random.default_rng(0))

    def test_bad_params_raise(self) -> None:
        for bad in self.bad_params:
            with pytest.raises((ValueError, TypeError)):
                S.get(self.strategy_name, **{**self.params, **bad})

    def test_params_recorded(self) -> None:
        strat = self.build()
        for key in self.params:
            assert key in strat.params(), key
