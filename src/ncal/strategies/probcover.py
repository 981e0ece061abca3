"""ProbCover: greedy maximum coverage of δ-balls, for low budgets (docs/algorithms.md §1.8).

Graph on L ∪ U: ``x → y`` iff ``||x - y|| < δ`` (symmetric, self-loops included; distances are the
exact float64 ``Σ (x - y)²`` of the rows). Points within δ of the labeled set are covered. Each pick
is the pool point whose ball holds the most uncovered points (smallest index on ties); its ball
becomes covered, and the out-degrees of all points adjacent to newly covered ones are decremented.
Once every point is covered the remaining picks are uniform over the unchosen pool (from ``rng``),
as in the paper (the code would re-pick 0).

δ is ``delta`` when given; otherwise the largest radius whose *purity* is at least ``purity``
(default α = 0.95): with k-means (K = C, seed from ``rng``) cluster labels, a ball is pure when it
holds no point of another cluster, i.e. when δ <= r(x), the distance from x to the nearest point of
another cluster. The purity of δ is the fraction of points with r(x) >= δ, so δ is the ⌈αN⌉-th
largest r(x).

Approximations (the defaults; each has an exact setting):

* ``purity_sample`` (default 2,000): δ is the ⌈αm⌉-th largest r(x) over m ball centres drawn from
  ``rng`` without replacement, so the purity of the chosen δ is α up to sampling error (standard
  deviation ``sqrt(α(1-α)/m)``, 0.005 at m = 2,000). Cost O(mNd) instead of O(N²d). ``None``
  (or m >= N): the exact order statistic over all points.
* ``cross_edges=False`` (default): when δ comes from the purity, the graph keeps only the edges
  within k-means clusters. An edge between clusters joins two impure points (r(x) < δ), at most a
  fraction 1 - α of the points by the choice of δ, so at most their balls change; finding those
  edges exactly needs the O(N²d) pass over all pairs of different clusters. ``True``: that pass
  runs (its bounds mark the points that may have such neighbours) and the graph is exact.
* ``kmeans="float32"`` (default): the clustering of :func:`ncal.strategies.typiclust.kmeans_labels`
  in float32 without scikit-learn; ``"sklearn"``: scikit-learn's ``KMeans`` (the clusters differ,
  so δ may differ).

``ProbCover(kmeans="sklearn", purity_sample=None, cross_edges=True)`` is the exact algorithm as
implemented before these approximations (same δ, same picks).

Measured on the synthetic benchmark features (d = 512, C = 10, 1,000 labeled, k = 1,000, seed 0):
at N = 21k the float32 k-means with the exact δ and graph gave δ = 21.458; dropping the
cross-cluster edges kept 964 of its 1,000 picks and the coverage of its graph reached by the picks
(0.780 against 0.781); the sampled δ was 21.620 (+0.75%, 44% more edges), sharing 625 picks, with
coverage 0.757 of that graph. At N = 51k (k-means recovered the 10 classes, the balls nearly fill
their clusters) the sampled δ was 24.110 against 24.152 and both cover every point after 6-8
greedy picks (the rest are the uniform fill).

Cost: distances run as float32 matrix products in blocks with exact float64 rechecks within a
proven error bound of every threshold (``_graph``); each within-cluster pair is decided once and
kept in a bit matrix per cluster (``n_q² / 8`` bytes; neighbour lists above 16,384 points and for
the cross-cluster edges, 4 bytes per edge), never as an N × N matrix of distances. At N = 51k,
d = 512, C = 10 the defaults cost one pass over 2,000 sampled rows and one over the within-cluster
pairs (each counted once): about 0.05·N²·d + 2,000·N·d multiply-adds, against 0.5·N²·d for the
exact settings.

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
from .typiclust import check_kmeans, kmeans_labels

if TYPE_CHECKING:
    from ._graph import BallGraph


class ProbCover(Strategy):
    """ProbCover with a blocked sparse δ-ball graph and incremental degree updates.

    Parameters
    ----------
    delta : float or None
        Ball radius (Euclidean, on the features as given). None: chosen by ``purity``.
    purity : float
        Target purity α in (0, 1] used when ``delta`` is None.
    max_edges : int
        Refuse to build a graph with more edges than this (counted as it is built; neighbour
        lists take 4 bytes per edge, bit matrices ``n_q² / 8`` bytes per cluster).
    device : str
        Where the distance blocks are computed.
    purity_sample : int or None
        Ball centres sampled to estimate the purity radius; None: all points (exact).
    cross_edges : bool
        Whether the graph built for a purity radius includes the edges between k-means clusters
        (exact, one O(N²d) pass); False keeps the within-cluster edges only.
    kmeans : {"float32", "sklearn"}
        The k-means implementation (see :func:`ncal.strategies.typiclust.kmeans_labels`).
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
        purity_sample: int | None = 2000,
        cross_edges: bool = False,
        kmeans: str = "float32",
    ) -> None:
        self.delta = check_float(delta, "delta", low=0.0, low_open=True, allow_none=True)
        self.purity = check_float(purity, "purity", low=0.0, high=1.0, low_open=True)
        self.max_edges = check_int(max_edges, "max_edges")
        self.device = check_device(device)
        self.purity_sample = check_int(purity_sample, "purity_sample", allow_none=True)
        if not isinstance(cross_edges, (bool, np.bool_)):
            raise TypeError(f"`cross_edges` must be a bool; got {type(cross_edges).__name__}")
        self.cross_edges = bool(cross_edges)
        self.kmeans = check_kmeans(kmeans)

    def required_signals(self) -> tuple[str, ...]:
        extra = ("num_classes",) if self.delta is None else ()
        return (*self.needs, *extra)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        fp, fl = check_feature_pair(signals)
        n, n_lab = fp.shape[0], fl.shape[0]
        x = np.concatenate([fl, fp])
        from .._utils.torch import resolve_device
        from ._graph import BallGraph, BallSpace, purity_sqradius, sampled_purity_sqradius

        dev = resolve_device(self.device)
        delta, space, open_set = self.delta, None, None
        if delta is None:
            n_all = x.shape[0]
            c = min(int(signals.num_classes), n_all)
            labels = kmeans_labels(x, c, int(rng.integers(2**31 - 1)), self.kmeans)
            space = BallSpace(x, labels, dev)
            m = n_all if self.purity_sample is None else min(self.purity_sample, n_all)
            if m < n_all:
                rank = np.empty(n_all, dtype=np.int64)
                rank[space.order] = np.arange(n_all)
                centres = rng.choice(n_all, size=m, replace=False)
                r2 = sampled_purity_sqradius(space, self.purity, rank[centres])
                lower = space.other_group_sqdist_bounds()[0] if self.cross_edges else None
            else:
                r2, lower = purity_sqradius(space, self.purity)
            delta = float(np.sqrt(r2)) if np.isfinite(r2) else np.inf
            if self.cross_edges:  # points that may have a neighbour in another cluster
                open_set = lower < delta * delta
        if not np.isfinite(delta):
            raise ValueError(
                "could not choose δ: every point is in one k-means cluster; pass `delta`"
            )
        if space is None:
            space = BallSpace(x, None, dev)
        graph = BallGraph(space, delta * delta, open_set, self.max_edges)
        picks, gains, covered = greedy_cover(graph, space.order, n_lab, k)
        info = {"delta": float(delta), "edges": int(graph.degree.sum()), "random_fill": 0}
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


