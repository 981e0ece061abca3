"""CDAL: contextual diversity, k-center greedy in symmetric-KL space (docs/algorithms.md §1.5).

For classification each image is one region, and the pairwise contextual diversity reduces to the
symmetric KL divergence between softmax vectors,
``d(p, q) = ½KL(p||q) + ½KL(q||p) = ½ Σ_c (p_c - q_c)(log p_c - log q_c)``.
The selection (CDAL-CS) is the k-center greedy of CoreSet with this divergence, initialised from the
labeled set's softmax vectors. Pool log-probabilities come from ``logits_pool`` when present (never
the log of a saturated softmax); the labeled set's come from ``probs_labeled`` (zeros clipped to
1e-300). The random first pick of the reference ``CDAL_CS.py`` when a labeled set exists is a bug
and is not replicated; the first pick is random only when the labeled set is empty.

References
----------
Agarwal, Arora, Anand & Arora, "Contextual diversity for active learning", ECCV 2020.
"""

from __future__ import annotations

import numpy as np

from .._utils.validation import as_float_matrix
from .base import Selection, Signals
from .coreset import KCenterGreedyStrategy


def _log_probs_labeled(signals: Signals, num_classes: int) -> np.ndarray:
    pl = np.asarray(signals.probs_labeled)
    if pl.size == 0:
        return np.zeros((0, num_classes))
    if pl.ndim != 2 or (pl.shape[0] and pl.shape[1] != num_classes):
        raise ValueError(
            f"`probs_labeled` must be a 2-D array with {num_classes} columns like the pool "
            f"probabilities; got shape {pl.shape}"
        )
    if pl.shape[0] == 0:
        return np.zeros((0, num_classes))
    pl = as_float_matrix(pl, "probs_labeled")
    if (pl < 0).any():
        raise ValueError("`probs_labeled` holds negative values; expected softmax probabilities")
    return np.log(np.clip(pl, 1e-300, None))


class ContextualDiversity(KCenterGreedyStrategy):
    """CDAL-CS: k-center greedy on softmax vectors under the symmetric KL divergence.

    Parameters
    ----------
    device : str
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:i"`` or ``"auto"``.
    candidates, max_pending : int
        Speed knobs of the lazy greedy (see :class:`ncal.strategies.coreset.CoreSet`).

    Notes
    -----
    ``Selection.scores`` holds each pick's divergence to its nearest center when it was picked.
    Symmetric KL is not a metric, so the 2-approximation guarantee of k-center greedy does not hold;
    the greedy is still well defined. Cost O((N_L + k)·N·C) time, O(N·C) memory.
    """

    name = "cdal"
    needs = ("probs_pool", "probs_labeled")
    stochastic = False

    metric = "sym_kl"

    def _point_sets(self, signals: Signals) -> tuple[np.ndarray, np.ndarray]:
        logp = signals.log_probabilities()
        return logp, _log_probs_labeled(signals, logp.shape[1])

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        idx, div, random_first = self._greedy(signals, k, rng)
        return Selection(idx, div, {"random_first": random_first})
