"""ProbCover: greedy maximum coverage of δ-balls, for low budgets (ALGORITHMS.md §1.8).

Graph on L ∪ U: ``x → y`` iff ``||x - y|| < δ`` (symmetric, self-loops included), built in row
blocks and stored sparse (CSR, memory O(E)); never a dense N×N matrix. Points within δ of the
labeled set are covered. Each pick is the pool point whose ball holds the most uncovered points
(smallest index on ties); its ball becomes covered, and the out-degrees of all points adjacent to
newly covered ones are decremented (incremental, O(E) over the whole selection). Once every point is
covered the remaining picks are uniform over the unchosen pool (from ``rng``), as in the paper (the
code would re-pick 0).

δ is ``delta`` when given; otherwise the largest radius whose *purity* is at least ``purity``
(default α = 0.95): with k-means (K = C, ``random_state`` from ``rng``) cluster labels, a ball is
pure when it holds no point of another cluster, i.e. when δ <= r(x), the distance from x to the
nearest point of another cluster. The purity of δ is the fraction of points with r(x) >= δ, so δ is
the ⌈αN⌉-th largest r(x).

References
----------
Yehuda, Dekel, Hacohen & Weinshall, "Active learning through a covering lens", NeurIPS 2022
(reference code: avihu111/TypiClust ``deep-al/pycls/al/prob_cover.py``).
"""

from __future__ import annotations

import numpy as np

from . import _kernels as K
from .base import Selection, Signals, Strategy
from .coreset import check_feature_pair
from .typiclust import kmeans_labels


def purity_radius(x, num_clusters: int, purity: float, seed: int, device) -> float:
    """Largest δ whose δ-balls are pure for a fraction ``purity`` of the points (see module doc)."""
    import torch

    labels = kmeans_labels(x, num_clusters, seed)
    xt = K.as_tensor(x, device)
    r2 = K.to_numpy(K.nearest_other_label_sqdist(xt, torch.as_tensor(labels, device=device)))
    need = int(np.ceil(purity * len(r2)))
    r2 = np.sort(r2)
    r2_at = r2[len(r2) - need] if need > 0 else np.inf
    return float(np.sqrt(r2_at)) if np.isfinite(r2_at) else np.inf


class ProbCover(Strategy):
    """ProbCover with a blocked sparse δ-ball graph and incremental degree updates.

    Parameters
    ----------
    delta : float or None
        Ball radius (Euclidean, on the features as given). None: chosen by ``purity``.
    purity : float
        Target purity α in (0, 1] used when ``delta`` is None.
    max_edges : int
        Refuse to build a graph with more edges than this (memory guard: the graph takes 4 bytes
        per edge, up to about twice that while it is built).
    device : str
        Where the distance blocks are computed.
    """

    name = "probcover"
    needs = ("features_pool", "features_labeled")
    stochastic = True

    def __init__(
        self,
        delta: float | None = None,
        purity: float = 0.95,
        max_edges: int = 200_000_000,
        device: str = "cpu",
    ) -> None:
        self.delta = K.check_float(delta, "delta", low=0.0, low_open=True, allow_none=True)
        self.purity = K.check_float(purity, "purity", low=0.0, high=1.0, low_open=True)
        self.max_edges = K.check_int(max_edges, "max_edges")
        self.device = K.check_device(device)

    def required_signals(self) -> tuple[str, ...]:
        extra = ("num_classes",) if self.delta is None else ()
        return (*self.needs, *extra)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        fp, fl = check_feature_pair(signals)
        n, n_lab = fp.shape[0], fl.shape[0]
        x = np.concatenate([fl, fp])
        dev = K.resolve_device(self.device)
        delta = self.delta
        if delta is None:
            c = int(signals.num_classes)
            delta = purity_radius(
                x, min(c, x.shape[0]), self.purity, int(rng.integers(2**31 - 1)), dev
            )
        if not np.isfinite(delta):
            raise ValueError(
                "could not choose δ: every point is in one k-means cluster; pass `delta`"
            )
        indptr, indices = K.radius_graph(
            K.as_tensor(x, dev), delta * delta, max_edges=self.max_edges
        )

        covered = np.zeros(x.shape[0], dtype=bool)
        degree = np.diff(indptr).astype(np.int64)

        def cover(centers: np.ndarray) -> None:
            ball = np.flatnonzero(K.csr_row_count(indptr, indices, centers, x.shape[0]))
            new = ball[~covered[ball]]
            covered[new] = True
            # every y newly covered leaves the ball of each of its neighbours (symmetric graph)
            degree[:] -= K.csr_row_count(indptr, indices, new, x.shape[0])

        if n_lab:
            cover(np.arange(n_lab))
        chosen = np.zeros(n, dtype=bool)
        picks: list[int] = []
        gains: list[int] = []
        while len(picks) < k:
            deg = degree[n_lab:]
            j = int(np.argmax(np.where(chosen, -1, deg)))
            if deg[j] <= 0:
                break
            picks.append(j)
            gains.append(int(deg[j]))
            chosen[j] = True
            cover(np.array([n_lab + j]))
        info = {"delta": float(delta), "edges": int(indices.shape[0]), "random_fill": 0}
        info["coverage"] = float(covered.mean())
        if len(picks) < k:
            fill = rng.choice(np.flatnonzero(~chosen), size=k - len(picks), replace=False)
            info["random_fill"] = len(fill)
            picks.extend(int(f) for f in fill)
            gains.extend([0] * len(fill))
        return Selection(
            np.asarray(picks, dtype=np.int64), np.asarray(gains, dtype=np.float64), info
        )
