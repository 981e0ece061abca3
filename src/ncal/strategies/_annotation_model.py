"""How often a bought annotation is right, and how settled each labeled item is, without ground
truth (NCAL-R+'s reliability discount and relabel-or-new decision).

Two accuracies, both functions of an item's top-two margin under the out-of-fold model:

* the **annotators'** ``q_ann(m)``: from items annotated more than once, the share of agreeing
  annotation pairs, inverted under symmetric errors, ``agreement = q² + (1 - q)² / (C - 1)``; one
  level, or two split at the median margin when the harder half agrees significantly less. Disagreement between annotators is evidence
  of annotator error alone; agreement with a model is not (a low-margin item disagrees with the
  model because the model is unsure). Until ``min_repeated`` items have two or more annotations,
  ``q_ann`` is one constant: the agreement of the annotations with the out-of-fold prediction on
  the most confident quarter of the labeled items, where the model is rarely wrong.
* the **model's** ``q_model(m)``: agreement of the out-of-fold prediction with the annotations,
  isotonic in the margin.

An item's labels are then weighed as independent voters, each annotation with ``q_ann`` and the
out-of-fold prediction with ``q_model`` (a wrong vote lands on any other class uniformly), and
its **weakness** is one minus the largest posterior class probability. One clean annotation
against the model is settled (weakness near 0 when ``q_ann`` is near 1); one noisy annotation
against a confident model is not.

References
----------
Inter-annotator agreement as evidence of annotator accuracy: Dawid & Skene, "Maximum likelihood
estimation of observer error-rates using the EM algorithm", JRSS C 1979. One scale for relabels
and new items: Goh & Mueller, "ActiveLab", arXiv:2301.11856.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .relabel import vote_matrix

MIN_REPEATED = 20  # items with >= 2 annotations before q_ann follows the annotators' agreement
CONFIDENT_SHARE = 0.25  # the most confident share of labeled items that sets the early q_ann
Z_ONE_SIDED_5PCT = 1.645


def top_two_margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability of every row (1 for a single class)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape[1] < 2:
        return np.ones(p.shape[0])
    top2 = np.partition(p, -2, axis=1)[:, -2:]
    return top2.max(axis=1) - top2.min(axis=1)


def accuracy_from_agreement(agreement: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy ``q`` of symmetric annotators whose pairs agree at rate ``agreement``.

    Solves ``agreement = q² + (1 - q)² / (C - 1)`` for ``q >= 1 / C`` (chance agreement and
    below give ``1 / C``).
    """
    c = float(num_classes)
    a = np.asarray(agreement, dtype=np.float64)
    if c < 2:
        return np.ones_like(a)
    return (1.0 + np.sqrt(np.maximum((c - 1.0) * (a * c - 1.0), 0.0))) / c


def _agreement_by_margin(
    margin: np.ndarray, agreeing: np.ndarray, pairs: np.ndarray
) -> tuple[Any, dict[str, Any]]:
    """Pair agreement as a function of the margin: two levels split at the median margin when the
    harder half agrees significantly less (one-sided z-test over items, p < 0.05), else one.

    A finer fit (isotonic regression) on the few dozen repeated items of early rounds follows
    their noise: a handful of disagreeing low-margin items sets q near chance there, and the
    discount then buries the most informative items.
    """
    overall = float(agreeing.sum() / pairs.sum())
    cut = float(np.median(margin))
    low = margin < cut
    detail: dict[str, Any] = {"margin_dependent": False}
    if low.any() and (~low).any():
        a_lo = float(agreeing[low].sum() / pairs[low].sum())
        a_hi = float(agreeing[~low].sum() / pairs[~low].sum())
        var = overall * (1.0 - overall) * (1.0 / low.sum() + 1.0 / (~low).sum())
        z = (a_hi - a_lo) / np.sqrt(var) if var > 0 else 0.0
        detail.update(margin_cut=cut, agreement_low=a_lo, agreement_high=a_hi, z=float(z))
        if z > Z_ONE_SIDED_5PCT:
            detail["margin_dependent"] = True
            return lambda q: np.where(np.asarray(q) < cut, a_lo, a_hi), detail
    return lambda q: np.full(np.shape(q), overall), detail


def _isotonic(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None):
    """An increasing fit of ``y`` on ``x``; a constant (the weighted mean) when either is flat."""
    from sklearn.isotonic import IsotonicRegression

    if np.unique(x).size < 2 or np.unique(y).size < 2:
        mean = float(np.average(y, weights=w))
        return lambda q: np.full(np.shape(q), mean)
    iso = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(x, y, sample_weight=w)
    return lambda q: iso.predict(np.asarray(q, dtype=np.float64))


