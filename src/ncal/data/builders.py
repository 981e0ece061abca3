"""Pool construction: long-tailed subsets, stratified splits/subsamples, OOD-contaminated pools.

References
----------
Cao, K. et al. "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss" (LDAM-DRW),
NeurIPS 2019 — CIFAR-LT construction (``IMBALANCECIFAR10.gen_imbalanced_data``).
Cui, Y. et al. "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019.
Liu, Z. et al. "Large-Scale Long-Tailed Recognition in an Open World", CVPR 2019 (shot groups).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._utils.random import as_generator
from .._utils.validation import as_label_vector, check_k

#: Label given to out-of-distribution pool entries (no class of the label set applies).
NOT_IN_LABEL_SET = -1


def long_tail_counts(n_max: int, num_classes: int, rho: float) -> np.ndarray:
    """Per-class counts ``n_c = floor(n_max * (1/rho)**(c/(C-1)))`` of a long-tailed set.

    Parameters
    ----------
    n_max
        Count of the head class (class 0), e.g. 5000 for CIFAR-10, 500 for CIFAR-100.
    num_classes
        Number of classes ``C`` (>= 2).
    rho
        Imbalance ratio ``n_max / n_min`` (>= 1).

    Returns
    -------
    numpy.ndarray
        int64 counts in natural class order (Cao et al., 2019; docs/algorithms.md §4.4).
    """
    n_max = check_k(n_max, "n_max")
    if int(num_classes) < 2:
        raise ValueError(f"`num_classes` must be >= 2; got {num_classes}")
    if not np.isfinite(rho) or rho < 1:
        raise ValueError(
            f"`rho` (imbalance ratio n_max/n_min) must be a finite number >= 1; got {rho}"
        )
    imb = 1.0 / float(rho)
    # Same float expression as the reference (int() truncates like floor for positives).
    return np.array(
        [int(n_max * imb ** (c / (num_classes - 1.0))) for c in range(int(num_classes))],
        dtype=np.int64,
    )


def long_tail_indices(
    y: Any, rho: float, *, n_max: int | None = None, num_classes: int | None = None, seed: int = 0
) -> np.ndarray:
    """Indices of a long-tailed subset of ``y`` (CIFAR-10/100-LT construction).

    For each class ``c`` in natural order its indices are shuffled and the first ``n_c`` kept
    (:func:`long_tail_counts`). The shuffle uses a local ``numpy.random.RandomState(seed)`` with one
    ``shuffle`` per class, the same sequence as LDAM-DRW's ``np.random.seed(0)``, so with CIFAR's
    training order and ``seed=0`` the chosen images equal the reference CIFAR-LT sets.

    Parameters
    ----------
    y
        Clean labels of the balanced set.
    rho
        Imbalance ratio (>= 1).
    n_max
        Head-class count; default: the smallest class count of ``y`` (the balanced per-class size).
    num_classes
        Default ``max(y) + 1``.
    seed
        Shuffle seed (reference: 0).

    Returns
    -------
    numpy.ndarray
        int64 indices grouped by class in class order (the reference's order).
    """
    y = as_label_vector(y, "y", num_classes=num_classes)
    C = int(num_classes if num_classes is not None else y.max() + 1)
    have = np.bincount(y, minlength=C)
    if n_max is None:
        n_max = int(have.min())
    counts = long_tail_counts(n_max, C, rho)
    short = np.flatnonzero(counts > have)
    if short.size:
        c = int(short[0])
        raise ValueError(
            f"class {c} needs {counts[c]} samples for rho={rho}, n_max={n_max} but `y` has "
            f"{have[c]}"
        )
    rs = np.random.RandomState(seed)
    out = []
    for c in range(C):
        idx = np.flatnonzero(y == c)
        rs.shuffle(idx)
        out.append(idx[: counts[c]])
    return np.concatenate(out).astype(np.int64)


def _allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` over classes in proportion to ``counts`` (largest remainder; ties: low class)."""
    total = counts.sum()
    exact = counts * (n / total)
    alloc = np.floor(exact).astype(np.int64)
    rest = n - int(alloc.sum())
    if rest:
        frac = exact - alloc
        order = np.lexsort((np.arange(len(counts)), -frac))
        alloc[order[:rest]] += 1
    return np.minimum(alloc, counts)


def stratified_subsample(y: Any, n: int, seed: Any = 0) -> np.ndarray:
    """Draw ``n`` indices with class proportions as close to those of ``y`` as integers allow.

    Per-class quotas use largest-remainder rounding; members are drawn uniformly without
    replacement.

    Returns
    -------
    numpy.ndarray
        Sorted int64 indices into ``y``.
    """
    y = as_label_vector(y, "y")
    n = check_k(n, "n")
    if n > y.size:
        raise ValueError(f"`n`={n} exceeds the number of samples ({y.size})")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rng = as_generator(seed)
    counts = np.bincount(y)
    quota = _allocate(counts, n)
    picks = [
        rng.choice(np.flatnonzero(y == c), size=q, replace=False) for c, q in enumerate(quota) if q
    ]
    return np.sort(np.concatenate(picks)).astype(np.int64)


def stratified_split(y: Any, test_fraction: float, seed: Any = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split ``y``'s indices into (train, test) with ``round(test_fraction * n_c)`` test per class.

    Returns
    -------
    (train_idx, test_idx)
        Sorted int64 index arrays that partition ``range(len(y))``.
    """
    y = as_label_vector(y, "y")
    if not 0 < test_fraction < 1:
        raise ValueError(f"`test_fraction` must be in (0, 1); got {test_fraction}")
    rng = as_generator(seed)
    test = []
    for c in range(int(y.max()) + 1 if y.size else 0):
        idx = np.flatnonzero(y == c)
        k = round(test_fraction * idx.size)
        test.append(rng.permutation(idx)[:k])
    test_idx = np.sort(np.concatenate(test)).astype(np.int64) if test else np.zeros(0, np.int64)
    mask = np.ones(y.size, bool)
    mask[test_idx] = False
    return np.flatnonzero(mask).astype(np.int64), test_idx


def resize_images(x: Any, size: tuple[int, int]) -> np.ndarray:
    """Resize a stack of images by area averaging (each output pixel is the mean of the input area
    it covers), e.g. 28 x 28 Fashion-MNIST to the 8 x 8 of scikit-learn's digits.

    Parameters
    ----------
    x
        Images ``(N, H, W)`` or ``(N, H, W, C)``.
    size
        Output ``(height, width)``.

    Returns
    -------
    numpy.ndarray
        ``(N, *size)`` (channels kept), of ``x``'s dtype (rounded when it is an integer type).
    """
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise ValueError(f"`x` must be images (N, H, W) or (N, H, W, C); got shape {x.shape}")
    h, w = (int(s) for s in size)
    if h < 1 or w < 1:
        raise ValueError(f"`size` must be two positive ints; got {size!r}")
    result = np.empty((x.shape[0], h, w, *x.shape[3:]), dtype=x.dtype)
    chunk = 2048  # images at a time: keeps the upsampled float copy small
    for start in range(0, x.shape[0], chunk):
        out = x[start : start + chunk].astype(np.float32)
        for axis, n_out in ((1, h), (2, w)):
            n_in = out.shape[axis]
            # repeat up to a common multiple, then average blocks: exact area weights
            lcm = int(np.lcm(n_in, n_out))
            out = np.repeat(out, lcm // n_in, axis=axis)
            shape = (*out.shape[:axis], n_out, lcm // n_out, *out.shape[axis + 1 :])
            out = out.reshape(shape).mean(axis=axis + 1)
        if np.issubdtype(x.dtype, np.integer):
            info = np.iinfo(x.dtype)
            out = np.clip(np.rint(out), info.min, info.max)
        result[start : start + chunk] = out
    return result


def contaminate_pool(
    x_pool: Any, y_pool: Any, x_ood: Any, fraction: float, seed: Any = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mix out-of-distribution samples into an unlabeled pool.

    ``n_ood = round(fraction / (1 - fraction) * n_in)`` OOD rows are drawn without replacement from
    ``x_ood`` so that they form ``fraction`` of the returned pool; the combined pool is shuffled so
    OOD rows do not sit at the end (index order breaks ties in selection).

    Parameters
    ----------
    x_pool, y_pool
        In-distribution pool and its labels.
    x_ood
        Candidate OOD inputs with the same per-sample shape as ``x_pool``.
    fraction
        Share of OOD rows in the result, in ``[0, 1)``.
    seed
        Seed or ``numpy.random.Generator``.

    Returns
    -------
    (x, y, is_ood)
        ``y`` is :data:`NOT_IN_LABEL_SET` (-1) on OOD rows; ``is_ood`` is a bool mask.
    """
    x_pool = np.asarray(x_pool)
    x_ood = np.asarray(x_ood)
    y_pool = as_label_vector(y_pool, "y_pool", length=x_pool.shape[0])
    if x_pool.shape[1:] != x_ood.shape[1:]:
        raise ValueError(
            f"`x_ood` samples have shape {x_ood.shape[1:]} but `x_pool` samples have "
            f"{x_pool.shape[1:]}"
        )
    if not (np.isfinite(fraction) and 0 <= fraction < 1):
        raise ValueError(f"`fraction` must be in [0, 1); got {fraction}")
    n_in = x_pool.shape[0]
    n_ood = round(fraction / (1.0 - fraction) * n_in)
    if n_ood > x_ood.shape[0]:
        raise ValueError(
            f"fraction={fraction} of a {n_in}-sample pool needs {n_ood} OOD samples; `x_ood` has "
            f"{x_ood.shape[0]}"
        )
    rng = as_generator(seed)
    pick = rng.choice(x_ood.shape[0], size=n_ood, replace=False)
    x = np.concatenate([x_pool, x_ood[pick].astype(x_pool.dtype, copy=False)])
    y = np.concatenate([y_pool, np.full(n_ood, NOT_IN_LABEL_SET, dtype=np.int64)])
    is_ood = np.concatenate([np.zeros(n_in, bool), np.ones(n_ood, bool)])
    order = rng.permutation(n_in + n_ood)
    return x[order], y[order], is_ood[order]


def shot_groups(counts: Any, *, many: int = 100, few: int = 20) -> dict[str, np.ndarray]:
    """Group classes by count: many (> ``many``), medium (``few``..``many``), few (< ``few``).

    Thresholds follow Liu et al. (2019) as used for CIFAR-LT (docs/algorithms.md §4.4).

    Returns
    -------
    dict
        ``{"many": classes, "medium": classes, "few": classes}`` as int64 arrays.
    """
    counts = np.asarray(counts)
    if counts.ndim != 1 or (counts.size and (counts < 0).any()):
        raise ValueError("`counts` must be a 1-D array of non-negative per-class counts")
    return {
        "many": np.flatnonzero(counts > many).astype(np.int64),
        "medium": np.flatnonzero((counts >= few) & (counts <= many)).astype(np.int64),
        "few": np.flatnonzero(counts < few).astype(np.int64),
    }
