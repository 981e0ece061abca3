"""Neural-collapse metrics NC1-NC4 (+ CDNV) and inter-class distances (docs/algorithms.md §3, §4.5).

All metrics are derived from one :class:`~ncal.geometry.stats.ClassStats`; classes absent from the
data are dropped everywhere (``C`` below is the number of present classes), including the rows of
``W``/``b``. Results are plain Python floats (JSON-serialisable); NaN where a metric is undefined
(no ``W``, fewer than two present classes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import pdist

from .._utils.validation import as_float_matrix, as_label_vector, check_choice
from .stats import MU_G, ClassStats, check_num_classes

NAN = float("nan")

NC_KEYS = (
    "n_samples",
    "num_classes_present",
    "n_c_min",
    "n_c_median",
    "nc1",
    "nc1_quotient",
    "nc2_equinorm_M",
    "nc2_equinorm_W",
    "nc2_equiangular_M",
    "nc2_equiangular_W",
    "nc2_maxangle_M",
    "nc2_maxangle_W",
    "etf_M",
    "etf_W",
    "nc3",
    "nc3_structure",
    "nc3_cos_mean",
    "nc4_mismatch",
    "cdnv_mean",
)


def _etf_gram(C: int) -> np.ndarray:
    """Normalised simplex-ETF Gram ``(I - 11^T/C)/sqrt(C-1)`` (unit Frobenius norm)."""
    return (np.eye(C) - np.full((C, C), 1.0 / C)) / np.sqrt(C - 1)


def etf_deviation(A: np.ndarray) -> float:
    """``|| A A^T / ||A A^T||_F - E ||_F`` in [0, 2] for a (C, d) matrix ``A`` (§3.3)."""
    gram = A @ A.T
    f = np.linalg.norm(gram)
    if f == 0:
        return NAN
    return float(np.linalg.norm(gram / f - _etf_gram(A.shape[0])))


def _cov(norms: np.ndarray) -> float:
    """Coefficient of variation with ddof=1 (the reference code's ``torch.std``)."""
    mean = norms.mean()
    return float(norms.std(ddof=1) / mean) if mean > 0 and norms.size > 1 else NAN


def _angles(A: np.ndarray) -> tuple[float, float]:
    """Equiangularity of rows of ``A``: std of off-diagonal cosines (ddof=1), max-angle score."""
    C = A.shape[0]
    norms = np.linalg.norm(A, axis=1)
    if np.any(norms == 0):
        return NAN, NAN
    Ab = A / norms[:, None]
    cos = Ab @ Ab.T
    off = ~np.eye(C, dtype=bool)
    vals = cos[off]
    std = float(vals.std(ddof=1)) if vals.size > 1 else NAN
    coherence = float(np.abs(vals + 1.0 / (C - 1)).sum() / (C * (C - 1)))
    return std, coherence


def _nc1(stats: ClassStats, x: np.ndarray, Mt: np.ndarray) -> tuple[float, float]:
    """NC1 = tr(Sigma_W Sigma_B^+)/C by a thin SVD of M~/sqrt(C) (no d x d matrix); tr-quotient."""
    C = stats.num_present
    U, s, _ = np.linalg.svd(Mt.T / np.sqrt(C), full_matrices=False)  # (d, C) = U S V^T
    keep = np.flatnonzero(s > 1e-10 * s.max())[: C - 1] if s.size and s.max() > 0 else []
    resid = x - stats.means[stats.row_of[stats.labels]]
    if len(keep) == 0:
        return NAN, NAN
    proj = (resid @ U[:, keep]) / s[keep][None, :]
    tr_ratio = float(np.einsum("ij,ij->", proj, proj)) / stats.n_samples
    tr_w = float(stats.within_ss.sum()) / stats.n_samples
    tr_b = float(np.einsum("ij,ij->", Mt, Mt)) / C
    return tr_ratio / C, (tr_w / tr_b if tr_b > 0 else NAN)


def nc_metrics(
    features: Any,
    labels: Any,
    W: Any = None,
    b: Any = None,
    *,
    num_classes: int | None = None,
    mu_G: str = "class_avg",
) -> dict[str, float]:
    """Neural-collapse metrics of a labeled feature set (Papyan, Han & Donoho 2020).

    Parameters
    ----------
    features : (N, d) array
        Penultimate features (eval mode).
    labels : (N,) int array
        Labels used for the class statistics (state whether given or clean when reporting).
    W : (C, d) array, optional
        Last-layer weights; W-dependent metrics are NaN without it.
    b : (C,) array, optional
        Last-layer bias (zeros when omitted).
    num_classes : int, optional
        ``C``; defaults to ``W.shape[0]`` or ``labels.max() + 1``.
    mu_G : {"class_avg", "sample_avg"}
        Global-mean convention for the centred means.

    Returns
    -------
    dict[str, float]
        - ``nc1``: ``tr(Sigma_W Sigma_B^+) / C`` (with the 1/C); ``nc1_quotient``:
          ``tr Sigma_W / tr Sigma_B``;
        - ``nc2_equinorm_M``/``_W``: CoV of the norms (ddof=1); ``nc2_equiangular_M``/``_W``: std of
          off-diagonal cosines (ddof=1); ``nc2_maxangle_M``/``_W``: mean ``|cos + 1/(C-1)|``;
          ``etf_M``/``etf_W``: distance of the normalised Gram to the simplex-ETF Gram;
        - ``nc3``: ``||W^T/||W||_F - M~/||M~||_F||_F^2``; ``nc3_structure``:
          ``||W M~ / ||W M~||_F - E||_F``; ``nc3_cos_mean``: mean ``cos(w_c, m_c)``;
        - ``nc4_mismatch``: classifier vs nearest class mean (ties to the lower class id);
        - ``cdnv_mean``; ``n_samples``, ``num_classes_present``, ``n_c_min``, ``n_c_median``.

    References
    ----------
    Papyan, Han & Donoho, PNAS 2020; Galanti et al., "On the role of neural collapse in transfer
    learning", ICLR 2022 (CDNV); docs/algorithms.md §3.
    """
    check_choice(mu_G, "mu_G", MU_G)
    num_classes = check_num_classes(num_classes)
    x = as_float_matrix(features, "features")
    Wm = bv = None
    if W is not None:
        Wm = as_float_matrix(W, "W")
        if Wm.shape[1] != x.shape[1]:
            raise ValueError(
                f"`W` has {Wm.shape[1]} columns but `features` has {x.shape[1]}; they must match"
            )
        if num_classes is None:
            num_classes = Wm.shape[0]
        elif Wm.shape[0] != num_classes:
            raise ValueError(f"`W` has {Wm.shape[0]} rows but num_classes={num_classes}")
        if b is None:
            bv = np.zeros(Wm.shape[0])
        else:
            bv = np.asarray(b, dtype=np.float64)
            if bv.shape != (Wm.shape[0],):
                raise ValueError(f"`b` must have shape ({Wm.shape[0]},); got {bv.shape}")
            if not np.isfinite(bv).all():
                raise ValueError("`b` contains NaN or inf values")
    elif b is not None:
        raise ValueError("`b` was given without `W`")
    y = as_label_vector(labels, "labels", num_classes=num_classes, length=x.shape[0])
    stats = ClassStats(x, y, num_classes)
    out: dict[str, float] = dict.fromkeys(NC_KEYS, NAN)
    C = stats.num_present
    out["n_samples"] = float(stats.n_samples)
    out["num_classes_present"] = float(C)
    out["n_c_min"] = float(stats.counts.min())
    out["n_c_median"] = float(np.median(stats.counts))
    if C < 2:
        return out
    Mt = stats.centred_means(mu_G)  # (C, d): rows m_c
    out["nc1"], out["nc1_quotient"] = _nc1(stats, x, Mt)
    out["nc2_equinorm_M"] = _cov(np.linalg.norm(Mt, axis=1))
    out["nc2_equiangular_M"], out["nc2_maxangle_M"] = _angles(Mt)
    out["etf_M"] = etf_deviation(Mt)
    sig = stats.sigma2
    d2 = pdist(stats.means, "sqeuclidean")
    iu = np.triu_indices(C, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cdnv_mean"] = float(np.mean((sig[iu[0]] + sig[iu[1]]) / (2.0 * d2)))
    if Wm is not None:
        Wp, bp = Wm[stats.present], bv[stats.present]
        out["nc2_equinorm_W"] = _cov(np.linalg.norm(Wp, axis=1))
        out["nc2_equiangular_W"], out["nc2_maxangle_W"] = _angles(Wp)
        out["etf_W"] = etf_deviation(Wp)
        nw, nm = np.linalg.norm(Wp), np.linalg.norm(Mt)
        if nw > 0 and nm > 0:
            out["nc3"] = float(np.linalg.norm(Wp / nw - Mt / nm) ** 2)
            wm = Wp @ Mt.T
            f = np.linalg.norm(wm)
            out["nc3_structure"] = float(np.linalg.norm(wm / f - _etf_gram(C))) if f > 0 else NAN
            rn = np.linalg.norm(Wp, axis=1) * np.linalg.norm(Mt, axis=1)
            if np.all(rn > 0):
                out["nc3_cos_mean"] = float(np.mean(np.einsum("ij,ij->i", Wp, Mt) / rn))
        out["nc4_mismatch"] = _nc4(x, stats, Wp, bp)
    return out


def _nc4(
    x: np.ndarray, stats: ClassStats, Wp: np.ndarray, bp: np.ndarray, block: int = 8192
) -> float:
    """Fraction of samples where argmax(W h + b) != nearest class mean (present classes only)."""
    mu = stats.means
    mu_sq = np.einsum("ij,ij->i", mu, mu)
    mismatch = 0
    for s in range(0, x.shape[0], block):
        h = x[s : s + block]
        clf = np.argmax(h @ Wp.T + bp[None, :], axis=1)
        # argmin ||h - mu||^2 = argmin (||mu||^2 - 2 h.mu); ties to the lower class id (first index)
        ncc = np.argmin(mu_sq[None, :] - 2.0 * (h @ mu.T), axis=1)
        mismatch += int(np.count_nonzero(clf != ncc))
    return mismatch / x.shape[0]


def inter_class_distances(
    features: Any, labels: Any, *, num_classes: int | None = None
) -> dict[str, float]:
    """Mean pairwise distances between class means (docs/algorithms.md §4.5).

    Parameters
    ----------
    features : (N, d) array
        Penultimate features (e.g. of the test set, with clean labels).
    labels : (N,) int array
        Class labels.
    num_classes : int, optional
        ``C``; absent classes are dropped.

    Returns
    -------
    dict[str, float]
        ``raw``: mean over c<c' of ``||mu_c - mu_c'||`` (unnormalised features); ``normfeat``: the
        same on unit-normalised features; ``normmean``: mean ``sqrt(2 - 2 cos)`` between unit
        centred means (class-averaged global mean); ``separation_ratio``: ``raw`` / mean_c
        ``sigma_c``.
        NaN when fewer than two classes are present.

    References
    ----------
    docs/algorithms.md §4.5 (NCAL's reported inter-class distance is ``raw``).
    """
    num_classes = check_num_classes(num_classes)
    x = as_float_matrix(features, "features")
    y = as_label_vector(labels, "labels", num_classes=num_classes, length=x.shape[0])
    stats = ClassStats(x, y, num_classes)
    out = dict.fromkeys(("raw", "normfeat", "normmean", "separation_ratio"), NAN)
    if stats.num_present < 2:
        return out
    raw = float(pdist(stats.means).mean())
    out["raw"] = raw
    nrm = np.linalg.norm(x, axis=1)
    xn = x / np.where(nrm > 0, nrm, 1.0)[:, None]
    out["normfeat"] = float(pdist(ClassStats(xn, y, num_classes).means).mean())
    m = stats.centred_means("class_avg")
    mn = np.linalg.norm(m, axis=1)
    if np.all(mn > 0):
        out["normmean"] = float(pdist(m / mn[:, None]).mean())
    sigma = np.sqrt(stats.sigma2).mean()
    out["separation_ratio"] = raw / float(sigma) if sigma > 0 else float("inf")
    return out
