"""Generalized Category Discovery evaluation: semi-supervised k-means + Hungarian accuracy.

Spec: docs/algorithms.md §4.3, following Vaze et al. (GCD, CVPR 2022)
``faster_mix_k_means_pytorch.py`` (``fit_mix``, ``kpp``) and ``cluster_and_log_utils.py`` (``split_cluster_acc_v1/v2``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from .._utils.random import as_generator
from .._utils.validation import as_float_matrix, as_label_vector

_BLOCK_ELEMENTS = 1 << 22


def split_known_novel(
    num_classes: int, known_fraction: float = 0.6, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split class ids into Old (known) and New (novel) classes.

    Parameters
    ----------
    num_classes : int (>= 2)
    known_fraction : float in (0, 1)
        Share of Old classes; ``round(known_fraction · C)`` clipped to ``1..C−1``.
    seed : int or None
        ``None``: the first classes in natural order are Old (GCD's convention); an int draws the
        Old classes at random with ``numpy.random.default_rng(seed)``.

    Returns
    -------
    (old_classes, new_classes): sorted int64 arrays.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"`num_classes` must be an integer; got {num_classes!r}")
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2; got {num_classes}")
    if not 0.0 < known_fraction < 1.0:
        raise ValueError(f"`known_fraction` must be in (0, 1); got {known_fraction}")
    n_old = int(min(max(round(known_fraction * num_classes), 1), num_classes - 1))
    if seed is None:
        old = np.arange(n_old)
    else:
        old = np.sort(np.random.default_rng(seed).choice(num_classes, size=n_old, replace=False))
    new = np.setdiff1d(np.arange(num_classes), old)
    return old.astype(np.int64), new.astype(np.int64)


def remap_old_first(labels: np.ndarray, old_classes: np.ndarray) -> np.ndarray:
    """Relabel so that Old classes become ``0..|Old|−1`` (in sorted order) and New ones follow."""
    y = as_label_vector(labels, "labels")
    old = np.unique(as_label_vector(old_classes, "old_classes"))
    rest = np.setdiff1d(np.unique(y), old)
    order = np.concatenate([old, rest])
    table = np.full(int(max(order.max(), y.max() if y.size else 0)) + 1, -1, dtype=np.int64)
    table[order] = np.arange(order.size)
    return table[y]


# --------------------------------------------------------------------------------------------
# Accuracy
# --------------------------------------------------------------------------------------------
def _contingency(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    D = int(max(y_pred.max(), y_true.max())) + 1
    w = np.zeros((D, D), dtype=np.int64)
    np.add.at(w, (y_pred, y_true), 1)
    return w


def _hungarian(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # same call as the GCD reference (cost = max − count) so tied matchings resolve identically
    return linear_sum_assignment(w.max() - w)


def _check_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    yt = as_label_vector(y_true, "y_true")
    yp = as_label_vector(y_pred, "y_pred", length=yt.shape[0])
    if yt.size == 0:
        raise ValueError("`y_true` must hold at least one label")
    return yt, yp


def cluster_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Best-matching clustering accuracy (one Hungarian matching of clusters to classes)."""
    yt, yp = _check_pair(y_true, y_pred)
    w = _contingency(yt, yp)
    r, c = _hungarian(w)
    return float(w[r, c].sum() / yt.size)


