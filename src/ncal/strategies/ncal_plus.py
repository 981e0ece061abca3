"""NCAL-R+: NCAL-R made aware of OOD items, unreliable annotators and weak labels.

Informativeness is NCAL-R's ``w_cmap·z(CMAP') + w_ff·z(FF)`` (docs/algorithms.md §1.10), FF being
the flip count or the margin std (``ff``, as for ``ncal_r``), with FF dropped explicitly, with a
RuntimeWarning, when it carries no ranking (more than ``ff_zero_share`` of the pool at 0, or
constant). Three parts, each switched by a parameter, act on it:

* ``ood_gate``: items whose P(in-distribution) (:mod:`._ood_scores`, no OOD labels) is below
  ``threshold`` come after every likely-ID item, ordered among themselves by P(ID);
* ``reliability``: the informativeness, as a pool percentile in (0, 1], is multiplied by the
  estimated probability that a bought label is correct (:func:`label_reliability`), so that the
  items annotators get wrong, which uncertainty seekers favour, are not bought at full value;
* ``relabel``: labeled items compete with new ones for the ``k`` annotations on one scale, "the
  probability that the current best guess of the item's label is wrong, times the probability that
  the bought annotation is right": ``consensus_weakness · r`` for a labeled item (votes plus the
  out-of-fold model, :func:`.relabel.consensus_weakness`), ``(1 - max_c p_c) · r · P(ID)`` for a new
  one. The labeled items in the top-k of that scale are relabeled; the new items are the top of the
  NCAL-R+ ranking.

With all three off the picks equal ``ncal_r``'s unless FF is dropped (with FF constant they equal
them too, since a constant FF adds 0 to every score).

References
----------
NCAL-R: "Reliable Active Learning from Unreliable Labels via Neural Collapse Geometry", NeurIPS 2025
workshop, arXiv:2510.09740. One scale for relabels and new items: Goh & Mueller, "ActiveLab",
arXiv:2301.11856. Uncertainty sampling buys the items annotators get wrong: docs/findings.md §7.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._checks import check_float
from ._ood_scores import COMBINE, check_id_scores
from .base import Selection, Signals, Strategy
from .ncal_r import (
    FF_SIGNALS,
    _CmapMixin,
    _keep_policy_infinities,
    check_weights,
    ff_degeneracy,
    ff_values,
    ff_warning,
)
from .ood_gate import estimate_id, gate_id_needs
from .relabel import RelabelAwareStrategy, consensus_weakness
from .selection import ncal_r_scores, top_k

_ANNOTATION_NEEDS = ("annotations_labeled", "probs_labeled_oof")


def top_two_margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability of every row (1 for a single class)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape[1] < 2:
        return np.ones(p.shape[0])
    top2 = np.partition(p, -2, axis=1)[:, -2:]
    return top2.max(axis=1) - top2.min(axis=1)


def label_reliability(
    annotations_labeled: np.ndarray, probs_labeled_oof: np.ndarray, margins: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """Estimated probability that one bought annotation is correct, at each of ``margins``.

    Fits an increasing isotonic map from a labeled item's out-of-fold margin to whether each of
    its annotations agrees with the out-of-fold prediction, and applies it to ``margins``.
    Agreement with the model stands in for correctness (no ground truth exists); it is low where
    annotators err on hard items and where the model itself is unsure, which is the item
    difficulty both share. With fewer than two distinct margins or one outcome the map is the
    constant mean agreement.

    Returns
    -------
    (len(margins),) float64 in [0, 1], and details (annotations used, mean agreement).
    """
    from sklearn.isotonic import IsotonicRegression

    ann = np.asarray(annotations_labeled)
    p = np.asarray(probs_labeled_oof, dtype=np.float64)
    if ann.ndim != 2 or p.ndim != 2 or ann.shape[0] != p.shape[0]:
        raise ValueError(
            f"`annotations_labeled` (N_L, M) and `probs_labeled_oof` (N_L, C) must share rows; "
            f"got shapes {ann.shape} and {p.shape}"
        )
    rows, cols = np.nonzero(ann >= 0)
    q = np.asarray(margins, dtype=np.float64)
    if rows.size == 0:
        return np.ones_like(q), {"n_annotations": 0, "mean_agreement": None}
    x = top_two_margin(p)[rows]
    agree = (ann[rows, cols] == p.argmax(axis=1)[rows]).astype(np.float64)
    info = {"n_annotations": int(rows.size), "mean_agreement": float(agree.mean())}
    if np.unique(x).size < 2 or np.unique(agree).size < 2:
        return np.full_like(q, agree.mean()), info
    iso = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(x, agree)
    return iso.predict(q), info


def percentile(scores: np.ndarray) -> np.ndarray:
    """Average rank of each score divided by N, in (0, 1] (infinities rank first or last)."""
    from scipy.stats import rankdata

    return rankdata(scores, method="average") / scores.size


class NCALPlus(_CmapMixin, RelabelAwareStrategy):
    """NCAL-R+: NCAL-R with an OOD gate, an annotator-reliability discount and relabel-or-new.

    Parameters
    ----------
    direction, centering, mu_G, pair, empty_class, expected, weights, block_size
        As for ``ncal_r``.
    ood_gate : bool
        Put items with P(ID) < ``threshold`` after every likely-ID item.
    reliability : bool
        Discount informativeness by the probability that the bought label is correct.
    relabel : bool
        Let weakly labeled items compete with new ones for the annotations.
    threshold : float
        P(ID) threshold of the gate, in [0, 1].
    ood_scores : sequence of {"energy", "class_mean", "knn"}
        ID-ness scores of the gate (``knn`` is O(N·N_L·d); the default keeps the gate at
        O(N·C·d), like CMAP).
    combine : {"rank", "z"}
        How the ID-ness scores are averaged.
    ff_zero_share : float
        FF is dropped (with a warning) when more than this share of the pool has FF == 0, or when
        it is constant; in [0, 1].
    ff : {"flips", "margin_std"}
        Which feature fluctuation is z-scored (as for ``ncal_r``).
    """

    name = "ncal_plus"
    needs = (
        "probs_pool", "features_pool", "features_labeled", "labels_labeled", "ff_counts",
        "logits_pool", "annotations_labeled", "probs_labeled_oof",
    )  # fmt: skip

    def __init__(
        self,
        direction: str = "high",
        centering: str = "none",
        mu_G: str = "class_avg",
        pair: str = "signed",
        empty_class: str = "formula",
        expected: bool = False,
        weights: tuple[float, float] | list[float] = (0.5, 0.5),
        block_size: int = 8192,
        ood_gate: bool = True,
        reliability: bool = True,
        relabel: bool = True,
        threshold: float = 0.5,
        ood_scores: Sequence[str] = ("energy", "class_mean"),
        combine: str = "z",
        ff_zero_share: float = 0.95,
        ff: str = "flips",
    ) -> None:
        from .._utils.validation import check_choice

        self._init_cmap(direction, centering, mu_G, pair, empty_class, expected, block_size)
        self.weights = check_weights(weights)
        for flag, value in (("ood_gate", ood_gate), ("reliability", reliability), ("relabel", relabel)):  # fmt: skip
            if not isinstance(value, bool):
                raise TypeError(f"`{flag}` must be a bool; got {type(value).__name__}")
        self.ood_gate, self.reliability, self.relabel = ood_gate, reliability, relabel
        self.threshold = check_float(threshold, "threshold", low=0.0, high=1.0)
        self.ood_scores = check_id_scores(ood_scores)
        self.combine = check_choice(combine, "combine", COMBINE)
        self.ff_zero_share = check_float(ff_zero_share, "ff_zero_share", low=0.0, high=1.0)
        self.ff = check_choice(ff, "ff", tuple(FF_SIGNALS))

    def required_signals(self) -> tuple[str, ...]:
        needs = ["probs_pool", "features_pool", "features_labeled", "labels_labeled"]
        needs.append(FF_SIGNALS[self.ff])
        if self.ood_gate:
            needs += [s for s in gate_id_needs(self.ood_scores) if s not in needs]
        if self.reliability or self.relabel:
            needs += list(_ANNOTATION_NEEDS)
        return tuple(needs)

    def select(self, signals: Signals, k: int, rng: np.random.Generator | None = None) -> Selection:
        """Spend ``k`` annotations; new items only (``relabel=False``) are checked as such."""
        if self.relabel:
            return RelabelAwareStrategy.select(self, signals, k, rng)
        return Strategy.select(self, signals, k, rng)

    def _informativeness(self, signals: Signals, info: dict[str, Any]) -> np.ndarray:
        """NCAL-R's composite, FF dropped explicitly when it is degenerate."""
        c = self._cmap(signals)
        ff = ff_values(signals, self.ff)
        state = ff_degeneracy(ff, self.ff_zero_share)
        drop_ff = state["ff_degenerate"]
        info.update(cmap=c, ff=self.ff, ff_zero_share=state["ff_zero_share"])
        info["ff_dropped"] = drop_ff
        weights = self.weights
        if drop_ff:
            warnings.warn(
                ff_warning(
                    state, self.ff, "the FF term is dropped and NCAL-R+ ranks by CMAP alone"
                ),
                RuntimeWarning,
                stacklevel=4,
            )
            weights, ff = (weights[0] or 1.0, 0.0), np.zeros_like(ff)
        finite = np.where(np.isfinite(c), c, 0.0)
        scores = ncal_r_scores(finite, ff, direction=self.direction, weights=weights)
        return _keep_policy_infinities(scores, c)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        info: dict[str, Any] = {}
        score = self._informativeness(signals, info)
        if not (self.ood_gate or self.reliability or self.relabel):
            idx = top_k(score, k)
            return Selection(idx, score[idx], info)
        n = score.size
        p_id = np.ones(n)
        if self.ood_gate:
            est = estimate_id(signals, self.ood_scores, self.combine, n_neighbors=10)
            p_id = est.p_id
            info["id_mixture"] = est.info
        probs = signals.probabilities()
        r_pool = np.ones(n)
        if self.reliability or self.relabel:
            r_pool, info["reliability"] = label_reliability(
                signals.annotations_labeled, signals.probs_labeled_oof, top_two_margin(probs)
            )
        value = percentile(score) * (r_pool if self.reliability else 1.0)
        if self.ood_gate:  # below the threshold: after every likely-ID item, by P(ID)
            value = np.where(p_id >= self.threshold, value, p_id - 2.0)
        n_new, relabel = k, np.zeros(0, dtype=np.int64)
        if self.relabel:
            n_new, relabel = self._relabel_split(signals, k, probs, r_pool, p_id, info)
        idx = top_k(value, n_new)
        return Selection(idx, value[idx], info, relabel)

    def _relabel_split(
        self,
        signals: Signals,
        k: int,
        probs: np.ndarray,
        r_pool: np.ndarray,
        p_id: np.ndarray,
        info: dict[str, Any],
    ) -> tuple[int, np.ndarray]:
        """How many of the ``k`` annotations go to new items, and which labeled rows to relabel."""
        oof = np.asarray(signals.probs_labeled_oof, dtype=np.float64)
        weakness = consensus_weakness(signals.annotations_labeled, oof)
        r_lab, _ = label_reliability(signals.annotations_labeled, oof, top_two_margin(oof))
        gain_new = (1.0 - probs.max(axis=1)) * r_pool * p_id
        gain_rel = weakness * r_lab
        merged = top_k(np.concatenate([gain_new, gain_rel]), k)  # ties go to the pool
        relabel = merged[merged >= gain_new.size] - gain_new.size
        info.update(n_new=int(k - relabel.size), n_relabel=int(relabel.size))
        info["relabel_gain"] = gain_rel[relabel].tolist()
        return int(k - relabel.size), relabel.astype(np.int64)
