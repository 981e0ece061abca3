"""Consensus labels from several annotators: majority vote, regularised Dawid–Skene, agreement.

One implementation shared by the simulated annotator loop and ``ncal session``
(:mod:`ncal.session.aggregate` re-exports this module). numpy only.

Annotations are given as three aligned vectors: ``items`` (item index), ``annotators`` (annotator
index) and ``labels`` (class index), one entry per annotation. Each annotator should contribute at
most one label per item (the session keeps the latest one per (item, annotator); see
:func:`latest_per_pair`).

* :func:`majority_vote` — plurality vote; ties go to the class whose voters have the larger total
  ``weights`` (e.g. annotator reliabilities) and remaining ties to the lowest class index.
* :func:`dawid_skene` — EM with one confusion matrix per annotator, initialised by the (soft)
  majority vote, each confusion row shrunk towards the annotator's own one-coin model (see its
  docstring); reliability of annotator ``a`` = ``sum_c pi_c * confusion[a, c, c]``.
* :func:`consensus_labels` — one call for the loop: labels, per-item confidence and agreement,
  per-annotator reliability, and which method was used (``"auto"`` falls back to the majority vote,
  with the reason recorded, where Dawid–Skene is not identifiable).
* :func:`consensus_purity`, :func:`annotation_matrix` (the ``(items, annotators)`` matrix with
  ``-1`` for missing that cleanlab's multi-annotator functions take).
* :func:`krippendorff_alpha` (nominal, any number of annotators per item, missing data allowed) and
  :func:`pairwise_agreement`.

References
----------
A. P. Dawid and A. M. Skene, "Maximum likelihood estimation of observer error-rates using the EM
algorithm", Applied Statistics 28(1), 1979.
K. Krippendorff, "Computing Krippendorff's Alpha-Reliability", 2011 (nominal alpha via the
coincidence matrix).
J. B. Kruskal, "Three-way arrays: rank and uniqueness of trilinear decompositions", Linear Algebra
and its Applications 18(2), 1977 (three conditionally independent views identify a latent-class
model; two do not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._utils.validation import as_label_vector


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


def _check_nonneg(value: float, name: str) -> float:
    if isinstance(value, bool) or not np.isfinite(value) or value < 0:
        raise ValueError(f"`{name}` must be a finite number >= 0; got {value!r}")
    return float(value)


def _one_coin_row_prior(
    counts: np.ndarray, shrinkage: float, accuracy_prior: float, accuracy_strength: float
) -> np.ndarray:
    """Pseudo-counts ``(A, C, C)`` pulling every confusion row of annotator ``a`` towards its
    one-coin model: ``shrinkage * rho_a`` on the diagonal, ``shrinkage * (1 - rho_a) / (C - 1)``
    elsewhere, where ``rho_a`` is ``a``'s pooled (soft) accuracy with a Beta prior of mean
    ``accuracy_prior`` and ``accuracy_strength`` pseudo-observations.

    ``counts`` is indexed ``[annotator, true class, given label]``.
    """
    C = counts.shape[1]
    hits = np.einsum("acc->a", counts)
    total = counts.sum(axis=(1, 2))
    rho = (hits + accuracy_strength * accuracy_prior) / np.maximum(total + accuracy_strength, 1e-12)
    eye = np.eye(C)
    off = (1.0 - rho) / max(C - 1, 1)
    return shrinkage * (rho[:, None, None] * eye + off[:, None, None] * (1.0 - eye))


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
    shrinkage: float = 2.0,
    accuracy_prior: float = 0.7,
    accuracy_strength: float = 2.0,
) -> DawidSkeneResult:
    """Dawid–Skene EM with per-annotator confusion matrices, regularised towards one-coin models.

    Initialisation: the soft majority vote. M-step: ``priors_c ∝ sum_i T_ic``;
    ``confusion[a, c, l] ∝ smoothing + sum_{(i,a,l)} T_ic + prior[a, c, l]`` where ``prior`` puts
    ``shrinkage`` pseudo-annotations on row ``c`` spread as annotator ``a``'s one-coin model (its
    pooled accuracy ``rho_a`` on the diagonal, the rest uniform), and ``rho_a`` itself has a Beta
    prior of mean ``accuracy_prior`` worth ``accuracy_strength`` annotations. E-step:
    ``log T_ic = log priors_c + sum_{(i,a,l)} log confusion[a, c, l]`` (normalised). Everything is
    accumulated per annotation (O(M·C) per iteration), never as an (items × annotators × classes)
    tensor. Stops when the log-likelihood improves by less than ``tol`` (relative).

    Why regularise: a full C×C confusion row per annotator is estimated from a handful of
    annotations when items are few, and plain EM then fits confidently wrong matrices (with two
    annotators, 10 classes and 50 items it reported accuracies 0.72/0.93 for true 0.95/0.70). The
    shrinkage borrows strength from all of an annotator's annotations (rows with few counts follow
    the one-coin model; rows with many follow the data), and ``accuracy_prior > 1/C`` breaks the
    label-permutation symmetry of the likelihood in favour of better-than-chance annotators. It does
    not make two annotators identifiable (see :func:`ds_identifiable`); :func:`consensus_labels`
    falls back to the majority vote there.

    Items with a single annotation inform the class priors and get posteriors, but do not enter the
    confusion estimates: a lone label cannot disagree with anything, and letting it in made EM
    drift along directions the likelihood cannot see (one always-right annotator on 100 items
    drifted to reliability 0.55). With no item labeled twice the confusion rows are the prior's
    (reliability ``accuracy_prior``). With every item labeled at least twice, ``shrinkage=0,
    accuracy_strength=0`` gives the textbook algorithm.

    Parameters
    ----------
    items, annotators, labels : (M,) int arrays
        One entry per annotation (at most one per (item, annotator) pair is the model's assumption).
    n_items, n_annotators, num_classes : int
    max_iter : int
    tol : float
    smoothing : float
        Additive smoothing of every confusion-matrix cell; keeps log(0) out of the E-step.
    shrinkage : float
        Pseudo-annotations per confusion row drawn towards the annotator's one-coin model.
    accuracy_prior, accuracy_strength : float
        Mean (in ``(0, 1)``) and weight (pseudo-annotations) of the Beta prior on every
        annotator's pooled accuracy.

    Returns
    -------
    DawidSkeneResult

    References
    ----------
    Dawid & Skene, Applied Statistics 28(1):20–28, 1979.
    """
    it, an, lab = _check(items, annotators, labels, n_items, num_classes, n_annotators)
    smoothing = _check_nonneg(smoothing, "smoothing")
    shrinkage = _check_nonneg(shrinkage, "shrinkage")
    accuracy_strength = _check_nonneg(accuracy_strength, "accuracy_strength")
    if not (0.0 < accuracy_prior < 1.0):
        raise ValueError(f"`accuracy_prior` must be in (0, 1); got {accuracy_prior!r}")
    C, A = int(num_classes), int(n_annotators)
    counts = np.zeros((n_items, C))
    np.add.at(counts, (it, lab), 1.0)
    annotated = counts.sum(axis=1) > 0
    # only items with two or more labels can show disagreement; see the docstring
    informative = (counts.sum(axis=1) >= 2)[it]
    it_m, an_m, lab_m = it[informative], an[informative], lab[informative]
    if not informative.any():
        # the confusion rows are the prior's and further rounds would only let the class priors
        # feed on themselves: one M-step and E-step from the majority vote is the whole fit
        max_iter = 1
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
        conf_t = np.full((A, C, C), smoothing)  # indexed [annotator, given label, true class]
        np.add.at(conf_t, (an_m, lab_m), T[it_m])
        conf = conf_t.transpose(0, 2, 1)  # [annotator, true class, given label]
        if shrinkage > 0:
            conf = conf + _one_coin_row_prior(
                conf - smoothing, shrinkage, accuracy_prior, accuracy_strength
            )
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


# ------------------------------------------------------------------------------------ consensus
CONSENSUS_METHODS = ("majority", "ds", "auto")


def annotation_matrix(
    items: np.ndarray,
    annotators: np.ndarray,
    labels: np.ndarray,
    *,
    n_items: int,
    n_annotators: int,
) -> np.ndarray:
    """``(n_items, n_annotators)`` int64 matrix of labels, ``-1`` where an annotator gave none.

    The last annotation of each (item, annotator) pair wins. This is the ``labels_multiannotator``
    format of cleanlab's multi-annotator functions (with ``-1`` instead of NaN).
    """
    it = as_label_vector(items, "items", num_classes=n_items)
    an = as_label_vector(annotators, "annotators", num_classes=n_annotators, length=it.size)
    lab = np.asarray(labels, dtype=np.int64)
    if lab.shape != it.shape:
        raise ValueError(f"`labels` has {lab.size} entries but `items` has {it.size}")
    out = np.full((int(n_items), int(n_annotators)), -1, dtype=np.int64)
    out[it, an] = lab  # numpy assigns repeated index pairs in order: the last one stays
    return out


def ds_identifiable(
    items: np.ndarray, annotators: np.ndarray, *, min_items: int = 10
) -> tuple[bool, str | None]:
    """Whether the annotations can identify Dawid–Skene annotator accuracies, and why not.

    Two annotators are never enough: their joint label distribution is unchanged when their
    (symmetric) accuracies are swapped, so EM picks one of two mirror solutions by chance.
    Three conditionally independent annotators on common items identify the model (Kruskal
    1977). Rule used here: at least ``min_items`` items carry labels from at least three distinct
    annotators.

    Returns
    -------
    ok : bool
    reason : str or None
        Why not (None when ``ok``).
    """
    it = np.asarray(items, dtype=np.int64)
    an = np.asarray(annotators, dtype=np.int64)
    n_annotators = int(np.unique(an).size)
    if n_annotators < 3:
        return False, (
            f"Dawid–Skene is not identifiable from {n_annotators} annotator(s): with fewer than "
            "three, swapping annotators' accuracies leaves the observed labels equally likely"
        )
    pairs = np.unique(np.stack([it, an], axis=1), axis=0)
    distinct_per_item = np.bincount(pairs[:, 0]) if pairs.size else np.zeros(0, np.int64)
    n_triple = int((distinct_per_item >= 3).sum())
    if n_triple < min_items:
        return False, (
            f"only {n_triple} item(s) carry labels from three or more annotators (need "
            f"{min_items}): too little overlap to estimate annotator accuracies"
        )
    return True, None


@dataclass(frozen=True)
class ConsensusResult:
    """Consensus of a set of annotations.

    Attributes
    ----------
    labels : (n_items,) int64 consensus label, ``-1`` for items without an in-set annotation.
    confidence : (n_items,) the method's confidence in its label (majority: winning vote share;
        Dawid–Skene: posterior probability); NaN where unannotated.
    agreement : (n_items,) share of the item's annotations equal to its consensus label (NaN where
        unannotated).
    n_annotations : (n_items,) int64 in-set annotations per item.
    reliability : (n_annotators,) per-annotator reliability: Dawid–Skene expected accuracy, or
        (majority) the share of the annotator's labels that equal the consensus label; NaN for an
        annotator without annotations.
    method_used : ``"majority"`` or ``"ds"``.
    fallback_reason : why ``"auto"`` did not use Dawid–Skene (None otherwise).
    posteriors : (n_items, C) Dawid–Skene posteriors, or None for the majority vote.
    """

    labels: np.ndarray
    confidence: np.ndarray
    agreement: np.ndarray
    n_annotations: np.ndarray
    reliability: np.ndarray
    method_used: str
    fallback_reason: str | None = None
    posteriors: np.ndarray | None = None


def _agreement_stats(
    it: np.ndarray, an: np.ndarray, lab: np.ndarray, consensus: np.ndarray, n_annotators: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-item agreement with the consensus, annotations per item, per-annotator reliability."""
    n_items = consensus.size
    hit = (lab == consensus[it]).astype(np.float64)
    n_ann = np.bincount(it, minlength=n_items).astype(np.int64)
    hits = np.bincount(it, weights=hit, minlength=n_items)
    per_ann = np.bincount(an, minlength=n_annotators)
    ann_hits = np.bincount(an, weights=hit, minlength=n_annotators)
    with np.errstate(invalid="ignore", divide="ignore"):
        agreement = np.where(n_ann > 0, hits / n_ann, np.nan)
        reliability = np.where(per_ann > 0, ann_hits / per_ann, np.nan)
    return agreement, n_ann, reliability


