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
    """Cluster labels of the rows of ``x`` (the reference's KMeans / MiniBatchKMeans switch)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    if num_clusters <= 50:
        km = KMeans(n_clusters=num_clusters, random_state=seed, n_init="auto")
    else:
        km = MiniBatchKMeans(
            n_clusters=num_clusters, batch_size=5000, random_state=seed, n_init="auto"
        )
    return km.fit_predict(x).astype(np.int64)


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
