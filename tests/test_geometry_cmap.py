"""Proofs for ncal.geometry.cmap: closed forms == brute-force recomputation (docs/algorithms.md §6.10).

The brute force lives here only: append the candidate with its hypothetical label, recompute every
class mean, the reference ``g`` and all pairwise cosines from scratch, subtract CMA(L).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from ncal.geometry import cma, cmap, cmap_first_order

CENTERINGS = ("none", "frozen", "moving")
MU_GS = ("class_avg", "sample_avg")
PAIRS = ("signed", "abs")
RTOL = 1e-12  # relative to max |CMAP| (the tolerance of docs/algorithms.md §6.10; holds on every case below)
ATOL = 1e-13  # CMA lies in [-1, 1]; absolute round-off of either side is ~1e-16..1e-14
# Hard labels under centering="moving", pair="signed" (E1Blocks) round the float64 differences
# h - mu_c to float32 for their one product: 6.7e-7 of max |CMAP| at worst in 5,000 random cases
RTOL_E1_BLOCKS = 1e-5


def rtol_of(centering: str, pair: str, expected: bool) -> float:
    """The tolerance of the kernel that a flag combination uses."""
    return RTOL_E1_BLOCKS if (centering, pair, expected) == ("moving", "signed", False) else RTOL


# ----------------------------------------------------------------------------- brute force
def _global_mean(H: np.ndarray, y: np.ndarray, mu_G: str) -> np.ndarray:
    if mu_G == "sample_avg":
        return H.mean(axis=0)
    return np.stack([H[y == c].mean(axis=0) for c in np.unique(y)]).mean(axis=0)


def brute_cma(H: np.ndarray, y: np.ndarray, g: np.ndarray, pair: str) -> float:
    mu = np.stack([H[y == c].mean(axis=0) for c in np.unique(y)])
    m = mu - g
    mb = m / np.linalg.norm(m, axis=1, keepdims=True)
    cos = mb @ mb.T
    phi = cos if pair == "signed" else np.abs(cos)
    C = mu.shape[0]
    return float((phi.sum() - np.trace(phi)) / (C * (C - 1)))


def brute_cmap(HL, yL, HU, pred, centering, mu_G, pair, probs=None) -> np.ndarray:
    HL, HU = np.asarray(HL, np.float64), np.asarray(HU, np.float64)
    g0 = np.zeros(HL.shape[1]) if centering == "none" else _global_mean(HL, yL, mu_G)
    base = brute_cma(HL, yL, g0, pair)

    def one(h: np.ndarray, c: int) -> float:
        H2, y2 = np.vstack([HL, h]), np.append(yL, c)
        g = _global_mean(H2, y2, mu_G) if centering == "moving" else g0
        return brute_cma(H2, y2, g, pair) - base

    if probs is None:
        return np.array([one(h, c) for h, c in zip(HU, pred)])
    return np.array(
        [sum(p[c] * one(h, c) for c in range(len(p)) if p[c] > 0) for h, p in zip(HU, probs)]
    )


def assert_matches(got: np.ndarray, ref: np.ndarray, rtol: float = RTOL) -> None:
    assert got.shape == ref.shape
    tol = rtol * np.abs(ref).max() + ATOL
    err = np.abs(got - ref).max()
    assert err <= tol, f"max |err| {err:.3e} > tol {tol:.3e} (max |ref| {np.abs(ref).max():.3e})"


def make_case(seed: int, C: int, d: int, extra: int = 0, per_class=(1, 5), n_pool: int = 9):
    """Clustered labeled set with C present classes (counts in ``per_class``, so some n_c = 1 and
    imbalanced), ``extra`` absent classes that the pool may still be predicted into."""
    rng = np.random.default_rng(seed)
    K = C + extra
    counts = rng.integers(per_class[0], per_class[1] + 1, C)
    yL = np.repeat(np.arange(C), counts)
    centers = rng.normal(0.0, 2.0, (K, d))
    HL = centers[yL] + rng.normal(0.0, 1.0, (yL.size, d))
    HU = centers[rng.integers(0, K, n_pool)] + rng.normal(0.0, 1.5, (n_pool, d))
    pred = rng.integers(0, K, n_pool)
    if extra:
        pred[0] = C  # always at least one candidate predicted into an absent class
    z = rng.normal(0.0, 1.5, (n_pool, K))
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return HL, yL, HU, pred, probs, K


FLAGS = list(itertools.product(CENTERINGS, MU_GS, PAIRS, (False, True)))


# ----------------------------------------------------------------------------- brute-force equality
@pytest.mark.parametrize(("centering", "mu_G", "pair", "expected"), FLAGS)
def test_every_flag_combination_matches_brute_force(centering, mu_G, pair, expected) -> None:
    for seed, C in ((0, 2), (1, 3), (2, 6)):
        HL, yL, HU, pred, probs, K = make_case(seed, C, d=5, extra=1)
        got = cmap(
            HL, yL, HU, pred, probs_pool=probs if expected else None, num_classes=K,
            centering=centering, mu_G=mu_G, pair=pair, expected=expected, block_size=4,
        )  # fmt: skip
        ref = brute_cmap(HL, yL, HU, pred, centering, mu_G, pair, probs if expected else None)
        assert_matches(got, ref, rtol_of(centering, pair, expected))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    C=st.integers(2, 6),
    d=st.integers(2, 9),
    extra=st.integers(0, 2),
    n_pool=st.integers(1, 12),
    block=st.integers(1, 14),
    flags=st.sampled_from(FLAGS),
    scale=st.sampled_from([1e-3, 1.0, 50.0]),
)
def test_property_matches_brute_force(seed, C, d, extra, n_pool, block, flags, scale) -> None:
    centering, mu_G, pair, expected = flags
    HL, yL, HU, pred, probs, K = make_case(seed, C, d, extra, n_pool=n_pool)
    # d >= 2: in 1-D every centred mean is a scalar that is often ~0, and the Gram-based O(C^2)
    # updates lose digits in proportion to (|u| / rho_min)^2 (conditioning, not a formula error).
    HL, HU = HL * scale, HU * scale
    got = cmap(
        HL, yL, HU, pred, probs_pool=probs if expected else None, num_classes=K,
        centering=centering, mu_G=mu_G, pair=pair, expected=expected, block_size=block,
    )  # fmt: skip
    ref = brute_cmap(HL, yL, HU, pred, centering, mu_G, pair, probs if expected else None)
    assert_matches(got, ref, rtol_of(centering, pair, expected))


@pytest.mark.parametrize(("C", "d", "per_class"), [(10, 64, (1, 6)), (100, 512, (1, 3))])
@pytest.mark.parametrize("centering", CENTERINGS)
@pytest.mark.parametrize("pair", PAIRS)
def test_large_class_counts_match_brute_force(C, d, per_class, centering, pair) -> None:
    HL, yL, HU, pred, _, K = make_case(7, C, d, extra=1, per_class=per_class, n_pool=5)
    for mu_G in MU_GS:
        got = cmap(HL, yL, HU, pred, num_classes=K, centering=centering, mu_G=mu_G, pair=pair)
        assert_matches(
            got,
            brute_cmap(HL, yL, HU, pred, centering, mu_G, pair),
            rtol_of(centering, pair, False),
        )


def test_relu_like_features_and_many_per_class() -> None:
    """Non-negative features (uncentred cosines all large) and n_c up to 200: cancellation-prone."""
    rng = np.random.default_rng(3)
    C, d = 5, 16
    centers = np.abs(rng.normal(0, 2, (C, d)))
    yL = np.concatenate([np.arange(C), rng.integers(0, C, 600)])
    HL = np.maximum(centers[yL] + rng.normal(0, 0.5, (yL.size, d)), 0)
    HU = np.maximum(centers[rng.integers(0, C, 20)] + rng.normal(0, 0.5, (20, d)), 0)
    pred = rng.integers(0, C, 20)
    for centering, mu_G, pair in itertools.product(CENTERINGS, MU_GS, PAIRS):
        got = cmap(HL, yL, HU, pred, centering=centering, mu_G=mu_G, pair=pair)
        assert_matches(
            got,
            brute_cmap(HL, yL, HU, pred, centering, mu_G, pair),
            rtol_of(centering, pair, False),
        )


@pytest.mark.parametrize("centering", CENTERINGS)
def test_empty_class_policies(centering) -> None:
    HL, yL, HU, pred, probs, K = make_case(11, 4, 6, extra=2, n_pool=12)
    absent = pred >= 4
    assert absent.any() and (~absent).any()
    formula = cmap(HL, yL, HU, pred, num_classes=K, centering=centering)
    ref = brute_cmap(HL, yL, HU, pred, centering, "class_avg", "signed")
    assert_matches(formula, ref, rtol_of(centering, "signed", False))
    forced = cmap(HL, yL, HU, pred, num_classes=K, centering=centering, empty_class="force_select")
    skipped = cmap(HL, yL, HU, pred, num_classes=K, centering=centering, empty_class="skip")
    assert np.all(forced[absent] == np.inf) and np.all(skipped[absent] == -np.inf)
    np.testing.assert_array_equal(forced[~absent], formula[~absent])
    np.testing.assert_array_equal(skipped[~absent], formula[~absent])
    # expected=True: the policy applies to the candidates whose argmax class is absent
    exp = cmap(HL, yL, HU, None, probs_pool=probs, num_classes=K, centering=centering,
               expected=True, empty_class="skip")  # fmt: skip
    arg_absent = probs.argmax(axis=1) >= 4
    assert np.all(exp[arg_absent] == -np.inf)
    ref = brute_cmap(HL, yL, HU, pred, centering, "class_avg", "signed", probs)
    assert_matches(exp[~arg_absent], ref[~arg_absent])


def test_two_classes_moving_is_exactly_zero() -> None:
    HL, yL, HU, pred, _, _ = make_case(5, 2, 7, n_pool=10)
    for mu_G, pair in itertools.product(MU_GS, PAIRS):
        out = cmap(HL, yL, HU, pred, centering="moving", mu_G=mu_G, pair=pair)
        assert np.all(out == 0.0)


# ----------------------------------------------------------------------------- cma
@pytest.mark.parametrize(
    ("centering", "mu_G", "pair"), list(itertools.product(CENTERINGS, MU_GS, PAIRS))
)
def test_cma_matches_brute_force(centering, mu_G, pair) -> None:
    HL, yL, *_ = make_case(2, 5, 8, extra=0)
    g = np.zeros(8) if centering == "none" else _global_mean(HL, yL, mu_G)
    got = cma(HL, yL, centering=centering, mu_G=mu_G, pair=pair)
    assert isinstance(got, float)
    assert got == pytest.approx(brute_cma(HL, yL, g, pair), abs=1e-15)


def simplex_etf(C: int, d: int, rng: np.random.Generator, scale: float = 3.0) -> np.ndarray:
    """C centred simplex-ETF vertices in R^d (d >= C), randomly rotated."""
    E = np.sqrt(C / (C - 1)) * (np.eye(C) - 1.0 / C)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return scale * (E @ Q[:C])


@pytest.mark.parametrize("C", [2, 3, 10])
def test_etf_sanity(C) -> None:
    """§6.10.6: labeled features on a centred ETF, zero scatter => CMA = -1/(C-1), E0 >= 0 and equal
    to ||mbar~_c - mbar_c||^2 / (C(C-1))."""
    rng = np.random.default_rng(C)
    d = C + 3
    V = simplex_etf(C, d, rng)
    yL = np.repeat(np.arange(C), rng.integers(1, 5, C))
    HL = V[yL]
    for centering in ("none", "frozen"):
        assert cma(HL, yL, centering=centering) == pytest.approx(-1.0 / (C - 1), abs=1e-14)
    HU = rng.normal(0.0, 2.0, (30, d))
    pred = rng.integers(0, C, 30)
    counts = np.bincount(yL, minlength=C)
    for centering in ("none", "frozen"):
        out = cmap(HL, yL, HU, pred, centering=centering)
        assert out.min() >= -1e-12
        new = (counts[pred, None] * V[pred] + HU) / (counts[pred, None] + 1)
        nb = new / np.linalg.norm(new, axis=1, keepdims=True)
        vb = V[pred] / np.linalg.norm(V[pred], axis=1, keepdims=True)
        expect = ((nb - vb) ** 2).sum(axis=1) / (C * (C - 1))
        np.testing.assert_allclose(out, expect, rtol=1e-9, atol=1e-15)


# ----------------------------------------------------------------------------- paper forms
def _moved_unit_means(HL, yL, HU, pred, centering):
    """Unit means before/after the hypothetical addition (none/frozen), and S."""
    g = np.zeros(HL.shape[1]) if centering == "none" else _global_mean(HL, yL, "class_avg")
    C = yL.max() + 1
    mu = np.stack([HL[yL == c].mean(0) for c in range(C)])
    n = np.bincount(yL)
    m = mu - g
    mb = m / np.linalg.norm(m, axis=1, keepdims=True)
    new = (n[pred, None] * m[pred] + (HU - g)) / (n[pred, None] + 1)
    nb = new / np.linalg.norm(new, axis=1, keepdims=True)
    return nb, mb[pred], mb.sum(axis=0), C


@pytest.mark.parametrize("centering", ["none", "frozen"])
def test_paper_form_sum(centering) -> None:
    """§6.10.2: E0 == 2/(C(C-1)) (mbar~_c - mbar_c).(S - mbar_c) with M the *sum* of unit means."""
    HL, yL, HU, pred, _, _ = make_case(21, 6, 10, n_pool=25)
    nb, mbc, S, C = _moved_unit_means(HL, yL, HU, pred, centering)
    paper = 2.0 / (C * (C - 1)) * np.einsum("ij,ij->i", nb - mbc, S[None] - mbc)
    assert_matches(cmap(HL, yL, HU, pred, centering=centering), paper)


@pytest.mark.parametrize("centering", ["none", "frozen"])
def test_paper_form_mean_identity(centering) -> None:
    """§6.10.3: with M = S/C the paper form is X/C + (C-1)/(2C) ||mbar~_c - mbar_c||^2, where
    X = C(C-1)/2 CMAP."""
    HL, yL, HU, pred, _, _ = make_case(22, 5, 9, n_pool=25)
    nb, mbc, S, C = _moved_unit_means(HL, yL, HU, pred, centering)
    paper_mean = np.einsum("ij,ij->i", nb - mbc, S[None] / C - mbc)
    X = C * (C - 1) / 2.0 * cmap(HL, yL, HU, pred, centering=centering)
    rhs = X / C + (C - 1) / (2.0 * C) * ((nb - mbc) ** 2).sum(axis=1)
    np.testing.assert_allclose(paper_mean, rhs, rtol=1e-11, atol=1e-15)


# ----------------------------------------------------------------------------- first order
def _first_order_error(n_c: int, centering: str, mu_G: str = "class_avg") -> float:
    rng = np.random.default_rng(0)
    C, d = 6, 12
    centers = rng.normal(0.0, 3.0, (C, d))
    yL = np.repeat(np.arange(C), n_c)
    pred = np.tile(np.arange(C), 20)
    HU = centers[pred] + rng.normal(0.0, 2.0, (pred.size, d))  # the same candidates for every n_c
    noise = rng.normal(0.0, 1.0, (yL.size, d)).reshape(C, n_c, d)
    noise -= noise.mean(axis=1, keepdims=True)  # class means exactly `centers` for every n_c
    HL = centers[yL] + noise.reshape(-1, d)
    exact = cmap(HL, yL, HU, pred, centering=centering, mu_G=mu_G)
    approx = cmap_first_order(HL, yL, HU, pred, centering=centering, mu_G=mu_G)
    return float(np.abs(approx - exact).max() / np.abs(exact).max())


@pytest.mark.parametrize(
    ("centering", "mu_G"),
    [
        ("none", "class_avg"),
        ("frozen", "class_avg"),
        ("moving", "class_avg"),
        ("moving", "sample_avg"),
    ],
)
def test_first_order_error_halves_when_n_doubles(centering, mu_G) -> None:
    """§6.10.4: A1 (and A1m) relative max error is O(1/n_c): it halves when n_c goes 50 -> 100."""
    e50 = _first_order_error(50, centering, mu_G)
    e100 = _first_order_error(100, centering, mu_G)
    assert e100 < 0.05
    assert 0.45 < e100 / e50 < 0.56, (e50, e100)


def test_first_order_is_exact_for_empty_classes() -> None:
    HL, yL, HU, pred, _, K = make_case(4, 4, 6, extra=1, n_pool=10)
    absent = pred >= 4
    a1 = cmap_first_order(HL, yL, HU, pred, num_classes=K)
    np.testing.assert_array_equal(a1[absent], cmap(HL, yL, HU, pred, num_classes=K)[absent])


# ----------------------------------------------------------------------------- invariances
def _all_flag_outputs(HL, yL, HU, pred, probs, K):
    out = {}
    for centering, mu_G, pair in itertools.product(CENTERINGS, MU_GS, PAIRS):
        out[centering, mu_G, pair] = cmap(
            HL, yL, HU, pred, num_classes=K, centering=centering, mu_G=mu_G, pair=pair
        )
        out[centering, mu_G, pair, "exp"] = cmap(
            HL, yL, HU, None, probs_pool=probs, num_classes=K, centering=centering, mu_G=mu_G,
            pair=pair, expected=True,
        )  # fmt: skip
    return out


def _assert_same(a: dict, b: dict, keys=None) -> None:
    for key in keys or a:
        if len(key) == 3 and rtol_of(key[0], key[2], False) == RTOL_E1_BLOCKS:
            rtol, atol = 1e-3, RTOL_E1_BLOCKS * np.abs(a[key]).max()
        else:
            rtol, atol = 1e-9, 1e-12 * np.abs(a[key]).max()
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=atol)


def test_invariant_to_scale_and_rotation() -> None:
    HL, yL, HU, pred, probs, K = make_case(31, 4, 6, extra=1, n_pool=10)
    base = _all_flag_outputs(HL, yL, HU, pred, probs, K)
    _assert_same(base, _all_flag_outputs(7.5 * HL, yL, 7.5 * HU, pred, probs, K))
    Q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(6, 6)))
    _assert_same(base, _all_flag_outputs(HL @ Q.T, yL, HU @ Q.T, pred, probs, K))


def test_translation_invariance_only_when_centred() -> None:
    HL, yL, HU, pred, probs, K = make_case(32, 4, 6, extra=1, n_pool=10)
    t = np.random.default_rng(2).normal(0.0, 5.0, 6)
    base = _all_flag_outputs(HL, yL, HU, pred, probs, K)
    moved = _all_flag_outputs(HL + t, yL, HU + t, pred, probs, K)
    _assert_same(base, moved, [k for k in base if k[0] != "none"])
    assert not np.allclose(
        base["none", "class_avg", "signed"], moved["none", "class_avg", "signed"]
    )


def test_invariant_to_class_relabelling() -> None:
    HL, yL, HU, pred, probs, K = make_case(33, 5, 6, extra=1, n_pool=10)
    perm = np.random.default_rng(3).permutation(K)  # old class c -> new id perm[c]
    inv = np.argsort(perm)
    base = _all_flag_outputs(HL, yL, HU, pred, probs, K)
    relab = _all_flag_outputs(HL, perm[yL], HU, perm[pred], probs[:, inv], K)
    _assert_same(base, relab)


# ----------------------------------------------------------------------------- implementation
@pytest.mark.parametrize(
    ("centering", "pair", "expected"), list(itertools.product(CENTERINGS, PAIRS, (False, True)))
)
def test_blocked_equals_unblocked(centering, pair, expected) -> None:
    HL, yL, HU, pred, probs, K = make_case(41, 5, 8, extra=1, n_pool=57)
    kw = dict(probs_pool=probs if expected else None, num_classes=K, centering=centering,
              pair=pair, expected=expected)  # fmt: skip
    full = cmap(HL, yL, HU, pred, block_size=10_000, **kw)
    tol = 1e-13 if rtol_of(centering, pair, expected) == RTOL else RTOL_E1_BLOCKS
    for b in (1, 7, 56):
        np.testing.assert_allclose(cmap(HL, yL, HU, pred, block_size=b, **kw), full,
                                   rtol=tol, atol=tol * np.abs(full).max())  # fmt: skip


@pytest.mark.parametrize("centering", CENTERINGS)
def test_float32_inputs_rank_like_float64(centering) -> None:
    rng = np.random.default_rng(5)
    C, d = 10, 64
    centers = np.abs(rng.normal(0, 2, (C, d)))
    yL = np.concatenate([np.arange(C), rng.integers(0, C, 300)])
    HL = np.maximum(centers[yL] + rng.normal(0, 1, (yL.size, d)), 0)
    pred = rng.integers(0, C, 400)
    HU = np.maximum(centers[pred] + rng.normal(0, 1, (400, d)), 0)
    f64 = cmap(HL, yL, HU, pred, centering=centering)
    f32 = cmap(HL.astype(np.float32), yL, HU.astype(np.float32), pred, centering=centering)
    assert f32.dtype == np.float64
    assert spearmanr(f64, f32).statistic > 0.999


def test_memmap_pool_equals_in_memory(tmp_path) -> None:
    HL, yL, HU, pred, probs, K = make_case(51, 4, 16, extra=1, n_pool=300)
    mm = np.lib.format.open_memmap(
        tmp_path / "pool.npy", mode="w+", dtype=np.float32, shape=HU.shape
    )
    mm[:] = HU
    mm.flush()
    del mm
    pool = np.load(tmp_path / "pool.npy", mmap_mode="r")
    for centering in CENTERINGS:
        # same blocking on both sides: BLAS rounding may depend on the block shape
        ref = cmap(
            HL, yL, HU.astype(np.float32), pred, num_classes=K, centering=centering, block_size=64
        )
        got = cmap(HL, yL, pool, pred, num_classes=K, centering=centering, block_size=64)
        np.testing.assert_array_equal(got, ref)
    ref = cmap(
        HL,
        yL,
        HU[7:].astype(np.float32),
        pred[7:],
        num_classes=K,
        centering="frozen",
        block_size=33,
    )
    got = cmap(HL, yL, pool[7:], pred[7:], num_classes=K, centering="frozen", block_size=33)
    np.testing.assert_array_equal(got, ref)  # a row-slice of a memmap (offset into the mapping)
    exp = cmap(HL, yL, pool, None, probs_pool=probs, num_classes=K, expected=True, block_size=50)
    assert_matches(
        exp, brute_cmap(HL, yL, np.asarray(pool), pred, "none", "class_avg", "signed", probs)
    )
    np.testing.assert_array_equal(np.asarray(pool), HU.astype(np.float32))  # pool untouched


def test_zero_norm_updated_mean_gives_zero_and_warns() -> None:
    HL = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 3.0]])
    yL = np.array([0, 1, 1])
    HU = np.array([[-1.0, 0.0], [1.0, 1.0]])  # first: class-0 mean becomes exactly 0
    with pytest.warns(RuntimeWarning, match="zero norm"):
        out = cmap(HL, yL, HU, np.array([0, 0]))
    assert out[0] == 0.0
    assert out[1] == pytest.approx(
        brute_cmap(HL, yL, HU[1:], [0], "none", "class_avg", "signed")[0]
    )


def test_no_warning_on_regular_input() -> None:
    HL, yL, HU, pred, _, K = make_case(52, 3, 4, extra=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cmap(HL, yL, HU, pred, num_classes=K, centering="moving", pair="abs")


# ----------------------------------------------------------------------------- bad inputs
@pytest.fixture
def case():
    HL, yL, HU, pred, probs, K = make_case(61, 3, 4, extra=1)
    return HL, yL, HU, pred, probs, K


def test_unlabeled_predicted_class_needs_num_classes(case) -> None:
    HL, yL, HU, pred, _, K = case
    assert pred.max() > yL.max()  # the case predicts a class no labeled sample has
    with pytest.raises(ValueError, match="pass `num_classes`"):
        cmap(HL, yL, HU, pred)
    assert np.isfinite(cmap(HL, yL, HU, pred, num_classes=K)).any()


def test_bad_inputs_raise_naming_the_argument(case) -> None:
    HL, yL, HU, pred, probs, K = case
    with pytest.raises(ValueError, match="labels_labeled"):
        cmap(HL, yL[:-1], HU, pred, num_classes=K)
    with pytest.raises(ValueError, match="pred_pool"):
        cmap(HL, yL, HU, pred[:-1], num_classes=K)
    with pytest.raises(ValueError, match="features_labeled"):
        bad = HL.copy()
        bad[0, 0] = np.nan
        cmap(bad, yL, HU, pred, num_classes=K)
    with pytest.raises(ValueError, match=r"features_pool.*row 3"):
        bad = HU.copy()
        bad[3, 1] = np.inf
        cmap(HL, yL, bad, pred, block_size=2, num_classes=K)
    with pytest.raises(ValueError, match=r"labels_labeled.*num_classes"):
        cmap(HL, np.where(yL == 0, 9, yL), HU, pred, num_classes=K)
    with pytest.raises(ValueError, match=r"labels_labeled.*negative"):
        cmap(HL, np.where(yL == 0, -1, yL), HU, pred, num_classes=K)
    with pytest.raises(ValueError, match="pred_pool"):
        cmap(HL, yL, HU, np.full(len(HU), K), num_classes=K)
    with pytest.raises(ValueError, match=r"features_pool.*features_labeled"):
        cmap(HL, yL, HU[:, :3], pred, num_classes=K)
    with pytest.raises(ValueError, match="pred_pool"):
        cmap(HL, yL, HU, num_classes=K)
    with pytest.raises(ValueError, match="probs_pool"):
        cmap(HL, yL, HU, pred, expected=True, num_classes=K)
    with pytest.raises(ValueError, match=r"probs_pool.*sum to 1"):
        cmap(HL, yL, HU, pred, probs_pool=probs * 2, expected=True, num_classes=K)
    with pytest.raises(ValueError, match=r"probs_pool.*columns"):
        cmap(HL, yL, HU, pred, probs_pool=probs[:, :-1], num_classes=K, expected=True)
    with pytest.raises(ValueError, match=r"probs_pool.*rows"):
        cmap(HL, yL, HU, pred, probs_pool=probs[:-1], expected=True, num_classes=K)
    with pytest.raises(ValueError, match="centering"):
        cmap(HL, yL, HU, pred, centering="sideways", num_classes=K)
    with pytest.raises(ValueError, match="mu_G"):
        cmap(HL, yL, HU, pred, mu_G="median", num_classes=K)
    with pytest.raises(ValueError, match="pair"):
        cmap(HL, yL, HU, pred, pair="squared", num_classes=K)
    with pytest.raises(ValueError, match="empty_class"):
        cmap(HL, yL, HU, pred, empty_class="ignore", num_classes=K)
    with pytest.raises(ValueError, match="block_size"):
        cmap(HL, yL, HU, pred, block_size=0, num_classes=K)
    with pytest.raises(TypeError, match="expected"):
        cmap(HL, yL, HU, pred, expected="yes", num_classes=K)
    with pytest.raises(TypeError, match="features_pool"):
        cmap(HL, yL, np.array([["a", "b"]]), [0], num_classes=K)
    with pytest.raises(TypeError, match="labels_labeled"):
        cmap(HL, yL + 0.5, HU, pred, num_classes=K)
    with pytest.raises(TypeError, match="num_classes"):
        cmap(HL, yL, HU, pred, num_classes=2.0)


def test_fewer_than_two_classes_raise(case) -> None:
    HL, yL, HU, pred, _, _ = case
    with pytest.raises(ValueError, match=r"at least two labeled classes.*labels_labeled"):
        cmap(HL, np.zeros_like(yL), HU, np.zeros_like(pred))
    with pytest.raises(ValueError, match=r"at least two labeled classes.*`labels`"):
        cma(HL, np.zeros_like(yL))


def test_zero_labeled_class_mean_raises() -> None:
    HL = np.array([[1.0, -1.0], [-1.0, 1.0], [2.0, 0.5]])
    with pytest.raises(ValueError, match="zero norm"):
        cmap(HL, [0, 0, 1], HL, [0, 1, 1])


def test_empty_pool_returns_empty(case) -> None:
    HL, yL, _, _, _, _ = case
    out = cmap(HL, yL, np.zeros((0, HL.shape[1])), np.zeros(0, dtype=int))
    assert out.shape == (0,) and out.dtype == np.float64


# ----------------------------------------------------------------------------- class-grouped E0 path
@pytest.mark.parametrize("centering", ["none", "frozen"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grouped_e0_is_bit_identical_to_the_per_row_kernel(centering, dtype) -> None:
    """Hard signed CMAP (none/frozen) runs one predicted class at a time; every value must equal
    the per-row kernel's (`CmapGeometry.e0_signed` on gathered rows) bit for bit."""
    from ncal.geometry._cmap_kernels import CmapGeometry
    from ncal.geometry.stats import ClassStats

    HL, yL, HU, pred, _, K = make_case(7, 6, 33, extra=0, n_pool=300)
    HU = HU.astype(dtype)
    stats = ClassStats(HL, yL, K)
    geo = CmapGeometry(stats, centering, "class_avg", "signed")
    U = HU.astype(np.float64) - (geo.g[None, :] if centering != "none" else 0.0)
    ref, _ = geo.e0_signed(U, stats.row_of[pred])
    for block in (1, 37, 8192):
        got = cmap(HL, yL, HU, pred, num_classes=K, centering=centering, block_size=block)
        assert np.array_equal(got, ref)


