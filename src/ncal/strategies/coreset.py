"""CoreSet: k-center greedy on penultimate features (docs/algorithms.md §1.4).

The centers start as the labeled set; each pick is the pool point farthest (Euclidean) from every
center so far, ties to the smaller pool index. Only when the labeled set is empty is the first pick
random (from the strategy's ``rng``). Distances are float64; the pool is processed in blocks (never
an N×N matrix) with lazily batched center updates (:func:`ncal.strategies._kernels.kcenter_greedy`).

References
----------
Sener & Savarese, "Active learning for convolutional neural networks: a core-set approach", ICLR
2018.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._utils.validation import as_float_matrix
from ._checks import check_device, check_int
from .base import Selection, Signals, Strategy


def check_feature_pair(signals: Signals) -> tuple[np.ndarray, np.ndarray]:
    """Pool and labeled features with matching widths (the labeled set may have zero rows)."""
    fp = as_float_matrix(
        signals.features_pool, "features_pool", dtype=_float_dtype(signals.features_pool)
    )
    fl = np.asarray(signals.features_labeled)
    if fl.size == 0:  # an empty labeled set, whatever its shape
        return fp, np.zeros((0, fp.shape[1]), dtype=fp.dtype)
    if fl.ndim != 2 or fl.shape[1] != fp.shape[1]:
        raise ValueError(
            f"`features_labeled` must be a 2-D array with {fp.shape[1]} columns like "
            f"`features_pool`; got shape {fl.shape}"
        )
    return fp, as_float_matrix(fl, "features_labeled", dtype=_float_dtype(fl))


def _float_dtype(x: Any) -> type:
    """Keep float32 inputs in float32 (they are upcast per block); everything else as float64."""
    return np.float32 if np.asarray(x).dtype == np.float32 else np.float64


class KCenterGreedyStrategy(Strategy):
    """Shared part of CoreSet and CDAL: k-center greedy from the labeled set over a pair space.

    A subclass names the :class:`ncal.strategies._kernels.PairSpace` constructor (``metric``) and
    gives the pool and labeled point sets (:meth:`_point_sets`); :meth:`_greedy` runs the greedy.

    Parameters
    ----------
    device, candidates, max_pending
        As for :class:`CoreSet`.
    """

    metric: str = ""

    def __init__(self, device: str = "cpu", candidates: int = 256, max_pending: int = 64) -> None:
        self.device = check_device(device)
        self.candidates = check_int(candidates, "candidates")
        self.max_pending = check_int(max_pending, "max_pending")

    def _point_sets(self, signals: Signals) -> tuple[np.ndarray, np.ndarray]:
        """``(pool, labeled)`` points in the space's input form (the labeled set may be empty)."""
        raise NotImplementedError

    def _greedy(
        self, signals: Signals, k: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(picks, value at each pick, whether the first pick was random)``."""
        from .._utils.torch import resolve_device
        from . import _kernels as K  # torch, only when selecting

        pool, labeled = self._point_sets(signals)
        dev = resolve_device(self.device)
        make_space = getattr(K.PairSpace, self.metric)
        space = make_space(pool, dev)
        init = make_space(labeled, dev) if labeled.shape[0] else None
        idx, values = K.kcenter_greedy(
            space, k, init=init, rng=rng, candidates=self.candidates, max_pending=self.max_pending
        )
        return idx, values, init is None


class CoreSet(KCenterGreedyStrategy):
    """k-center greedy selection on ``features_pool`` initialised from ``features_labeled``.

    Parameters
    ----------
    device : str
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:i"`` or ``"auto"``.
    candidates : int
        Size of the exactly evaluated candidate set between batched updates (speed only; the picks
        do not depend on it).
    max_pending : int
        Picks applied to the whole pool together in one matrix product (speed only).

    Notes
    -----
    ``Selection.scores`` holds each pick's distance to its nearest center when it was picked
    (``inf`` for a random first pick); the last score is the covering radius just before the last
    pick. Cost: O((N_L + k)·N·d) time, O(N + block·d) extra memory.
    """

    name = "coreset"
    needs = ("features_pool", "features_labeled")
    stochastic = False

    metric = "euclidean"

    def _point_sets(self, signals: Signals) -> tuple[np.ndarray, np.ndarray]:
        return check_feature_pair(signals)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        idx, d2, random_first = self._greedy(signals, k, rng)
        return Selection(idx, np.sqrt(d2), {"random_first": random_first})
