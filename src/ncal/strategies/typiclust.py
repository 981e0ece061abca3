"""TypiClust: typical samples of uncovered clusters, for low budgets (docs/algorithms.md §1.8).

K = min(N_L + k, ``max_clusters``) k-means clusters of L ∪ U (full-batch k-means for K <= 50, else
mini-batch k-means with batches of 5,000, seeded from ``rng``). Clusters with at most
``min_cluster_size`` points are dropped; the rest are ordered by (number of labeled points
ascending, size descending, cluster id) and visited cyclically. In each visited cluster the pick is
the unlabeled, not yet chosen point of largest typicality ``1 / (mean squared distance to its K_nn
nearest neighbours + 1e-5)``, with ``K_nn = min(20, n // 2)`` among the cluster's remaining points
(labeled and chosen points removed, as in the reference). Clusters with no point left are skipped;
if every kept cluster is exhausted the remaining picks are uniform over the rest of the pool (from
``rng``).

The clustering (``kmeans``): by default :func:`kmeans_float32`, the reference's structure (greedy
k-means++, then Lloyd or mini-batch steps) in float32 without scikit-learn (whose import alone
takes seconds); ``kmeans="sklearn"`` runs the reference's scikit-learn ``KMeans`` /
``MiniBatchKMeans`` (with :class:`KMeansPlusPlus`, identical to scikit-learn's own seeding).
The two give different clusters from the same seed, hence different picks: on the synthetic
benchmark features (N = 21k, d = 512, K = 500, k = 1,000) the float32 and scikit-learn picks
share 27-31%, as many as two seeds of scikit-learn share with each other (29%), with the same
mean kNN distance of the picks and the same mean distance from the pool to the nearest pick.

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

KMEANS_METHODS = ("float32", "sklearn")


def check_kmeans(method: object) -> str:
    """``method`` if it names a k-means implementation of :func:`kmeans_labels`, else raise.

    Raises
    ------
    TypeError
        When ``method`` is not a string.
    ValueError
        When it is not one of ``KMEANS_METHODS``.
    """
    if not isinstance(method, str):
        raise TypeError(f"`kmeans` must be a string; got {type(method).__name__}")
    if method not in KMEANS_METHODS:
        raise ValueError(f"`kmeans` must be one of {KMEANS_METHODS}; got {method!r}")
    return method


def kmeans_labels(
    x: np.ndarray, num_clusters: int, seed: int, method: str = "float32"
) -> np.ndarray:
    """Cluster labels of the rows of ``x`` (the reference's KMeans / MiniBatchKMeans switch).

    Parameters
    ----------
    x : (N, d) array
        The points.
    num_clusters : int
        K; full-batch k-means for K <= 50, mini-batch k-means (batches of 5,000) above.
    seed : int
        Seed of every random draw.
    method : {"float32", "sklearn"}
        ``"float32"``: :func:`kmeans_float32` (no scikit-learn import, float32 products).
        ``"sklearn"``: scikit-learn's ``KMeans`` / ``MiniBatchKMeans`` with the seeding of
        :class:`KMeansPlusPlus` (identical centers and labels to scikit-learn's built-in one).

    Returns
    -------
    (N,) int64 array
    """
    if check_kmeans(method) == "float32":
        return kmeans_float32(x, num_clusters, seed)
    from sklearn.cluster import KMeans, MiniBatchKMeans

    init = KMeansPlusPlus()
    if num_clusters <= 50:
        km = KMeans(n_clusters=num_clusters, random_state=seed, init=init, n_init=1)
    else:
        km = MiniBatchKMeans(
            n_clusters=num_clusters, batch_size=5000, random_state=seed, init=init, n_init=1
        )
    return km.fit_predict(x).astype(np.int64)


def kmeans_float32(
    x: np.ndarray,
    num_clusters: int,
    seed: int,
    *,
    batch_size: int = 5000,
    max_iter: int = 300,
    tol: float = 1e-4,
    max_no_improvement: int = 10,
    max_steps: int = 20,
    init_size: int | None = None,
) -> np.ndarray:
    """k-means in float32 with numpy: the structure of the reference, not its exact numbers.

    Greedy k-means++ seeding (``2 + ln K`` candidates per center, the one lowering the potential
    most is kept) on ``init_size`` points drawn at random (default: all of them for K <= 50, as
    scikit-learn's ``KMeans``; 3·K above, the rule of its ``MiniBatchKMeans`` when
    ``3 * batch_size < K``: each seeding step streams the subset once, so its size sets the
    cost), then, for K <= 50, Lloyd iterations over all
    points (stop when no label changes or the squared center shift falls to ``tol`` times the
    mean feature variance, at most ``max_iter``); for K > 50, mini-batch k-means (Sculley 2010):
    at most ``max_steps`` steps on random batches of ``batch_size`` points that move each center
    to the running mean of the points assigned to it, stopped earlier when an exponentially
    smoothed batch inertia has not improved for ``max_no_improvement`` steps. Labels are the
    nearest centers over all points. On the synthetic benchmark features (N = 51k, d = 512, K = 500) the
    inertia fell from 464 (seeds) to 274.6 after 10 steps, 274.1 after 20 and 273.4 after 80,
    hence the cap of 20 steps (the early stop alone ran 47-58).

    Distances are float32 ``||x||² + ||c||² - 2<x, c>`` from chunked matrix products, cluster
    sums float32 scatter-adds; the seeding potentials and sampling weights are float64. Unlike scikit-learn, centers that lose all
    their points keep their position (no relocation), and the mini-batch steps do not reassign
    small clusters.

    Parameters
    ----------
    x : (N, d) array
        The points (converted to float32).
    num_clusters : int
        K (at most N).
    seed : int
        Seed of every random draw (a numpy ``Generator``).
    batch_size, max_iter, tol, max_no_improvement, max_steps, init_size
        See above.

    Returns
    -------
    (N,) int64 array of labels in ``[0, num_clusters)``.
    """
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    k = int(min(num_clusters, n))
    norms = np.einsum("ij,ij->i", x, x)
    if init_size is None:  # K <= 50: all points, as scikit-learn's KMeans
        init_size = n if k <= 50 else 3 * k
    m = min(n, max(init_size, k))
    sub = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
    centers = _kmeanspp_greedy(x[sub], norms[sub], k, rng)
    if k <= 50:
        labels = _lloyd(x, norms, centers, max_iter, tol)
    else:
        steps = min(max_steps, max(1, (max_iter * n) // batch_size))
        _minibatch(x, norms, centers, rng, batch_size, steps, max_no_improvement)
        labels = _assign(x, norms, centers)[0]
    return labels.astype(np.int64)


def _sqdist32(x: np.ndarray, xn: np.ndarray, c: np.ndarray, cn: np.ndarray) -> np.ndarray:
    """float32 ``||x||² + ||c||² - 2<x, c>`` (len(x), len(c)), clamped at 0."""
    d = x @ c.T
    d *= -2.0
    d += xn[:, None]
    d += cn[None, :]
    return np.maximum(d, 0.0, out=d)


def _kmeanspp_greedy(
    x: np.ndarray, norms: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Greedy k-means++ seeds (rows of ``x``), in float32."""
    n = x.shape[0]
    trials = 2 + int(np.log(k))
    # each step is a thin (trials × d) · (d × n) product, bound by reading x: a (d, n) copy
    # streams faster under the transposed GEMM, which pays for the copy over many steps only
    xt = np.ascontiguousarray(x.T) if k * trials > 4 * x.shape[1] else None
    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    first = int(rng.integers(n))
    centers[0] = x[first]
    closest = _seed_sqdist(x[first : first + 1], norms[first : first + 1], xt, norms, x)[0]
    pot = float(closest.sum(dtype=np.float64))
    for c in range(1, k):
        if not pot > 0.0:  # every point coincides with a center: duplicates are harmless
            centers[c:] = centers[0]
            break
        cand = np.searchsorted(np.cumsum(closest, dtype=np.float64), rng.random(trials) * pot)
        np.clip(cand, None, n - 1, out=cand)
        dist = _seed_sqdist(x[cand], norms[cand], xt, norms, x)
        np.minimum(dist, closest[None, :], out=dist)
        pots = dist.sum(1, dtype=np.float64)
        best = int(np.argmin(pots))
        pot, closest = float(pots[best]), dist[best]
        centers[c] = x[cand[best]]
    return centers


def _seed_sqdist(
    c: np.ndarray, cn: np.ndarray, xt: np.ndarray | None, xn: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """float32 squared distances (len(c), n) of the rows ``c`` to the points (the columns of
    ``xt`` when given, else the rows of ``x``)."""
    d = c @ xt if xt is not None else np.ascontiguousarray((x @ c.T).T)
    d *= -2.0
    d += cn[:, None]
    d += xn[None, :]
    return np.maximum(d, 0.0, out=d)


def _assign(
    x: np.ndarray, norms: np.ndarray, centers: np.ndarray, block: int = 1 << 22
) -> tuple[np.ndarray, float]:
    """Nearest center of every row (chunked) and the total inertia."""
    cn = np.einsum("ij,ij->i", centers, centers)
    labels = np.empty(x.shape[0], dtype=np.int64)
    inertia = 0.0
    step = max(1, block // max(1, len(centers)))
    for s in range(0, x.shape[0], step):
        d = _sqdist32(x[s : s + step], norms[s : s + step], centers, cn)
        lab = d.argmin(1)
        labels[s : s + step] = lab
        inertia += float(d[np.arange(len(lab)), lab].sum(dtype=np.float64))
    return labels, inertia


def _cluster_sums(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums of the rows (float32 scatter-add, returned as float64) and counts."""
    import torch

    sums = torch.zeros((k, x.shape[1]), dtype=torch.float32)
    sums.index_add_(0, torch.from_numpy(labels), torch.from_numpy(x))
    return sums.numpy().astype(np.float64), np.bincount(labels, minlength=k)


def _assign_sums(
    x: np.ndarray, norms: np.ndarray, centers: np.ndarray, block: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest center of every row, and the per-cluster sums (float64) and counts of the rows
    under those labels, in one chunked pass (each chunk is summed while it is in cache: a
    one-hot product, as cheap as the distances for the few centers of the Lloyd branch)."""
    k = len(centers)
    cn = np.einsum("ij,ij->i", centers, centers)
    labels = np.empty(x.shape[0], dtype=np.int64)
    sums = np.zeros((k, x.shape[1]))
    step = max(1, block // max(k, x.shape[1]))
    for s in range(0, x.shape[0], step):
        xb = x[s : s + step]
        lab = _sqdist32(xb, norms[s : s + step], centers, cn).argmin(1)
        labels[s : s + step] = lab
        onehot = np.zeros((k, len(lab)), dtype=np.float32)
        onehot[lab, np.arange(len(lab))] = 1.0
        sums += onehot @ xb
    return labels, sums, np.bincount(labels, minlength=k)


def _lloyd(
    x: np.ndarray, norms: np.ndarray, centers: np.ndarray, max_iter: int, tol: float
) -> np.ndarray:
    """Lloyd iterations from ``centers`` (updated in place); the final labels."""
    # mean feature variance = (mean ||x||² - ||mean x||²) / d, from the norms at hand
    mean = x.mean(0, dtype=np.float64)
    var = (float(norms.sum(dtype=np.float64)) / len(x) - float(mean @ mean)) / x.shape[1]
    thresh = tol * max(var, 0.0)
    labels = None
    for _ in range(max_iter):
        new, sums, counts = _assign_sums(x, norms, centers)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        full = counts > 0  # an empty cluster keeps its center
        moved = (sums[full] / counts[full, None]).astype(np.float32)
        shift = float(((moved - centers[full]) ** 2).sum(dtype=np.float64))
        centers[full] = moved
        if shift <= thresh:
            labels = _assign(x, norms, centers)[0]
            break
    return labels


def _minibatch(
    x: np.ndarray,
    norms: np.ndarray,
    centers: np.ndarray,
    rng: np.random.Generator,
    batch: int,
    steps: int,
    max_no_improvement: int,
) -> None:
    """Mini-batch k-means steps on ``centers`` (in place) with smoothed-inertia early stopping."""
    n, k = x.shape[0], len(centers)
    batch = min(batch, n)
    counts = np.zeros(k, dtype=np.float64)
    alpha = min(1.0, 2.0 * batch / (n + 1))
    ewa, best, stale = None, np.inf, 0
    for _ in range(steps):
        idx = rng.integers(0, n, batch)
        xb = x[idx]
        labels, inertia = _assign(xb, norms[idx], centers)
        sums, cnt = _cluster_sums(xb, labels, k)
        hit = cnt > 0
        counts[hit] += cnt[hit]
        # running mean: c <- c + (sum - cnt·c) / total count
        step = (sums[hit] - cnt[hit, None] * centers[hit]) / counts[hit, None]
        centers[hit] += step.astype(np.float32)
        inertia /= batch
        ewa = inertia if ewa is None else ewa * (1 - alpha) + inertia * alpha
        if ewa < best:
            best, stale = ewa, 0
        else:
            stale += 1
            if stale >= max_no_improvement:
                break


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
    kmeans : {"float32", "sklearn"}
        The clustering: ``"float32"`` (default) is :func:`kmeans_float32`; ``"sklearn"`` is the
        reference's scikit-learn ``KMeans`` / ``MiniBatchKMeans`` (k-means++ seeding, float64
        seeding products). Both are seeded from ``rng``; they give different clusters and so
        different picks (see the module docstring).
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
        kmeans: str = "float32",
    ) -> None:
        self.max_clusters = check_int(max_clusters, "max_clusters")
        self.min_cluster_size = check_int(min_cluster_size, "min_cluster_size", minimum=0)
        self.knn = check_int(knn, "knn")
        self.device = check_device(device)
        self.kmeans = check_kmeans(kmeans)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        fp, fl = check_feature_pair(signals)
        n_lab = fl.shape[0]
        x = np.concatenate([fl, fp]).astype(np.float32, copy=False)
        n_clusters = min(n_lab + k, self.max_clusters, x.shape[0])
        labels = kmeans_labels(x, n_clusters, int(rng.integers(2**31 - 1)), self.kmeans)
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
