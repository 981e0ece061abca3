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

from ._checks import check_device, check_int
from .base import Selection, Signals, Strategy
from .coreset import check_feature_pair


def kmeans_labels(x: np.ndarray, num_clusters: int, seed: int) -> np.ndarray:
    """Cluster labels of the rows of ``x`` (the reference's KMeans / MiniBatchKMeans switch).

    The k-means++ seeding is :class:`KMeansPlusPlus`, the same computation as scikit-learn's
    built-in one (identical centers and labels) without its per-call float64 copies.
    """
    from sklearn.cluster import KMeans, MiniBatchKMeans

    init = KMeansPlusPlus()
    if num_clusters <= 50:
        km = KMeans(n_clusters=num_clusters, random_state=seed, init=init, n_init=1)
    else:
        km = MiniBatchKMeans(
            n_clusters=num_clusters, batch_size=5000, random_state=seed, init=init, n_init=1
        )
    return km.fit_predict(x).astype(np.int64)


class KMeansPlusPlus:
    """scikit-learn's greedy k-means++ seeding (``sklearn.cluster._kmeans._kmeans_plusplus``, unit
    sample weights), as an ``init`` callable that reproduces it bit for bit on float32 data.

    scikit-learn computes every candidate's distances to all points by upcasting ``X`` to float64
    chunk by chunk and recomputing the chunk's squared norms, on every one of its ``K·(2 + ln K)``
    candidate rows: at N = 50k, d = 512 those copies cost more than the products themselves. Here
    ``X`` is upcast and its norms computed once; the chunks, the float64 products (same BLAS calls
    on the same shapes), the float32 rounding and the random draws are scikit-learn's, so the
    centers are the same. Passing ``n_init=1`` keeps scikit-learn's ``n_init="auto"`` behaviour for
    k-means++ (one run).
    """

    def __call__(self, x: np.ndarray, n_clusters: int, random_state: np.random.RandomState):
        from sklearn.utils.extmath import row_norms

        n = x.shape[0]
        weight = np.ones(n, dtype=x.dtype)
        x64 = x.astype(np.float64)
        norms = row_norms(x64, squared=True)
        trials = 2 + int(np.log(n_clusters))
        centers = np.empty((n_clusters, x.shape[1]), dtype=x.dtype)
        first = random_state.choice(n, p=weight / weight.sum())
        centers[0] = x[first]
        closest = self._sqdist(x64, norms, np.array([first]))[0]
        pot = closest @ weight
        for c in range(1, n_clusters):
            rand = random_state.uniform(size=trials) * pot
            cand = np.searchsorted(np.cumsum(weight * closest), rand)
            np.clip(cand, None, closest.size - 1, out=cand)
            dist = self._sqdist(x64, norms, cand)
            np.minimum(closest, dist, out=dist)
            cand_pot = dist @ weight.reshape(-1, 1)
            best = np.argmin(cand_pot)
            pot = cand_pot[best]
            closest = dist[best]
            centers[c] = x[cand[best]]
        return centers

    @staticmethod
    def _sqdist(x64: np.ndarray, norms: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """float32 squared distances of the points ``rows`` to every point, as scikit-learn's
        ``_euclidean_distances_upcast`` computes them (same chunk sizes and operation order)."""
        n, d = x64.shape
        m = len(rows)
        maxmem = max(((m + n) * d + m * n) / 10, 10 * 2**17)
        tmp = 2 * d
        step = max(int((-tmp + np.sqrt(tmp**2 + 4 * maxmem)) / 2), 1)
        out = np.empty((m, n), dtype=np.float32)
        for r0 in range(0, m, step):
            xr = x64[rows[r0 : r0 + step]]
            xx = norms[rows[r0 : r0 + step]][:, None]
            for c0 in range(0, n, step):
                blk = -2 * (xr @ x64[c0 : c0 + step].T)
                blk += xx
                blk += norms[None, c0 : c0 + step]
                out[r0 : r0 + step, c0 : c0 + step] = blk.astype(np.float32, copy=False)
        return np.maximum(out, np.float32(0.0), out=out)


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
        self.max_clusters = check_int(max_clusters, "max_clusters")
        self.min_cluster_size = check_int(min_cluster_size, "min_cluster_size", minimum=0)
        self.knn = check_int(knn, "knn")
        self.device = check_device(device)

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
        from .._utils.torch import resolve_device
        from . import _kernels as K  # torch, only when selecting
        from ._graph import CACHE_SLACK, NeighbourCache

        dev = resolve_device(self.device)
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
