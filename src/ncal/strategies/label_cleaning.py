"""Active label cleaning (Bernhardt et al. 2022): relabel the labeled items most likely mislabeled
and least ambiguous.

Relabel priority of a labeled item ``i`` with current label distribution ``q_i`` (its vote shares
from ``annotations_labeled``) and out-of-sample posterior ``p_i`` (``probs_labeled_oof``)::

    phi_i = H(q_i, p_i) - H(p_i) = -sum_c q_ic log p_ic + sum_c p_ic log p_ic

The cross-entropy term is large when the model disagrees with the current labels (a likely
mislabel); subtracting the posterior entropy demotes ambiguous items, whose relabels are expensive
and rarely settle anything. The whole budget relabels the top-``phi`` items (ties to the lower row);
only when ``k`` exceeds the labeled set are the remaining annotations spent on pool items drawn
uniformly from ``rng``. Items without an in-set label get ``-inf`` (last). Probabilities are clipped
at 1e-12 before the log.

References
----------
M. Bernhardt, D. C. Castro, R. Tanno, A. Schwaighofer, K. C. Tezcan, M. Monteiro, S. Bannur,
M. P. Lungren, A. Nori, B. Glocker, J. Alvarez-Valle and O. Oktay, "Active label cleaning for
improved dataset quality under resource constraints", Nature Communications 13, 1161 (2022).
"""

from __future__ import annotations

import numpy as np

from .base import Selection, Signals
from .relabel import RelabelAwareStrategy, vote_matrix
from .selection import top_k


def label_cleaning_scores(annotations: np.ndarray, probs_oof: np.ndarray) -> np.ndarray:
    """``phi = H(q, p) - H(p)`` per labeled item (higher = relabel first); ``-inf`` without labels."""
    p = np.asarray(probs_oof, dtype=np.float64)
    votes = vote_matrix(annotations, p.shape[1] if p.ndim == 2 else 0)
    if p.ndim != 2 or p.shape[0] != votes.shape[0]:
        raise ValueError(f"`probs_labeled_oof` must be ({votes.shape[0]}, C); got shape {p.shape}")
    n = votes.sum(axis=1, keepdims=True)
    q = np.divide(votes, n, out=np.zeros_like(votes), where=n > 0)
    logp = np.log(np.clip(p, 1e-12, None))
    cross_entropy = -(q * logp).sum(axis=1)
    entropy = -(p * logp).sum(axis=1)
    return np.where(n[:, 0] > 0, cross_entropy - entropy, -np.inf)


class LabelCleaning(RelabelAwareStrategy):
    """Relabel the labeled items with the highest ``H(q, p) - H(p)``."""

    name = "label_cleaning"
    needs = ("annotations_labeled", "probs_labeled_oof")
    stochastic = True  # only for the overflow onto pool items

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        phi = label_cleaning_scores(signals.annotations_labeled, signals.probs_labeled_oof)
        relabel = top_k(phi, min(k, phi.size))
        n_new = k - relabel.size
        new = rng.choice(signals.n_pool, size=n_new, replace=False).astype(np.int64)
        info = {"n_new": int(n_new), "n_relabel": int(relabel.size)}
        return Selection(new, None, info, relabel)