def consensus_labels(
    items: np.ndarray,
    annotators: np.ndarray,
    labels: np.ndarray,
    n_items: int,
    num_classes: int,
    method: str = "auto",
    *,
    n_annotators: int | None = None,
    min_overlap_items: int = 10,
    min_reliability: float = 0.5,
    **ds_params: float,
) -> ConsensusResult:
    """Consensus labels, per-item confidence and agreement, per-annotator reliability.

    Parameters
    ----------
    items, annotators, labels : (M,) int arrays
        One entry per annotation. Labels equal to ``-1`` (``NOT_IN_LABEL_SET``: an out-of-distribution
        item) are ignored: they cost an annotation but carry no class.
    n_items, num_classes : int
    method : {"majority", "ds", "auto"}
        ``"ds"`` always fits Dawid–Skene; ``"auto"`` fits it only where it is identifiable
        (:func:`ds_identifiable` with ``min_items=min_overlap_items``) and otherwise uses the
        majority vote, recording the reason in ``fallback_reason``.
    n_annotators : int, optional
        Number of annotators (default: largest annotator index + 1).
    min_overlap_items : int
        See ``method``.
    min_reliability : float
        With ``"auto"``, a Dawid–Skene fit is also refused (majority used, the reason recorded) when it
        estimates an annotator who answered at least one item to be right less often than this. The
        overlap Dawid–Skene learns from is not a random sample in active learning: relabel requests
        go to the hardest items, where every annotator errs, and a fit on them can invert the
        annotators' order (measured: reliabilities 0.19 / 0.38 / 0.68 for annotators whose true error
        rates were 15% / 30% / 45%, consensus purity falling from 0.57 to 0.36). People hired to label
        are assumed to be right at least half the time.
    **ds_params
        Passed to :func:`dawid_skene` (``shrinkage``, ``accuracy_prior``, ...).

    Returns
    -------
    ConsensusResult
    """
    if method not in CONSENSUS_METHODS:
        raise ValueError(f"`method` must be one of {list(CONSENSUS_METHODS)}; got {method!r}")
    it_all, an_all, lab_all = (np.asarray(a) for a in (items, annotators, labels))
    if lab_all.ndim != 1 or not (it_all.shape == an_all.shape == lab_all.shape):
        raise ValueError(
            "`items`, `annotators` and `labels` must be 1-D arrays of equal length; got shapes "
            f"{it_all.shape}, {an_all.shape}, {lab_all.shape}"
        )
    keep = lab_all != -1
    if n_annotators is None:
        n_annotators = int(an_all.max()) + 1 if an_all.size else 0
    it, an, lab = _check(
        it_all[keep], an_all[keep], lab_all[keep], n_items, num_classes, max(n_annotators, 1)
    )
    used, reason, posteriors = method, None, None
    if method == "auto":
        ok, reason = ds_identifiable(it, an, min_items=min_overlap_items)
        used = "ds" if ok else "majority"
    if used == "ds":
        ds = dawid_skene(
            it, an, lab, n_items=n_items, n_annotators=max(n_annotators, 1),
            num_classes=num_classes, **ds_params,
        )  # fmt: skip
        if method == "auto":
            reason = _implausible_fit(ds, min_reliability)
            used = "ds" if reason is None else "majority"
    if used == "ds":
        consensus, posteriors = ds.labels.copy(), ds.posteriors
        confidence = np.where(ds.labels >= 0, ds.posteriors.max(axis=1), np.nan)
        if method == "auto":
            # Dawid–Skene learns only from items several annotators answered; an item with one
            # answer keeps it (as under majority) instead of being re-guessed from class priors.
            single = np.bincount(it, minlength=n_items) == 1
            consensus[single] = majority_vote(
                it, an, lab, n_items=n_items, num_classes=num_classes
            ).labels[single]
            confidence[single] = 1.0
        agreement, n_ann, _ = _agreement_stats(it, an, lab, consensus, n_annotators)
        reliability = np.where(ds.n_annotations > 0, ds.reliability, np.nan)[:n_annotators]
    else:
        mv = majority_vote(it, an, lab, n_items=n_items, num_classes=num_classes)
        consensus, confidence = mv.labels, mv.confidence
        agreement, n_ann, reliability = _agreement_stats(it, an, lab, consensus, n_annotators)
    return ConsensusResult(
        labels=consensus,
        confidence=confidence,
        agreement=agreement,
        n_annotations=n_ann,
        reliability=reliability,
        method_used=used,
        fallback_reason=reason,
        posteriors=posteriors,
    )


