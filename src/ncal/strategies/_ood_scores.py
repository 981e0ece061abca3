"""P(in-distribution) of pool items from the model's own geometry, without OOD labels.

Three "ID-ness" scores (higher = more like the labeled, in-distribution data):

* ``energy``: ``logsumexp`` of the logits, i.e. minus the free energy (Liu et al., *Energy-based
  Out-of-distribution Detection*, NeurIPS 2020, arXiv:2010.03759);
* ``class_mean``: minus the distance to the nearest class mean of the labeled features;
* ``knn``: minus the distance to the ``n_neighbors``-th nearest labeled item (Sun et al., *Out-of-
  Distribution Detection with Deep Nearest Neighbors*, ICML 2022, arXiv:2204.06507).

Features are L2-normalised first (as Sun et al. find necessary). The chosen scores are combined by
z- (default) or rank-averaging and a two-component Gaussian mixture on the combined score gives P(ID): the
component with the larger mean ID-ness is the ID one. When the mixture finds no second population
(components overlapping, or one of negligible weight) a RuntimeWarning gives the numbers and every
item gets P(ID) = 1, so that a clean pool is never thinned by a spurious split.

Cost: ``energy`` and ``class_mean`` are O(N·C·d); ``knn`` is a blocked GEMM, O(N·N_L·d) time and
O(block·N_L) memory (never N x N).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._utils.numeric import by_row_blocks
from .._utils.validation import as_label_vector, check_choice

ID_SCORES = ("energy", "class_mean", "knn")
COMBINE = ("rank", "z")
# A mixture whose components are closer than this many pooled standard deviations (Ashman's D;
# D > 2 is needed for a clean split: Ashman, Bird & Zepf, Astron. J. 108, 1994), or whose smaller
# component holds less than this share of the pool, is treated as one population. Two Gaussians
# fitted to one normal sample lie about 1.6 apart.
MIN_SEPARATION = 2.0
MIN_WEIGHT = 0.005
MAX_FIT = 10_000


def _matrix(x: Any, name: str, dtype: Any = np.float32) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array (rows, columns); got shape {arr.shape}")
    return arr.astype(dtype, copy=False)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norm = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64)).astype(x.dtype)
    return x / np.maximum(norm, np.finfo(x.dtype).tiny)[:, None]


def energy_idness(logits: np.ndarray, block: int = 65536) -> np.ndarray:
    """``logsumexp`` of each row of ``logits`` in float64 (minus the free energy; higher = ID)."""
    z = _matrix(logits, "logits_pool")

    def logsumexp(chunk: np.ndarray) -> np.ndarray:
        chunk = chunk.astype(np.float64)
        top = chunk.max(axis=1)
        return top + np.log(np.exp(chunk - top[:, None]).sum(axis=1))

    return by_row_blocks(logsumexp, z, np.empty(z.shape[0], dtype=np.float64), block)


def class_mean_idness(
    features_pool: np.ndarray,
    features_labeled: np.ndarray,
    labels_labeled: np.ndarray,
    block: int = 512,
) -> np.ndarray:
    """Minus the distance of each normalised pool feature to the nearest labeled class mean."""
    fp = _matrix(features_pool, "features_pool")
    fl = _unit_rows(_matrix(features_labeled, "features_labeled"))
    y = as_label_vector(labels_labeled, "labels_labeled", length=fl.shape[0])
    means = np.stack([fl[y == c].mean(axis=0) for c in np.unique(y)]).astype(fp.dtype)
    means_t = np.ascontiguousarray(means.T)
    mm = np.einsum("ij,ij->i", means, means)
    tiny = np.finfo(np.float32).tiny
    out = np.empty(fp.shape[0])
    # |x/|x| - m|^2 = 1 - 2 (x.m)/|x| + |m|^2: the pool is never copied to normalise it. Blocks
    # small enough to stay in cache between the norm and the product (the pool is read once).
    # float32 throughout: a distance of 0.1 comes out within ~1e-6, far below what the z-scored
    # mixture can resolve.
    for start in range(0, fp.shape[0], block):
        b = fp[start : start + block]
        inv_norm = 1.0 / np.maximum(np.sqrt(np.einsum("ij,ij->i", b, b)), tiny)
        dots = b @ means_t
        dots *= -2.0 * inv_norm[:, None]
        dots += mm[None, :]
        sq = dots.min(axis=1) + 1.0
        out[start : start + block] = -np.sqrt(np.maximum(sq, 0.0))
    return out


def nearest_labeled(
    features_pool: np.ndarray, features_labeled: np.ndarray, n_neighbors: int, block: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities and rows of the ``n_neighbors`` most similar labeled items.

    Returns
    -------
    sims : (N, K) float32, sorted from most to least similar (K = min(n_neighbors, N_L)).
    rows : (N, K) int64 rows of ``features_labeled``.
    """
    fp = _unit_rows(_matrix(features_pool, "features_pool"))
    fl = _unit_rows(_matrix(features_labeled, "features_labeled"))
    if fl.shape[0] == 0:
        raise ValueError("`features_labeled` must have at least one row for nearest neighbours")
    kk = min(int(n_neighbors), fl.shape[0])
    sims = np.empty((fp.shape[0], kk), dtype=np.float32)
    rows = np.empty((fp.shape[0], kk), dtype=np.int64)
    for start in range(0, fp.shape[0], block):
        s = fp[start : start + block] @ fl.T  # (block, N_L): never N x N
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        ps = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-ps, axis=1, kind="stable")
        sims[start : start + block] = np.take_along_axis(ps, order, axis=1)
        rows[start : start + block] = np.take_along_axis(part, order, axis=1)
    return sims, rows


