"""Linear probe: C chosen on validation only, refit, accuracy (docs/algorithms.md §4.2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ncal.evaluation.probe import linear_probe, mean_over_targets, stratified_split


def _blobs(rng, n_per, d, C, spread=1.0, scale=None):
    means = rng.normal(0, 4, size=(C, d))
    y = np.repeat(np.arange(C), n_per)
    x = means[y] + spread * rng.normal(size=(y.size, d))
    if scale is not None:
        x = x * scale
    return x, y


def test_separable_data_high_accuracy_and_json():
    rng = np.random.default_rng(0)
    scale = np.logspace(-2, 2, 8)  # wildly different feature scales: standardisation matters
    xtr, ytr = _blobs(np.random.default_rng(1), 40, 8, 4, scale=scale)
    xte, yte = _blobs(np.random.default_rng(1), 40, 8, 4, scale=scale)
    xte = xte + 0.1 * rng.normal(size=xte.shape) * scale
    r = linear_probe(xtr, ytr, xte, yte, seed=0)
    assert r["test_accuracy"] >= 0.97 and r["val_accuracy"] >= 0.95
    assert r["best_C"] in r["c_grid"]
    assert r["n_train"] == 160 and r["n_classes"] == 4
    json.dumps(r)


def test_chosen_C_ignores_test_labels_and_test_features():
    rng = np.random.default_rng(2)
    xtr, ytr = _blobs(rng, 30, 5, 3, spread=3.0)  # overlapping classes: C matters
    xte, yte = _blobs(rng, 30, 5, 3, spread=3.0)
    a = linear_probe(xtr, ytr, xte, yte, seed=4)
    b = linear_probe(xtr, ytr, xte[::-1] * 7.0, rng.permutation(yte), seed=4)
    assert a["best_C"] == b["best_C"]
    assert a["val_accuracies"] == b["val_accuracies"]
    assert a["c_grid"] == b["c_grid"]


def test_matches_manual_protocol():
    rng = np.random.default_rng(3)
    xtr, ytr = _blobs(rng, 25, 6, 3, spread=2.5)
    xte, yte = _blobs(rng, 25, 6, 3, spread=2.5)
    grid = [1e-3, 1e-1, 10.0]
    r = linear_probe(xtr, ytr, xte, yte, c_grid=grid, seed=7, max_extensions=0)
    fit, val = stratified_split(ytr, 0.2, 7)
    accs = []
    for C in grid:
        sc = StandardScaler().fit(xtr[fit])
        clf = LogisticRegression(C=C, max_iter=1000, random_state=7).fit(
            sc.transform(xtr[fit]), ytr[fit]
        )
        accs.append(clf.score(sc.transform(xtr[val]), ytr[val]))
    assert r["val_accuracies"] == pytest.approx(accs)
    assert r["val_accuracy"] == pytest.approx(max(accs))
    sc = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=r["best_C"], max_iter=1000, random_state=7).fit(
        sc.transform(xtr), ytr
    )
    assert r["test_accuracy"] == pytest.approx(clf.score(sc.transform(xte), yte))


def test_grid_extends_when_best_is_on_the_boundary():
    rng = np.random.default_rng(4)
    # many noisy dimensions, few samples: strong regularisation wins → lower boundary
    xtr, ytr = _blobs(rng, 15, 40, 2, spread=8.0)
    xte, yte = _blobs(rng, 15, 40, 2, spread=8.0)
    r = linear_probe(xtr, ytr, xte, yte, c_grid=[1e2, 1e3, 1e4], seed=0)
    assert r["grid_extensions"] >= 1 and min(r["c_grid"]) < 1e2


def test_stratified_split_is_seeded_and_stratified():
    y = np.repeat(np.arange(4), [10, 20, 5, 1])
    f1, v1 = stratified_split(y, 0.2, 0)
    _, v2 = stratified_split(y, 0.2, 0)
    np.testing.assert_array_equal(v1, v2)
    assert np.bincount(y[v1], minlength=4).tolist() == [2, 4, 1, 0]
    assert np.intersect1d(f1, v1).size == 0 and f1.size + v1.size == y.size


def test_mean_over_targets():
    res = {
        "a": {"test_accuracy": 0.5, "val_accuracy": 0.6},
        "b": {"test_accuracy": 0.9, "val_accuracy": 0.8},
    }
    m = mean_over_targets(res)
    assert m["test_accuracy"] == pytest.approx(0.7) and m["val_accuracy"] == pytest.approx(0.7)
    assert m["n_targets"] == 2 and m["per_target"] == {"a": 0.5, "b": 0.9}
    assert mean_over_targets([{"test_accuracy": 0.2}])["val_accuracy"] is None
    with pytest.raises(ValueError):
        mean_over_targets([])


def test_bad_inputs():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="two classes"):
        linear_probe(x, np.zeros(10, int), x, np.zeros(10, int))
    with pytest.raises(ValueError, match="columns"):
        linear_probe(x, np.arange(10) % 2, np.zeros((4, 2)), np.zeros(4, int))
