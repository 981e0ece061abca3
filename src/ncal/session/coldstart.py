"""Cold-start selection (no model yet): seeded random or greedy k-center on the pool's features."""

from __future__ import annotations

import numpy as np

from .._utils.validation import as_float_matrix, check_k

COLD_START = ("random", "kcenter")


def _sq_dist_to(features: np.ndarray, center: np.ndarray, block_size: int) -> np.ndarray:
    out = np.empty(features.shape[0])
    c = np.asarray(center, dtype=np.float64)
    cc = float(c @ c)
    for s in range(0, features.shape[0], block_size):
        fb = np.asarray(features[s : s + block_size], dtype=np.float64)
        out[s : s + block_size] = np.maximum((fb**2).sum(1) + cc - 2.0 * fb @ c, 0.0)
    return out


def kcenter_greedy(
    features: np.ndarray,
    k: int,
    *,
    labeled: np.ndarray | None = None,
    block_size: int = 8192,
) -> np.ndarray:
    """Greedy k-center (Gonzalez 1985; Sener & Savarese 2018): pick the point farthest from all
    centers.

    Centers start at the ``labeled`` features when given; otherwise the first pick is the pool point
    nearest to the pool mean (deterministic, no random first pick). Distances are kept as one (N,)
    vector of squared distances to the nearest center and updated per pick, in row blocks: O(N·d)
    per pick, never N×N. Ties go to the lower index.

    Returns
    -------
    (min(k, N),) int64 indices into ``features`` in pick order.
    """
    f = as_float_matrix(features, "features", allow_empty=True)
    k = min(check_k(k), f.shape[0])
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    min_d = np.full(f.shape[0], np.inf)
    if labeled is not None and len(labeled):
        lab = as_float_matrix(labeled, "labeled")
        for c in lab:
            np.minimum(min_d, _sq_dist_to(f, c, block_size), out=min_d)
        picks: list[int] = []
    else:
        first = int(np.argmin(_sq_dist_to(f, f.mean(axis=0), block_size)))
        picks = [first]
        min_d = _sq_dist_to(f, f[first], block_size)
    chosen = np.zeros(f.shape[0], dtype=bool)
    chosen[picks] = True
    while len(picks) < k:
        nxt = int(np.argmax(np.where(chosen, -1.0, min_d)))
        picks.append(nxt)
        chosen[nxt] = True
        np.minimum(min_d, _sq_dist_to(f, f[nxt], block_size), out=min_d)
    return np.asarray(picks, dtype=np.int64)
