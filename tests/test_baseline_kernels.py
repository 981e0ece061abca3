"""The blocked kernels of ncal.strategies._kernels against brute-force (dense) references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from ncal._utils.numeric import softmax
from ncal.strategies import _kernels as K
from ncal.strategies._checks import check_device, check_float, check_int

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny batched linear algebra is far slower with contended intra-op threads: use one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sym_kl_dense(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """½KL(p||q) + ½KL(q||p) for every pair, straight from the definition."""
    lp, lq = np.log(p), np.log(q)
    return 0.5 * ((p[:, None, :] - q[None, :, :]) * (lp[:, None, :] - lq[None, :, :])).sum(-1)


def brute_kcenter(dist_to_labeled: np.ndarray, dist_pool: np.ndarray, k: int) -> list[int]:
    """Textbook k-center greedy on a full distance matrix (argmax = smallest index on ties)."""
    delta = dist_to_labeled.copy()
    picks: list[int] = []
    for _ in range(k):
        d = delta.copy()
        d[picks] = -np.inf
        u = int(np.argmax(d))
        picks.append(u)
        delta = np.minimum(delta, dist_pool[:, u])
    return picks


def test_euclidean_divergence_matches_cdist() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 7)).astype(np.float32)
    y = rng.normal(size=(9, 7))
    sx, sy = K.PairSpace.euclidean(x, CPU), K.PairSpace.euclidean(y, CPU)
    got = K.PairSpace.divergence(sx.rows(slice(None)), sx.a, sy.centers(slice(None)), sy.a)
    np.testing.assert_allclose(
        got.numpy(), cdist(x.astype(np.float64), y, "sqeuclidean"), atol=1e-10
    )


def test_sym_kl_divergence_matches_definition() -> None:
    rng = np.random.default_rng(1)
    p, q = softmax(rng.normal(size=(30, 5)) * 2), softmax(rng.normal(size=(6, 5)) * 2)
    sp, sq = K.PairSpace.sym_kl(np.log(p), CPU), K.PairSpace.sym_kl(np.log(q), CPU)
    got = K.PairSpace.divergence(sp.rows(slice(None)), sp.a, sq.centers(slice(None)), sq.a)
    np.testing.assert_allclose(got.numpy(), sym_kl_dense(p, q), atol=1e-12)


def test_min_to_blocks_equal_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(K, "BLOCK_ELEMENTS", 64)  # force many row and column blocks
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(23, 4))
    got = K.PairSpace.euclidean(x, CPU).min_to(K.PairSpace.euclidean(y, CPU))
    np.testing.assert_allclose(got.numpy(), cdist(x, y, "sqeuclidean").min(1), atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_kcenter_greedy_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, nl, d = int(rng.integers(30, 300)), int(rng.integers(1, 20)), int(rng.integers(2, 12))
    x, lab = rng.normal(size=(n, d)), rng.normal(size=(nl, d))
    k = int(rng.integers(1, n + 1))
    # tiny candidate sets and batches exercise every branch of the lazy evaluation
    got, scores = K.kcenter_greedy(
        K.PairSpace.euclidean(x, CPU),
        k,
        init=K.PairSpace.euclidean(lab, CPU),
        rng=rng,
        candidates=int(rng.integers(1, 9)),
        max_pending=int(rng.integers(1, 9)),
    )
    dist = cdist(x, x, "sqeuclidean")
    ref = brute_kcenter(cdist(x, lab, "sqeuclidean").min(1), dist, k)
    assert got.tolist() == ref
    # the score of a pick is its squared distance to the nearest earlier center
    centers = np.concatenate([cdist(x, lab, "sqeuclidean"), dist[:, ref]], axis=1)
    expect = [centers[u, : nl + i].min() for i, u in enumerate(ref)]
    np.testing.assert_allclose(scores, expect, atol=1e-9)


def test_kcenter_without_labeled_set_starts_from_rng() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 3))
    got, scores = K.kcenter_greedy(
        K.PairSpace.euclidean(x, CPU), 10, init=None, rng=np.random.default_rng(11)
    )
    first = int(np.random.default_rng(11).integers(60))
    dist = cdist(x, x, "sqeuclidean")
    assert got[0] == first
    assert got[1:].tolist() == brute_kcenter(dist[:, first], dist, 9)
    assert np.isinf(scores[0])


def test_kcenter_duplicates_and_exhaustion() -> None:
    """All points identical: every distance is 0 and ties go to the smallest index."""
    x = np.ones((12, 3))
    got, _ = K.kcenter_greedy(
        K.PairSpace.euclidean(x, CPU), 12, init=K.PairSpace.euclidean(x[:1], CPU), rng=None
    )
    assert got.tolist() == list(range(12))


def naive_kmeanspp(g: np.ndarray, k: int, rng: np.random.Generator, first: int | None) -> list[int]:
    """k-means++ on materialised embeddings with the same draws as the kernel."""
    n = g.shape[0]
    c = int(np.argmax((g * g).sum(1))) if first is None else first
    picks = [c]
    d2 = np.full(n, np.inf)
    for _ in range(1, k):
        d2 = np.minimum(d2, ((g - g[c]) ** 2).sum(1))
        d2[picks] = 0.0
        if d2.sum() > 0:
            c = int(np.searchsorted(np.cumsum(d2), rng.random() * d2.sum(), side="right"))
        else:
            free = np.setdiff1d(np.arange(n), picks)
            c = int(free[rng.integers(free.size)])
        picks.append(c)
    return picks


@pytest.mark.parametrize("seed", range(4))
def test_kmeanspp_kronecker_equals_materialised(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c, d = 80, 4, 6
    a, h = rng.normal(size=(n, c)), rng.normal(size=(n, d))
    g = (a[:, :, None] * h[:, None, :]).reshape(n, c * d)
    k = 25
    got, dist = K.kmeanspp_kronecker(
        torch.from_numpy(a), torch.from_numpy(h), k, np.random.default_rng(100 + seed)
    )
    ref = naive_kmeanspp(g, k, np.random.default_rng(100 + seed), None)
    assert got.tolist() == ref
    assert dist[0] == pytest.approx(np.linalg.norm(g[ref[0]]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kmeanspp_skipping_keeps_every_distance(dtype: type) -> None:
    """The Cauchy-Schwarz skip of ``_lower_d2`` writes exactly what the full pool pass writes."""
    rng = np.random.default_rng(7)
    n, c, d = 3000, 5, 40
    a = (
        torch.from_numpy(softmax(3 * rng.normal(size=(n, c))))
        - torch.eye(c, dtype=torch.float64)[rng.integers(0, c, n)]
    )
    h = torch.from_numpy(np.abs(rng.normal(size=(n, d))).astype(dtype))
    w = (a * a).sum(1) * K.sqnorms(h)
    unit = 2.0**-24 if dtype == np.float32 else 2.0**-53
    hn = K.sqnorms(h).sqrt() * (2.0 * (1.0 + 4.0 * (d + 4) * unit + 1e-12))
    d2 = torch.full((n,), torch.inf, dtype=torch.float64)
    full = d2.clone()
    skipped = 0
    for center in rng.choice(n, 40, replace=False):
        cross = K.matmul(a, a[center]).mul_(K.to64(K.matmul(h, h[center])))
        cur = cross.mul_(-2.0).add_(w).add_(w[center]).clamp_(min=0.0)
        before = full.clone()
        torch.minimum(full, cur, out=full)
        bound = (a @ a[center]).abs() * hn * (-0.5 * hn[center]) + w + w[center]
        skip = bound > d2
        K._lower_d2(a, h, w, hn, int(center), d2)
        # a skipped point is one the full pass leaves unchanged (the bound is valid) ...
        assert torch.equal(full[skip], before[skip])
        skipped += int(skip.sum())
        # ... and the recomputed rows agree with the full pass up to the float32 dot product's
        # accumulation order (BLAS may sum a short row subset in another order)
        np.testing.assert_allclose(d2.numpy(), full.numpy(), rtol=1e-5)
        d2 = full.clone()  # continue from the full pass's values
    assert skipped > 10 * n  # the bound does skip most points once a few centers exist


def test_kmeanspp_falls_back_to_uniform_when_all_distances_vanish() -> None:
    h = np.ones((10, 3))
    a = np.ones((10, 1))
    got, _ = K.kmeanspp_kronecker(
        torch.from_numpy(a), torch.from_numpy(h), 10, np.random.default_rng(0)
    )
    assert sorted(got.tolist()) == list(range(10))
    assert got.tolist() == naive_kmeanspp(h, 10, np.random.default_rng(0), None)


def test_blocked_helpers_match_dense(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(K, "BLOCK_ELEMENTS", 128)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(70, 5))
    # class-wise minimum distance to a reference set
    ref, ref_labels = rng.normal(size=(15, 5)), rng.integers(0, 5, 15)
    ref_labels[ref_labels == 3] = 2  # class 3 has no reference row
    cm = K.class_min_sqdist(torch.from_numpy(x), torch.from_numpy(ref), ref_labels, 5).numpy()
    d = cdist(x, ref, "sqeuclidean")
    for c in range(5):
        expect = d[:, ref_labels == c].min(1) if (ref_labels == c).any() else np.full(70, np.inf)
        np.testing.assert_allclose(cm[:, c], expect, atol=1e-10)


def test_device_and_parameter_checks() -> None:
    assert check_device("cpu") == "cpu" and check_device("auto") == "auto"
    assert check_device(CPU) == "cpu"
    with pytest.raises(ValueError, match="device"):
        check_device("tpu")
    with pytest.raises(TypeError, match="device"):
        check_device(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            check_device("cuda")
    assert check_int(3, "m") == 3 and check_int(None, "m", allow_none=True) is None
    with pytest.raises(ValueError, match="`m` must be >= 1"):
        check_int(0, "m")
    with pytest.raises(TypeError, match="`m` must be an integer"):
        check_int(1.5, "m")
    with pytest.raises(TypeError, match="`m` must be an integer"):
        check_int(True, "m")
    assert check_float(2, "x") == 2.0
    with pytest.raises(ValueError, match="`x` must be in"):
        check_float(0.0, "x", low=0.0, low_open=True)


def test_torch_only_code_path_gives_the_same_picks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA branch of the kernels (torch matmul and dtype casts) run on the CPU: same picks."""
    import ncal.strategies as S
    from strategy_contract import make_signals

    sig = make_signals(n=150, n_labeled=30)
    cases = [
        ("coreset", {"candidates": 4, "max_pending": 3}),
        ("cdal", {}),
        ("badge", {}),
        ("bait", {"pca_dim": 4, "max_candidates": 60}),
        ("sisom_proxy", {}),
        ("probcover", {}),
        ("typiclust", {"max_clusters": 20}),
    ]
    before = {n: S.get(n, **p).select(sig, 12, np.random.default_rng(0)).indices for n, p in cases}
    monkeypatch.setattr(K, "matmul", lambda a, b: a @ b)
    monkeypatch.setattr(K, "to64", lambda t: t.to(torch.float64))
    for name, params in cases:
        after = S.get(name, **params).select(sig, 12, np.random.default_rng(0)).indices
        assert after.tolist() == before[name].tolist(), name
