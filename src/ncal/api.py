"""Function-first selection for people who already have predicted probabilities and embeddings.

Every array covers the *whole* data set, labeled and unlabeled rows alike, as in cleanlab's
``pred_probs`` functions; which rows are labeled is read from ``labels``, where ``missing_label``
(default ``-1``; ``numpy.nan`` for float labels) marks an unlabeled row, as in scikit-activeml. The
returned indices are rows of those arrays.

>>> import numpy as np, ncal.api
>>> pred_probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.2, 0.8]])
>>> labels = np.array([0, -1, -1, 1])
>>> ncal.api.select("entropy", 1, pred_probs=pred_probs, labels=labels)
array([1])
>>> ncal.api.scores("margin", pred_probs=pred_probs, labels=labels).round(2)
array([ nan, -0. , -0.2,  nan])

``ff_counts`` (feature fluctuation, docs/algorithms.md §1.10) come from training, e.g. from
:class:`ncal.integrations.FFTracker` or :func:`ncal.dynamics.feature_fluctuation` on stored
per-epoch predictions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._utils.random import as_generator
from ._utils.validation import as_float_matrix, check_k
from .signals import Signals
from .strategies import Strategy, get, info

#: strategies whose picks are the top-k of one score per sample, so :func:`scores` is meaningful
SCORING_STRATEGIES = (
    "bald",
    "cmap",
    "entropy",
    "ff",
    "least_confidence",
    "margin",
    "ncal_r",
    "sisom_proxy",
)

#: which argument of :func:`select` provides each signal a strategy may need
_ARGUMENT_OF = {
    "probs_pool": "pred_probs",
    "probs_labeled": "pred_probs",
    "features_pool": "embeddings",
    "features_labeled": "embeddings",
    "labels_labeled": "labels",
    "ff_counts": "ff_counts",
    "mc_probs_pool": "mc_pred_probs",
}


def select(
    strategy: str | Strategy,
    k: int,
    *,
    pred_probs: Any = None,
    embeddings: Any = None,
    labels: Any = None,
    missing_label: float = -1,
    ff_counts: Any = None,
    mc_pred_probs: Any = None,
    num_classes: int | None = None,
    seed: int | np.random.Generator = 0,
    return_scores: bool = False,
    **params: Any,
) -> np.ndarray | tuple[np.ndarray, np.ndarray | None]:
    """Rows to label next, chosen among the unlabeled rows by a registered strategy.

    Parameters
    ----------
    strategy : str or Strategy
        A name from ``ncal.strategies.available()`` (built with ``**params``) or a built instance.
    k : int
        How many rows to pick (all unlabeled rows when fewer remain).
    pred_probs : (N, C) array, optional
        Predicted class probabilities of every row (each row sums to 1).
    embeddings : (N, d) array, optional
        Penultimate-layer features of every row, from the same model.
    labels : (N,) array, optional
        Given labels, ``missing_label`` where a row is unlabeled; None: every row is unlabeled.
    missing_label : number
        The value marking an unlabeled row (``-1``, or ``numpy.nan`` for float labels).
    ff_counts : (N,) array of non-negative integers, optional
        Feature-fluctuation flip counts of every row (labeled rows are ignored).
    mc_pred_probs : (T, N, C) array, optional
        Probabilities of T MC-dropout passes (for ``bald``).
    num_classes : int, optional
        Number of classes; read from ``pred_probs`` when given.
    seed : int or numpy Generator
        Randomness of stochastic strategies (deterministic ones ignore it).
    return_scores : bool
        Also return the score of every pick (None for strategies that do not score).
    **params
        Strategy parameters, e.g. ``direction="low"`` for ``ncal_r``.

    Returns
    -------
    indices : (min(k, n_unlabeled),) int64 rows of the input arrays, in pick order.
    scores : (same length,) float64 or None, only with ``return_scores=True``.

    Raises
    ------
    ValueError, TypeError
        Naming the argument: shapes that disagree, probabilities that do not sum to 1, labels
        outside ``[0, num_classes)``, a signal the strategy needs but no argument provided.
    """
    strat = _build(strategy, params)
    k = check_k(k)
    signals, pool_rows = _signals(
        strat, pred_probs, embeddings, labels, missing_label, ff_counts, mc_pred_probs, num_classes
    )
    if len(pool_rows) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return (empty, np.zeros(0)) if return_scores else empty
    sel = strat.select(signals, k, rng=as_generator(seed))
    picked = pool_rows[sel.indices]
    return (picked, sel.scores) if return_scores else picked


def scores(
    strategy: str | Strategy,
    *,
    pred_probs: Any = None,
    embeddings: Any = None,
    labels: Any = None,
    missing_label: float = -1,
    ff_counts: Any = None,
    mc_pred_probs: Any = None,
    num_classes: int | None = None,
    **params: Any,
) -> np.ndarray:
    """The strategy's score of every row (higher = picked first), NaN on labeled rows.

    Only for strategies that pick the top-k of a per-sample score (``SCORING_STRATEGIES``); the
    arguments are those of :func:`select`. ``select(strategy, k, ...)`` equals the top-k of these
    scores (ties to the lower row).

    Returns
    -------
    (N,) float64 array.
    """
    strat = _build(strategy, params)
    if strat.name not in SCORING_STRATEGIES:
        raise ValueError(
            f"`strategy` {strat.name!r} does not score rows one by one; scores() supports "
            f"{', '.join(SCORING_STRATEGIES)} (use select() for the others)"
        )
    signals, pool_rows = _signals(
        strat, pred_probs, embeddings, labels, missing_label, ff_counts, mc_pred_probs, num_classes
    )
    n_rows = _n_rows(pred_probs, embeddings, labels, ff_counts, mc_pred_probs)
    out = np.full(n_rows, np.nan)
    if len(pool_rows):
        # selecting the whole pool returns every pool row with its score
        sel = strat.select(signals, len(pool_rows))
        out[pool_rows[sel.indices]] = sel.scores
    return out


# ---- building the signals ------------------------------------------------------------------------
def _build(strategy: str | Strategy, params: dict[str, Any]) -> Strategy:
    if isinstance(strategy, Strategy):
        if params:
            raise TypeError(
                f"strategy parameters {sorted(params)} were given with an already built "
                "`strategy`; pass its name instead, or build it with those parameters"
            )
        return strategy
    if not isinstance(strategy, str):
        raise TypeError(
            f"`strategy` must be a strategy name or a Strategy; got {type(strategy).__name__}"
        )
    info(strategy)  # unknown names: an error listing the known ones
    return get(strategy, **params)


def _n_rows(*arrays: Any) -> int:
    """Row count of the whole data set, from the first array given (mc_pred_probs: axis 1)."""
    *plain, mc = arrays
    for arr in plain:
        if arr is not None:
            return int(np.shape(arr)[0])
    if mc is not None:
        return int(np.shape(mc)[1])
    raise ValueError("give at least one of `pred_probs`, `embeddings`, `labels`, `ff_counts`")


def _labeled_mask(labels: Any, missing_label: float, n: int) -> np.ndarray:
    if labels is None:
        return np.zeros(n, dtype=bool)
    y = np.asarray(labels)
    if y.ndim != 1 or len(y) != n:
        raise ValueError(f"`labels` must have shape ({n},), one per row; got {y.shape}")
    if not np.issubdtype(y.dtype, np.number):
        raise TypeError(f"`labels` must hold numbers; got dtype {y.dtype}")
    if isinstance(missing_label, float) and np.isnan(missing_label):
        return ~np.isnan(y)
    return y != missing_label


def _labeled_labels(labels: Any, mask: np.ndarray, num_classes: int | None) -> np.ndarray:
    y = np.asarray(labels)[mask]
    if y.size and not (np.all(np.isfinite(y)) and np.all(y == np.round(y))):
        raise TypeError("`labels` must hold integer class labels on labeled rows")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError(
            f"`labels` holds {y.min()} on a labeled row; labels must be in [0, num_classes) or "
            "equal `missing_label`"
        )
    if num_classes is not None and y.size and y.max() >= num_classes:
        raise ValueError(f"`labels` holds {y.max()}, outside [0, num_classes={num_classes})")
    return y


def _probabilities(pred_probs: Any, n: int) -> np.ndarray:
    p = as_float_matrix(pred_probs, "pred_probs")
    if p.shape[0] != n:
        raise ValueError(f"`pred_probs` has {p.shape[0]} rows; the other arrays have {n}")
    if p.min() < 0 or p.max() > 1:
        raise ValueError(
            "`pred_probs` must hold probabilities in [0, 1] (apply a softmax to logits)"
        )
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > 1e-3)
    if bad.size:
        raise ValueError(
            f"`pred_probs` rows must sum to 1; row {bad[0]} sums to {sums[bad[0]]:.4g} "
            "(apply a softmax to logits)"
        )
    return p


def _ff(ff_counts: Any, n: int) -> np.ndarray:
    ff = np.asarray(ff_counts)
    if ff.shape != (n,):
        raise ValueError(f"`ff_counts` must have shape ({n},), one per row; got {ff.shape}")
    if ff.size and (
        not np.issubdtype(ff.dtype, np.number) or np.any(ff < 0) or np.any(ff != np.round(ff))
    ):
        raise ValueError("`ff_counts` must hold non-negative integer flip counts")
    return ff.astype(np.int64)


def _signals(
    strat: Strategy,
    pred_probs: Any,
    embeddings: Any,
    labels: Any,
    missing_label: float,
    ff_counts: Any,
    mc_pred_probs: Any,
    num_classes: int | None,
) -> tuple[Signals, np.ndarray]:
    """Signals of the unlabeled rows (the pool) and the labeled rows, and the pool's row numbers."""
    n = _n_rows(pred_probs, embeddings, labels, ff_counts, mc_pred_probs)
    if num_classes is not None and (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, (int, np.integer))
        or num_classes < 1
    ):
        raise ValueError(f"`num_classes` must be a positive integer; got {num_classes!r}")
    probs = None if pred_probs is None else _probabilities(pred_probs, n)
    if probs is not None:
        if num_classes is not None and num_classes != probs.shape[1]:
            raise ValueError(
                f"`num_classes` is {num_classes} but `pred_probs` has {probs.shape[1]} columns"
            )
        num_classes = probs.shape[1]
    feats = None
    if embeddings is not None:
        feats = as_float_matrix(embeddings, "embeddings")
        if feats.shape[0] != n:
            raise ValueError(f"`embeddings` has {feats.shape[0]} rows; the other arrays have {n}")
    labeled = _labeled_mask(labels, missing_label, n)
    y = None if labels is None else _labeled_labels(labels, labeled, num_classes)
    mc = None
    if mc_pred_probs is not None:
        mc = np.asarray(mc_pred_probs, dtype=np.float64)
        if mc.ndim != 3 or mc.shape[1] != n:
            raise ValueError(f"`mc_pred_probs` must have shape (T, {n}, C); got {mc.shape}")
    ff = None if ff_counts is None else _ff(ff_counts, n)
    pool = ~labeled
    signals = Signals(
        probs_pool=None if probs is None else probs[pool],
        features_pool=None if feats is None else feats[pool],
        features_labeled=None if feats is None else feats[labeled],
        labels_labeled=y,
        probs_labeled=None if probs is None else probs[labeled],
        ff_counts=None if ff is None else ff[pool],
        mc_probs_pool=None if mc is None else mc[:, pool],
        num_classes=num_classes,
    )
    _check_needs(strat, signals)
    return signals, np.flatnonzero(pool).astype(np.int64)


def _check_needs(strat: Strategy, signals: Signals) -> None:
    """Name the missing *arguments* (not signal names) a strategy needs."""
    have = signals.present()
    missing = []
    for need in strat.required_signals():
        if need in have:
            continue
        arg = _ARGUMENT_OF.get(need)
        if arg is None:
            raise ValueError(
                f"`{strat.name}` needs `{need}`, which ncal.api cannot build; use "
                "ncal.strategies.get(...).select(Signals(...), k) for this strategy"
            )
        if arg not in missing:
            missing.append(arg)
    if missing:
        raise ValueError(
            f"`{strat.name}` needs {', '.join(f'`{m}`' for m in missing)}; pass "
            f"{'it' if len(missing) == 1 else 'them'} to ncal.api"
        )
