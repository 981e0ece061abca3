"""Covariate-shift test sets: graded, seeded corruptions of uint8 image arrays.

Severity parameters follow the CIFAR-10-C generator of Hendrycks & Dietterich (ICLR 2019,
``make_cifar_c.py``) for noise, blur and contrast; rotation angles are this project's choice
(ImageNet-C has no rotation). Only numpy / scipy.ndimage are used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage

from .._utils.random import as_generator, rng_for
from .._utils.validation import check_choice

CORRUPTIONS = ("gaussian_noise", "gaussian_blur", "rotation", "contrast")

# severity 1..5 (CIFAR-10-C values; images scaled to [0, 1])
_NOISE_STD = (0.04, 0.06, 0.08, 0.09, 0.10)
_BLUR_SIGMA = (0.4, 0.6, 0.7, 0.8, 1.0)
_CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)
_ROTATION_DEG = (10.0, 20.0, 30.0, 45.0, 60.0)
_CHUNK = 1024  # images per chunk: keeps the float32 working copy small


def _check_images(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype != np.uint8:
        raise TypeError(f"`x` must be a uint8 image array; got dtype {arr.dtype}")
    if arr.ndim not in (3, 4):
        raise ValueError(f"`x` must have shape (N, H, W) or (N, H, W, C); got {arr.shape}")
    return arr


def _check_severity(severity: int) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)):
        raise TypeError(f"`severity` must be an integer 1..5; got {severity!r}")
    if not 1 <= severity <= 5:
        raise ValueError(f"`severity` must be in 1..5; got {severity}")
    return int(severity)


def _to_uint8(y: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def _spatial(ndim: int, value: float) -> tuple[float, ...]:
    # parameter per axis: 0 on the batch (and channel) axes, ``value`` on H and W
    return (0.0, value, value) if ndim == 3 else (0.0, value, value, 0.0)


def corrupt(
    x: np.ndarray, kind: str, severity: int, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Return a corrupted copy of ``x`` (same shape, uint8).

    Parameters
    ----------
    x : uint8 array (N, H, W) or (N, H, W, C)
    kind : one of :data:`CORRUPTIONS`
        ``gaussian_noise``: add N(0, σ²) with σ ∈ (.04, .06, .08, .09, .10) on the [0, 1] scale.
        ``gaussian_blur``: Gaussian filter over H and W with σ ∈ (.4, .6, .7, .8, 1.0) pixels
        (``mode="nearest"``). ``rotation``: rotate by ±(10, 20, 30, 45, 60)° about the centre
        (bilinear, black fill), sign drawn per image. ``contrast``: ``(x − m)·c + m`` with the
        per-image mean ``m`` and c ∈ (.75, .5, .4, .3, .15).
    severity : int in 1..5
    seed : int or numpy Generator
        Only noise and rotation signs are random; the same seed gives the same output.

    Returns
    -------
    uint8 array with the shape of ``x``.

    References
    ----------
    Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
    Perturbations", ICLR 2019.
    """
    arr = _check_images(x)
    check_choice(kind, "kind", CORRUPTIONS)
    s = _check_severity(severity) - 1
    rng = as_generator(seed)
    out = np.empty_like(arr)
    if kind == "rotation":
        signs = rng.choice(np.array([-1.0, 1.0]), size=arr.shape[0])
    for start in range(0, arr.shape[0], _CHUNK):
        xc = arr[start : start + _CHUNK].astype(np.float32) / 255.0
        if kind == "gaussian_noise":
            y = xc + rng.normal(0.0, _NOISE_STD[s], size=xc.shape).astype(np.float32)
        elif kind == "gaussian_blur":
            y = ndimage.gaussian_filter(
                xc, sigma=_spatial(arr.ndim, _BLUR_SIGMA[s]), mode="nearest"
            )
        elif kind == "contrast":
            m = xc.mean(axis=tuple(range(1, arr.ndim)), keepdims=True)
            y = (xc - m) * _CONTRAST[s] + m
        else:
            y = np.empty_like(xc)
            sg = signs[start : start + _CHUNK]
            for sign in (-1.0, 1.0):
                sel = sg == sign
                if sel.any():  # one call rotates every image of a sign in the (H, W) plane
                    y[sel] = ndimage.rotate(
                        xc[sel],
                        sign * _ROTATION_DEG[s],
                        axes=(1, 2),
                        reshape=False,
                        order=1,
                        mode="constant",
                        cval=0.0,
                    )
        out[start : start + _CHUNK] = _to_uint8(y)
    return out


def shifted_test_sets(
    x_test: np.ndarray,
    severities: Sequence[int] = (1, 3, 5),
    kinds: Sequence[str] = CORRUPTIONS,
    *,
    seed: int = 0,
) -> Iterator[tuple[str, int, np.ndarray]]:
    """Yield ``(kind, severity, corrupted x_test)`` for every kind × severity (lazily).

    Each set gets its own seed derived from ``(seed, kind index, severity)`` with
    ``numpy.random.SeedSequence``, so a set does not depend on which others are generated.
    """
    arr = _check_images(x_test)
    for kind in kinds:
        check_choice(kind, "kinds", CORRUPTIONS)
    for sev in severities:
        _check_severity(sev)
    for kind in kinds:
        for sev in severities:
            yield kind, int(sev), corrupt(arr, kind, sev, rng_for(seed, "corrupt", kind, int(sev)))
