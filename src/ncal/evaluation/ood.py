"""Out-of-distribution detection: scores (higher = more in-distribution) and their metrics.

Spec: docs/algorithms.md §4.1. Every score is oriented so that **higher means more in-distribution
(ID)**; every metric treats **ID as the positive class** (the Hendrycks / ODIN / Sun et al.
convention, not OpenOOD v1.5's OOD-positive one).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp
from scipy.stats import rankdata

from .._utils.validation import as_float_matrix, as_label_vector, as_score_vector, check_choice

SHRINKAGES = ("auto", "ledoit_wolf", "pinv", "none")
KNN_BACKENDS = ("auto", "faiss", "numpy")
SCORE_NAMES = ("msp", "energy", "mahalanobis", "knn")
KNN_REFERENCE_BANK = 50_000  # bank size for which k=50 was tuned (knn-ood, CIFAR)
_BLOCK_ELEMENTS = 1 << 22  # entries of one query-block × bank distance matrix (32 MiB in float64)


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------
def msp_score(logits: np.ndarray) -> np.ndarray:
    """Maximum softmax probability, ``max_c softmax(z)_c`` (higher = ID).

    Parameters
    ----------
    logits : (N, C) array

    Returns
    -------
    (N,) float64 array in ``[1/C, 1]``.

    References
    ----------
    Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and Out-of-Distribution
    Examples", ICLR 2017; OpenOOD ``base_postprocessor.py``.
    """
    z = as_float_matrix(logits, "logits")
    # max softmax = exp(max z - logsumexp z): stable for large logits
    return np.exp(z.max(axis=1) - logsumexp(z, axis=1))


def energy_score(logits: np.ndarray, T: float = 1.0) -> np.ndarray:
    """Negative free energy, ``T · logsumexp(z / T)`` (higher = ID).

    Parameters
    ----------
    logits : (N, C) array
    T : float
        Temperature (> 0); the reference uses 1.

    Returns
    -------
    (N,) float64 array.

    References
    ----------
    Liu et al., "Energy-based Out-of-distribution Detection", NeurIPS 2020;
    OpenOOD ``ebo_postprocessor.py``.
    """
    z = as_float_matrix(logits, "logits")
    if not (np.isfinite(T) and T > 0):
        raise ValueError(f"`T` must be a finite positive temperature; got {T!r}")
    return T * logsumexp(z / T, axis=1)


def _whitener(cov: np.ndarray, mode: str) -> np.ndarray:
    """Matrix ``A`` (d, r) with ``A Aᵀ = Σ⁻¹`` (``pinv``: Moore–Penrose pseudo-inverse)."""
    evals, evecs = np.linalg.eigh(cov)
    top = max(float(evals.max()), 0.0)
    # same relative cutoff as scipy.linalg.pinvh (used by sklearn's EmpiricalCovariance)
    cutoff = top * cov.shape[0] * np.finfo(np.float64).eps
    keep = evals > cutoff
    if mode == "none" and not keep.all():
        raise ValueError(
            "the tied covariance of `train_features` is singular (rank "
            f"{int(keep.sum())} < dim {cov.shape[0]}); use shrinkage='ledoit_wolf' or 'pinv'"
        )
    return evecs[:, keep] / np.sqrt(evals[keep])


def mahalanobis_score(
    features: np.ndarray,
    train_features: np.ndarray,
    train_labels: np.ndarray,
    *,
    shrinkage: str = "auto",
    block_size: int = 4096,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Class-conditional Gaussian score with tied covariance, ``max_c −(h−μ_c)ᵀ Σ⁻¹ (h−μ_c)``.

    ``μ_c`` are the class means of ``train_features`` (classes absent from ``train_labels`` are
    skipped) and ``Σ = (1/N) Σ_c Σ_{i∈c} (h_i − μ_c)(h_i − μ_c)ᵀ`` the tied within-class
    covariance.

    Parameters
    ----------
    features : (N, d) query features (penultimate layer, eval mode).
    train_features : (N_L, d) labeled training features.
    train_labels : (N_L,) their (given) labels.
    shrinkage : {"auto", "ledoit_wolf", "pinv", "none"}
        ``ledoit_wolf``: Ledoit–Wolf shrunk covariance of the class-centred features (always
        invertible). ``pinv``: empirical covariance and its pseudo-inverse (what OpenOOD's
        ``EmpiricalCovariance`` does). ``none``: empirical covariance, plain inverse; raises if
        it is singular. ``auto`` (default) uses ``ledoit_wolf`` when the labeled set is small —
        ``N_L − C_eff < 2d`` within-class degrees of freedom, where the empirical covariance is
        singular or badly conditioned — and ``pinv`` otherwise.
    block_size : int
        Queries per block (memory ``O(block_size · C)``).
    return_info : bool
        Also return a dict saying which covariance estimate was used.

    Returns
    -------
    scores : (N,) float64, higher = ID.
    info : dict (only with ``return_info``): ``shrinkage`` (the estimate used), ``shrinkage_coef``
        (Ledoit–Wolf intensity, 0 otherwise), ``rank`` of the precision, ``n_train``, ``dim``,
        ``num_classes``.

    References
    ----------
    Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution Samples and
    Adversarial Attacks", NeurIPS 2018; OpenOOD ``mds_postprocessor.py``; Ledoit & Wolf, "A
    well-conditioned estimator for large-dimensional covariance matrices", JMVA 2004.
    """
    check_choice(shrinkage, "shrinkage", SHRINKAGES)
    x = as_float_matrix(features, "features")
    h = as_float_matrix(train_features, "train_features")
    y = as_label_vector(train_labels, "train_labels", length=h.shape[0])
    if x.shape[1] != h.shape[1]:
        raise ValueError(
            f"`features` has {x.shape[1]} columns but `train_features` has {h.shape[1]}"
        )
    if block_size < 1:
        raise ValueError(f"`block_size` must be >= 1; got {block_size}")
    classes, inverse = np.unique(y, return_inverse=True)
    n, d = h.shape
    counts = np.bincount(inverse, minlength=classes.size).astype(np.float64)
    means = np.zeros((classes.size, d))
    np.add.at(means, inverse, h)
    means /= counts[:, None]
    centred = h - means[inverse]

    used = shrinkage
    if used == "auto":
        used = "ledoit_wolf" if n - classes.size < 2 * d else "pinv"
    coef = 0.0
    if used == "ledoit_wolf":
        from sklearn.covariance import ledoit_wolf

        # the class-centred data have zero mean by construction
        cov, coef = ledoit_wolf(centred, assume_centered=True)
    else:
        cov = centred.T @ centred / n
    A = _whitener(cov, "none" if used == "none" else "pinv")

    # ‖Aᵀ(x − μ_c)‖² = ‖Aᵀx‖² − 2 (Aᵀx)·(Aᵀμ_c) + ‖Aᵀμ_c‖², one GEMM per block
    wm = means @ A
    wm_sq = np.einsum("ij,ij->i", wm, wm)
    scores = np.empty(x.shape[0])
    for start in range(0, x.shape[0], block_size):
        wx = x[start : start + block_size] @ A
        d2 = np.einsum("ij,ij->i", wx, wx)[:, None] - 2.0 * wx @ wm.T + wm_sq[None, :]
        scores[start : start + block_size] = -np.maximum(d2, 0.0).min(axis=1)
    if not return_info:
        return scores
    info = {
        "shrinkage": used,
        "shrinkage_coef": float(coef),
        "rank": int(A.shape[1]),
        "n_train": int(n),
        "dim": int(d),
        "num_classes": int(classes.size),
    }
    return scores, info


