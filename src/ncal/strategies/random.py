"""Uniform random sampling: the reference curve of every plot and statistic (docs/algorithms.md §1.1)."""

from __future__ import annotations

import numpy as np

from .base import Selection, Signals, Strategy


class RandomSampling(Strategy):
    """Draw ``k`` pool samples uniformly without replacement from the strategy's own ``rng``.

    It needs no model output; only the pool size (any pool-aligned signal).
    """

    name = "random"
    needs = ()
    stochastic = True

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        return Selection(rng.choice(signals.n_pool, size=k, replace=False).astype(np.int64))
