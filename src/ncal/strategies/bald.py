"""BALD with MC dropout: mutual information between the label and the weights (docs/algorithms.md §1.3).

``BALD(x) = H(p̄(x)) - (1/T) Σ_t H(p_t(x))`` with ``p̄ = (1/T) Σ_t p_t`` over ``T`` stochastic
forward passes; entropies in nats with ``0 log 0 = 0`` (``scipy.special.xlogy``). The training layer
runs the passes (only dropout modules in train mode, never BatchNorm); this module only consumes
them, either as one ``(T, N, C)`` array (``Signals.mc_probs_pool``) or streamed, one ``(N, C)`` pass
at a time, through :class:`BaldAccumulator` / :func:`bald_scores` (memory O(N·C) instead of
O(T·N·C)).

References
----------
Houlsby, Huszár, Ghahramani & Lengyel, "Bayesian active learning for classification and preference
learning", arXiv:1112.5745, 2011. Gal, Islam & Ghahramani, "Deep Bayesian active learning with image
data", ICML 2017.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy.special import xlogy

from .._utils.validation import as_float_matrix
from .base import Selection, Signals, Strategy, scored_selection


class BaldAccumulator:
    """Running sums of ``p_t`` and ``H(p_t)`` over MC passes; :meth:`scores` gives BALD.

    Usage::

        acc = BaldAccumulator()
        for probs_t in passes:  # each (N, C), one MC-dropout forward pass over the pool
            acc.update(probs_t)
        scores = acc.scores()
    """

    def __init__(self) -> None:
        self.passes = 0
        self._sum_p: np.ndarray | None = None
        self._sum_h: np.ndarray | None = None

    def update(self, probs: np.ndarray) -> None:
        """Add one pass: (N, C) probabilities (rows are softmax outputs)."""
        p = as_float_matrix(probs, f"mc pass {self.passes}")
        if (p < 0).any():
            raise ValueError(f"mc pass {self.passes} holds negative probabilities")
        if self._sum_p is None:
            self._sum_p = np.zeros_like(p)
            self._sum_h = np.zeros(p.shape[0])
        elif p.shape != self._sum_p.shape:
            raise ValueError(
                f"mc pass {self.passes} has shape {p.shape}; earlier passes had {self._sum_p.shape}"
            )
        self._sum_p += p
        self._sum_h -= xlogy(p, p).sum(axis=1)
        self.passes += 1

    def scores(self) -> np.ndarray:
        """(N,) BALD scores ``H(mean p) - mean H(p)`` (float64; >= 0 up to round-off)."""
        if self._sum_p is None:
            raise ValueError("BALD needs at least one MC pass; none was added")
        mean_p = self._sum_p / self.passes
        return -xlogy(mean_p, mean_p).sum(axis=1) - self._sum_h / self.passes


def bald_scores(mc_probs: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
    """BALD scores from MC-dropout probabilities.

    Parameters
    ----------
    mc_probs : (T, N, C) array, or an iterable of T arrays of shape (N, C) (streamed passes)

    Returns
    -------
    (N,) float64: entropy of the mean prediction minus the mean entropy of the passes.
    """
    acc = BaldAccumulator()
    if isinstance(mc_probs, np.ndarray):
        if mc_probs.ndim != 3:
            raise ValueError(
                f"`mc_probs_pool` must have shape (T passes, N, C); got shape {mc_probs.shape}"
            )
        if mc_probs.shape[0] == 0:
            raise ValueError("`mc_probs_pool` holds no MC pass (T = 0)")
    for p in mc_probs:
        acc.update(p)
    return acc.scores()


class Bald(Strategy):
    """Select the top-k pool samples by BALD (ties to the lower index)."""

    name = "bald"
    needs = ("mc_probs_pool",)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        mc = np.asarray(signals.mc_probs_pool)
        if mc.ndim == 3 and mc.shape[1] != signals.n_pool:
            raise ValueError(
                f"`mc_probs_pool` has {mc.shape[1]} pool rows but the other pool signals have "
                f"{signals.n_pool}; they must match"
            )
        scores = bald_scores(mc)
        return scored_selection(scores, k, passes=int(mc.shape[0]))