def knn_k_eff(k: int, bank_size: int, *, k_scaling: bool = True) -> int:
    """Effective neighbour rank ``max(1, round(k · N_bank / 50000))`` (scaling), capped at N_bank.

    The scaling is a heuristic of this library (docs/algorithms.md §4.1): ``k = 50`` was tuned
    for a ~50k CIFAR bank, while an active-learning bank is the (much smaller) labeled set.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be a positive integer; got {k!r}")
    if bank_size < 1:
        raise ValueError("the kNN bank must hold at least one sample")
    k_eff = max(1, round(k * bank_size / KNN_REFERENCE_BANK)) if k_scaling else int(k)
    return int(min(k_eff, bank_size))


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    # knn-ood normaliser: h / (‖h‖ + 1e-10)
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-10)


def _kth_sqdist_numpy(q: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    bank_sq = np.einsum("ij,ij->i", bank, bank)
    rows = max(1, _BLOCK_ELEMENTS // bank.shape[0])
    out = np.empty(q.shape[0])
    for start in range(0, q.shape[0], rows):
        qb = q[start : start + rows]
        d2 = np.einsum("ij,ij->i", qb, qb)[:, None] - 2.0 * qb @ bank.T + bank_sq[None, :]
        out[start : start + rows] = np.partition(d2, k - 1, axis=1)[:, k - 1]
    return np.maximum(out, 0.0)


def _kth_sqdist_faiss(q: np.ndarray, bank: np.ndarray, k: int) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatL2(bank.shape[1])
    index.add(np.ascontiguousarray(bank, dtype=np.float32))
    out = np.empty(q.shape[0])
    rows = 8192
    for start in range(0, q.shape[0], rows):
        dist, _ = index.search(np.ascontiguousarray(q[start : start + rows], dtype=np.float32), k)
        out[start : start + rows] = dist[:, k - 1]  # squared L2, ascending
    return np.maximum(out, 0.0)


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def knn_score(
    features: np.ndarray,
    bank_features: np.ndarray,
    *,
    k: int = 50,
    k_scaling: bool = True,
    backend: str = "auto",
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, dict[str, Any]]:
    """Deep nearest-neighbour score ``−‖h̄(x) − h̄_(k)‖₂`` on L2-normalised features (higher = ID).

    ``h̄_(k)`` is the ``k_eff``-th nearest neighbour of the normalised query in the normalised bank
    (exact search). A query that is itself in the bank finds itself at distance 0, so pass a bank
    disjoint from the queries (e.g. labeled training features vs. test features).

    Parameters
    ----------
    features : (N, d) query features.
    bank_features : (N_B, d) bank (the labeled training features).
    k : int
        Neighbour rank for a ~50k bank (knn-ood uses 50 on CIFAR, 1000 on ImageNet).
    k_scaling : bool
        Use ``k_eff = max(1, round(k · N_B / 50000))`` (a heuristic of this library, see
        :func:`knn_k_eff`); otherwise ``k_eff = k``. Always capped at ``N_B``.
    backend : {"auto", "faiss", "numpy"}
        ``faiss`` (``IndexFlatL2``, float32) when installed under ``auto``, else a blocked exact
        float64 numpy search.
    return_info : bool
        Also return ``{"k": k, "k_eff": k_eff, "bank_size": N_B, "backend": ...}``.

    Returns
    -------
    scores : (N,) float64, in ``[-2, 0]``.

    References
    ----------
    Sun et al., "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022
    (knn-ood ``run_cifar.py``); OpenOOD ``knn_postprocessor.py``. FAISS returns squared distances;
    the references score ``−D²``, which is monotone in ours, so every metric is identical.
    """
    check_choice(backend, "backend", KNN_BACKENDS)
    x = as_float_matrix(features, "features")
    bank = as_float_matrix(bank_features, "bank_features")
    if x.shape[1] != bank.shape[1]:
        raise ValueError(
            f"`features` has {x.shape[1]} columns but `bank_features` has {bank.shape[1]}"
        )
    k_eff = knn_k_eff(k, bank.shape[0], k_scaling=k_scaling)
    used = backend
    if used == "auto":
        used = "faiss" if _faiss_available() else "numpy"
    q, b = _l2_normalise(x), _l2_normalise(bank)
    search = _kth_sqdist_faiss if used == "faiss" else _kth_sqdist_numpy
    scores = -np.sqrt(search(q, b, k_eff))
    if not return_info:
        return scores
    info = {"k": int(k), "k_eff": k_eff, "bank_size": int(bank.shape[0]), "backend": used}
    return scores, info


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
def _average_precision(pos: np.ndarray, neg: np.ndarray) -> float:
    """Average precision ``Σ_n (R_n − R_{n−1}) P_n`` over distinct thresholds (ties grouped)."""
    s = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(pos.size), np.zeros(neg.size)])
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tps = np.cumsum(y)
    fps = np.cumsum(1.0 - y)
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each tie group
    tps, fps = tps[last], fps[last]
    precision = tps / (tps + fps)
    recall = tps / pos.size
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def ood_metrics(s_in: np.ndarray, s_out: np.ndarray) -> dict[str, Any]:
    """AUROC, FPR@95%TPR, AUPR-In and AUPR-Out with **ID as the positive class**.

    Parameters
    ----------
    s_in : (n_in,) scores of ID samples (higher = ID).
    s_out : (n_out,) scores of OOD samples.

    Returns
    -------
    dict with (fractions in [0, 1]; multiply by 100 for tables)

    - ``auroc``: ``P(S_in > S_out) + ½ P(S_in = S_out)`` (Mann–Whitney with mid-rank ties); equal
      to AUROC with OOD positive on ``−S``.
    - ``fpr95``: the classic FPR at 95% TPR: with ``λ`` the largest threshold for which at least
      95% of ID scores satisfy ``S ≥ λ``, the fraction of OOD scores with ``S ≥ λ``. Identical to
      ``fpr[argmax(tpr >= 0.95)]`` of ``sklearn.metrics.roc_curve(y_id, S,
      drop_intermediate=False)``. (OpenOOD v1.5 reports a different number: ID samples flagged
      at 95% OOD recall.)
    - ``aupr_in`` / ``aupr_out``: average precision with ID / OOD (on ``−S``) as positive, as
      ``sklearn.metrics.average_precision_score``.
    - ``convention``: ``"ID positive"``; ``n_in``, ``n_out``.

    References
    ----------
    Hendrycks & Gimpel, ICLR 2017; Liang et al. (ODIN), ICLR 2018; docs/algorithms.md §4.1.
    """
    a = as_score_vector(s_in, "s_in")
    b = as_score_vector(s_out, "s_out")
    if a.size == 0 or b.size == 0:
        raise ValueError("`s_in` and `s_out` must each hold at least one score")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("`s_in` and `s_out` must be finite")
    n_in, n_out = a.size, b.size
    ranks = rankdata(np.concatenate([a, b]))  # average ranks = mid-rank ties
    auroc = (ranks[:n_in].sum() - n_in * (n_in + 1) / 2.0) / (n_in * n_out)

    # TPR computed with the same float division as sklearn so the 95% boundary agrees exactly
    a_desc = np.sort(a)[::-1]
    m = int(np.argmax(np.arange(1, n_in + 1) / n_in >= 0.95))
    lam = a_desc[m]
    fpr95 = float(np.mean(b >= lam))
    return {
        "auroc": float(auroc),
        "fpr95": fpr95,
        "aupr_in": _average_precision(a, b),
        "aupr_out": _average_precision(-b, -a),
        "convention": "ID positive",
        "n_in": int(n_in),
        "n_out": int(n_out),
    }


def evaluate_ood(
    logits_in: np.ndarray | None,
    feats_in: np.ndarray | None,
    logits_out: np.ndarray | None,
    feats_out: np.ndarray | None,
    train_feats: np.ndarray | None,
    train_labels: np.ndarray | None,
    *,
    scores: tuple[str, ...] = SCORE_NAMES,
    T: float = 1.0,
    k: int = 50,
    k_scaling: bool = True,
    shrinkage: str = "auto",
    knn_backend: str = "auto",
) -> dict[str, dict[str, Any]]:
    """Every requested OOD score on one ID/OOD pair, each with :func:`ood_metrics`.

    Scores whose inputs are ``None`` are skipped (e.g. no features → only MSP and energy).

    Parameters
    ----------
    logits_in, feats_in : ID test logits (N_in, C) and penultimate features (N_in, d).
    logits_out, feats_out : the same for one OOD test set.
    train_feats, train_labels : labeled training features and given labels (Mahalanobis fit and
        kNN bank).
    scores : subset of ``("msp", "energy", "mahalanobis", "knn")``.
    T, k, k_scaling, shrinkage, knn_backend : passed to the score functions.

    Returns
    -------
    ``{score_name: metrics}``; Mahalanobis metrics also carry ``shrinkage`` /
    ``shrinkage_coef`` and kNN metrics ``k`` / ``k_eff`` / ``bank_size`` / ``backend``.
    """
    for name in scores:
        check_choice(name, "scores", SCORE_NAMES)
    have_logits = logits_in is not None and logits_out is not None
    have_feats = feats_in is not None and feats_out is not None
    have_train = train_feats is not None
    result: dict[str, dict[str, Any]] = {}
    if "msp" in scores and have_logits:
        result["msp"] = ood_metrics(msp_score(logits_in), msp_score(logits_out))
    if "energy" in scores and have_logits:
        result["energy"] = ood_metrics(energy_score(logits_in, T), energy_score(logits_out, T))
    if "mahalanobis" in scores and have_feats and have_train and train_labels is not None:
        both = np.concatenate(
            [as_float_matrix(feats_in, "feats_in"), as_float_matrix(feats_out, "feats_out")]
        )
        s, info = mahalanobis_score(
            both, train_feats, train_labels, shrinkage=shrinkage, return_info=True
        )
        n_in = np.shape(feats_in)[0]
        result["mahalanobis"] = {**ood_metrics(s[:n_in], s[n_in:]), **info}
    if "knn" in scores and have_feats and have_train:
        both = np.concatenate(
            [as_float_matrix(feats_in, "feats_in"), as_float_matrix(feats_out, "feats_out")]
        )
        s, info = knn_score(
            both, train_feats, k=k, k_scaling=k_scaling, backend=knn_backend, return_info=True
        )
        n_in = np.shape(feats_in)[0]
        result["knn"] = {**ood_metrics(s[:n_in], s[n_in:]), **info}
    return result
