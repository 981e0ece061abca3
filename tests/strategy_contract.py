"""The shared contract every strategy must honour. A strategy's test module subclasses
:class:`StrategyContract`, sets ``strategy_name``, lists in ``param_cases`` the values it tries for
EVERY ``__init__`` parameter (checked through ``inspect.signature``, as scikit-activeml's test
template does), optionally sets ``params`` (the configuration the other tests build) and
``bad_params`` (invalid combinations of parameters), and inherits every test below.
"""

from __future__ import annotations

import warnings
from dataclasses import fields
from typing import Any, ClassVar

import numpy as np
import pytest

import ncal.strategies as S
from ncal._utils.numeric import softmax

# Per parameter: (value, None) must build, be recorded by params() and select; (value, Error) must
# raise Error at construction; (value, None, recorded) when params() records a normalised value.
ParamCases = dict[str, list[tuple[Any, ...]]]


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
    mc = np.stack([softmax(z) for z in logits[None] + rng.normal(0, 0.7, (6, n, c))])
    return S.Signals(
        probs_pool=softmax(logits),
        logits_pool=logits,
        features_pool=f_pool.astype(np.float32),
        features_labeled=f_lab.astype(np.float32),
        labels_labeled=y_lab,
        probs_labeled=softmax(logits_lab),
        ff_counts=rng.integers(0, 4, n),
        ff_margin_std=rng.gamma(2.0, 0.05, n),  # drawn last: the other signals stay as they were
        mc_probs_pool=mc,
        num_classes=c,
    )


def _recorded_as(recorded: Any, expected: Any) -> bool:
    """Whether params() recorded ``expected`` (sequences compare element-wise, strategies by name)."""
    if isinstance(expected, S.Strategy):
        return recorded == expected.name
    if isinstance(expected, (list, tuple)):
        return isinstance(recorded, (list, tuple)) and list(recorded) == list(expected)
    return (type(recorded) is type(expected) and recorded == expected) or (
        isinstance(expected, (int, float))
        and not isinstance(expected, bool)
        and recorded == expected
    )


def check_param_cases(
    strategy_name: str,
    params: dict[str, Any],
    name: str,
    cases: list[tuple[Any, ...]],
    signals: S.Signals,
) -> None:
    """Try every listed value of parameter ``name`` (the others as in ``params``); fails on none."""
    if not cases:
        pytest.fail(f"`{strategy_name}`: no values listed for __init__ parameter `{name}`")
    for case in cases:
        value, error, *recorded = case
        kwargs = {**params, name: value}
        if error is not None:
            with pytest.raises(error, match=f"`{name}`"):
                S.get(strategy_name, **kwargs)
            continue
        strat = S.get(strategy_name, **kwargs)
        expected = recorded[0] if recorded else value
        got = strat.params()[name]
        assert _recorded_as(got, expected), f"{name}={value!r} recorded as {got!r}"
        assert S.get(strategy_name, **strat.params()).params() == strat.params()  # rebuildable
        sel = strat.select(signals, 5, np.random.default_rng(0))
        assert sel.indices.shape == (5,) and len(set(sel.indices.tolist())) == 5


class StrategyContract:
    strategy_name: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}
    param_cases: ClassVar[ParamCases] = {}
    # invalid combinations of parameters: each dict must raise ValueError or TypeError
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
        if not needs:  # nothing to drop: an empty Signals must still be refused, naming the pool
            with pytest.raises(ValueError, match="pool"):
                strat.select(S.Signals(), 3, np.random.default_rng(0))
            return
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
        names = S.strategy_class(self.strategy_name).parameter_names()
        assert list(strat.params()) == list(names)
        for key, value in self.params.items():
            assert _recorded_as(strat.params()[key], value), key

    def test_every_init_parameter_has_cases(self) -> None:
        names = S.strategy_class(self.strategy_name).parameter_names()
        missing = [n for n in names if not self.param_cases.get(n)]
        assert not missing, f"{type(self).__name__}.param_cases lists no values for {missing}"
        assert set(self.param_cases) <= set(names), "param_cases names an unknown parameter"

    def test_param_cases(self, signals: S.Signals) -> None:
        for name in S.strategy_class(self.strategy_name).parameter_names():
            check_param_cases(
                self.strategy_name, self.params, name, self.param_cases.get(name, []), signals
            )

    def test_unknown_parameter_raises(self) -> None:
        with pytest.raises(TypeError):
            S.get(self.strategy_name, **self.params, no_such_parameter=1)

    def test_deterministic_strategy_ignores_rng(self, signals: S.Signals) -> None:
        strat = self.build()
        if strat.stochastic:
            with pytest.raises(ValueError, match="rng"):
                strat.select(signals, 5)
            return
        a = strat.select(signals, 15, np.random.default_rng(1)).indices
        b = strat.select(signals, 15, np.random.default_rng(2)).indices
        np.testing.assert_array_equal(a, b)

    def test_read_only_memory_mapped_signals(self, signals: S.Signals, tmp_path) -> None:
        """A pool stored on disk and opened read-only selects as the same arrays in memory do
        (a write into a read-only mapping would crash), without a warning about the mapping."""
        mapped = {}
        for f in fields(signals):
            value = getattr(signals, f.name)
            if isinstance(value, np.ndarray):
                np.save(tmp_path / f"{f.name}.npy", value)
                mapped[f.name] = np.load(tmp_path / f"{f.name}.npy", mmap_mode="r")
            else:
                mapped[f.name] = value
        expected = self.build().select(signals, 15, np.random.default_rng(7))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = self.build().select(S.Signals(**mapped), 15, np.random.default_rng(7))
        np.testing.assert_array_equal(got.indices, expected.indices)
        np.testing.assert_array_equal(
            np.asarray(got.relabel if got.relabel is not None else []),
            np.asarray(expected.relabel if expected.relabel is not None else []),
        )
        assert not [w for w in caught if "not writable" in str(w.message)]
