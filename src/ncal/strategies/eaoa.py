"""EAOA (Zong & Huang, CVPR 2025) for pools contaminated with out-of-distribution items.

EAOA first narrows the pool to a candidate set of items with low epistemic uncertainty (likely from
a known class), then queries the candidates with the highest aleatoric uncertainty. Here:

1. **Epistemic uncertainty, two views.** Model view: the free energy ``-logsumexp(logits)``.
   Data view: a kNN-vote energy relative to the labeled set: the ``n_neighbors`` most cosine-similar
   labeled items vote for their labels with weight ``similarity / temperature`` and the energy is
   ``-logsumexp`` of the class votes (blocked GEMM, never N x N).
2. **P(in-distribution).** The two (negated) energies are z-averaged and a seeded two-component
   Gaussian mixture turns the result into P(ID) without OOD labels (:mod:`._ood_scores`).
3. **Candidates.** The ``ceil(candidate_ratio·k)`` most ID-like items among those with
   P(ID) >= ``threshold`` (at least ``k``: when too few pass, the most ID-like of the rest).
4. **Aleatoric uncertainty.** Margin (top-1 minus top-2 probability) ranked *within each predicted
   class* of the candidates; the ``k`` items with the lowest within-class margin percentile are
   bought (ties: lower margin, then lower index), so that no class with generally low margins takes
   the whole batch.

Simplifications, stated: the paper trains a separate (C+1)-class detector with a margin-based
energy loss for the model-view energy; here the target classifier's logits are used, as no detector
exists in this library. Its aleatoric measure is an energy over the classifier's class confusion;
here it is the margin within each predicted class. Its candidate-set size adapts across rounds to a
target query precision; here it is the fixed ``candidate_ratio`` (the strategy is stateless).

References
----------
C.-C. Zong and S.-J. Huang, "Rethinking Epistemic and Aleatoric Uncertainty for Active Open-Set
Annotation: An Energy-Based Approach", CVPR 2025, arXiv:2502.19691.
"""

from __future__ import annotations

import math

import numpy as np

from .._utils.validation import as_label_vector
from ._checks import check_float, check_int
from ._ood_scores import combine_idness, energy_idness, gmm_id_probability, nearest_labeled
from .base import Selection, Signals, Strategy


def knn_vote_idness(
    features_pool: np.ndarray,
    features_labeled: np.ndarray,
    labels_labeled: np.ndarray,
    num_classes: int,
    n_neighbors: int = 10,
    temperature: float = 0.1,
) -> np.ndarray:
    """``logsumexp`` over classes of the similarity-weighted votes of the nearest labeled items
    (minus the kNN-vote energy; higher = more like the labeled data)."""
    y = as_label_vector(labels_labeled, "labels_labeled", num_classes=num_classes)
    sims, rows = nearest_labeled(features_pool, features_labeled, n_neighbors)
    votes = np.zeros((sims.shape[0], num_classes), dtype=np.float64)
    all_rows = np.arange(sims.shape[0])
    for j in range(sims.shape[1]):  # one neighbour per pool row per column: no repeated cells
        votes[all_rows, y[rows[:, j]]] += sims[:, j] / temperature
    top = votes.max(axis=1)
    return top + np.log(np.exp(votes - top[:, None]).sum(axis=1))


def within_class_margin_rank(margin: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Percentile (in (0, 1]) of each item's margin among the items of its predicted class."""
    q = np.empty(margin.size)
    for c in np.unique(pred):
        members = np.flatnonzero(pred == c)
        order = members[np.lexsort((members, margin[members]))]
        q[order] = np.arange(1, members.size + 1) / members.size
    return q


class EAOA(Strategy):
    """EAOA: low epistemic (energy + kNN-vote energy, via P(ID)), then high aleatoric uncertainty.

    Parameters
    ----------
    n_neighbors : int
        Labeled neighbours that vote in the kNN-vote energy.
    temperature : float
        Scale of the votes (cosine similarity / temperature), > 0.
    candidate_ratio : float
        Candidate-set size as a multiple of ``k`` (>= 1).
    threshold : float
        Minimum P(ID) of a candidate, in [0, 1].
    """

    name = "eaoa"
    needs = ("logits_pool", "features_pool", "features_labeled", "labels_labeled")

    def __init__(
        self,
        n_neighbors: int = 10,
        temperature: float = 0.1,
        candidate_ratio: float = 5.0,
        threshold: float = 0.5,
    ) -> None:
        self.n_neighbors = check_int(n_neighbors, "n_neighbors")
        self.temperature = check_float(temperature, "temperature", low=0.0, low_open=True)
        self.candidate_ratio = check_float(candidate_ratio, "candidate_ratio", low=1.0)
        self.threshold = check_float(threshold, "threshold", low=0.0, high=1.0)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        logits = np.asarray(signals.logits_pool)
        num_classes = signals.num_classes or logits.shape[1]
        vote = knn_vote_idness(
            signals.features_pool,
            signals.features_labeled,
            signals.labels_labeled,
            num_classes,
            self.n_neighbors,
            self.temperature,
        )
        est = gmm_id_probability(combine_idness([energy_idness(logits), vote], "z"))
        n = est.p_id.size
        eligible = est.p_id >= self.threshold
        # most ID-like first among the eligible, then among the rest; ties to the lower index
        by_idness = np.lexsort((np.arange(n), -est.idness, ~eligible))
        m = max(k, min(math.ceil(self.candidate_ratio * k), int(eligible.sum())))
        cand = by_idness[:m]
        probs = signals.probabilities()[cand]
        top2 = np.sort(probs, axis=1)[:, -2:] if probs.shape[1] > 1 else np.c_[probs, probs]
        margin = top2[:, 1] - top2[:, 0]
        pred = probs.argmax(axis=1)
        q = within_class_margin_rank(margin, pred)
        local = np.lexsort((cand, margin, q))[:k]
        info = {
            "n_candidates": int(m),
            "n_eligible": int(eligible.sum()),
            "candidates_per_class": np.bincount(pred, minlength=probs.shape[1]).tolist(),
            "id_mixture": est.info,
        }
        return Selection(cand[local], 1.0 - q[local], info)