def cluster_accuracy_v2(
    y_true: np.ndarray, y_pred: np.ndarray, old_classes: np.ndarray
) -> dict[str, float | None]:
    """GCD accuracy v2: one Hungarian matching over all samples and all classes.

    With ``w[i, j]`` = #samples in cluster ``i`` of class ``j`` (``D × D``, ``D = max id + 1``) and
    ``π`` the maximum-weight matching: All = matched count / N; Old (New) = matched count of the
    Old (New) classes present in ``y_true`` / number of their samples. Unmatched clusters count as
    errors.

    Parameters
    ----------
    y_true : (N,) true class ids of the unlabeled set.
    y_pred : (N,) cluster ids.
    old_classes : class ids that are Old (known); every other class is New.

    Returns
    -------
    dict ``all``, ``old``, ``new`` (``None`` when the subset is empty), ``n_old``, ``n_new``.

    References
    ----------
    Vaze et al., "Generalized Category Discovery", CVPR 2022, ``split_cluster_acc_v2``.
    """
    yt, yp = _check_pair(y_true, y_pred)
    old = np.unique(as_label_vector(old_classes, "old_classes"))
    w = _contingency(yt, yp)
    rows, cols = _hungarian(w)
    matched = np.zeros(w.shape[1], dtype=np.int64)  # matched count per true class
    matched[cols] = w[rows, cols]
    is_old = np.isin(yt, old)
    present = np.unique(yt)
    old_present = present[np.isin(present, old)]
    new_present = present[~np.isin(present, old)]
    n_old, n_new = int(is_old.sum()), int((~is_old).sum())
    return {
        "all": float(matched.sum() / yt.size),
        "old": float(matched[old_present].sum() / n_old) if n_old else None,
        "new": float(matched[new_present].sum() / n_new) if n_new else None,
        "n_old": n_old,
        "n_new": n_new,
    }


def cluster_accuracy_v1(
    y_true: np.ndarray, y_pred: np.ndarray, old_classes: np.ndarray
) -> dict[str, float | None]:
    """GCD accuracy **v1 (legacy, optimistic)**: separate Hungarian matchings on Old and New.

    All = ω·Old + (1−ω)·New with ω the Old share. A cluster can be matched twice (once per subset),
    hence optimistic; report v2 (:func:`cluster_accuracy_v2`) as the main number.

    References
    ----------
    Vaze et al., CVPR 2022, ``split_cluster_acc_v1``.
    """
    yt, yp = _check_pair(y_true, y_pred)
    old = np.unique(as_label_vector(old_classes, "old_classes"))
    mask = np.isin(yt, old)
    acc_old = cluster_accuracy(yt[mask], yp[mask]) if mask.any() else None
    acc_new = cluster_accuracy(yt[~mask], yp[~mask]) if (~mask).any() else None
    weight = float(mask.mean())
    total = weight * (acc_old or 0.0) + (1.0 - weight) * (acc_new or 0.0)
    return {"all": float(total), "old": acc_old, "new": acc_new}


