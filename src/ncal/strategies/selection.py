"""Selection utilities shared by every strategy: z-scores, the NCAL-R composite and canonical top-k.

Spec: docs/algorithms.md §0.3 (canonical tie rule, NaN policy) and §1.10 (composite score).
"""

from __future__ import annotations

import numpy as np

from .._utils.validation import as_score_vector, check_choice, check_k

DIRECTIONS = ("high", "low", "abs")


def zscore(values: np.ndarray) -> np.ndarray:
    """Pool z-score with the population std; all zeros when the std is 0 (constant signal)."""
    v = as_score_vector(values, "values")
    if v.size == 0:
        return v
    std = v.std()
    if not np.isfinite(std) or std == 0.0:
        return np.zeros_like(v)
    return (v - v.mean()) / std


def orient_cmap(cmap: np.ndarray, direction: str = "high") -> np.ndarray:
    """Apply the CMAP selection direction (docs/algorithms.md §6.7): ``high`` as is, ``low`` negated, ``abs``."""
    check_choice(direction, "direction", DIRECTIONS)
    c = as_score_vector(cmap, "cmap")
    if direction == "low":
        return -c
    if direction == "abs":
        return np.abs(c)
    return c


def ncal_r_scores(
    cmap: np.ndarray,
    ff: np.ndarray,
    *,
    direction: str = "high",
    weights: tuple[float, float] = (0.5, 0.5),
) -> np.ndarray:
    """NCAL-R composite score ``w_cmap * z(cmap') + w_ff * z(ff)`` (default weights 1/2, 1/2).

    Parameters
    ----------
    cmap : (N,) array
        Class-mean alignment perturbation of each pool sample (:func:`ncal.geometry.cmap`).
    ff : (N,) array
        Feature-fluctuation flip counts (:func:`ncal.dynamics.feature_fluctuation`).
    direction : {"high", "low", "abs"}
        How CMAP is oriented before z-scoring (docs/algorithms.md §6.7).
    weights : (float, float)
        Weights of the CMAP and FF z-scores; the paper uses equal weights.

    Returns
    -------
    (N,) float64 array; higher means selected first.

    References
    ----------
    NCAL-R: "Reliable Active Learning from Unreliable Labels via Neural Collapse Geometry",
    NeurIPS 2025 workshop, arXiv:2510.09740.
    """
    c = orient_cmap(cmap, direction)
    f = as_score_vector(ff, "ff", length=c.shape[0])
    if len(weights) != 2 or not all(np.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f"`weights` must be two finite non-negative numbers; got {weights!r}")
    if not np.isfinite(c).all():
        raise ValueError("`cmap` must be finite to be z-scored (use a finite empty-class policy)")
    return weights[0] * zscore(c) + weights[1] * zscore(f)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, ties to the lower index (stable); NaN raises.

    Returns all indices (sorted by score) when ``k`` exceeds the number of scores.
    """
    s = as_score_vector(scores, "scores")
    k = check_k(k)
    n = s.shape[0]
    if k >= n:
        return np.lexsort((np.arange(n), -s)).astype(np.int64)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    # Every item of the top k scores at least the k-th largest value: sort only those (ties at
    # that value included, so the lower-index rule still decides among them).
    kth = np.partition(s, n - k)[n - k]
    cand = np.flatnonzero(s >= kth)
    return cand[np.lexsort((cand, -s[cand]))][:k].astype(np.int64)
