"""collapse_report wires ncal.geometry NC metrics, given and clean labels (docs/algorithms.md
§3)."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _data(seed=0, C=4, d=6, n_per=25):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 5, size=(C, d))
    y = np.repeat(np.arange(C), n_per)
    h = means[y] + 0.5 * rng.normal(size=(y.size, d))
    noisy = y.copy()
    flip = rng.random(y.size) < 0.3
    noisy[flip] = (y[flip] + 1) % C
    W = means - means.mean(0)
    return h, noisy, y, W, np.zeros(C)


def test_collapse_report_given_and_clean():
    from ncal import geometry
    from ncal.evaluation.collapse import collapse_report

    h, noisy, clean, W, b = _data()
    r = collapse_report(h, noisy, clean, W, b, num_classes=4)
    assert r["given"] == geometry.nc_metrics(h, noisy, W, b, num_classes=4, mu_G="class_avg")
    assert r["clean"] == geometry.nc_metrics(h, clean, W, b, num_classes=4, mu_G="class_avg")
    assert r["inter_class_clean"] == geometry.inter_class_distances(h, clean, num_classes=4)
    assert r["label_noise_rate"] == pytest.approx(np.mean(noisy != clean))
    assert r["n"] == h.shape[0]
    json.dumps(r)
    # mislabeled points inflate within-class variability: NC1 with given labels is larger
    assert r["given"]["nc1"] > 10 * r["clean"]["nc1"]
    # relabelling pulls class means together: clean-label inter-class distance is larger
    assert r["inter_class_clean"]["raw"] > r["inter_class_given"]["raw"]


def test_collapse_report_without_clean_labels():
    from ncal.evaluation.collapse import collapse_report

    h, noisy, _, W, b = _data(1)
    r = collapse_report(h, noisy, None, W, b)
    assert set(r) == {"n", "given", "inter_class_given"}


def test_collapse_report_validates_label_length():
    from ncal.evaluation.collapse import collapse_report

    h, noisy, clean, W, b = _data(2)
    with pytest.raises(ValueError, match="labels_clean"):
        collapse_report(h, noisy, clean[:-1], W, b)
