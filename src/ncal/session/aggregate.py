"""Label aggregation and annotator agreement for crowd annotations (numpy only).

Annotations are given as three aligned vectors: ``items`` (item index), ``annotators`` (annotator
index) and ``labels`` (class index), one entry per annotation. Each annotator should contribute at
most one label per item (the session keeps the latest one per (item, annotator); see
:func:`latest_per_pair`).

* :func:`majority_vote` — plurality vote; ties go to the class whose voters have the larger total
  ``weights`` (e.g. annotator reliabilities) and remaining ties to the lowest class index.
* :func:`dawid_skene` — EM with one confusion matrix per annotator, initialised by the (soft)
  majority vote; reliability of annotator ``a`` = ``sum_c pi_c * confusion[a, c, c]``.
* :func:`krippendorff_alpha` (nominal, any number of annotators per item, missing data allowed) and
  :func:`pairwise_agreement`.

References
----------
A. P. Dawid and A. M. Skene, "Maximum likelihood estimation of observer error-rates using the EM
algorithm", Applied Statistics 28(1), 1979.
K. Krippendorff, "Computing Krippendorff's Alpha-Reliability", 2011 (nominal alpha via the
coincidence matrix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_label_vector


def _check(
    items: np.ndarray,
    annotators: np.ndarray | None,
    labels: np.ndarray,
    n_items: int,
    num_classes: int,
    n_annotators: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, (int, np.integer))
        or num_classes < 1
    ):
        raise ValueError(f"`num_classes` must be a positive integer; got {num_classes!r}")
    it = as_label_vector(items, "items", num_classes=n_items)
    lab = as_label_vector(labels, "labels", num_classes=num_classes, length=it.shape[0])
    an = None
    if annotators is not None:
        an = as_label_vector(annotators, "annotators", num_classes=n_annotators, length=it.shape[0])
    return it, an, lab


def latest_per_pair(items: np.ndarray, annotators: np.ndarray) -> np.ndarray:
    """Boolean mask keeping, for every (item, annotator) pair, only its last annotation (input
    order)."""
    it = np.asarray(items, dtype=np.int64)
    an = np.asarray(annotators, dtype=np.int64)
    keep = np.zeros(it.shape[0], dtype=bool)
    if it.size == 0:
        return keep
    key = it * (int(an.max()) + 1) + an
    # last occurrence of each key: unique on the reversed array gives first-from-the-end indices
    _, rev_first = np.unique(key[::-1], return_index=True)
    keep[it.shape[0] - 1 - rev_first] = True
    return keep


def vote_counts(
    items: np.ndarray, labels: np.ndarray, *, n_items: int, num_classes: int
) -> np.ndarray:
    """(n_items, num_classes) int64 counts of the labels given to each item."""
    it, _, lab = _check(items, None, labels, n_items, num_classes)
    counts = np.zeros((n_items, num_classes), dtype=np.int64)
    np.add.at(counts, (it, lab), 1)
    return counts


@dataclass(frozen=True)
class MajorityResult:
    """labels: (n_items,) int64, ``-1`` where unannotated; confidence: winning vote share (NaN if
    none);
    counts: (n_items, C) vote counts."""

    labels: np.ndarray
    confidence: np.ndarray
    counts: np.ndarray


def majority_vote(
    items: np.ndarray,
    annotators: np.ndarray,
    labels: np.ndarray,
    *,
    n_items: int,
    num_classes: int,
    weights: np.ndarray | None = None,
) -> MajorityResult:
    """Plurality vote per item.

    Parameters
    ----------
    items, annotators, labels : (M,) int arrays
        One entry per annotation.
    n_items, num_classes : int
    weights : (n_annotators,) array, optional
        Tie-break only: among the classes with the most votes, the one whose voters have the
        largest total weight wins (e.g. Dawid–Skene reliabilities). Remaining ties (and every tie
        when ``weights`` is None) go to the lowest class index.

    Returns
    -------
    MajorityResult
    """
    it, an, lab = _check(items, annotators, labels, n_items, num_classes)
    counts = np.zeros((n_items, num_classes), dtype=np.int64)
    np.add.at(counts, (it, lab), 1)
    total = counts.sum(axis=1)
    top = counts.max(axis=1, keepdims=True)
    tied = (counts == top) & (total[:, None] > 0)
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or (an.size and an.max() >= w.shape[0]) or not np.isfinite(w).all():
            raise ValueError("`weights` must be a finite 1-D array with one weight per annotator")
        wsum = np.zeros((n_items, num_classes))
        np.add.at(wsum, (it, lab), w[an])
        key = np.where(tied, wsum, -np.inf)
        best = key.max(axis=1, keepdims=True)
        tied &= key == best
    winner = np.argmax(tied, axis=1)  # first True = lowest class index among the remaining ties
    out = np.where(total > 0, winner, -1).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(total > 0, top[:, 0] / total, np.nan)
    return MajorityResult(out, conf, counts)


@dataclass(frozen=True)
class DawidSkeneResult:
    """Fitted Dawid–Skene model.

    Attributes
    ----------
    posteriors : (n_items, C) posterior class probabilities (the class prior for unannotated items).
    labels : (n_items,) int64 MAP labels, ``-1`` for unannotated items.
    confusion : (A, C, C) ``confusion[a, c, l] = P(annotator a says l | true class c)``.
    priors : (C,) class priors.
    reliability : (A,) ``sum_c priors[c] * confusion[a, c, c]`` (expected accuracy); 1 − it is the
    error rate.
    n_annotations : (A,) annotations per annotator.
    n_iter : EM iterations run; converged : whether the tolerance was met; log_likelihood : final
    value.
    """

    posteriors: np.ndarray
    labels: np.ndarray
    confusion: np.ndarray
    priors: np.ndarray
    reliability: np.ndarray
    n_annotations: np.ndarray
    n_iter: int
    converged: bool
    log_likelihood: float


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    m = a.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=1, keepdims=True)))[:, 0]


def dawid_skene(
    items: np.ndarray,
    annotators: np.ndarray,
    labels: np.ndarray,
    *,
    n_items: int,
    n_annotators: int,
    num_classes: int,
    max_iter: int = 200,
    tol: float = 1e-7,
    smoothing: float = 0.01,
) -> DawidSkeneResult:
    """Dawid–Skene EM with per-annotator confusion matrices, initialised by the soft majority vote.

    M-step: ``priors_c ∝ sum_i T_ic``; ``confusion[a, c, l] ∝ smoothing + sum_{(i,a,l)} T_ic``.
    E-step: ``log T_ic = log priors_c + sum_{(i,a,l)} log confusion[a, c, l]`` (normalised).
    Everything is accumulated per annotation (O(M·C) per iteration), never as an (items ×
    annotators × classes) tensor. Stops when the log-likelihood improves by less than ``tol``
    (relative).

    Parameters
    ----------
    items, annotators, labels : (M,) int arrays
        One entry per annotation (at most one per (item, annotator) pair is the model's assumption).
    n_items, n_annotators, num_classes : int
    max_iter : int
    tol : float
    smoothing : float
        Additive (Dirichlet) smoothing of every confusion-matrix cell; keeps log(0) out of the
        E-step.

    Returns
    -------
    DawidSkeneResult

    References
    ----------
    Dawid & Skene, Applied Statistics 28(1):20–28, 1979.
    """
    it, an, lab = _check(items, annotators, labels, n_items, num_classes, n_annotators)
    if smoothing < 0 or not np.isfinite(smoothing):
        raise ValueError(f"`smoothing` must be a finite number >= 0; got {smoothing!r}")
    C, A = int(num_classes), int(n_annotators)
    counts = np.zeros((n_items, C))
    np.add.at(counts, (it, lab), 1.0)
    annotated = counts.sum(axis=1) > 0
    n_ann = np.bincount(an, minlength=A).astype(np.int64)
    T = np.zeros((n_items, C))
    T[annotated] = counts[annotated] / counts[annotated].sum(axis=1, keepdims=True)
    n_eff = max(int(annotated.sum()), 1)
    prev_ll = -np.inf
    converged = False
    ll = -np.inf
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007  (n_iter is reported)
        # M-step
        priors = (T[annotated].sum(axis=0) + 1e-6) / (n_eff + C * 1e-6)
        conf_t = np.full(
            (A, C, C), float(smoothing)
        )  # indexed [annotator, given label, true class]
        np.add.at(conf_t, (an, lab), T[it])
        conf = conf_t.transpose(0, 2, 1)  # [annotator, true class, given label]
        row = conf.sum(axis=2, keepdims=True)
        conf = np.divide(conf, row, out=np.full_like(conf, 1.0 / C), where=row > 0)
        # E-step
        with np.errstate(divide="ignore"):
            log_conf = np.log(conf)
        logT = np.zeros((n_items, C))
        np.add.at(logT, it, log_conf[an, :, lab])
        logT += np.log(priors)[None, :]
        lse = _logsumexp_rows(logT)
        T = np.where(annotated[:, None], np.exp(logT - lse[:, None]), 0.0)
        ll = float(lse[annotated].sum())
        if np.isfinite(prev_ll) and abs(ll - prev_ll) <= tol * max(1.0, abs(ll)):
            converged = True
            break
        prev_ll = ll
    posteriors = np.where(annotated[:, None], T, priors[None, :])
    map_labels = np.where(annotated, np.argmax(T, axis=1), -1).astype(np.int64)
    reliability = np.einsum("c,acc->a", priors, conf)
    return DawidSkeneResult(
        posteriors=posteriors,
        labels=map_labels,
        confusion=conf,
        priors=priors,
        reliability=reliability,
        n_annotations=n_ann,
        n_iter=n_iter,
        converged=converged,
        log_likelihood=ll,
    )


def krippendorff_alpha(
    items: np.ndarray, labels: np.ndarray, *, n_items: int, num_classes: int
) -> float:
    """Krippendorff's alpha for nominal data (any number of annotators per item, missing data
    allowed).

    Built from the coincidence matrix ``o[c, k] = sum_u (n_uc n_uk − [c=k] n_uc) / (m_u − 1)`` over
    items with ``m_u >= 2`` labels: ``alpha = 1 − (n − 1) * sum_{c≠k} o[c, k] /
    sum_{c≠k} n_c n_k`` with ``n_c = sum_k o[c, k]``. NaN when fewer than two pairable labels or
    only one category is used.

    Chosen over Fleiss' kappa because annotators label different subsets of items in a session
    (Fleiss needs the same number of ratings for every item).
    """
    counts = vote_counts(items, labels, n_items=n_items, num_classes=num_classes).astype(np.float64)
    m = counts.sum(axis=1)
    keep = m >= 2
    if not keep.any():
        return float("nan")
    nu = counts[keep]
    w = 1.0 / (m[keep] - 1.0)
    o = (nu * w[:, None]).T @ nu - np.diag((nu * w[:, None]).sum(axis=0))
    n_c = o.sum(axis=1)
    n = n_c.sum()
    disagree_obs = o.sum() - np.trace(o)
    disagree_exp = n_c.sum() ** 2 - (n_c**2).sum()
    if n < 2 or disagree_exp == 0:
        return float("nan")
    return float(1.0 - (n - 1.0) * disagree_obs / disagree_exp)


def pairwise_agreement(
    items: np.ndarray,
    annotators: np.ndarray,
    labels: np.ndarray,
    *,
    n_items: int,
    n_annotators: int,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Observed agreement between annotators on the items they both labeled.

    Returns
    -------
    overall : float
        Fraction of agreeing (annotator, annotator) label pairs over all items with ≥ 2 labels (each
        item weighted by its number of pairs); NaN if there is none.
    agree : (A, A) float
        Per-pair agreement rate (NaN where the two never labeled a common item; diagonal NaN).
    overlap : (A, A) int
        Number of items both annotators labeled.
    """
    it, an, lab = _check(
        items, annotators, labels, n_items, int(np.max(labels, initial=0)) + 1, n_annotators
    )
    A = int(n_annotators)
    agree_n = np.zeros((A, A), dtype=np.int64)
    overlap = np.zeros((A, A), dtype=np.int64)
    order = np.argsort(it, kind="stable")
    it, an, lab = it[order], an[order], lab[order]
    starts = np.flatnonzero(np.r_[True, it[1:] != it[:-1]]) if it.size else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], it.size] if it.size else starts
    # items have few labels each: loop over the group sizes, vectorised within each size
    sizes = ends - starts
    for s in np.unique(sizes[sizes >= 2]):
        st = starts[sizes == s]
        idx = st[:, None] + np.arange(s)[None, :]
        a_g, l_g = an[idx], lab[idx]
        ii, jj = np.triu_indices(int(s), k=1)
        a1, a2 = a_g[:, ii].ravel(), a_g[:, jj].ravel()
        same = (l_g[:, ii] == l_g[:, jj]).ravel().astype(np.int64)
        np.add.at(overlap, (a1, a2), 1)
        np.add.at(overlap, (a2, a1), 1)
        np.add.at(agree_n, (a1, a2), same)
        np.add.at(agree_n, (a2, a1), same)
    np.fill_diagonal(overlap, 0)
    np.fill_diagonal(agree_n, 0)
    total_pairs = overlap.sum() / 2
    overall = float(agree_n.sum() / 2 / total_pairs) if total_pairs > 0 else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(overlap > 0, agree_n / np.maximum(overlap, 1), np.nan)
    return overall, rate, overlap
