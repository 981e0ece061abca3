"""NCAL-R+: NCAL-R made aware of OOD items, unreliable annotators and weak labels.

Informativeness is NCAL-R's ``w_cmap·z(CMAP') + w_ff·z(FF)`` (docs/algorithms.md §1.10), FF being
the paper's flip count (default) or the margin std (``ff``, as for ``ncal_r``). On the studies'
recipe the flip count is zero for 88-96% of the pool, while the spread of the top-two margin over
the same window checkpoints is never zero and points at the items the model gets wrong (AUROC
0.77-0.84, against 0.54-0.66; docs/results/reliable/ff_variants.md); yet as NCAL-R+'s FF it made
the study's selections less accurate (version 5, withdrawn: docs/results/reliable/README.md).
When FF is sparse (more than ``ff_zero_share`` of the pool at 0) or constant a RuntimeWarning says
so; FF is kept, as in ``ncal_r`` (the few items that flip are the ones it ranks first; a constant
FF adds 0 to every score). Three parts, each switched by a parameter, act on it:

* ``ood_gate``: items whose P(in-distribution) (:mod:`._ood_scores`, no OOD labels) is below
  ``threshold`` come after every likely-ID item, ordered among themselves by P(ID). The gate acts
  only when at least ``min_ood_share`` of the bought items were answered "not in the label set"
  (:func:`.ood_gate.ood_reported`; always when the workflow cannot tell): on pools without OOD
  items the mixture's spurious splits cost accuracy and buy nothing;
* ``reliability``: the informativeness, as a pool percentile in (0, 1], is multiplied by the
  estimated probability that a bought label is right, ``q_ann`` at the item's margin
  (:mod:`._annotation_model`). ``q_ann`` varies with the margin only once items annotated twice
  or more show that annotators disagree more on hard items; before that, and with annotators who
  agree, it is one constant and leaves the ranking as it is;
* ``relabel``: labeled items compete with new ones for the ``k`` annotations on one scale, "the
  probability that the current best guess of the item's label is wrong, times the probability that
  the bought annotation is right": ``weakness · q_ann`` for a labeled item (its annotations and
  the out-of-fold model as voters of known accuracy, :func:`._annotation_model.posterior_weakness`)
  and ``(1 - max_c p_c) · q_ann · P(ID)`` for a new one. The labeled items in the top-k of that
  scale are relabeled; the new items are the top of the NCAL-R+ ranking.

With all three off the picks equal ``ncal_r``'s with the same ``ff``.

What it buys, measured (docs/results/reliable/README.md; 10 paired seeds per setting, and a rerun
on 10 held-out seeds): it is never more accurate than the best baseline (BAIT, BADGE, margin or
ActiveLab; 0.1-2.8 AUBC points below). Without OOD items it is level with ``ncal_r``. With 20% OOD
items its gate keeps the OOD share of the annotations at 1.5-8% (random: 20%, ``ncal_r``:
30-49%) and the labeled set cleaner, but it defers informative in-distribution items with them:
on the held-out seeds its AUBC fell below random's on two of the three contaminated pools (by 0.6
and 0.8 points). Set ``ood_gate=False`` when accuracy matters more than the annotations spent on
OOD items.

Version 2 changed three things after the first study (docs/findings.md §10): FF is no
longer dropped when sparse; the discount and the relabel scale use the annotators' own agreement
instead of their agreement with the model (which is low on hard items even for perfect
annotators); and a labeled item's weakness weighs each voter by its accuracy (an overconfident
model no longer overrules clean annotations, which had sent most of the late budget of clean
runs to relabels). Version 3 lets the gate abstain when the annotators have reported no OOD item
(``min_ood_share``): in version 2 the gate was the accuracy cost on pools without any. Version 4
takes the mixture's split whenever OOD items were reported, however close its two
components lie (:func:`.ood_gate.estimate_id`): the separation test, meant for pools without OOD
items, had turned the gate off in most rounds of contaminated MNIST-5k pools. Version 4 is this
one: a version 5 that z-scored the margin std as its FF was measured less accurate and withdrawn.

References
----------
NCAL-R: "Reliable Active Learning from Unreliable Labels via Neural Collapse Geometry", NeurIPS 2025
workshop, arXiv:2510.09740. One scale for relabels and new items: Goh & Mueller, "ActiveLab",
arXiv:2301.11856. Uncertainty sampling buys the items annotators get wrong: docs/findings.md §7.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._utils.numeric import softmax_and_logsumexp
from ._annotation_model import (
    MIN_REPEATED,
    AnnotationModel,
    fit_annotation_model,
    posterior_weakness,
    top_two_margin,
)
from ._checks import check_float
from ._ood_scores import COMBINE, check_id_scores
from .base import Selection, Signals, Strategy
from .ncal_r import FF_SIGNALS, _CompositeMixin, check_weights
from .ood_gate import estimate_id, gate_id_needs, ood_reported
from .relabel import RelabelAwareStrategy
from .selection import top_k

_ANNOTATION_NEEDS = ("annotations_labeled", "probs_labeled_oof")


def percentile(scores: np.ndarray) -> np.ndarray:
    """Average rank of each score divided by N, in (0, 1] (infinities rank first or last)."""
    from scipy.stats import rankdata

    return rankdata(scores, method="average") / scores.size


class NCALPlus(_CompositeMixin, RelabelAwareStrategy):
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
    min_ood_share : float
        The gate acts only when at least this share of the bought items were answered "not in
        the label set" (``Signals.n_rejected_labeled``), in [0, 1]; 0: always (version 2). When
        the signal is absent the gate always acts.
    ood_scores : sequence of {"energy", "class_mean", "knn"}
        ID-ness scores of the gate (``knn`` is O(N·N_L·d); the default keeps the gate at
        O(N·C·d), like CMAP).
    combine : {"rank", "z"}
        How the ID-ness scores are averaged.
    ff_zero_share : float
        A RuntimeWarning reports FF as degenerate when more than this share of the pool has
        FF == 0, or when it is constant; in [0, 1]. FF is kept either way.
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
        min_ood_share: float = 0.01,
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
        self.min_ood_share = check_float(min_ood_share, "min_ood_share", low=0.0, high=1.0)
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

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        score, c, state = self._composite(
            signals,
            "FF is kept, as in ncal_r, so the few items that flip rank first",
            constant_note="FF adds 0 to every score and NCAL-R+ ranks by CMAP alone",
            stacklevel=3,
        )
        info: dict[str, Any] = {"cmap": c, "ff": self.ff}
        info.update(ff_zero_share=state["ff_zero_share"], ff_degenerate=state["ff_degenerate"])
        if not (self.ood_gate or self.reliability or self.relabel):
            idx = top_k(score, k)
            return Selection(idx, score[idx], info)
        n = score.size
        if signals.logits_pool is not None:  # the energy score comes with the same exp pass
            probs, energy = softmax_and_logsumexp(signals.logits_pool)
        else:
            probs, energy = signals.probabilities(), None
        p_id = np.ones(n)
        gate = False
        if self.ood_gate:
            gate, info["ood_evidence"] = ood_reported(signals, self.min_ood_share)
        if gate:
            est = estimate_id(
                signals, self.ood_scores, self.combine, 10, energy, evidence=info["ood_evidence"]
            )
            p_id = est.p_id
            info["id_mixture"] = est.info
        q_pool, model = np.ones(n), None
        if self.reliability or self.relabel:
            model = fit_annotation_model(signals.annotations_labeled, signals.probs_labeled_oof)
            q_pool = model.annotator_accuracy(top_two_margin(probs))
            info["reliability"] = model.info
        value = percentile(score) * (q_pool if self.reliability else 1.0)
        if gate:  # below the threshold: after every likely-ID item, by P(ID)
            value = np.where(p_id >= self.threshold, value, p_id - 2.0)
        n_new, relabel = k, np.zeros(0, dtype=np.int64)
        if self.relabel:
            gain_new = (1.0 - probs.max(axis=1)) * q_pool * p_id
            n_new, relabel = self._relabel_split(signals, k, gain_new, model, info)
        idx = top_k(value, n_new)
        return Selection(idx, value[idx], info, relabel)

    def _relabel_split(
        self,
        signals: Signals,
        k: int,
        gain_new: np.ndarray,
        model: AnnotationModel,
        info: dict[str, Any],
    ) -> tuple[int, np.ndarray]:
        """How many of the ``k`` annotations go to new items, and which labeled rows to relabel.

        Until enough items carry two annotations, up to a tenth of ``k`` relabels items with one
        annotation, spread evenly over the labeled set (not chosen by difficulty, which would bias
        the agreement down): without repeats the annotators' accuracy cannot be measured.
        """
        oof = np.asarray(signals.probs_labeled_oof, dtype=np.float64)
        n_votes = (np.asarray(signals.annotations_labeled) >= 0).sum(axis=1)
        calibrate = np.zeros(0, dtype=np.int64)
        if model.info["source"] != "pairs":
            single = np.flatnonzero(n_votes == 1)
            want = min(MIN_REPEATED - model.info.get("n_repeated", 0), max(1, k // 10), single.size)
            if want > 0:
                calibrate = np.unique(
                    single[np.linspace(0, single.size - 1, want).round().astype(int)]
                )
        weakness = posterior_weakness(signals.annotations_labeled, oof, model)
        gain_rel = weakness * model.annotator_accuracy(top_two_margin(oof))
        gain_rel[calibrate] = -np.inf  # already bought
        merged = top_k(np.concatenate([gain_new, gain_rel]), k - calibrate.size)  # ties: pool
        chosen = merged[merged >= gain_new.size] - gain_new.size
        relabel = np.concatenate([calibrate, chosen]).astype(np.int64)
        info.update(n_new=int(k - relabel.size), n_relabel=int(relabel.size))
        info.update(n_calibration=int(calibrate.size), relabel_gain=gain_rel[chosen].tolist())
        return int(k - relabel.size), relabel
