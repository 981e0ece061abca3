"""Long-tail counts (Appendix A) and many/medium/few-shot accuracy (ALGORITHMS.md §4.4)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from ncal.evaluation.longtail import long_tail_counts, long_tail_indices, shot_accuracy


def test_cifar10_lt_counts_rho_100():
    counts = long_tail_counts(5000, 10, 100)
    assert counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert sum(counts) == 12_406


@pytest.mark.parametrize(
    ("n_max", "C", "rho", "total"),
    [
        (5000, 10, 50, 13_996),
        (5000, 10, 10, 20_431),
        (500, 100, 100, 10_847),
        (500, 100, 50, 12_608),
        (500, 100, 10, 19_573),
    ],
)
def test_appendix_a_totals(n_max, C, rho, total):
    counts = long_tail_counts(n_max, C, rho)
    assert sum(counts) == total
    assert counts[0] == n_max and counts[-1] == int(n_max / rho)
    assert all(a >= b for a, b in itertools.pairwise(counts))


def test_cifar100_lt_head_and_tail():
    counts = long_tail_counts(500, 100, 100)
    assert counts[:5] == [500, 477, 455, 434, 415] and counts[-5:] == [6, 5, 5, 5, 5]
    # floor of the closed form, checked against exact rational-power arithmetic in float64
    assert counts == [int(np.floor(500 * 100 ** (-c / 99) + 1e-9)) for c in range(100)]


def test_long_tail_indices():
    y = np.repeat(np.arange(5), 40)
    idx = long_tail_indices(y, 10, seed=0)
    assert np.bincount(y[idx]).tolist() == long_tail_counts(40, 5, 10)
    np.testing.assert_array_equal(idx, long_tail_indices(y, 10, seed=0))
    assert not np.array_equal(idx, long_tail_indices(y, 10, seed=1))
    with pytest.raises(ValueError, match="quota"):
        long_tail_indices(y, 10, n_max=50)


def test_shot_accuracy_constructed_case():
    # classes: 0 many (500), 1 many (101), 2 medium (100), 3 medium (20), 4 few (19), 5 few (1)
    train_counts = np.array([500, 101, 100, 20, 19, 1])
    y_true = np.repeat(np.arange(6), 4)
    y_pred = y_true.copy()
    y_pred[[0]] = 5  # class 0: 3/4
    y_pred[[8, 9]] = 0  # class 2: 2/4
    y_pred[[16, 17, 18, 19]] = 1  # class 4: 0/4
    r = shot_accuracy(y_true, y_pred, train_counts)
    assert r["overall"] == pytest.approx(17 / 24)
    assert r["many"] == pytest.approx((0.75 + 1.0) / 2)
    assert r["medium"] == pytest.approx((0.5 + 1.0) / 2)
    assert r["few"] == pytest.approx((0.0 + 1.0) / 2)
    assert (r["n_many"], r["n_medium"], r["n_few"]) == (2, 2, 2)
    json.dumps(r)


def test_shot_accuracy_empty_group_and_class_average():
    # unbalanced test set: group accuracy is the mean of per-class accuracies
    y_true = np.array([0, 0, 0, 0, 1])
    y_pred = np.array([0, 0, 0, 0, 0])
    r = shot_accuracy(y_true, y_pred, np.array([200, 300]))
    assert r["many"] == pytest.approx(0.5) and r["overall"] == pytest.approx(0.8)
    assert r["medium"] is None and r["few"] is None and r["n_few"] == 0
    with pytest.raises(ValueError, match="train_class_counts"):
        shot_accuracy(np.array([3]), np.array([3]), np.array([1, 2]))