def knn_idness(
    features_pool: np.ndarray, features_labeled: np.ndarray, n_neighbors: int = 10
) -> np.ndarray:
    """Minus the distance of each normalised pool feature to its ``n_neighbors``-th labeled one."""
    sims, _ = nearest_labeled(features_pool, features_labeled, n_neighbors)
    return -np.sqrt(np.maximum(2.0 - 2.0 * sims[:, -1].astype(np.float64), 0.0))


def combine_idness(scores: Sequence[np.ndarray], method: str = "z") -> np.ndarray:
    """Average of several ID-ness scores after putting them on one scale.

    ``z``: each score's pool z-score (keeps how far the outliers lie, so a separate OOD population
    stays a separate mode for the mixture); ``rank``: each score's average rank divided by N
    (robust to heavy tails, but ranks are uniform, so the mixture sees a gap between ID and OOD
    only where the averaged scores disagree: it orders well, its P(ID) is less sharp).
    """
    from scipy.stats import rankdata

    from .selection import zscore

    check_choice(method, "combine", COMBINE)
    if not scores:
        raise ValueError("`scores` must hold at least one ID-ness score")
    if method == "rank":
        scaled = [rankdata(s, method="average") / len(s) for s in scores]
    else:
        scaled = [zscore(s) for s in scores]
    return np.mean(scaled, axis=0)