# --------------------------------------------------------------------------------------------
# Semi-supervised k-means
# --------------------------------------------------------------------------------------------
def _sq_dist_min(x: np.ndarray, centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(min squared distance, argmin) of every row of ``x`` to ``centres``, blocked over rows."""
    c_sq = np.einsum("ij,ij->i", centres, centres)
    x_sq = np.einsum("ij,ij->i", x, x)
    rows = max(1, _BLOCK_ELEMENTS // max(1, centres.shape[0]))
    dmin = np.empty(x.shape[0])
    arg = np.empty(x.shape[0], dtype=np.int64)
    for s in range(0, x.shape[0], rows):
        d2 = x_sq[s : s + rows, None] - 2.0 * x[s : s + rows] @ centres.T + c_sq[None, :]
        arg[s : s + rows] = np.argmin(d2, axis=1)  # ties to the lower cluster index
        dmin[s : s + rows] = np.maximum(d2[np.arange(d2.shape[0]), arg[s : s + rows]], 0.0)
    return dmin, arg


def _kmeans_pp(
    x: np.ndarray, pre_centres: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """k-means++ seeding (D² sampling) on ``x``, continuing from ``pre_centres`` (GCD ``kpp``)."""
    centres = [c for c in pre_centres]
    if not centres:
        centres.append(x[rng.integers(x.shape[0])])
    dmin, _ = _sq_dist_min(x, np.asarray(centres))
    while len(centres) < k:
        total = dmin.sum()
        if total <= 0:  # every point already coincides with a centre
            idx = int(rng.integers(x.shape[0]))
        else:
            cum = np.cumsum(dmin / total)
            idx = int(min(np.searchsorted(cum, rng.random()), x.shape[0] - 1))
        centres.append(x[idx])
        dmin = np.minimum(dmin, np.maximum(((x - x[idx]) ** 2).sum(axis=1), 0.0))
    return np.asarray(centres)


def semi_supervised_kmeans(
    labeled_feats: np.ndarray,
    labeled_labels: np.ndarray,
    unlabeled_feats: np.ndarray,
    num_clusters: int,
    *,
    seed: int | np.random.Generator = 0,
    n_init: int = 10,
    max_iter: int = 100,
    tol: float = 1e-4,
    normalize: bool = True,
) -> dict[str, Any]:
    """Semi-supervised k-means (GCD ``fit_mix``): labeled points stay in their class cluster.

    Labeled class ``j``-th smallest id owns cluster ``j``; its centre starts at the labeled class
    mean, the remaining ``K − L`` centres come from k-means++ on the unlabeled features. Each
    iteration assigns unlabeled points to the nearest centre, keeps labeled points in their class
    cluster, and recomputes every centre as the mean of all its points (an empty cluster keeps its
    centre). Stops when ``(Σ_c ‖Δ centre_c‖)² < tol`` or after ``max_iter``; the lowest-inertia
    iteration of the lowest-inertia restart (``n_init``) is returned.

    Parameters
    ----------
    labeled_feats, labeled_labels : (N_L, d), (N_L,) anchors and their (possibly noisy) labels.
    unlabeled_feats : (N_U, d)
    num_clusters : int, K >= number of labeled classes.
    seed : int or Generator; n_init, max_iter, tol : see above (GCD used ``max_iter=10``,
        ``n_init=10``).
    normalize : bool
        L2-normalise all features first (spec).

    Returns
    -------
    dict: ``unlabeled_pred`` (N_U,) cluster ids, ``centres`` (K, d), ``inertia``,
    ``labeled_classes`` (class id of clusters ``0..L−1``), ``n_iter`` of the chosen restart.

    References
    ----------
    Vaze et al., "Generalized Category Discovery", CVPR 2022; Arthur & Vassilvitskii,
    "k-means++", SODA 2007.
    """
    xl = as_float_matrix(labeled_feats, "labeled_feats", allow_empty=True)
    yl = as_label_vector(labeled_labels, "labeled_labels", length=xl.shape[0])
    xu = as_float_matrix(unlabeled_feats, "unlabeled_feats")
    if xl.shape[0] and xl.shape[1] != xu.shape[1]:
        raise ValueError(
            f"`labeled_feats` has {xl.shape[1]} columns but `unlabeled_feats` has {xu.shape[1]}"
        )
    if normalize:
        xl = xl / (np.linalg.norm(xl, axis=1, keepdims=True) + 1e-12)
        xu = xu / (np.linalg.norm(xu, axis=1, keepdims=True) + 1e-12)
    classes, yl_c = np.unique(yl, return_inverse=True)
    L = classes.size
    if not isinstance(num_clusters, (int, np.integer)) or num_clusters < max(L, 1):
        raise ValueError(
            f"`num_clusters` must be an integer >= the {L} labeled classes; got {num_clusters!r}"
        )
    if num_clusters - L > xu.shape[0]:
        raise ValueError("fewer unlabeled points than centres to seed")
    if n_init < 1 or max_iter < 1:
        raise ValueError("`n_init` and `max_iter` must be >= 1")
    K = int(num_clusters)
    rng = as_generator(seed)

    d = xu.shape[1]
    l_sums = np.zeros((K, d))
    np.add.at(l_sums, yl_c, xl)
    l_counts = np.bincount(yl_c, minlength=K).astype(np.float64)
    l_centres = l_sums[:L] / np.maximum(l_counts[:L, None], 1.0)

    best: dict[str, Any] | None = None
    for _ in range(n_init):
        centres = _kmeans_pp(xu, l_centres, K, rng)
        run_best: tuple[float, np.ndarray, np.ndarray] | None = None
        n_iter = 0
        for it in range(max_iter):
            n_iter = it + 1
            u_d, u_pred = _sq_dist_min(xu, centres)
            l_d = ((xl - centres[yl_c]) ** 2).sum(axis=1)
            inertia = float(u_d.sum() + l_d.sum())
            if run_best is None or inertia < run_best[0]:
                run_best = (inertia, u_pred, centres.copy())
            sums = l_sums.copy()
            np.add.at(sums, u_pred, xu)
            counts = l_counts + np.bincount(u_pred, minlength=K)
            new = centres.copy()
            nz = counts > 0  # an empty cluster keeps its centre
            new[nz] = sums[nz] / counts[nz, None]
            shift = float(np.sqrt(((new - centres) ** 2).sum(axis=1)).sum())
            centres = new
            if shift**2 < tol:
                break
        assert run_best is not None
        if best is None or run_best[0] < best["inertia"]:
            best = {
                "inertia": run_best[0],
                "unlabeled_pred": run_best[1],
                "centres": run_best[2],
                "n_iter": n_iter,
            }
    assert best is not None
    best["labeled_classes"] = classes
    return best


def evaluate_gcd(
    labeled_feats: np.ndarray,
    labeled_labels: np.ndarray,
    unlabeled_feats: np.ndarray,
    unlabeled_true: np.ndarray,
    old_classes: np.ndarray,
    num_clusters: int,
    seed: int = 0,
    *,
    n_init: int = 10,
    max_iter: int = 100,
    include_v1: bool = False,
) -> dict[str, Any]:
    """Transductive GCD evaluation: SS-k-means on the unlabeled set, accuracy v2 (v1 optional).

    Parameters
    ----------
    labeled_feats, labeled_labels : the labeled anchors; labels must all be Old classes
        (under label noise these are the given, possibly wrong, labels).
    unlabeled_feats, unlabeled_true : the unlabeled set (rest of Old + all New) and its true ids.
    old_classes : the Old class ids.
    num_clusters : K (usually |Old| + |New|).
    seed, n_init, max_iter : see :func:`semi_supervised_kmeans`.
    include_v1 : also report the legacy v1 numbers as ``v1_all`` / ``v1_old`` / ``v1_new``.

    Returns
    -------
    dict: ``all``, ``old``, ``new`` (v2), ``n_old``, ``n_new``, ``inertia``, ``num_clusters``,
    ``n_labeled`` (+ ``v1_*``).
    """
    yl = as_label_vector(labeled_labels, "labeled_labels")
    old = np.unique(as_label_vector(old_classes, "old_classes"))
    stray = np.setdiff1d(np.unique(yl), old)
    if stray.size:
        raise ValueError(
            f"`labeled_labels` holds classes {stray.tolist()[:5]} that are not in `old_classes`; "
            "restrict the labeled anchors to Old classes first"
        )
    yu = as_label_vector(unlabeled_true, "unlabeled_true")
    fit = semi_supervised_kmeans(
        labeled_feats,
        yl,
        unlabeled_feats,
        num_clusters,
        seed=seed,
        n_init=n_init,
        max_iter=max_iter,
    )
    if fit["unlabeled_pred"].shape[0] != yu.shape[0]:
        raise ValueError("`unlabeled_true` must have one label per row of `unlabeled_feats`")
    out: dict[str, Any] = dict(cluster_accuracy_v2(yu, fit["unlabeled_pred"], old))
    out.update(
        inertia=float(fit["inertia"]),
        num_clusters=int(num_clusters),
        n_labeled=int(yl.shape[0]),
    )
    if include_v1:
        v1 = cluster_accuracy_v1(yu, fit["unlabeled_pred"], old)
        out.update(v1_all=v1["all"], v1_old=v1["old"], v1_new=v1["new"])
    return out
