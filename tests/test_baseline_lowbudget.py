"""TypiClust, ProbCover and the SISOM proxy against dense reference implementations."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from scipy.spatial.distance import cdist

import ncal.strategies as S
from ncal.strategies.typiclust import kmeans_labels
from strategy_contract import ParamCases, StrategyContract, make_signals
from test_baseline_kernels import one_torch_thread  # noqa: F401  (autouse fixture)


class TestTypiClustContract(StrategyContract):
    strategy_name = "typiclust"
    params: ClassVar[dict[str, Any]] = {"max_clusters": 40, "knn": 5}
    param_cases: ClassVar[ParamCases] = {
        "max_clusters": [(40, None), (3, None), (0, ValueError)],
        "min_cluster_size": [(5, None), (0, None), (-1, ValueError)],
        "knn": [(5, None), (1, None), (0, ValueError), ("20", TypeError)],
        "device": [("cpu", None), ("tpu", ValueError)],
        "kmeans": [("float32", None), ("sklearn", None), ("lloyd", ValueError), (1, TypeError)],
    }


class TestProbCoverContract(StrategyContract):
    strategy_name = "probcover"
    param_cases: ClassVar[ParamCases] = {
        "delta": [(None, None), (3.0, None), (0.0, ValueError), (-1.0, ValueError)],
        "purity": [(0.95, None), (0.5, None), (0.0, ValueError), (1.5, ValueError)],
        "max_edges": [(200_000_000, None), (0, ValueError)],
        "device": [("cpu", None), ("tpu", ValueError)],
        "purity_sample": [
            (2000, None),
            (None, None),
            (10, None),
            (0, ValueError),
            (1.5, TypeError),
        ],
        "cross_edges": [(False, None), (True, None), (1, TypeError)],
        "kmeans": [("float32", None), ("sklearn", None), ("lloyd", ValueError)],
    }


class TestProbCoverFixedDeltaContract(TestProbCoverContract):
    params: ClassVar[dict[str, Any]] = {"delta": 3.0}


class TestSisomProxyContract(StrategyContract):
    strategy_name = "sisom_proxy"
    param_cases: ClassVar[ParamCases] = {
        "variant": [("sisom", None), ("sisome", None), ("sisom_official", ValueError)],
        "device": [("cpu", None), ("tpu", ValueError)],
    }


class TestSisomeProxyContract(TestSisomProxyContract):
    params: ClassVar[dict[str, Any]] = {"variant": "sisome"}


def _blobs(seed: int, n: int, nl: int, d: int = 4, c: int = 6) -> S.Signals:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, size=(c, d))
    fp = centers[rng.integers(0, c, n)] + rng.normal(size=(n, d))
    fl = centers[rng.integers(0, c, nl)] + rng.normal(size=(nl, d))
    return S.Signals(features_pool=fp, features_labeled=fl, num_classes=c)


def reference_typiclust(fp, fl, k, seed, max_clusters=500, min_size=5, knn=20, kmeans="float32"):
    """The reference algorithm with dense distances (clusters from the same seeded k-means)."""
    n_lab = len(fl)
    x = np.concatenate([fl, fp]).astype(np.float32)
    kk = min(n_lab + k, max_clusters, len(x))
    labels = kmeans_labels(x, kk, seed, kmeans)
    sizes = np.bincount(labels, minlength=kk)
    counts = np.bincount(labels[:n_lab], minlength=kk)
    keep = [c for c in range(kk) if sizes[c] > min_size]
    order = sorted(keep, key=lambda c: (counts[c], -sizes[c], c))
    pool = labels[n_lab:].copy()
    picks = []
    i = 0
    while len(picks) < k:
        c = order[i % len(order)]
        idx = np.flatnonzero(pool == c)
        d = cdist(fp[idx], fp[idx], "sqeuclidean") + np.diag(np.full(len(idx), np.inf))
        nn = min(knn, len(idx) // 2)
        typ = 1 / (np.sort(d, 1)[:, :nn].mean(1) + 1e-5)
        picks.append(int(idx[np.argmax(typ)]))
        pool[picks[-1]] = -1
        i += 1
    return picks


@pytest.mark.parametrize("kmeans", ["float32", "sklearn"])
@pytest.mark.parametrize(("nl", "k"), [(20, 15), (40, 30)])  # full-batch (K <= 50) and mini-batch
def test_typiclust_equals_reference(nl: int, k: int, kmeans: str) -> None:
    sig = _blobs(0, 600, nl)
    sel = S.get("typiclust", kmeans=kmeans).select(sig, k, np.random.default_rng(4))
    seed = int(np.random.default_rng(4).integers(2**31 - 1))
    assert sel.indices.tolist() == reference_typiclust(
        sig.features_pool, sig.features_labeled, k, seed, kmeans=kmeans
    )
    assert sel.info["random_fill"] == 0 and sel.info["clusters"] == nl + k


@pytest.mark.parametrize(("clusters", "knn", "k"), [(3, 5, 120), (2, 20, 90), (4, 3, 200)])
def test_typiclust_many_picks_per_cluster_equals_reference(clusters: int, knn: int, k: int) -> None:
    """Clusters visited dozens of times: the cached neighbour lists run short and are refreshed."""
    sig = _blobs(7, 400, 10)
    sel = S.get("typiclust", max_clusters=clusters, knn=knn).select(
        sig, k, np.random.default_rng(2)
    )
    seed = int(np.random.default_rng(2).integers(2**31 - 1))
    ref = reference_typiclust(
        sig.features_pool, sig.features_labeled, k, seed, max_clusters=clusters, knn=knn
    )
    assert sel.indices.tolist() == ref


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("nl", "k"), [(20, 30), (40, 60)])  # full-batch and mini-batch k-means
def test_typiclust_float32_kmeans_against_scikit_learn(seed: int, nl: int, k: int) -> None:
    """The default float32 k-means against the reference's scikit-learn one from the same seed:
    k-means inertia within 5%, and the picks spread as well (mean distance from a pool point to
    its nearest labeled point or pick within 2%). Which points are picked differs."""
    sig = _blobs(seed, 2000, nl, d=8, c=6)
    x = np.concatenate([sig.features_labeled, sig.features_pool]).astype(np.float32)

    def inertia(labels: np.ndarray) -> float:
        return sum(
            float(((x[labels == c] - x[labels == c].mean(0)) ** 2).sum()) for c in set(labels)
        )

    fast, ref = (kmeans_labels(x, nl + k, seed, m) for m in ("float32", "sklearn"))
    assert inertia(fast) <= 1.05 * inertia(ref)
    spread = []
    for method in ("float32", "sklearn"):
        sel = S.get("typiclust", kmeans=method).select(sig, k, np.random.default_rng(seed))
        assert sel.info["random_fill"] == 0 and len(set(sel.indices.tolist())) == k
        chosen = np.concatenate([sig.features_labeled, sig.features_pool[sel.indices]])
        spread.append(cdist(sig.features_pool, chosen).min(1).mean())
    assert spread[0] == pytest.approx(spread[1], rel=0.02)


def test_typiclust_exhausted_clusters_fall_back_to_random() -> None:
    sig = _blobs(1, 40, 0)
    sig.features_labeled = np.zeros((0, 4))
    sel = S.get("typiclust", max_clusters=2, min_cluster_size=0).select(
        sig, 40, np.random.default_rng(0)
    )
    assert sorted(sel.indices.tolist()) == list(range(40))
    assert sel.info["random_fill"] == 0  # two clusters cover the whole pool, no random fill needed
    sel = S.get("typiclust", max_clusters=3, min_cluster_size=30).select(
        sig, 10, np.random.default_rng(0)
    )
    assert len(set(sel.indices.tolist())) == 10


@pytest.mark.parametrize(("clusters", "seed"), [(8, 0), (8, 5), (60, 0), (60, 3)])
def test_kmeans_seeding_equals_scikit_learn(clusters: int, seed: int) -> None:
    """Our k-means++ callable reproduces scikit-learn's built-in seeding bit for bit (KMeans and
    MiniBatchKMeans branches; 2,500 points, so its distances run in several chunks)."""
    from sklearn.cluster import KMeans, MiniBatchKMeans

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2500, 16)).astype(np.float32) + rng.integers(0, 4, (2500, 1))
    if clusters <= 50:
        km = KMeans(n_clusters=clusters, random_state=seed, n_init="auto")
    else:
        km = MiniBatchKMeans(n_clusters=clusters, batch_size=5000, random_state=seed, n_init="auto")
    expect = km.fit_predict(x)
    got = kmeans_labels(x, clusters, seed, "sklearn")
    np.testing.assert_array_equal(got, expect)
    assert len(np.unique(got)) > clusters // 2


def reference_probcover(x_all: np.ndarray, n_lab: int, delta: float, k: int, rng) -> list[int]:
    """Dense ProbCover: recompute every out-degree from scratch at each step."""
    adj = cdist(x_all, x_all) < delta
    covered = adj[:n_lab].any(0) if n_lab else np.zeros(len(x_all), bool)
    picks: list[int] = []
    while len(picks) < k:
        deg = (adj[n_lab:] & ~covered[None, :]).sum(1)
        deg[picks] = -1
        j = int(np.argmax(deg))
        if deg[j] <= 0:
            free = np.setdiff1d(np.arange(len(x_all) - n_lab), picks)
            picks.extend(rng.choice(free, size=k - len(picks), replace=False).tolist())
            break
        picks.append(j)
        covered |= adj[n_lab + j]
    return picks


@pytest.mark.parametrize("delta", [0.8, 1.5, 3.0])
def test_probcover_equals_dense_reference(delta: float) -> None:
    sig = _blobs(2, 250, 10)
    x_all = np.concatenate([sig.features_labeled, sig.features_pool])
    k = 40
    sel = S.get("probcover", delta=delta).select(sig, k, np.random.default_rng(9))
    assert sel.indices.tolist() == reference_probcover(
        x_all, 10, delta, k, np.random.default_rng(9)
    )
    adj = cdist(x_all, x_all) < delta
    assert sel.info["edges"] == int(adj.sum())


@pytest.mark.parametrize(("bitmap_rows", "tile"), [(1 << 14, 2048), (1 << 14, 16), (64, 16)])
@pytest.mark.parametrize("delta", [1.5, 3.0])
def test_probcover_graph_storage_equals_dense_reference(
    monkeypatch: pytest.MonkeyPatch, bitmap_rows: int, tile: int, delta: float
) -> None:
    """Bit matrices built from many tiles (mirrored off the diagonal), and neighbour lists for
    groups above ``BITMAP_ROWS``: the same picks and edge count as the dense reference."""
    from ncal.strategies import _graph

    monkeypatch.setattr(_graph, "BITMAP_ROWS", bitmap_rows)
    monkeypatch.setattr(_graph, "TILE", tile)
    monkeypatch.setattr(_graph, "BLOCK32", 3000)
    sig = _blobs(2, 250, 10)
    x_all = np.concatenate([sig.features_labeled, sig.features_pool])
    sel = S.get("probcover", delta=delta).select(sig, 40, np.random.default_rng(9))
    assert sel.indices.tolist() == reference_probcover(
        x_all, 10, delta, 40, np.random.default_rng(9)
    )
    assert sel.info["edges"] == int((cdist(x_all, x_all) < delta).sum())
    exact = S.get("probcover", purity=0.9, purity_sample=None, cross_edges=True)
    sel = exact.select(sig, 10, np.random.default_rng(5))
    assert sel.indices.tolist() == reference_probcover(x_all, 10, sel.info["delta"], 10, None)


def _nearest_other_cluster(x_all: np.ndarray, labels: np.ndarray) -> np.ndarray:
    d = cdist(x_all, x_all)
    return np.where(labels[:, None] != labels[None, :], d, np.inf).min(1)


@pytest.mark.parametrize("kmeans", ["float32", "sklearn"])
def test_probcover_purity_radius(kmeans: str) -> None:
    """The exact settings: δ is the exact order statistic, the graph has the cross-cluster edges."""
    sig = _blobs(3, 300, 20)
    strat = S.get("probcover", purity=0.9, purity_sample=None, cross_edges=True, kmeans=kmeans)
    sel = strat.select(sig, 10, np.random.default_rng(5))
    x_all = np.concatenate([sig.features_labeled, sig.features_pool])
    seed = int(np.random.default_rng(5).integers(2**31 - 1))
    r = _nearest_other_cluster(x_all, kmeans_labels(x_all, 6, seed, kmeans))

    def purity(delta: float) -> float:  # fraction of δ-balls with only same-cluster points
        return float(np.mean(r >= delta))

    delta = sel.info["delta"]
    assert purity(delta) >= 0.9
    assert purity(delta * (1 + 1e-9)) < 0.9
    ref = reference_probcover(x_all, 20, delta, 10, None)
    assert sel.indices.tolist() == ref
    assert sel.info["edges"] == int((cdist(x_all, x_all) < delta).sum())


def reference_probcover_within(x_all, labels, n_lab, delta, k) -> list[int]:
    """Dense ProbCover on the graph restricted to within-cluster edges."""
    adj = (cdist(x_all, x_all) < delta) & (labels[:, None] == labels[None, :])
    covered = adj[:n_lab].any(0)
    picks: list[int] = []
    while len(picks) < k:
        deg = (adj[n_lab:] & ~covered[None, :]).sum(1)
        deg[picks] = -1
        picks.append(int(np.argmax(deg)))
        covered |= adj[n_lab + picks[-1]]
    return picks


def test_probcover_default_graph_is_within_cluster() -> None:
    """Default settings, N below the sample size: the exact δ, the within-cluster graph."""
    sig = _blobs(3, 300, 20)
    sel = S.get("probcover", purity=0.9).select(sig, 10, np.random.default_rng(5))
    exact = S.get("probcover", purity=0.9, purity_sample=None, cross_edges=True)
    assert sel.info["delta"] == exact.select(sig, 10, np.random.default_rng(5)).info["delta"]
    x_all = np.concatenate([sig.features_labeled, sig.features_pool])
    labels = kmeans_labels(x_all, 6, int(np.random.default_rng(5).integers(2**31 - 1)))
    ref = reference_probcover_within(x_all, labels, 20, sel.info["delta"], 10)
    assert sel.indices.tolist() == ref


@pytest.mark.parametrize(("seed", "tile"), [(0, 2048), (1, 2048), (2, 2048), (0, 64)])
def test_probcover_sampled_purity_radius(
    monkeypatch: pytest.MonkeyPatch, seed: int, tile: int
) -> None:
    """δ is the order statistic over the sampled ball centres (the draws of ``rng`` after the
    k-means seed), and its purity over all points is α within a few sampling deviations."""
    from ncal.strategies import _graph

    monkeypatch.setattr(_graph, "TILE", tile)
    sig = _blobs(10 + seed, 1500, 30, d=6, c=5)
    m, alpha = 300, 0.9
    sel = S.get("probcover", purity=alpha, purity_sample=m).select(
        sig, 20, np.random.default_rng(seed)
    )
    x_all = np.concatenate([sig.features_labeled, sig.features_pool])
    rng = np.random.default_rng(seed)
    labels = kmeans_labels(x_all, 5, int(rng.integers(2**31 - 1)))
    centres = rng.choice(len(x_all), size=m, replace=False)
    r = _nearest_other_cluster(x_all, labels)
    expect = np.sort(r[centres])[m - int(np.ceil(alpha * m))]
    assert sel.info["delta"] == pytest.approx(expect, rel=1e-12)
    assert abs(np.mean(r >= sel.info["delta"]) - alpha) <= 4 * np.sqrt(alpha * (1 - alpha) / m)


@pytest.mark.parametrize(("seed", "shared"), [(21, 10), (23, 2)])
def test_probcover_approximations_against_exact(seed: int, shared: int) -> None:
    """The defaults against the exact settings on one pool: δ within 5%, and the coverage of the
    exact δ-ball graph reached by the picks within 1% (which picks are shared depends on how δ
    moved: 10 and 3 of 12 on these two pools)."""
    sig = _blobs(seed, 3000, 40, d=6, c=5)
    k = 12
    fast = S.get("probcover", purity_sample=500).select(sig, k, np.random.default_rng(3))
    exact = S.get("probcover", purity_sample=None, cross_edges=True).select(
        sig, k, np.random.default_rng(3)
    )
    assert fast.info["random_fill"] == exact.info["random_fill"] == 0
    x_all = np.concatenate([sig.features_labeled, sig.features_pool])
    adj = cdist(x_all, x_all) < exact.info["delta"]
    n_lab = len(sig.features_labeled)
    assert fast.info["edges"] < exact.info["edges"]  # a smaller δ or fewer cross-cluster edges

    def coverage(picks: np.ndarray) -> float:
        return float((adj[:n_lab].any(0) | adj[n_lab + picks].any(0)).mean())

    assert fast.info["delta"] == pytest.approx(exact.info["delta"], rel=0.05)
    assert len(set(fast.indices.tolist()) & set(exact.indices.tolist())) >= shared
    assert coverage(fast.indices) >= coverage(exact.indices) - 0.01


def test_probcover_random_fill_when_covered() -> None:
    sig = _blobs(4, 30, 2)
    sel = S.get("probcover", delta=100.0).select(sig, 5, np.random.default_rng(0))
    assert sel.info["coverage"] == 1.0 and sel.info["random_fill"] == 5
    expect = np.random.default_rng(0).choice(np.arange(30), size=5, replace=False)
    assert sel.indices.tolist() == expect.tolist()


def test_probcover_edge_guard_and_missing_num_classes() -> None:
    sig = _blobs(5, 100, 5)
    with pytest.raises(ValueError, match="max_edges"):
        S.get("probcover", delta=100.0, max_edges=50).select(sig, 3, np.random.default_rng(0))
    sig.num_classes = None
    with pytest.raises(ValueError, match=r"`probcover` needs .*num_classes"):
        S.get("probcover").select(sig, 3, np.random.default_rng(0))
    S.get("probcover", delta=1.0).select(sig, 3, np.random.default_rng(0))  # fixed δ: no C needed


def reference_ratio(fp, fl, yl, pred) -> np.ndarray:
    fp, fl = np.asarray(fp, dtype=np.float64), np.asarray(fl, dtype=np.float64)
    zp = fp / np.linalg.norm(fp, axis=1, keepdims=True)
    zl = fl / np.linalg.norm(fl, axis=1, keepdims=True)
    d = cdist(zp, zl)
    same = yl[None, :] == pred[:, None]
    d_in = np.where(same, d, np.inf).min(1)
    d_out = np.where(~same, d, np.inf).min(1)
    return d_in / (d_out + 1e-12)


def test_sisom_proxy_equals_dense_ratio() -> None:
    sig = make_signals(n=200, n_labeled=30)
    r = reference_ratio(
        sig.features_pool, sig.features_labeled, sig.labels_labeled, sig.probs_pool.argmax(1)
    )
    sel = S.get("sisom_proxy").select(sig, 25)
    assert sel.indices.tolist() == S.top_k(r, 25).tolist()
    np.testing.assert_allclose(sel.scores, r[sel.indices], rtol=1e-10)


def test_sisome_proxy_combines_ratio_and_energy() -> None:
    sig = make_signals(n=200, n_labeled=30)
    r = reference_ratio(
        sig.features_pool, sig.features_labeled, sig.labels_labeled, sig.probs_pool.argmax(1)
    )
    z = sig.logits_pool
    energy = -np.log(np.exp(z).sum(1))
    score = 0.5 * (S.zscore(r) + S.zscore(energy))
    sel = S.get("sisom_proxy", variant="sisome").select(sig, 25)
    assert sel.indices.tolist() == S.top_k(score, 25).tolist()
    sig.logits_pool = None
    with pytest.raises(ValueError, match="logits_pool"):
        S.get("sisom_proxy", variant="sisome").select(sig, 3)


def test_sisom_proxy_unseen_predicted_class_goes_first() -> None:
    sig = make_signals(n=80, n_labeled=20, c=4)
    sig.labels_labeled = np.where(
        sig.labels_labeled == 3, 0, sig.labels_labeled
    )  # class 3 unlabeled
    pred = sig.probs_pool.argmax(1)
    sel = S.get("sisom_proxy").select(sig, int((pred == 3).sum()))
    assert set(sel.indices.tolist()) == set(np.flatnonzero(pred == 3).tolist())
    assert np.isinf(sel.scores).all()


def test_sisom_proxy_needs_labeled_rows() -> None:
    sig = make_signals()
    sig.features_labeled = np.zeros((0, sig.features_pool.shape[1]))
    sig.labels_labeled = np.zeros(0, dtype=int)
    with pytest.raises(ValueError, match="non-empty labeled set"):
        S.get("sisom_proxy").select(sig, 3)


def test_ball_edges_have_no_gap_at_float32_thresholds() -> None:
    """Radii placed so that a pair's float32 distance sits on the float32 rounding of
    ``radius_sq - tol``: every pair is still decided as the exact float64 distance says (at
    N = 51k such a pair was once neither certain nor rechecked, and its edge was lost)."""
    import torch

    from ncal.strategies import _graph

    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(0.5, 1.2, size=(40, 512)), 0).astype(np.float32)
    space = _graph.BallSpace(x, None, torch.device("cpu"))
    d32 = space.block(slice(0, 40), slice(0, 40)).numpy().astype(np.float64)
    tol = space.tol(slice(0, 40), slice(0, 40))
    exact = space.exact(*np.divmod(np.arange(1600), 40)).reshape(40, 40)
    for i, j in [(0, 1), (2, 7), (5, 30), (11, 12)]:
        ulp = float(np.spacing(np.float32(d32[i, j])))
        for frac in (0.1, 0.3, 0.45):
            radius_sq = d32[i, j] + tol + frac * ulp
            got = space.edges(slice(0, 40), slice(0, 40), radius_sq).numpy()
            np.testing.assert_array_equal(got, exact < radius_sq)