@dataclass(frozen=True)
class IdEstimate:
    """P(in-distribution) of every pool item and how it was obtained.

    Attributes
    ----------
    p_id : (N,) probability of the ID mixture component (all 1 when the mixture is degenerate).
    idness : (N,) the combined ID-ness score the mixture was fitted on.
    info : the mixture's means, standard deviations, weights, separation and ``degenerate`` flag.
    """

    p_id: np.ndarray
    idness: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def gmm_id_probability(
    idness: np.ndarray, random_state: int = 0, min_separation: float = MIN_SEPARATION
) -> IdEstimate:
    """Fit a seeded two-component 1-D Gaussian mixture to ``idness``; P(ID) is the posterior of
    the component with the larger mean. Warns and returns P(ID) = 1 when it is degenerate: its
    components closer than ``min_separation`` pooled standard deviations (0 when OOD items are
    known to be present, so any split is taken), or one of them below ``MIN_WEIGHT``."""
    from sklearn.mixture import GaussianMixture

    x = np.asarray(idness, dtype=np.float64)
    if x.ndim != 1 or not np.isfinite(x).all():
        raise ValueError("`idness` must be a finite 1-D array")
    if x.size < 2 or np.ptp(x) == 0.0:
        return _degenerate(x, {"n": int(x.size)}, "the ID-ness score is constant")
    gmm = GaussianMixture(2, covariance_type="full", random_state=random_state, reg_covar=1e-6)
    # A 1-D, two-component fit is settled by a few thousand points: fit on an evenly strided
    # subsample of at most MAX_FIT points (deterministic), score every item. (Fewer points are not
    # a safe speed-up: fitted on 2,000 of 3,750 items, the split went wrong on one seed of ten.)
    gmm.fit(x[:: -(-x.size // MAX_FIT), None])
    means = gmm.means_.ravel()
    variances = gmm.covariances_.ravel()
    stds = np.sqrt(variances)
    weights = gmm.weights_.ravel()
    id_comp = int(np.argmax(means))
    separation = float(abs(means[0] - means[1]) / np.sqrt(np.mean(stds**2)))
    info = {
        "means": means.tolist(),
        "stds": stds.tolist(),
        "weights": weights.tolist(),
        "separation": separation,
        "id_component": id_comp,
    }
    if separation < min_separation or weights.min() < MIN_WEIGHT:
        return _degenerate(
            x,
            info,
            f"the two components are {separation:.2f} pooled stds apart (need >= "
            f"{min_separation}) with weights {weights[0]:.3f}/{weights[1]:.3f} (need >= "
            f"{MIN_WEIGHT})",
        )
    return IdEstimate(
        _posterior(x, means, variances, weights, id_comp), x, {**info, "degenerate": False}
    )


def _posterior(
    x: np.ndarray, means: np.ndarray, variances: np.ndarray, weights: np.ndarray, comp: int
) -> np.ndarray:
    """Posterior of component ``comp`` of a two-component 1-D Gaussian mixture, from the log-odds
    of the other one in closed form (what ``GaussianMixture.predict_proba`` returns, to round-off,
    in a few passes instead of its generic log-sum-exp)."""
    from scipy.special import expit

    o = 1 - comp
    log_odds = (
        np.log(weights[o] / weights[comp])
        - 0.5 * np.log(variances[o] / variances[comp])
        - 0.5 * ((x - means[o]) ** 2 / variances[o] - (x - means[comp]) ** 2 / variances[comp])
    )
    return expit(-log_odds)


def _degenerate(x: np.ndarray, info: dict[str, Any], why: str) -> IdEstimate:
    warnings.warn(
        f"P(in-distribution) mixture is degenerate: {why}; every item gets P(ID) = 1 (no gate)",
        RuntimeWarning,
        stacklevel=3,
    )
    return IdEstimate(np.ones_like(x), x, {**info, "degenerate": True})


def id_probability(
    features_pool: np.ndarray,
    features_labeled: np.ndarray,
    labels_labeled: np.ndarray,
    logits_pool: np.ndarray | None = None,
    *,
    scores: Sequence[str] = ("energy", "class_mean", "knn"),
    combine: str = "z",
    n_neighbors: int = 10,
    random_state: int = 0,
    energy: np.ndarray | None = None,
    min_separation: float = MIN_SEPARATION,
) -> IdEstimate:
    """P(in-distribution) of every pool item from the chosen ID-ness ``scores``.

    Parameters
    ----------
    features_pool, features_labeled : (N, d), (N_L, d) penultimate features of one model.
    labels_labeled : (N_L,) labels of the labeled set (for the class means).
    logits_pool : (N, C) logits; required when ``scores`` holds ``energy``.
    scores : subset of ``("energy", "class_mean", "knn")``.
    combine : ``"rank"`` or ``"z"`` averaging (:func:`combine_idness`).
    n_neighbors : which nearest labeled neighbour ``knn`` measures the distance to.
    random_state : seed of the Gaussian mixture.
    energy : (N,) the ``energy`` score (``logsumexp`` of ``logits_pool``) if already computed.
    min_separation : the mixture's degeneracy threshold (:func:`gmm_id_probability`).

    Returns
    -------
    IdEstimate
    """
    chosen = check_id_scores(scores, "scores")
    parts = []
    for name in chosen:
        if name == "energy":
            if energy is not None:
                parts.append(np.asarray(energy, dtype=np.float64))
                continue
            if logits_pool is None:
                raise ValueError(
                    "the `energy` ID score needs `logits_pool` (probabilities lose it)"
                )
            parts.append(energy_idness(logits_pool))
        elif name == "class_mean":
            parts.append(class_mean_idness(features_pool, features_labeled, labels_labeled))
        else:
            parts.append(knn_idness(features_pool, features_labeled, n_neighbors))
    est = gmm_id_probability(
        combine_idness(parts, combine), random_state=random_state, min_separation=min_separation
    )
    return IdEstimate(est.p_id, est.idness, {**est.info, "scores": list(chosen)})


def check_id_scores(scores: Any, name: str = "ood_scores") -> tuple[str, ...]:
    """``scores`` as a non-empty tuple of distinct names from :data:`ID_SCORES`, or raise."""
    if isinstance(scores, str) or not isinstance(scores, (list, tuple)):
        raise TypeError(f"`{name}` must be a list or tuple of names; got {scores!r}")
    chosen = tuple(scores)
    bad = [s for s in chosen if s not in ID_SCORES]
    if not chosen or bad or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"`{name}` must be distinct names from {list(ID_SCORES)}; got {list(chosen)}"
        )
    return chosen