@pytest.mark.parametrize("policy", ["formula", "force_select", "skip"])
def test_grouped_e0_with_absent_classes_and_policies(policy) -> None:
    HL, yL, HU, pred, _, K = make_case(8, 4, 6, extra=2, n_pool=40)
    got = cmap(HL, yL, HU, pred, num_classes=K, empty_class=policy, block_size=9)
    ref = brute_cmap(HL, yL, HU, pred, "none", "class_avg", "signed")
    absent = pred >= 4
    assert absent.any() and (~absent).any()
    assert_matches(got[~absent], ref[~absent])
    if policy == "formula":
        assert_matches(got[absent], ref[absent])
    else:
        assert np.all(got[absent] == (np.inf if policy == "force_select" else -np.inf))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_grouped_e0_names_the_first_nonfinite_row(bad) -> None:
    HL, yL, HU, pred, _, K = make_case(9, 4, 6, n_pool=30)
    HU = HU.astype(np.float32)
    HU[23, 2] = bad
    HU[27, 0] = bad
    with pytest.raises(ValueError, match=r"features_pool.*\(row 23\)"):
        cmap(HL, yL, HU, pred, num_classes=K, block_size=20)


def test_grouped_e0_float64_overflowing_norms_are_not_an_error() -> None:
    """Finite float64 rows whose |u|^2 overflows are scored (as before), not reported as NaN."""
    HL, yL, HU, pred, _, K = make_case(10, 3, 4, n_pool=6)
    HU[2] = 1e200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = cmap(HL, yL, HU, pred, num_classes=K)
    assert np.isfinite(out[[0, 1, 3, 4, 5]]).all()


