"""TypiClust: typical samples of uncovered clusters, for low budgets (docs/algorithms.md §1.8).

K = min(N_L + k, ``max_clusters``) k-means clusters of L ∪ U (``KMeans`` for K <= 50, else
``MiniBatchKMeans(batch_size=5000)``, ``random_state`` drawn from ``rng``). Clusters with at most
``min_cluster_size`` points are dropped; the rest are ordered by (number of labeled points
ascending, size descending, cluster id) and visited cyclically. In each visited cluster the pick is
the unlabeled, not yet chosen point of largest typicality ``1 / (mean squared distance to its K_nn
nearest neighbours + 1e-5)``, with ``K_nn = min(20, n // 2)`` among the cluster's remaining points
(labeled and chosen points removed, as in the reference). Clusters with no point left are skipped;
if every kept cluster is exhausted the remaining picks are uniform over the rest of the pool (from
``rng``).

References
----------
Hacohen, Dekel & Weinshall, "Active learning on a budget: opposite strategies suit high and low
budgets", ICML 2022 (reference code: avihu111/TypiClust ``deep-al/pycls/al/typiclust.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from . import _kernels as K
from .base import Selection, Signals, Strategy
from .coreset import check_feature_pair

# neighbours kept per member beyond `knn`, so that most lists outlive a few picks in the cluster
CACHE_SLACK = 16


def kmeans_labels(x: np.ndarray, num_clusters: int, seed: int) -> np.ndarray:
    """Cluster labels of the rows of ``x`` (the reference's KMeans / MiniBatchKMeans switch)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if num_clusters <= 50:
        km = KMeans(n_clusters=num_clusters, random_state=seed, n_init="auto")
    else:
        km = MiniBatchKMeans(
            n_clusters=num_clusters, batch_size=5000, random_state=seed, n_init="auto"
        )
    return km.fit_predict(x).astype(np.int64)


class NeighbourCache:
    """Sorted nearest-neighbour lists of one cluster's members, reused across visits.

    TypiClust visits a cluster again after each of its points is picked; the typicality of the
    remaining points needs the ``nn`` smallest distances to the *remaining* points. The first visit
    keeps, for every member, its ``length`` nearest members (float64 squared distances, ascending);
    later visits read the first ``nn`` remaining entries of each list and recompute only the rows
    whose list ran short. The values are the same matrix entries the full computation yields, so
    the typicalities (and picks) are unchanged while a visit costs O(n·length) instead of O(n²d).
    """

    def __init__(self, x: torch.Tensor, length: int) -> None:
        self.x = K.to64(x)
        self.norms = K.sqnorms(self.x)
        n = self.x.shape[0]
        self.length = min(length, n - 1)
        self.vals, self.nbrs = self._nearest(np.arange(n), np.ones(n, dtype=bool))

    def _nearest(self, rows: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(len(rows), length) ascending distances to, and local indices of, the nearest alive
        members of each row (itself excluded)."""
        cols = np.flatnonzero(alive)
        length = min(self.length, len(cols) - 1)
        vals = np.empty((len(rows), length))
        nbrs = np.empty((len(rows), length), dtype=np.int64)
        step = K.rows_per_block(len(cols))
        ct = torch.as_tensor(cols, device=self.x.device)
        for s in range(0, len(rows), step):
            r = torch.as_tensor(rows[s : s + step], device=self.x.device)
            d = K.pairwise_sqdist(self.x[r], self.x[ct], self.norms[r], self.norms[ct])
            d[r[:, None] == ct[None, :]] = torch.inf  # a point is not its own neighbour
            top = torch.topk(d, length, dim=1, largest=False)
            vals[s : s + step] = K.to_numpy(top.values)
            nbrs[s : s + step] = cols[K.to_numpy(top.indices)]
        return vals, nbrs

    def _usable(self, rows: np.ndarray, alive: np.ndarray) -> np.ndarray:
        """Which list entries of ``rows`` are alive neighbours (refreshed lists are inf-padded)."""
        return alive[self.nbrs[rows]] & np.isfinite(self.vals[rows])

    def mean_sqdist(self, alive: np.ndarray, nn: int) -> np.ndarray:
        """Mean squared distance of every alive member to its ``nn`` nearest alive members."""
        rows = np.flatnonzero(alive)
        ok = self._usable(rows, alive)
        kept = np.cumsum(ok, axis=1)
        short = kept[:, -1] < nn
        if short.any():  # too many neighbours gone: refresh those lists against the survivors
            vals, nbrs = self._nearest(rows[short], alive)
            pad = self.vals.shape[1] - vals.shape[1]
            self.vals[rows[short]] = np.pad(vals, ((0, 0), (0, pad)), constant_values=np.inf)
            self.nbrs[rows[short]] = np.pad(nbrs, ((0, 0), (0, pad)), constant_values=rows[0])
            ok = self._usable(rows, alive)
            kept = np.cumsum(ok, axis=1)
        take = ok & (kept <= nn)
        nearest = torch.from_numpy(self.vals[rows][take].reshape(len(rows), nn))
        return K.to_numpy(nearest.mean(1))  # the same reduction as over a fresh top-k


class TypiClust(Strategy):
    """TypiClust on the penultimate features of L ∪ U (fixed self-supervised features in the paper).

    Parameters
    ----------
    max_clusters : int
        Cap on the number of clusters (reference 500).
    min_cluster_size : int
        Clusters with at most this many points are dropped (reference 5).
    knn : int
        Neighbours of the typicality (reference 20; at most half the cluster).
    device : str
        Where the within-cluster distances are computed.
    """

    name = "typiclust"
    needs = ("features_pool", "features_labeled")
    stochastic = True

    def __init__(
        self,
        max_clusters: int = 500,
        min_cluster_size: int = 5,
        knn: int = 20,
        device: str = "cpu",
    ) -> None:
        self.max_clusters = K.check_int(max_clusters, "max_clusters")
        self.min_cluster_size = K.check_int(min_cluster_size, "min_cluster_size", minimum=0)
        self.knn = K.check_int(knn, "knn")
        self.device = K.check_device(device)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        fp, fl = check_feature_pair(signals)
        n_lab = fl.shape[0]
        x = np.concatenate([fl, fp]).astype(np.float32, copy=False)
        n_clusters = min(n_lab + k, self.max_clusters, x.shape[0])
        labels = kmeans_labels(x, n_clusters, int(rng.integers(2**31 - 1)))
        sizes = np.bincount(labels, minlength=n_clusters)
        labeled_counts = np.bincount(labels[:n_lab], minlength=n_clusters)
        keep = np.flatnonzero(sizes > self.min_cluster_size)
        order = keep[np.lexsort((keep, -sizes[keep], labeled_counts[keep]))]

        pool_labels = labels[n_lab:].copy()  # -1 marks chosen points
        members = {int(c): np.flatnonzero(pool_labels == c) for c in order}
        dev = K.resolve_device(self.device)
        caches: dict[int, NeighbourCache] = {}
        picks: list[int] = []
        scores: list[float] = []
        live = [int(c) for c in order]
        pos = 0
        while len(picks) < k and live:
            pos %= len(live)
            c = live[pos]
            idx = members[c]
            alive = pool_labels[idx] == c
            if not alive.any():
                live.pop(pos)  # exhausted: the cycle continues with the next cluster
                continue
            if alive.sum() == 1:
                j, typ = int(np.flatnonzero(alive)[0]), 0.0  # a lone point: typicality undefined
            else:
                nn = min(self.knn, int(alive.sum()) // 2)
                if c not in caches:
                    caches[c] = NeighbourCache(K.as_tensor(fp[idx], dev), self.knn + CACHE_SLACK)
                typ_all = 1.0 / (caches[c].mean_sqdist(alive, nn) + 1e-5)
                best = int(np.argmax(typ_all))
                j, typ = int(np.flatnonzero(alive)[best]), float(typ_all[best])
            picks.append(int(idx[j]))
            scores.append(typ)
            pool_labels[idx[j]] = -1
            pos += 1
        info = {"clusters": int(n_clusters), "kept_clusters": len(order), "random_fill": 0}
        if len(picks) < k:
            rest = np.flatnonzero(pool_labels >= 0)  # chosen points are marked -1
            fill = rng.choice(rest, size=k - len(picks), replace=False)
            info["random_fill"] = len(fill)
            picks.extend(int(f) for f in fill)
            scores.extend([0.0] * len(fill))
        return Selection(np.asarray(picks, dtype=np.int64), np.asarray(scores), info)
