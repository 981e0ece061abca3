"""Covariate corruptions: determinism, severity ordering, dtype/shape (docs/algorithms.md §4)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from ncal.evaluation.shift import CORRUPTIONS, corrupt, shifted_test_sets


def _images(shape, seed=0):
    """Smooth-ish test images with structure (a blob + texture), uint8."""
    rng = np.random.default_rng(seed)
    n, h, w = shape[:3]
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-((yy - h / 3) ** 2 + (xx - w / 2) ** 2) / (2 * (h / 6) ** 2))
    base = 200 * blob[None] + rng.integers(0, 56, size=(n, h, w))
    if len(shape) == 4:
        base = base[..., None] * np.linspace(0.6, 1.0, shape[3])
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(6, 28, 28), (5, 16, 16, 3)])
@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_shape_dtype_determinism_and_monotone_severity(kind, shape):
    x = _images(shape)
    outs = [corrupt(x, kind, s, seed=3) for s in range(1, 6)]
    for y in outs:
        assert y.dtype == np.uint8 and y.shape == x.shape
    np.testing.assert_array_equal(corrupt(x, kind, 4, seed=3), outs[3])
    diffs = [np.abs(y.astype(float) - x).mean() for y in outs]
    assert diffs[0] > 0
    assert all(a < b for a, b in itertools.pairwise(diffs)), diffs
    assert np.array_equal(x, _images(shape))  # input untouched


def test_noise_depends_on_seed_and_has_right_scale():
    x = np.full((4, 32, 32), 128, dtype=np.uint8)
    a, b = corrupt(x, "gaussian_noise", 5, seed=0), corrupt(x, "gaussian_noise", 5, seed=1)
    assert not np.array_equal(a, b)
    # σ = 0.10 on [0, 1] → 25.5 grey levels (no clipping around 128)
    assert (a.astype(float) - 128).std() == pytest.approx(25.5, rel=0.05)


def test_contrast_and_blur_against_direct_formulas():
    x = _images((3, 20, 20))
    xf = x / 255.0
    m = xf.mean(axis=(1, 2), keepdims=True)
    expected = np.clip(np.rint(((xf - m) * 0.4 + m) * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(corrupt(x, "contrast", 3), expected)
    blurred = np.stack([ndimage.gaussian_filter(im, 1.0, mode="nearest") for im in xf])
    got = corrupt(x, "gaussian_blur", 5).astype(float)
    assert np.abs(got - blurred * 255).max() <= 0.51  # float32 vs float64, then rounding


def test_rotation_is_a_signed_rotation_of_each_image():
    x = _images((8, 24, 24))
    y = corrupt(x, "rotation", 2, seed=5)
    for img, out in zip(x, y):
        cands = [
            np.clip(np.rint(ndimage.rotate(img / 255.0, a, reshape=False, order=1) * 255), 0, 255)
            for a in (20.0, -20.0)
        ]
        assert min(np.abs(c - out).max() for c in cands) <= 1


def test_shifted_test_sets_yields_every_combination_reproducibly():
    x = _images((4, 12, 12))
    sets = list(shifted_test_sets(x, severities=(1, 5), kinds=("gaussian_noise", "contrast")))
    assert [(k, s) for k, s, _ in sets] == [
        ("gaussian_noise", 1),
        ("gaussian_noise", 5),
        ("contrast", 1),
        ("contrast", 5),
    ]
    again = list(shifted_test_sets(x, severities=(5,), kinds=("gaussian_noise",)))
    np.testing.assert_array_equal(again[0][2], sets[1][2])  # independent of other sets


def test_bad_inputs():
    x = _images((2, 8, 8))
    with pytest.raises(TypeError, match="uint8"):
        corrupt(x.astype(np.float32), "contrast", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "contrast", 6)
    with pytest.raises(ValueError, match="kind"):
        corrupt(x, "fog", 1)
    with pytest.raises(ValueError, match="shape"):
        corrupt(x[0], "contrast", 1)
