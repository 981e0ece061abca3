"""GCD: Hungarian accuracy v1/v2 on constructed cases, SS-k-means (docs/algorithms.md §4.3)."""

from __future__ import annotations

import json
from itertools import permutations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from ncal.evaluation.gcd import (
    cluster_accuracy_v1,
    cluster_accuracy_v2,
    evaluate_gcd,
    remap_old_first,
    semi_supervised_kmeans,
    split_known_novel,
)


def _brute_force_best_matching(y_true, y_pred, D):
    w = np.zeros((D, D), int)
    np.add.at(w, (y_pred, y_true), 1)
    return max(sum(w[p[j], j] for j in range(D)) for p in permutations(range(D))) / y_true.size


def test_permuted_clustering_scores_one():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, size=200)
    perm = rng.permutation(6)
    r = cluster_accuracy_v2(y, perm[y], old_classes=[0, 1, 2])
    assert r == {
        "all": 1.0,
        "old": 1.0,
        "new": 1.0,
        "n_old": int(np.isin(y, [0, 1, 2]).sum()),
        "n_new": int((~np.isin(y, [0, 1, 2])).sum()),
    }


def test_constructed_confusion_known_all_old_new():
    # classes 0,1 Old; 2 New.  cluster 0 = {0:10}, cluster 1 = {1:8, 2:6}, cluster 2 = {1:2, 2:4}
    y_true = np.r_[[0] * 10, [1] * 8, [2] * 6, [1] * 2, [2] * 4]
    y_pred = np.r_[[0] * 10, [1] * 14, [2] * 6]
    r = cluster_accuracy_v2(y_true, y_pred, old_classes=[0, 1])
    # optimal matching: 0→0 (10), 1→1 (8), 2→2 (4) = 22 (vs 1→2, 2→1: 6+2=8 < 12)
    assert r["all"] == pytest.approx(22 / 30)
    assert r["old"] == pytest.approx(18 / 20)
    assert r["new"] == pytest.approx(4 / 10)
    # v1 matches each subset separately: Old 18/20; New alone: best 6/10 (cluster 1 → class 2)
    v1 = cluster_accuracy_v1(y_true, y_pred, old_classes=[0, 1])
    assert v1["old"] == pytest.approx(18 / 20) and v1["new"] == pytest.approx(6 / 10)
    assert v1["all"] == pytest.approx(20 / 30 * 0.9 + 10 / 30 * 0.6)
    assert v1["all"] >= r["all"]  # v1 is optimistic


@pytest.mark.parametrize("seed", range(4))
def test_v2_all_equals_brute_force_and_reference_loop(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 5, size=60)
    y_pred = rng.integers(0, 5, size=60)
    old = [0, 1, 2]
    r = cluster_accuracy_v2(y_true, y_pred, old)
    assert r["all"] == pytest.approx(_brute_force_best_matching(y_true, y_pred, 5))
    # reference split_cluster_acc_v2 (GCD), transcribed
    D = max(y_pred.max(), y_true.max()) + 1
    w = np.zeros((D, D), int)
    for i in range(y_pred.size):
        w[y_pred[i], y_true[i]] += 1
    ind = np.vstack(linear_sum_assignment(w.max() - w)).T
    ind_map = {j: i for i, j in ind}
    mask = np.isin(y_true, old)
    old_acc = sum(w[ind_map[i], i] for i in set(y_true[mask])) / sum(
        w[:, i].sum() for i in set(y_true[mask])
    )
    new_acc = sum(w[ind_map[i], i] for i in set(y_true[~mask])) / sum(
        w[:, i].sum() for i in set(y_true[~mask])
    )
    assert r["old"] == pytest.approx(old_acc) and r["new"] == pytest.approx(new_acc)


def test_more_clusters_than_classes_count_as_errors():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 3, 1, 1])  # cluster 3 cannot be matched to class 0 as well
    assert cluster_accuracy_v2(y_true, y_pred, [0])["all"] == pytest.approx(0.75)
    assert cluster_accuracy_v2(y_true, y_pred, [0, 1])["new"] is None


def test_split_known_novel():
    old, new = split_known_novel(10, 0.6, seed=None)
    assert old.tolist() == [0, 1, 2, 3, 4, 5] and new.tolist() == [6, 7, 8, 9]
    o1, n1 = split_known_novel(100, 0.6, seed=3)
    o2, _ = split_known_novel(100, 0.6, seed=3)
    assert o1.size == 60 and n1.size == 40 and np.array_equal(o1, o2)
    assert np.union1d(o1, n1).tolist() == list(range(100))
    with pytest.raises(ValueError):
        split_known_novel(1)


def test_remap_old_first():
    assert remap_old_first(np.array([5, 2, 7, 2, 0]), [2, 7]).tolist() == [3, 0, 1, 0, 2]


def _clusters(rng, n_per, centres, noise):
    y = np.repeat(np.arange(len(centres)), n_per)
    return centres[y] + noise * rng.normal(size=(y.size, centres.shape[1])), y


def test_ss_kmeans_anchors_and_recovers_well_separated_clusters():
    rng = np.random.default_rng(0)
    d, C = 8, 6
    centres = np.eye(d)[:C] * 5 + 1.0  # distinct directions (features are L2-normalised)
    x, y = _clusters(rng, 50, centres, 0.3)
    old = np.arange(4)
    lab = np.isin(y, old) & (rng.random(y.size) < 0.5)
    res = evaluate_gcd(
        x[lab], y[lab], x[~lab], y[~lab], old, num_clusters=C, seed=0, include_v1=True
    )
    assert res["all"] == 1.0 and res["old"] == 1.0 and res["new"] == 1.0
    assert res["v1_all"] == 1.0
    json.dumps(res)
    fit = semi_supervised_kmeans(x[lab], y[lab], x[~lab], C, seed=0, n_init=2)
    # clusters 0..3 belong to labeled classes 0..3: unlabeled Old points land in their class cluster
    u_old = np.isin(y[~lab], old)
    assert np.array_equal(fit["unlabeled_pred"][u_old], y[~lab][u_old])
    assert fit["labeled_classes"].tolist() == [0, 1, 2, 3]


def test_ss_kmeans_inertia_matches_definition_and_is_seeded():
    rng = np.random.default_rng(1)
    x, y = _clusters(rng, 30, rng.normal(size=(5, 4)) * 3, 1.0)
    lab = y < 2
    a = semi_supervised_kmeans(x[lab], y[lab], x[~lab], 5, seed=3, n_init=3)
    b = semi_supervised_kmeans(x[lab], y[lab], x[~lab], 5, seed=3, n_init=3)
    np.testing.assert_array_equal(a["unlabeled_pred"], b["unlabeled_pred"])
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cen = a["centres"]
    inertia = ((xn[~lab] - cen[a["unlabeled_pred"]]) ** 2).sum() + (
        (xn[lab] - cen[y[lab]]) ** 2
    ).sum()
    assert a["inertia"] == pytest.approx(inertia)
    # the unlabeled assignment is the nearest centre
    d2 = ((xn[~lab][:, None] - cen[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(a["unlabeled_pred"], d2.argmin(1))


def test_evaluate_gcd_rejects_new_class_anchors():
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="old_classes"):
        evaluate_gcd(x[:4], np.array([0, 1, 2, 0]), x[4:], np.zeros(6, int), [0, 1], 3, 0)
