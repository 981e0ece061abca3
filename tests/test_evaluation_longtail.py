"""Long-tail counts (Appendix A) and many/medium/few-shot accuracy (docs/algorithms.md §4.4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ncal.evaluation.longtail import shot_accuracy

# The long-tail profile itself (Appendix A counts) is tested in test_data_builders.py.


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
