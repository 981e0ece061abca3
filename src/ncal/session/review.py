"""Ranking labeled items by how likely their (aggregated) label is wrong.

Three signals, each oriented so that larger = more suspicious:

(a) ``distance`` — class-mean distance ratio in standardised feature space:
    ``d(x, mu_given) / (d(x, mu_given) + min_{c != given} d(x, mu_c))`` in [0, 1], where
    ``mu_given`` is the leave-one-out mean of the given class (the item itself removed, so it cannot
    pull its own mean).
(b) ``self_confidence`` — ``1 − p(given label | x)`` under an out-of-fold model: a multinomial
    logistic regression fit on K−1 folds and scored on the held-out fold (cleanlab's recipe), so
    the model never memorises the label it scores.
(c) ``disagreement`` — share of the item's annotators whose (latest) label differs from the
    aggregated one.

Combination: the mean of the rank-normalised signals (ranks with ties averaged, scaled to [0, 1]).
Ranks make the three scales comparable and robust to outliers; a signal that is constant (e.g.
disagreement with one annotator per item) gives every item the same rank and so does not change the
order.

References
----------
C. Northcutt, L. Jiang, I. Chuang, "Confident Learning: Estimating Uncertainty in Dataset Labels",
JAIR 70, 2021 (out-of-fold self-confidence).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from .._utils.validation import as_float_matrix, as_label_vector, check_same_rows
from ..errors import NcalError
from ..strategies.selection import top_k


def standardise(x: np.ndarray) -> np.ndarray:
    """Columns to zero mean / unit std (constant columns left at 0)."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def class_mean_distance_ratio(
    features: np.ndarray, labels: np.ndarray, *, num_classes: int, block_size: int = 4096
) -> np.ndarray:
    """Signal (a): ``d_own / (d_own + d_nearest_other)`` with a leave-one-out own-class mean.

    Items alone in their class (no leave-one-out mean) get 1 (maximally suspicious: nothing
    supports the label). Classes without items are ignored as "other" classes. Rows are processed in
    blocks.
    """
    f = as_float_matrix(features, "features")
    y = as_label_vector(labels, "labels", num_classes=num_classes, length=f.shape[0])
    n_c = np.bincount(y, minlength=num_classes).astype(np.float64)
    sums = np.zeros((num_classes, f.shape[1]))
    np.add.at(sums, y, f)
    present = n_c > 0
    means = np.where(present[:, None], sums / np.maximum(n_c, 1)[:, None], 0.0)
    out = np.ones(f.shape[0])
    for s in range(0, f.shape[0], block_size):
        fb, yb = f[s : s + block_size], y[s : s + block_size]
        sq = (fb**2).sum(1)[:, None] + (means**2).sum(1)[None, :] - 2.0 * fb @ means.T
        d = np.sqrt(np.maximum(sq, 0.0))
        own_n = n_c[yb]
        ok = own_n > 1
        loo = (sums[yb] - fb) / np.maximum(own_n - 1, 1)[:, None]
        d_own = np.linalg.norm(fb - loo, axis=1)
        d_other = np.where(present[None, :], d, np.inf)
        d_other[np.arange(fb.shape[0]), yb] = np.inf
        nearest = d_other.min(axis=1)
        denom = d_own + nearest
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(np.isfinite(nearest) & (denom > 0), d_own / denom, 0.5)
        out[s : s + block_size] = np.where(ok, r, 1.0)
    return out


def out_of_fold_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    num_classes: int,
    folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 300,
) -> np.ndarray:
    """(N, num_classes) out-of-fold probabilities from a multinomial logistic regression.

    Folds are stratified when every present class has at least ``folds`` items, else plain shuffled
    folds (seeded). A class absent from a training fold gets probability 0 on its held-out fold.
    """
    from .._crossfit import out_of_fold_probabilities as shared

    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise NcalError(
            f"`folds` must be an integer >= 2 (each item is scored by a model that never saw it); got {folds!r}"
        )

    f = as_float_matrix(features, "features")
    y = as_label_vector(labels, "labels", num_classes=num_classes, length=f.shape[0])
    return shared(f, y, num_classes, folds=folds, seed=seed, C=C, max_iter=max_iter)


def annotator_disagreement(
    items: np.ndarray, labels: np.ndarray, aggregated: np.ndarray
) -> np.ndarray:
    """Signal (c): per item, the share of its annotations that differ from ``aggregated[item]``.

    ``items``/``labels`` are the (latest per annotator) annotations; items without annotations get
    0.
    """
    it = np.asarray(items, dtype=np.int64)
    agg = np.asarray(aggregated, dtype=np.int64)
    n = agg.shape[0]
    total = np.bincount(it, minlength=n).astype(np.float64)
    differ = np.bincount(
        it, weights=(np.asarray(labels) != agg[it]).astype(np.float64), minlength=n
    )
    return np.divide(differ, total, out=np.zeros(n), where=total > 0)


