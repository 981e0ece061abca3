"""ncal.geometry.nc and ClassStats against direct numpy formulas (docs/algorithms.md §3, §4.5)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ncal.geometry import ClassStats, inter_class_distances, nc_metrics


def make_data(seed: int = 0, C: int = 5, d: int = 12, absent: tuple[int, ...] = ()):
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 15, C)
    counts[list(absent)] = 0
    y = np.repeat(np.arange(C), counts)
    centers = rng.normal(0.0, 3.0, (C, d))
    x = centers[y] + rng.normal(0.0, 1.0, (y.size, d))
    W = rng.normal(0.0, 1.0, (C, d))
    b = rng.normal(0.0, 0.5, C)
    return x, y, W, b


def reference(x, y, W, b, mu_G="class_avg"):
    """Direct formulas with d x d matrices and loops (test-only reference)."""
    cls = np.unique(y)
    C = cls.size
    mu = np.stack([x[y == c].mean(0) for c in cls])
    g = mu.mean(0) if mu_G == "class_avg" else x.mean(0)
    M = mu - g  # (C, d)
    N, d = x.shape
    Sw = np.zeros((d, d))
    for c, m in zip(cls, mu):
        D = x[y == c] - m
        Sw += D.T @ D
    Sw /= N
    Sb = M.T @ M / C
    nc1 = np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-10, hermitian=True)) / C
    out = {"nc1": nc1, "nc1_quotient": np.trace(Sw) / np.trace(Sb)}

    def equi(A):
        n = np.linalg.norm(A, axis=1)
        V = (A / n[:, None]).T  # (d, C) like the reference code
        G = V.T @ V
        off = G[~np.eye(C, dtype=bool)]
        G2 = G + 1.0 / (C - 1)
        G2 -= np.diag(np.diag(G2))
        return n.std(ddof=1) / n.mean(), off.std(ddof=1), np.abs(G2).sum() / (C * (C - 1))

    def etf(A):
        gram = A @ A.T
        E = (np.eye(C) - np.ones((C, C)) / C) / np.sqrt(C - 1)
        return np.linalg.norm(gram / np.linalg.norm(gram) - E)

    out["nc2_equinorm_M"], out["nc2_equiangular_M"], out["nc2_maxangle_M"] = equi(M)
    out["etf_M"] = etf(M)
    if W is not None:
        Wp, bp = W[cls], b[cls]
        out["nc2_equinorm_W"], out["nc2_equiangular_W"], out["nc2_maxangle_W"] = equi(Wp)
        out["etf_W"] = etf(Wp)
        out["nc3"] = np.linalg.norm(Wp.T / np.linalg.norm(Wp) - M.T / np.linalg.norm(M)) ** 2
        WM = Wp @ M.T
        E = (np.eye(C) - np.ones((C, C)) / C) / np.sqrt(C - 1)
        out["nc3_structure"] = np.linalg.norm(WM / np.linalg.norm(WM) - E)
        out["nc3_cos_mean"] = np.mean(
            [w @ m / np.linalg.norm(w) / np.linalg.norm(m) for w, m in zip(Wp, M)]
        )
        mism = 0
        for h in x:
            clf = cls[np.argmax(Wp @ h + bp)]
            ncc = cls[np.argmin([np.linalg.norm(h - m) for m in mu])]
            mism += clf != ncc
        out["nc4_mismatch"] = mism / N
    sig = [np.mean(np.sum((x[y == c] - m) ** 2, axis=1)) for c, m in zip(cls, mu)]
    cd = [
        (sig[i] + sig[j]) / (2 * np.sum((mu[i] - mu[j]) ** 2))
        for i in range(C)
        for j in range(i + 1, C)
    ]
    out["cdnv_mean"] = np.mean(cd)
    return out


@pytest.mark.parametrize("mu_G", ["class_avg", "sample_avg"])
@pytest.mark.parametrize("absent", [(), (2,)])
def test_metrics_match_direct_formulas(mu_G, absent) -> None:
    x, y, W, b = make_data(1, absent=absent)
    got = nc_metrics(x, y, W, b, mu_G=mu_G)
    ref = reference(x, y, W, b, mu_G)
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, rel=1e-8, abs=1e-12), key
    assert got["num_classes_present"] == 5 - len(absent)
    assert got["n_samples"] == len(y)


def test_nc4_mismatch_is_nontrivial_and_uses_bias() -> None:
    x, y, W, b = make_data(2)
    with_b = nc_metrics(x, y, W, b)["nc4_mismatch"]
    assert 0.0 < with_b < 1.0
    shifted = nc_metrics(x, y, W, b + np.array([100.0, 0, 0, 0, 0]))["nc4_mismatch"]
    assert shifted == pytest.approx(np.mean(y != 0))  # the classifier always says class 0


def test_absent_classes_are_dropped_from_W_consistently() -> None:
    """Class 2 absent: identical to the data relabelled without it and W/b without row 2."""
    x, y, W, b = make_data(3, absent=(2,))
    got = nc_metrics(x, y, W, b)
    keep = np.array([0, 1, 3, 4])
    y2 = np.searchsorted(keep, y)
    ref = nc_metrics(x, y2, W[keep], b[keep])
    for key in got:
        assert got[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-14, nan_ok=True), key


def test_exact_simplex_etf_collapse() -> None:
    """Zero within-class scatter on a centred simplex ETF with self-dual W: NC1..NC4 all vanish."""
    rng = np.random.default_rng(4)
    C, d = 6, 10
    E = np.sqrt(C / (C - 1)) * (np.eye(C) - 1.0 / C)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    V = 2.5 * E @ Q[:C]  # (C, d) ETF vertices
    y = np.repeat(np.arange(C), 4)
    x = V[y] + 7.0 * Q[C]  # a common offset orthogonal to the ETF: removed by centring
    out = nc_metrics(x, y, 0.3 * V, np.zeros(C))
    for key in (
        "nc1",
        "nc2_equinorm_M",
        "nc2_equinorm_W",
        "nc2_equiangular_M",
        "nc2_maxangle_M",
        "nc2_maxangle_W",
        "etf_M",
        "etf_W",
        "nc3",
        "nc3_structure",
        "nc4_mismatch",
        "cdnv_mean",
    ):
        assert abs(out[key]) < 1e-10, (key, out[key])
    assert out["nc3_cos_mean"] == pytest.approx(1.0)


def test_without_W_the_W_metrics_are_nan_and_json_serialisable() -> None:
    x, y, _, _ = make_data(5)
    out = nc_metrics(x, y)
    for key in ("nc2_equinorm_W", "etf_W", "nc3", "nc4_mismatch"):
        assert math.isnan(out[key])
    assert not math.isnan(out["nc1"])
    assert all(type(v) is float for v in out.values())
    json.loads(json.dumps(out))  # plain floats (NaN as JSON's NaN literal)


def test_single_class_gives_nan_not_error() -> None:
    x, y, W, b = make_data(6)
    out = nc_metrics(x[y == 0], y[y == 0], W, b)
    assert out["num_classes_present"] == 1.0
    assert math.isnan(out["nc1"]) and math.isnan(out["nc4_mismatch"])


def test_bad_inputs() -> None:
    x, y, W, b = make_data(7)
    with pytest.raises(ValueError, match="W"):
        nc_metrics(x, y, W[:, :-1], b)
    with pytest.raises(ValueError, match="`b`"):
        nc_metrics(x, y, W, b[:-1])
    with pytest.raises(ValueError, match="`b` was given without `W`"):
        nc_metrics(x, y, None, b)
    with pytest.raises(ValueError, match="labels"):
        nc_metrics(x, y, W[:3], b[:3])  # labels 3, 4 outside [0, 3)
    with pytest.raises(ValueError, match="labels"):
        nc_metrics(x, y[:-1])
    with pytest.raises(ValueError, match="features"):
        bad = x.copy()
        bad[0, 0] = np.inf
        nc_metrics(bad, y)
    with pytest.raises(ValueError, match="mu_G"):
        nc_metrics(x, y, mu_G="median")


# ----------------------------------------------------------------------------- ClassStats
def test_class_stats_against_numpy() -> None:
    x, y, _, _ = make_data(8, absent=(1,))
    s = ClassStats(x, y, num_classes=6)
    assert s.num_classes == 6
    np.testing.assert_array_equal(s.present, [0, 2, 3, 4])
    np.testing.assert_array_equal(s.row_of, [0, -1, 1, 2, 3, -1])
    for row, c in enumerate(s.present):
        xc = x[y == c]
        assert s.counts[row] == len(xc)
        np.testing.assert_allclose(s.means[row], xc.mean(0), rtol=1e-13)
        np.testing.assert_allclose(s.within_ss[row], ((xc - xc.mean(0)) ** 2).sum(), rtol=1e-12)
    np.testing.assert_allclose(s.sample_avg, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(s.class_avg, s.means.mean(0), rtol=1e-13)
    np.testing.assert_allclose(s.centred_means("sample_avg"), s.means - x.mean(0))
    np.testing.assert_array_equal(s.rows([4, 1]), [3, -1])


# ----------------------------------------------------------------------------- distances
def test_inter_class_distances_match_loops() -> None:
    x, y, _, _ = make_data(9, absent=(3,))
    out = inter_class_distances(x, y)
    cls = np.unique(y)
    mu = np.stack([x[y == c].mean(0) for c in cls])
    pairs = [(i, j) for i in range(len(cls)) for j in range(i + 1, len(cls))]
    raw = np.mean([np.linalg.norm(mu[i] - mu[j]) for i, j in pairs])
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    mun = np.stack([xn[y == c].mean(0) for c in cls])
    normfeat = np.mean([np.linalg.norm(mun[i] - mun[j]) for i, j in pairs])
    m = mu - mu.mean(0)
    mb = m / np.linalg.norm(m, axis=1, keepdims=True)
    normmean = np.mean([np.sqrt(2 - 2 * mb[i] @ mb[j]) for i, j in pairs])
    sigma = np.mean(
        [np.sqrt(np.mean(np.sum((x[y == c] - mu[k]) ** 2, 1))) for k, c in enumerate(cls)]
    )
    assert out["raw"] == pytest.approx(raw, rel=1e-12)
    assert out["normfeat"] == pytest.approx(normfeat, rel=1e-12)
    assert out["normmean"] == pytest.approx(normmean, rel=1e-10)
    assert out["separation_ratio"] == pytest.approx(raw / sigma, rel=1e-12)
    assert out["normfeat"] <= 2.0 and out["normmean"] <= 2.0
    assert all(type(v) is float for v in out.values())


def test_inter_class_distances_scale() -> None:
    x, y, _, _ = make_data(10)
    a, b = inter_class_distances(x, y), inter_class_distances(4.0 * x, y)
    assert b["raw"] == pytest.approx(4.0 * a["raw"])
    for key in ("normfeat", "normmean", "separation_ratio"):
        assert b[key] == pytest.approx(a[key], rel=1e-12)
    one = inter_class_distances(x[y == 0], y[y == 0])
    assert all(math.isnan(v) for v in one.values())