def _implausible_fit(ds: DawidSkeneResult, min_reliability: float) -> str | None:
    """Why a Dawid–Skene fit should not be trusted (None when it looks plausible)."""
    answered = ds.n_annotations > 0
    rel = np.asarray(ds.reliability)[answered]
    if rel.size and rel.min() < min_reliability:
        worst = int(np.flatnonzero(answered)[np.argmin(rel)])
        return (
            f"Dawid–Skene estimated annotator {worst} to be right {rel.min():.2f} of the time "
            f"(< {min_reliability}): an implausible fit, majority vote used instead"
        )
    return None


def consensus_purity(
    consensus: ConsensusResult | np.ndarray, y_true: np.ndarray, mask: np.ndarray | None = None
) -> float:
    """Share of items whose consensus label equals the true label.

    Counted over the items selected by ``mask`` (boolean, or indices; default all) that have a
    consensus label (``>= 0``); an item whose true label is ``-1`` (out of distribution) counts as
    wrong whatever its consensus. NaN when no item qualifies.
    """
    lab = consensus.labels if isinstance(consensus, ConsensusResult) else np.asarray(consensus)
    lab = np.asarray(lab, dtype=np.int64)
    y = np.asarray(y_true, dtype=np.int64)
    if lab.ndim != 1 or y.shape != lab.shape:
        raise ValueError(
            f"`y_true` must be 1-D with one entry per consensus label ({lab.size}); got {y.shape}"
        )
    sel = np.ones(lab.size, dtype=bool) if mask is None else np.zeros(lab.size, dtype=bool)
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype == bool:
            if m.shape != lab.shape:
                raise ValueError(f"boolean `mask` must have {lab.size} entries; got {m.shape}")
            sel = m.copy()
        else:
            sel[as_label_vector(m, "mask", num_classes=lab.size)] = True
    sel &= lab >= 0
    if not sel.any():
        return float("nan")
    return float(np.mean(lab[sel] == y[sel]))
