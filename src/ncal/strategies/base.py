"""The seam between training and selection: `Signals` in, `Selection` out.

A strategy never trains and never touches a model. It declares the signals it needs in ``needs``
and receives them as arrays; every stochastic strategy draws only from the ``rng`` it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from .._validation import (
    as_float_matrix,
    as_label_vector,
    check_k,
)

SIGNAL_NAMES = (
    "probs_pool",
    "logits_pool",
    "features_pool",
    "features_labeled",
    "labels_labeled",
    "probs_labeled",
    "ff_counts",
    "mc_probs_pool",
    "num_classes",
)


@dataclass
class Signals:
    """Arrays a strategy may need; every ``*_pool`` array has one row per pool sample, in pool order.

    Attributes
    ----------
    probs_pool : (N, C) softmax probabilities of the round's final model.
    logits_pool : (N, C) logits of the same model.
    features_pool : (N, d) penultimate features of the pool.
    features_labeled : (N_L, d) penultimate features of the labeled set (same model).
    labels_labeled : (N_L,) the given (possibly noisy) labels of the labeled set.
    probs_labeled : (N_L, C) probabilities of the labeled set (CDAL, BAIT).
    ff_counts : (N,) feature-fluctuation flip counts over the terminal-phase window.
    mc_probs_pool : (T, N, C) MC-dropout probabilities (BALD).
    num_classes : number of classes C.
    """

    probs_pool: np.ndarray | None = None
    logits_pool: np.ndarray | None = None
    features_pool: np.ndarray | None = None
    features_labeled: np.ndarray | None = None
    labels_labeled: np.ndarray | None = None
    probs_labeled: np.ndarray | None = None
    ff_counts: np.ndarray | None = None
    mc_probs_pool: np.ndarray | None = None
    num_classes: int | None = None

    @property
    def n_pool(self) -> int:
        """Number of pool samples, read from the first pool-aligned signal present."""
        for name in ("probs_pool", "logits_pool", "features_pool", "ff_counts"):
            arr = getattr(self, name)
            if arr is not None:
                return int(np.shape(arr)[0])
        if self.mc_probs_pool is not None:
            return int(np.shape(self.mc_probs_pool)[1])
        raise ValueError("`signals` holds no pool-aligned array; cannot tell the pool size")

    def probabilities(self) -> np.ndarray:
        """Pool probabilities in float64: from ``logits_pool`` via log-softmax when present."""
        if self.logits_pool is not None:
            z = as_float_matrix(self.logits_pool, "logits_pool")
            z = z - z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return np.exp(logp)
        return as_float_matrix(self.probs_pool, "probs_pool")

    def log_probabilities(self) -> np.ndarray:
        """Pool log-probabilities in float64 (from logits when present; never ``log`` of exact zeros)."""
        if self.logits_pool is not None:
            z = as_float_matrix(self.logits_pool, "logits_pool")
            z = z - z.max(axis=1, keepdims=True)
            return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        p = as_float_matrix(self.probs_pool, "probs_pool")
        with np.errstate(divide="ignore"):
            return np.log(np.clip(p, 1e-300, None))

    def predictions(self, block: int = 65536) -> np.ndarray:
        """Predicted class of every pool sample (argmax of logits or probabilities), computed in row
        blocks so that a large pool is never copied to float64."""
        src = self.logits_pool if self.logits_pool is not None else self.probs_pool
        if src is None:
            raise ValueError("predictions need `logits_pool` or `probs_pool`")
        if np.ndim(src) != 2:
            raise ValueError(f"`probs_pool`/`logits_pool` must be 2-D; got shape {np.shape(src)}")
        out = np.empty(len(src), dtype=np.int64)
        for start in range(0, len(src), block):
            chunk = np.asarray(src[start : start + block])
            if not np.isfinite(chunk).all():
                raise ValueError("`probs_pool`/`logits_pool` contains NaN or inf values")
            out[start : start + block] = chunk.argmax(axis=1)
        return out

    def present(self) -> set[str]:
        return {f.name for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class Selection:
    """Indices into the pool (in pick order) and, where the strategy scores, the score of every pick."""

    indices: np.ndarray
    scores: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, type[Strategy]] = {}


class Strategy:
    """Base class of every acquisition strategy.

    Subclasses set ``name`` (registry key), ``needs`` (signal names; ``"probs_pool"`` is satisfied by
    ``logits_pool`` as well), validate their parameters in ``__init__`` and implement ``_select``.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()
    stochastic: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            _REGISTRY[cls.name] = cls

    def params(self) -> dict[str, Any]:
        """The strategy's parameters (recorded with every result)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def required_signals(self) -> tuple[str, ...]:
        return tuple(self.needs)

    def check_signals(self, signals: Signals) -> None:
        have = signals.present()
        missing = []
        for need in self.required_signals():
            if need == "probs_pool" and ("probs_pool" in have or "logits_pool" in have):
                continue
            if need not in have:
                missing.append(need)
        if missing:
            raise ValueError(
                f"`{self.name}` needs {', '.join(f'`{m}`' for m in self.required_signals())}; "
                f"missing: {', '.join(f'`{m}`' for m in missing)}"
            )

    def select(self, signals: Signals, k: int, rng: np.random.Generator | None = None) -> Selection:
        """Pick ``k`` distinct pool indices (all of them when ``k`` >= pool size)."""
        if not isinstance(signals, Signals):
            raise TypeError(
                f"`signals` must be a ncal.strategies.Signals; got {type(signals).__name__}"
            )
        k = check_k(k)
        if rng is None:
            if self.stochastic:
                raise ValueError(f"`{self.name}` is stochastic: pass `rng` (a numpy Generator)")
            rng = np.random.default_rng(0)
        elif not isinstance(rng, np.random.Generator):
            raise TypeError(f"`rng` must be a numpy.random.Generator; got {type(rng).__name__}")
        self.check_signals(signals)
        n = signals.n_pool
        if signals.labels_labeled is not None and signals.num_classes is not None:
            as_label_vector(
                signals.labels_labeled, "labels_labeled", num_classes=signals.num_classes
            )
        if n == 0 or k == 0:
            return Selection(np.zeros(0, dtype=np.int64), np.zeros(0))
        k = min(k, n)
        sel = self._select(signals, k, rng)
        idx = np.asarray(sel.indices, dtype=np.int64)
        if idx.shape != (k,) or len(np.unique(idx)) != k or idx.min() < 0 or idx.max() >= n:
            raise RuntimeError(f"`{self.name}` returned an invalid selection (bug): {idx[:10]}...")
        return Selection(idx, sel.scores, sel.info)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def get(name: str, **params: Any) -> Strategy:
    """Build a registered strategy by name, e.g. ``get("ncal_r", direction="low")``."""
    from . import _load_all  # noqa: F401  (registers every strategy module)

    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; known strategies: {', '.join(available())}")
    return _REGISTRY[name](**params)


def available() -> list[str]:
    """Names of all registered strategies, sorted."""
    from . import _load_all  # noqa: F401

    return sorted(_REGISTRY)


def strategy_class(name: str) -> type[Strategy]:
    """The class registered under ``name`` (for help texts and introspection)."""
    from . import _load_all  # noqa: F401

    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; known strategies: {', '.join(available())}")
    return _REGISTRY[name]


def scored_selection(scores: np.ndarray, k: int, **info: Any) -> Selection:
    """Selection of the top-k of ``scores`` by the canonical rule, with the picked scores."""
    from .selection import top_k

    idx = top_k(scores, k)
    return Selection(idx, np.asarray(scores, dtype=np.float64)[idx], dict(info))