def rank_normalise(values: np.ndarray) -> np.ndarray:
    """Average ranks scaled to [0, 1] (0 = smallest); all 0.5 for a constant or single-entry
    vector."""
    v = np.asarray(values, dtype=np.float64)
    if v.size <= 1 or np.all(v == v.flat[0]):
        return np.full(v.shape, 0.5)
    return (rankdata(v, method="average") - 1.0) / (v.size - 1.0)


@dataclass(frozen=True)
class ReviewScores:
    """Per labeled item: combined ``score`` and the three signals (all larger = more suspicious),
    plus the out-of-fold predicted class ``oof_pred`` and its probability ``oof_conf``."""

    score: np.ndarray
    distance: np.ndarray
    self_confidence: np.ndarray
    disagreement: np.ndarray
    oof_pred: np.ndarray
    oof_conf: np.ndarray

    def ranking(self, top: int | None = None) -> np.ndarray:
        """Indices sorted by ``score`` (descending; ties to the lower index)."""
        return top_k(self.score, self.score.shape[0] if top is None else top)


def mislabel_scores(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    num_classes: int,
    disagreement: np.ndarray | None = None,
    folds: int = 5,
    seed: int = 0,
) -> ReviewScores:
    """Rank-averaged mislabel suspicion of labeled items (see the module docstring).

    Parameters
    ----------
    features : (N_L, D) features of the labeled items (standardised internally).
    labels : (N_L,) given / aggregated labels.
    num_classes : int
    disagreement : (N_L,) optional annotator-disagreement shares (signal c); zeros when omitted.
    folds : int
        K of the out-of-fold model.
    seed : int
        Fold assignment seed.

    Returns
    -------
    ReviewScores
    """
    f = standardise(as_float_matrix(features, "features"))
    y = as_label_vector(labels, "labels", num_classes=num_classes, length=f.shape[0])
    dis = (
        np.zeros(f.shape[0]) if disagreement is None else np.asarray(disagreement, dtype=np.float64)
    )
    check_same_rows(f, dis.reshape(-1, 1), "features", "disagreement")
    dist = class_mean_distance_ratio(f, y, num_classes=num_classes)
    if f.shape[0] >= 2 and np.unique(y).size >= 2:
        probs = out_of_fold_probabilities(f, y, num_classes=num_classes, folds=folds, seed=seed)
    else:
        probs = np.full((f.shape[0], num_classes), 1.0 / num_classes)
    selfc = 1.0 - probs[np.arange(f.shape[0]), y]
    score = (rank_normalise(dist) + rank_normalise(selfc) + rank_normalise(dis)) / 3.0
    return ReviewScores(
        score=score,
        distance=dist,
        self_confidence=selfc,
        disagreement=dis,
        oof_pred=probs.argmax(axis=1).astype(np.int64),
        oof_conf=probs.max(axis=1),
    )


def review_queue(
    a: Any,
    features: np.ndarray,
    heldout: np.ndarray,
    *,
    ids: list[str],
    classes: list[str],
    top: int | None = 50,
    folds: int = 5,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The labeled pool items of a session, most likely mislabeled first.

    Parameters
    ----------
    a : ncal.session.core.Aggregate
        The session's aggregated labels (and the annotations they came from).
    features : (N, D) the session's features (row = item row).
    heldout : (N,) bool, held-out evaluation items (never reviewed).
    ids, classes : item ids (row order) and class names.
    top : int or None
        Length of the queue (None: every labeled item).
    folds, seed : the out-of-fold model of :func:`mislabel_scores`.

    Returns
    -------
    list of dict
        rank, id, row, label, label_name, score, the three signals, n_labels, suggested (the
        out-of-fold prediction) and suggested_confidence; empty with fewer than 2 labeled items.
    """
    rows = np.flatnonzero((a.labels >= 0) & ~heldout)
    if rows.size < 2:
        return []
    dis = annotator_disagreement(a.items, a.given, a.labels)[rows]
    sc = mislabel_scores(
        np.asarray(features[rows]),
        a.labels[rows],
        num_classes=len(classes),
        disagreement=dis,
        folds=folds,
        seed=seed,
    )
    return [
        {
            "rank": r + 1,
            "id": ids[rows[i]],
            "row": int(rows[i]),
            "label": int(a.labels[rows[i]]),
            "label_name": classes[int(a.labels[rows[i]])],
            "score": float(sc.score[i]),
            "distance": float(sc.distance[i]),
            "self_confidence": float(sc.self_confidence[i]),
            "disagreement": float(sc.disagreement[i]),
            "n_labels": int(a.n_labels[rows[i]]),
            "suggested": classes[int(sc.oof_pred[i])],
            "suggested_confidence": float(sc.oof_conf[i]),
        }
        for r, i in enumerate(sc.ranking(top))
    ]