def greedy_cover(
    graph: BallGraph, order: np.ndarray, n_lab: int, k: int
) -> tuple[list[int], list[int], np.ndarray]:
    """Greedy max coverage on the δ-ball graph of L ∪ U (labeled points first; ``order``: the
    original index of each sorted position of ``graph``): up to ``k`` pool picks (indices into the
    pool), their gains, and the covered mask over L ∪ U (original order)."""
    n_all = graph.n
    rank = np.empty(n_all, dtype=np.int64)
    rank[order] = np.arange(n_all)
    degree = graph.degree.copy()  # uncovered points in each ball, sorted positions
    covered = np.zeros(n_all, dtype=bool)

    def cover(centers: np.ndarray) -> None:
        new = np.flatnonzero(graph.union(centers) & ~covered)
        covered[new] = True
        # every y newly covered leaves the ball of each of its neighbours (symmetric graph)
        if len(new):
            degree[:] -= graph.counts(new)

    if n_lab:
        cover(rank[:n_lab])
    pool = rank[n_lab:]
    chosen = np.zeros(n_all - n_lab, dtype=bool)
    picks: list[int] = []
    gains: list[int] = []
    while len(picks) < k:
        deg = degree[pool]
        j = int(np.argmax(np.where(chosen, -1, deg)))
        if deg[j] <= 0:
            break
        picks.append(j)
        gains.append(int(deg[j]))
        chosen[j] = True
        cover(pool[j : j + 1])
    return picks, gains, covered[rank]
