"""Good Random: random picks among the items with the fewest annotations so far.

The strong simple baseline of the ActiveLab paper, defined there as "randomly selects amongst the
examples with the fewest annotations so far (prioritizing the unlabeled data first)". Here: pool
items count 0 annotations, a labeled item the number of labels in its row of
``annotations_labeled`` (entries other than ``-1``). The
budget is filled tier by tier, lowest count first, each tier drawn uniformly without replacement
from ``rng``; so it buys random new items until the pool is exhausted and only then relabels.

References
----------
H. W. Goh and J. Mueller, "ActiveLab: Active Learning with Re-Labeling by Multiple Annotators",
arXiv:2301.11856, 2023 (baseline "Good Random"); cleanlab blog "ActiveLab: Active Learning with
Data Re-Labeling", 2023.
"""

from __future__ import annotations

import numpy as np

from .base import Selection, Signals
from .relabel import RelabelAwareStrategy


def annotation_counts(annotations: np.ndarray) -> np.ndarray:
    """Annotations per labeled item: the entries of its row other than ``-1``."""
    a = np.asarray(annotations)
    if a.ndim != 2:
        raise ValueError(f"`annotations_labeled` must be 2-D (N_L, M); got shape {a.shape}")
    return (a != -1).sum(axis=1).astype(np.int64)


class GoodRandom(RelabelAwareStrategy):
    """Uniformly random picks among the items with the fewest annotations, tier by tier."""

    name = "good_random"
    needs = ("annotations_labeled",)
    stochastic = True

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        n_pool = signals.n_pool
        counts = np.concatenate(
            [np.zeros(n_pool, dtype=np.int64), annotation_counts(signals.annotations_labeled)]
        )
        picks: list[np.ndarray] = []
        left = k
        for tier in np.unique(counts):
            if left == 0:
                break
            members = np.flatnonzero(counts == tier)
            take = min(left, members.size)
            picks.append(rng.choice(members, size=take, replace=False))
            left -= take
        order = np.concatenate(picks).astype(np.int64)
        new = order[order < n_pool]
        relabel = order[order >= n_pool] - n_pool
        info = {"n_new": int(new.size), "n_relabel": int(relabel.size)}
        return Selection(new, None, info, relabel)
