"""ProbCover: greedy maximum coverage of δ-balls, for low budgets (docs/algorithms.md §1.8).

Graph on L ∪ U: ``x → y`` iff ``||x - y|| < δ`` (symmetric, self-loops included; distances are the
exact float64 ``Σ (x - y)²`` of the rows). Points within δ of the labeled set are covered. Each pick
is the pool point whose ball holds the most uncovered points (smallest index on ties); its ball
becomes covered, and the out-degrees of all points adjacent to newly covered ones are decremented
(incremental: each point's ball is visited once, when it becomes covered). Once every point is
covered the remaining picks are uniform over the unchosen pool (from ``rng``), as in the paper (the
code would re-pick 0).

δ is ``delta`` when given; otherwise the largest radius whose *purity* is at least ``purity``
(default α = 0.95): with k-means (K = C, ``random_state`` from ``rng``) cluster labels, a ball is
pure when it holds no point of another cluster, i.e. when δ <= r(x), the distance from x to the
nearest point of another cluster. The purity of δ is the fraction of points with r(x) >= δ, so δ is
the ⌈αN⌉-th largest r(x).

Cost: the graph is never stored (memory O(N)); distances run as float32 matrix products in blocks
with exact float64 rechecks within a proven error bound of every threshold (``_graph``). With
clusters, an edge between two clusters joins two impure points, so only the within-cluster pairs
and the pairs of (possibly) impure points are scanned for the graph; the purity radius costs one
pass over the pairs of distinct clusters.

References
----------
Yehuda, Dekel, Hacohen & Weinshall, "Active learning through a covering lens", NeurIPS 2022
(reference code: avihu111/TypiClust ``deep-al/pycls/al/prob_cover.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._checks import check_device, check_float, check_int
from .base import Selection, Signals, Strategy
from .coreset import check_feature_pair
from .typiclust import kmeans_labels

if TYPE_CHECKING:
    from ._graph import BallSpace


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
        self.delta = check_float(delta, "delta", low=0.0, low_open=True, allow_none=True)
        self.purity = check_float(purity, "purity", low=0.0, high=1.0, low_open=True)
        self.max_edges = check_int(max_edges, "max_edges")
        self.device = check_device(device)

    def required_signals(self) -> tuple[str, ...]:
        extra = ("num_classes",) if self.delta is None else ()
        return (*self.needs, *extra)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        fp, fl = check_feature_pair(signals)
        n, n_lab = fp.shape[0], fl.shape[0]
        x = np.concatenate([fl, fp])
        from .._utils.torch import resolve_device
        from ._graph import BallSpace, purity_sqradius  # torch, only when selecting

        dev = resolve_device(self.device)
        delta, space, open_set = self.delta, None, None
        if delta is None:
            c = min(int(signals.num_classes), x.shape[0])
            labels = kmeans_labels(x, c, int(rng.integers(2**31 - 1)))
            space = BallSpace(x, labels, dev)
            r2, lower = purity_sqradius(space, self.purity)
            delta = float(np.sqrt(r2)) if np.isfinite(r2) else np.inf
        if not np.isfinite(delta):
            raise ValueError(
                "could not choose δ: every point is in one k-means cluster; pass `delta`"
            )
        radius_sq = delta * delta
        if space is None:
            space = BallSpace(x, None, dev)
        else:  # points that may have a neighbour in another cluster (see module doc)
            open_set = lower < radius_sq
        degree, edges = self._degrees(space, radius_sq, open_set)
        picks, gains, covered = greedy_cover(space, radius_sq, open_set, degree, n_lab, k)
        info = {"delta": float(delta), "edges": edges, "random_fill": 0}
        info["coverage"] = float(covered.mean())
        if len(picks) < k:
            chosen = np.zeros(n, dtype=bool)
            chosen[picks] = True
            fill = rng.choice(np.flatnonzero(~chosen), size=k - len(picks), replace=False)
            info["random_fill"] = len(fill)
            picks.extend(int(f) for f in fill)
            gains.extend([0] * len(fill))
        return Selection(
            np.asarray(picks, dtype=np.int64), np.asarray(gains, dtype=np.float64), info
        )

    def _degrees(
        self, space: BallSpace, radius_sq: float, open_set: np.ndarray | None
    ) -> tuple[np.ndarray, int]:
        """Ball sizes of every point (original order) and the edge count, within ``max_edges``."""
        degree = np.empty(space.n, dtype=np.int64)
        degree[space.order] = space.ball_counts(np.arange(space.n), radius_sq, open_set)
        edges = int(degree.sum())
        if edges > self.max_edges:
            raise ValueError(
                f"the δ-ball graph has {edges} > `max_edges`={self.max_edges} edges; "
                "use a smaller `delta` (or a smaller `purity` target) or raise `max_edges`"
            )
        return degree, edges


def greedy_cover(
    space: BallSpace,
    radius_sq: float,
    open_set: np.ndarray | None,
    degree: np.ndarray,
    n_lab: int,
    k: int,
) -> tuple[list[int], list[int], np.ndarray]:
    """Greedy max coverage: up to ``k`` pool picks (indices into the pool), their gains, and the
    covered mask over L ∪ U (original order). ``degree`` (ball sizes) is updated in place."""
    n_all = space.n
    rank = np.empty(n_all, dtype=np.int64)
    rank[space.order] = np.arange(n_all)
    covered = np.zeros(n_all, dtype=bool)

    def ball_counts(points: np.ndarray) -> np.ndarray:  # original order in, original order out
        out = np.empty(n_all, dtype=np.int64)
        out[space.order] = space.ball_counts(rank[points], radius_sq, open_set)
        return out

    def cover(centers: np.ndarray) -> None:
        new = np.flatnonzero((ball_counts(centers) > 0) & ~covered)
        covered[new] = True
        # every y newly covered leaves the ball of each of its neighbours (symmetric graph)
        degree[:] -= ball_counts(new)

    if n_lab:
        cover(np.arange(n_lab))
    chosen = np.zeros(n_all - n_lab, dtype=bool)
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
    return picks, gains, covered