@dataclass
class AnnotationModel:
    """Fitted accuracies of the annotators and of the out-of-fold model, by margin.

    Use :func:`fit_annotation_model`. ``info`` records how ``q_ann`` was estimated (``source``:
    ``"pairs"``, ``"confident_model"`` or ``"none"``), from how many items and annotations.
    """

    num_classes: int
    _q_ann: Any
    _q_model: Any
    info: dict[str, Any] = field(default_factory=dict)

    def annotator_accuracy(self, margins: np.ndarray) -> np.ndarray:
        """Probability that one bought annotation of an item with these margins is right."""
        return np.clip(self._q_ann(margins), 1.0 / self.num_classes, 1.0)

    def model_accuracy(self, margins: np.ndarray) -> np.ndarray:
        """Probability that the out-of-fold prediction at these margins is right."""
        return np.clip(self._q_model(margins), 1.0 / self.num_classes, 1.0)


def fit_annotation_model(
    annotations_labeled: np.ndarray,
    probs_labeled_oof: np.ndarray,
    min_repeated: int = MIN_REPEATED,
) -> AnnotationModel:
    """Estimate the annotators' and the out-of-fold model's accuracy by margin (module docstring).

    Parameters
    ----------
    annotations_labeled : (N_L, M) int, ``-1`` where annotator ``j`` did not label item ``i``.
    probs_labeled_oof : (N_L, C) out-of-fold class probabilities of the labeled items.
    min_repeated : int
        Items with two or more annotations needed before ``q_ann`` follows their agreement.

    Returns
    -------
    AnnotationModel
    """
    ann = np.asarray(annotations_labeled)
    p = np.asarray(probs_labeled_oof, dtype=np.float64)
    if ann.ndim != 2 or p.ndim != 2 or ann.shape[0] != p.shape[0]:
        raise ValueError(
            f"`annotations_labeled` (N_L, M) and `probs_labeled_oof` (N_L, C) must share rows; "
            f"got shapes {ann.shape} and {p.shape}"
        )
    c = p.shape[1]
    rows, cols = np.nonzero(ann >= 0)
    if rows.size == 0:
        one = lambda q: np.ones(np.shape(q))  # noqa: E731 - nothing observed: no discount
        return AnnotationModel(c, one, one, {"source": "none", "n_annotations": 0})
    margin = top_two_margin(p)
    agree = (ann[rows, cols] == p.argmax(axis=1)[rows]).astype(np.float64)
    q_model = _isotonic(margin[rows], agree)
    info: dict[str, Any] = {"n_annotations": int(rows.size), "model_agreement": float(agree.mean())}

    votes = vote_matrix(ann, c)
    n = votes.sum(axis=1)
    pairs = n * (n - 1.0) / 2.0
    repeated = pairs > 0
    info["n_repeated"] = int(repeated.sum())
    if repeated.sum() >= min_repeated:
        agreeing = (votes * (votes - 1.0) / 2.0).sum(axis=1)
        rate, detail = _agreement_by_margin(margin[repeated], agreeing[repeated], pairs[repeated])
        info.update(source="pairs", pair_agreement=float(agreeing.sum() / pairs.sum()), **detail)
        return AnnotationModel(c, lambda q: accuracy_from_agreement(rate(q), c), q_model, info)
    # too few repeats: agreement with the model where the model is most confident
    cut = np.quantile(margin, 1.0 - CONFIDENT_SHARE)
    confident = margin[rows] >= cut
    q0 = float(agree[confident].mean()) if confident.any() else float(agree.mean())
    info.update(source="confident_model", confident_agreement=q0)
    return AnnotationModel(c, lambda q: np.full(np.shape(q), q0), q_model, info)


def posterior_weakness(
    annotations_labeled: np.ndarray, probs_labeled_oof: np.ndarray, model: AnnotationModel
) -> np.ndarray:
    """One minus the largest posterior class probability of each labeled item.

    The item's annotations (accuracy ``q_ann`` at its margin) and the out-of-fold prediction
    (``q_model``) are independent voters over a uniform prior; a wrong vote picks any other class
    uniformly. Items without an annotation score 0 (nothing to settle).
    """
    p = np.asarray(probs_labeled_oof, dtype=np.float64)
    c = p.shape[1]
    votes = vote_matrix(annotations_labeled, c)
    margin = top_two_margin(p)
    eps = 1e-9
    q_a = np.clip(model.annotator_accuracy(margin), 1.0 / c + eps, 1.0 - eps)
    q_m = np.clip(model.model_accuracy(margin), 1.0 / c + eps, 1.0 - eps)
    # log-likelihood of class k: sum over votes of log q (vote == k) or log((1-q)/(C-1)) (else)
    n = votes.sum(axis=1, keepdims=True)
    right, wrong = np.log(q_a)[:, None], np.log((1.0 - q_a) / (c - 1))[:, None]
    loglik = votes * right + (n - votes) * wrong
    pred = np.zeros_like(p)
    pred[np.arange(p.shape[0]), p.argmax(axis=1)] = 1.0
    loglik += pred * np.log(q_m)[:, None] + (1.0 - pred) * np.log((1.0 - q_m) / (c - 1))[:, None]
    loglik -= loglik.max(axis=1, keepdims=True)
    post = np.exp(loglik)
    post /= post.sum(axis=1, keepdims=True)
    return np.where(n[:, 0] > 0, 1.0 - post.max(axis=1), 0.0)