# ----------------------------------------------------------------------------- E1 (moving, signed)
def _e1_signed_previous(geo, P: np.ndarray, uu: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The E1 kernel as it was before the block rewrite (``P = U @ M.T``, ``uu = |u|^2``), kept
    as the reference the current one must reproduce."""
    b, C = P.shape
    idx = np.arange(b)
    n1 = geo.n[r] + 1.0
    pc = P[idx, r]
    Kc = geo.K[:, r].T
    m_delta = (P - Kc) / n1[:, None]
    dd = (uu - 2.0 * pc + geo.K[r, r]) / n1**2
    if geo.mu_G == "sample_avg":
        e = 1.0 / (geo.NL + 1.0)
        m_eta, ee, de = P * e, uu * e * e, (uu - pc) * e / n1
    else:
        m_eta, ee, de = m_delta / C, dd / C**2, dd / C
    d_rho2 = -2.0 * m_eta + ee[:, None]
    d_rho2[idx, r] = 2.0 * (m_delta[idx, r] - m_eta[idx, r]) + dd - 2.0 * de + ee
    new_rho2 = geo.rho**2 + d_rho2
    degenerate = (new_rho2 < 1e-24).any(axis=1)
    new_rho = np.sqrt(np.where(new_rho2 < 1e-24, 1.0, new_rho2))
    v = 1.0 / new_rho
    dv = -d_rho2 / (geo.rho * new_rho * (geo.rho + new_rho))
    vsum, vc = v.sum(axis=1), v[idx, r]
    if geo.mu_G == "sample_avg":
        cu, cm = -e * vsum + vc / n1, -vc / n1
    else:
        cu = (vc - vsum / C) / n1
        cm = -cu
    x = dv
    x[idx, r] += cm
    xx = np.einsum("ij,ij->i", x @ geo.K, x)
    xu = np.einsum("ij,ij->i", x, P)
    val = xx + 2.0 * cu * xu + cu * cu * uu + 2.0 * (x @ geo.MS + cu * (P @ (1.0 / geo.rho)))
    return np.where(degenerate, 0.0, val * geo.norm)


def _e1_case(seed, C, d, per_class, n_pool, scale, offset, dtype):
    rng = np.random.default_rng(seed)
    yL = np.repeat(np.arange(C), rng.integers(per_class[0], per_class[1] + 1, C))
    centers = np.abs(rng.normal(0.0, 1.0, (C, d))) + offset
    HL = scale * np.maximum(centers[yL] + rng.normal(0.0, 0.7, (yL.size, d)), 0.0)
    pred = rng.integers(0, C, n_pool)
    HU = scale * np.maximum(centers[pred] + rng.normal(0.0, 0.7, (n_pool, d)), 0.0)
    return HL, yL, HU.astype(dtype), pred


def _check_e1_against_previous(HL, yL, HU, pred, mu_G, blocks) -> None:
    from ncal.geometry._cmap_kernels import CmapGeometry
    from ncal.geometry.stats import ClassStats

    C = int(yL.max()) + 1
    stats = ClassStats(HL, yL, C)
    geo = CmapGeometry(stats, "moving", mu_G, "signed")
    U = np.asarray(HU, np.float64) - geo.g
    P, uu, r = U @ geo.M.T, np.einsum("ij,ij->i", U, U), stats.row_of[pred]
    ref = _e1_signed_previous(geo, P, uu, r)
    tol = 1e-12 * np.abs(ref).max()
    assert np.abs(geo.e1_signed(P, uu, r)[0] - ref).max() <= tol  # the path of expected=True
    for block in blocks:  # the block path of hard labels, straight from the stored rows
        got = cmap(HL, yL, HU, pred, num_classes=C, centering="moving", mu_G=mu_G,
                   block_size=block)  # fmt: skip
        assert np.abs(got - ref).max() <= RTOL_E1_BLOCKS * np.abs(ref).max()


@pytest.mark.parametrize(
    ("C", "d", "per_class"), [(3, 5, (1, 4)), (12, 40, (1, 30)), (100, 96, (1, 8))]
)
@pytest.mark.parametrize("mu_G", MU_GS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0.0, 30.0])
def test_e1_equals_the_previous_kernel(C, d, per_class, mu_G, dtype, offset) -> None:
    """The rewritten E1 (difference form on ``E = m.v - e|v|^2/2``, triangular C^2 product)
    reproduces the previous kernel to 1e-12 of the largest |CMAP|; its block path from stored rows
    (float32 product) to ``RTOL_E1_BLOCKS``."""
    HL, yL, HU, pred = _e1_case(C + d, C, d, per_class, 700, 1.0, offset, dtype)
    _check_e1_against_previous(HL, yL, HU, pred, mu_G, (1, 333, 8192))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    C=st.integers(3, 12),
    d=st.integers(2, 24),
    n_pool=st.integers(1, 40),
    block=st.integers(1, 17),
    mu_G=st.sampled_from(MU_GS),
    scale=st.sampled_from([1e-3, 1.0, 50.0]),
    offset=st.sampled_from([0.0, 20.0]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_property_e1_equals_the_previous_kernel(
    seed, C, d, n_pool, block, mu_G, scale, offset, dtype
) -> None:
    HL, yL, HU, pred = _e1_case(seed, C, d, (1, 6), n_pool, scale, offset, dtype)
    _check_e1_against_previous(HL, yL, HU, pred, mu_G, (block,))


def test_e1_float32_product_picks_like_float64() -> None:
    """The block path's float32 product changes no pick: the top 10% of 5,000 ReLU-like
    candidates is the one the float64 kernel ranks there, in the same order."""
    from ncal.geometry._cmap_kernels import CmapGeometry
    from ncal.geometry.stats import ClassStats

    HL, yL, HU, pred = _e1_case(8, 10, 64, (20, 40), 5000, 1.0, 0.0, np.float32)
    stats = ClassStats(HL, yL, 10)
    geo = CmapGeometry(stats, "moving", "class_avg", "signed")
    U = np.asarray(HU, np.float64) - geo.g
    ref = geo.e1_signed(U @ geo.M.T, np.einsum("ij,ij->i", U, U), stats.row_of[pred])[0]
    got = cmap(HL, yL, HU, pred, num_classes=10, centering="moving")
    top = np.argsort(-ref, kind="stable")[:500]
    np.testing.assert_array_equal(np.argsort(-got, kind="stable")[:500], top)
    assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max()


@pytest.mark.parametrize("mu_G", MU_GS)
def test_e1_rows_prone_to_cancellation_get_the_float64_product(mu_G, monkeypatch) -> None:
    """A candidate that moves a centred mean to (nearly) zero norm, where ``rho'^2 = rho^2 -
    2 e E`` cancels, is scored with the float64 product; with every row sent to that product the
    block path is the float64 kernel to 1e-12."""
    from ncal.geometry import _cmap_kernels
    from ncal.geometry._cmap_kernels import CmapGeometry
    from ncal.geometry.stats import ClassStats

    HL, yL, HU, pred = _e1_case(5, 6, 9, (2, 5), 40, 1.0, 0.0, np.float64)
    stats = ClassStats(HL, yL, 6)
    r = stats.row_of[pred]
    geo = CmapGeometry(stats, "moving", mu_G, "signed")
    U = HU - geo.g
    ref = _e1_signed_previous(geo, U @ geo.M.T, np.einsum("ij,ij->i", U, U), r)
    monkeypatch.setattr(_cmap_kernels, "_E1_MAX_CANCEL", 0.0)
    got = cmap(HL, yL, HU, pred, num_classes=6, centering="moving", mu_G=mu_G, block_size=7)
    assert np.abs(got - ref).max() <= 1e-12 * np.abs(ref).max()
    monkeypatch.undo()

    tab = geo._e1_tables()
    j = (r[3] + 1) % 6  # adding h to its class moves the reference by e v: onto mu_j at v = m_j / e
    HU[3] = tab.anchor[r[3]] + geo.M[j] / tab.e[r[3]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the row may come out degenerate
        got = cmap(HL, yL, HU, pred, num_classes=6, centering="moving", mu_G=mu_G)
        v = HU[3] - tab.anchor[r[3]]
        vv = np.array([v @ v])
        E = (v @ geo.M.T - 0.5 * tab.e[r[3]] * vv)[None, :]
        expect = geo._e1_core(E, vv, r[3:4])[0]
    np.testing.assert_array_equal(got[3], expect[0])


@pytest.mark.parametrize("mu_G", MU_GS)
def test_e1_degenerate_rows_are_zero_without_warnings(mu_G) -> None:
    """A row whose updated centred mean has (numerically) zero or negative squared norm is set
    to 0 and flagged; the other rows keep their values, and nothing warns."""
    from ncal.geometry._cmap_kernels import CmapGeometry
    from ncal.geometry.stats import ClassStats

    HL, yL, HU, pred = _e1_case(3, 5, 7, (2, 6), 6, 1.0, 0.0, np.float64)
    stats = ClassStats(HL, yL, 5)
    geo = CmapGeometry(stats, "moving", mu_G, "signed")
    U = HU - geo.g
    P, uu, r = U @ geo.M.T, np.einsum("ij,ij->i", U, U), stats.row_of[pred]
    e = geo._e1_tables().e[r]
    E = P - geo.K[r] if mu_G == "class_avg" else P.copy()
    vv = uu - 2.0 * P[np.arange(6), r] + geo.K[r, r] if mu_G == "class_avg" else uu
    E -= (0.5 * e * vv)[:, None]
    ref, deg = geo._e1_core(E, vv, r)
    assert not deg.any()
    j = (r[1] + 1) % 5, (r[2] + 1) % 5
    # rho'^2 = rho^2 - 2 e E = 0 exactly (E nudged by ulps until the product rounds to rho^2)
    rho2, x = geo.rho[j[0]] ** 2, geo.rho[j[0]] ** 2 / (2.0 * e[1])
    while rho2 + x * (-2.0 * e[1]) != 0.0:
        x = np.nextafter(x, np.inf if rho2 + x * (-2.0 * e[1]) > 0.0 else -np.inf)
    E[1, j[0]] = x
    E[2, j[1]] = geo.rho[j[1]] ** 2 / e[2]  # rho'^2 = -rho^2 < 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got, deg = geo._e1_core(E, vv, r)
    assert deg.tolist() == [False, True, True, False, False, False]
    assert got[1] == 0.0 and got[2] == 0.0
    np.testing.assert_array_equal(got[[0, 3, 4, 5]], ref[[0, 3, 4, 5]])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("extra", [0, 1])
def test_e1_names_the_first_nonfinite_row(bad, extra) -> None:
    HL, yL, HU, pred, _, K = make_case(9, 4, 6, extra=extra, n_pool=30)
    HU = HU.astype(np.float32)
    HU[23, 2] = bad
    HU[27, 0] = bad
    with pytest.raises(ValueError, match=r"features_pool.*\(row 23\)"):
        cmap(HL, yL, HU, pred, num_classes=K, centering="moving", block_size=20)


def test_e1_float64_overflowing_norms_are_not_an_error() -> None:
    HL, yL, HU, pred, _, K = make_case(10, 3, 4, n_pool=6)
    HU[2] = 1e200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = cmap(HL, yL, HU, pred, num_classes=K, centering="moving")
    assert np.isfinite(out[[0, 1, 3, 4, 5]]).all()
