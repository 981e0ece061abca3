"""OOD scores and metrics against sklearn / scipy / brute-force references (docs/algorithms.md
§4.1)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ncal.evaluation import ood
from ncal.evaluation.ood import (
    energy_score,
    evaluate_ood,
    knn_k_eff,
    knn_score,
    mahalanobis_score,
    msp_score,
    ood_metrics,
)


def _labels(n_in, n_out):
    return np.r_[np.ones(n_in), np.zeros(n_out)]


def _ref_fpr95(s_in, s_out):
    fpr, tpr, _ = roc_curve(
        _labels(s_in.size, s_out.size), np.r_[s_in, s_out], drop_intermediate=False
    )
    return fpr[np.argmax(tpr >= 0.95)]


# ------------------------------------------------------------------------------------ metrics
@pytest.mark.parametrize("seed", range(6))
def test_metrics_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = rng.integers(5, 60, size=2)
    # coarse integer scores → many ties within and across the two sets
    s_in = rng.integers(0, 8, size=n_in).astype(float) + 1.0
    s_out = rng.integers(0, 8, size=n_out).astype(float)
    m = ood_metrics(s_in, s_out)
    y, s = _labels(n_in, n_out), np.r_[s_in, s_out]
    assert m["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["fpr95"] == pytest.approx(_ref_fpr95(s_in, s_out), abs=1e-12)
    assert m["aupr_in"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert m["aupr_out"] == pytest.approx(average_precision_score(1 - y, -s), abs=1e-12)
    assert m["convention"] == "ID positive"
    json.dumps(m)


def test_auroc_is_mann_whitney_with_mid_ranks_by_hand():
    # pairs (in, out): 3>1, 3>2, 3=3(½), 2>1, 2=2(½), 2<3 → (1+1+.5+1+.5+0)/6
    m = ood_metrics(np.array([3.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    assert m["auroc"] == pytest.approx(4.0 / 6.0)


def test_auroc_symmetry_and_fpr_hand_case():
    rng = np.random.default_rng(1)
    s_in, s_out = rng.normal(1, 1, 40), rng.normal(0, 1, 30)
    a = ood_metrics(s_in, s_out)
    # swapping roles and negating the scores gives the same AUROC; AUPR-In ↔ AUPR-Out
    b = ood_metrics(-s_out, -s_in)
    assert a["auroc"] == pytest.approx(b["auroc"], abs=1e-14)
    assert a["aupr_in"] == pytest.approx(b["aupr_out"], abs=1e-14)
    assert a["aupr_out"] == pytest.approx(b["aupr_in"], abs=1e-14)
    # 20 ID scores 1..20: λ = 2 (19/20 = 95% of ID have S ≥ 2); OOD ≥ 2 → 2 of 4
    hand = ood_metrics(np.arange(1.0, 21.0), np.array([0.5, 1.5, 2.0, 30.0]))
    assert hand["fpr95"] == pytest.approx(0.5)


def test_fpr95_matches_knn_ood_variant_without_ties():
    rng = np.random.default_rng(3)
    s_in, s_out = rng.normal(1, 1, 200), rng.normal(0, 1, 300)
    lam = np.sort(s_in)[round(0.05 * s_in.size)]
    assert ood_metrics(s_in, s_out)["fpr95"] == pytest.approx(np.mean(s_out > lam), abs=1 / 300)


def test_perfect_and_inverted_separation():
    m = ood_metrics(np.array([5.0, 6, 7]), np.array([1.0, 2]))
    assert (m["auroc"], m["fpr95"], m["aupr_in"], m["aupr_out"]) == (1.0, 0.0, 1.0, 1.0)
    assert ood_metrics(np.array([1.0, 2]), np.array([5.0, 6]))["auroc"] == 0.0


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="s_out"):
        ood_metrics(np.ones(3), np.array([]))
    with pytest.raises(ValueError, match="s_in"):
        ood_metrics(np.array([1.0, np.nan]), np.ones(2))


# ------------------------------------------------------------------------------------ scores
def test_msp_and_energy_against_direct_formulas():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, size=(20, 7))
    np.testing.assert_allclose(msp_score(z), softmax(z, axis=1).max(axis=1), rtol=1e-12)
    np.testing.assert_allclose(energy_score(z), np.log(np.exp(z).sum(axis=1)), rtol=1e-12)
    T = 2.5
    np.testing.assert_allclose(
        energy_score(z, T), T * np.log(np.exp(z / T).sum(axis=1)), rtol=1e-12
    )
    assert np.isfinite(msp_score(np.array([[1e4, 0.0, -1e4]]))).all()
    with pytest.raises(ValueError, match="T"):
        energy_score(z, 0.0)


def _gaussian_model(rng, d, C):
    """Class means and a shared covariance factor."""
    means = rng.normal(0, 3, size=(C, d))
    A = rng.normal(size=(d, d)) / np.sqrt(d)
    return means, np.linalg.cholesky(A @ A.T + 0.5 * np.eye(d))


def _sample(rng, means, L, n_per):
    y = np.repeat(np.arange(means.shape[0]), n_per)
    return means[y] + rng.normal(size=(y.size, means.shape[1])) @ L.T, y


def _gaussian_classes(rng, n_per, d, C):
    return _sample(rng, *_gaussian_model(rng, d, C), n_per)


def _direct_mahalanobis(x, h, y, precision):
    mus = np.stack([h[y == c].mean(0) for c in np.unique(y)])
    d = np.stack([np.einsum("ij,jk,ik->i", x - m, precision, x - m) for m in mus], axis=1)
    return -d.min(axis=1)


def test_mahalanobis_equals_direct_formula():
    rng = np.random.default_rng(0)
    h, y = _gaussian_classes(rng, 200, 5, 3)
    x = rng.normal(0, 4, size=(37, 5))
    centred = h - np.stack([h[y == c].mean(0) for c in range(3)])[y]
    cov = centred.T @ centred / h.shape[0]
    s, info = mahalanobis_score(x, h, y, shrinkage="none", block_size=8, return_info=True)
    np.testing.assert_allclose(s, _direct_mahalanobis(x, h, y, np.linalg.inv(cov)), rtol=1e-9)
    assert info["shrinkage"] == "none" and info["rank"] == 5
    # large labeled set → auto picks the empirical covariance (pseudo-inverse = inverse here)
    s_auto, info_auto = mahalanobis_score(x, h, y, return_info=True)
    assert info_auto["shrinkage"] == "pinv"
    np.testing.assert_allclose(s_auto, s, rtol=1e-9)


def test_mahalanobis_ledoit_wolf_matches_sklearn_and_auto_small_set():
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(1)
    h, y = _gaussian_classes(rng, 4, 20, 3)  # N_L = 12 < d = 20: empirical Σ is singular
    x = rng.normal(size=(9, 20))
    s, info = mahalanobis_score(x, h, y, return_info=True)
    assert info["shrinkage"] == "ledoit_wolf" and 0 < info["shrinkage_coef"] <= 1
    centred = h - np.stack([h[y == c].mean(0) for c in range(3)])[y]
    cov, _ = ledoit_wolf(centred, assume_centered=True)
    np.testing.assert_allclose(s, _direct_mahalanobis(x, h, y, np.linalg.inv(cov)), rtol=1e-8)
    with pytest.raises(ValueError, match="singular"):
        mahalanobis_score(x, h, y, shrinkage="none")
    s_p, info_p = mahalanobis_score(x, h, y, shrinkage="pinv", return_info=True)
    assert info_p["rank"] < 20
    emp = centred.T @ centred / h.shape[0]
    np.testing.assert_allclose(
        s_p, _direct_mahalanobis(x, h, y, np.linalg.pinv(emp, hermitian=True)), rtol=1e-6
    )


def test_mahalanobis_separates_shifted_gaussians():
    rng = np.random.default_rng(2)
    means, L = _gaussian_model(rng, 8, 4)
    h, y = _sample(rng, means, L, 100)
    x_in, _ = _sample(rng, means, L, 30)  # fresh ID samples
    x_out, _ = _sample(rng, means + 6.0, L, 30)  # same covariance, shifted means
    s_in, s_out = mahalanobis_score(x_in, h, y), mahalanobis_score(x_out, h, y)
    assert ood_metrics(s_in, s_out)["auroc"] > 0.95
    # ID samples score close to −d (χ²_d mean), far above the shifted ones
    assert np.median(s_in) > -3 * 8 > np.median(s_out)


def test_knn_score_equals_brute_force():
    rng = np.random.default_rng(0)
    bank, q = rng.normal(size=(300, 6)), rng.normal(size=(41, 6))
    bn = bank / (np.linalg.norm(bank, axis=1, keepdims=True) + 1e-10)
    qn = q / (np.linalg.norm(q, axis=1, keepdims=True) + 1e-10)
    dist = np.sqrt(((qn[:, None, :] - bn[None, :, :]) ** 2).sum(-1))
    for k in (1, 5, 50):
        s, info = knn_score(q, bank, k=k, k_scaling=False, backend="numpy", return_info=True)
        np.testing.assert_allclose(s, -np.sort(dist, axis=1)[:, k - 1], atol=1e-7)
        assert info["k_eff"] == k and info["backend"] == "numpy"


def test_knn_blocked_search_matches_unblocked(monkeypatch):
    rng = np.random.default_rng(5)
    bank, q = rng.normal(size=(120, 4)), rng.normal(size=(50, 4))
    full = knn_score(q, bank, k=3, k_scaling=False, backend="numpy")
    monkeypatch.setattr(ood, "_BLOCK_ELEMENTS", 240)  # 2 query rows per block
    np.testing.assert_array_equal(knn_score(q, bank, k=3, k_scaling=False, backend="numpy"), full)


def test_knn_k_eff_heuristic():
    assert knn_k_eff(50, 50_000) == 50
    assert knn_k_eff(50, 1000) == 1
    assert knn_k_eff(50, 5000) == 5
    assert knn_k_eff(1000, 10_000) == 200
    assert knn_k_eff(50, 30, k_scaling=False) == 30  # capped at the bank size
    with pytest.raises(ValueError, match="k"):
        knn_k_eff(0, 10)


def test_knn_faiss_backend_matches_numpy():
    rng = np.random.default_rng(0)
    bank, q = rng.normal(size=(500, 16)), rng.normal(size=(60, 16))
    a = knn_score(q, bank, k=7, k_scaling=False, backend="numpy")
    b = knn_score(q, bank, k=7, k_scaling=False, backend="faiss")
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_evaluate_ood_all_scores_and_json():
    rng = np.random.default_rng(0)
    C, d = 4, 6
    means, L = _gaussian_model(rng, d, C)
    h, y = _sample(rng, means, L, 60)
    f_in, _ = _sample(rng, means, L, 20)
    f_out = rng.normal(0, 1, size=(50, d)) + 15.0
    W = rng.normal(size=(C, d))
    res = evaluate_ood(f_in @ W.T, f_in, f_out @ W.T, f_out, h, y, k=50)
    assert set(res) == {"msp", "energy", "mahalanobis", "knn"}
    assert res["mahalanobis"]["auroc"] > 0.99
    assert res["knn"]["k_eff"] == 1 and res["knn"]["bank_size"] == 240
    assert res["mahalanobis"]["shrinkage"] in ("ledoit_wolf", "pinv")
    direct = ood_metrics(msp_score(f_in @ W.T), msp_score(f_out @ W.T))
    assert res["msp"] == direct
    json.dumps(res)
    only_logits = evaluate_ood(f_in @ W.T, None, f_out @ W.T, None, None, None)
    assert set(only_logits) == {"msp", "energy"}
    with pytest.raises(ValueError, match="scores"):
        evaluate_ood(f_in, f_in, f_out, f_out, h, y, scores=("odin",))
