"""Uncertainty sampling: least confidence, margin and entropy (docs/algorithms.md §1.2).

Scores are computed in float64 from log-probabilities (logits when given), so saturated softmax
outputs do not create spurious ties; remaining ties go to the lower pool index.

References
----------
Lewis & Gale, "A sequential algorithm for training text classifiers", SIGIR 1994 (least confidence);
Scheffer et al., "Active hidden Markov models for information extraction", IDA 2001 (margin);
Settles, "Active Learning Literature Survey", 2009 (entropy).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .._utils.numeric import by_row_blocks
from .base import Selection, Signals, Strategy, scored_selection


def _by_block(score: Callable[[np.ndarray], np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Row-wise ``score`` of the pool's (N, C) ``rows`` without (N, C) temporaries."""
    return by_row_blocks(score, rows, np.empty(rows.shape[0], dtype=np.float64))


def least_confidence_scores(probs: np.ndarray) -> np.ndarray:
    """``1 - max_c p_c``; higher is more uncertain."""
    return 1.0 - np.asarray(probs, dtype=np.float64).max(axis=1)


def margin_scores(probs: np.ndarray) -> np.ndarray:
    """``-(p_(1) - p_(2))``: negative gap between the two largest probabilities."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape[1] < 2:
        return np.zeros(p.shape[0])
    top2 = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return -(top2[:, 1] - top2[:, 0])


def entropy_scores(probs: np.ndarray, log_probs: np.ndarray | None = None) -> np.ndarray:
    """Shannon entropy ``-sum_c p_c log p_c`` (natural log, ``0 log 0 = 0``)."""
    p = np.asarray(probs, dtype=np.float64)
    if log_probs is None:
        from scipy.special import xlogy

        return -xlogy(p, p).sum(axis=1)
    return -(p * np.where(p > 0, log_probs, 0.0)).sum(axis=1)


class LeastConfidence(Strategy):
    """Select the samples whose most likely class has the lowest probability."""

    name = "least_confidence"
    needs = ("probs_pool",)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        return scored_selection(_by_block(least_confidence_scores, signals.probabilities()), k)


class MarginSampling(Strategy):
    """Select the samples with the smallest gap between the top two class probabilities."""

    name = "margin"
    needs = ("probs_pool",)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        return scored_selection(_by_block(margin_scores, signals.probabilities()), k)


class EntropySampling(Strategy):
    """Select the samples with the highest predictive entropy."""

    name = "entropy"
    needs = ("probs_pool",)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        scores = _by_block(lambda lp: entropy_scores(np.exp(lp), lp), signals.log_probabilities())
        return scored_selection(scores, k)
