"""Long-tailed datasets: exponential class counts, subsampling, many/medium/few-shot accuracy.

Spec: ALGORITHMS.md §4.4 and Appendix A.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import as_label_vector


def long_tail_counts(n_max: int, num_classes: int, rho: float) -> list[int]:
    """Per-class counts ``n_c = ⌊n_max · (1/ρ)^(c/(C−1))⌋`` for ``c = 0..C−1``.

    Parameters
    ----------
    n_max : int
        Count of the head class (the balanced set's per-class count: 5000 for CIFAR-10, 500 for
        CIFAR-100).
    num_classes : int
    rho : float
        Imbalance ratio ``n_max / n_min`` (>= 1).

    Returns
    -------
    list of int, non-increasing. CIFAR-10-LT with ρ = 100 gives
    ``[5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]``.

    References
    ----------
    Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss",
    NeurIPS 2019 (``IMBALANCECIFAR10.get_img_num_per_cls``); Cui et al., CVPR 2019.
    """
    if isinstance(n_max, bool) or not isinstance(n_max, (int, np.integer)) or n_max < 1:
        raise ValueError(f"`n_max` must be a positive integer; got {n_max!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"`num_classes` must be an integer; got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"`num_classes` must be >= 1; got {num_classes}")
    if not (np.isfinite(rho) and rho >= 1):
        raise ValueError(f"`rho` must be a finite imbalance ratio >= 1; got {rho!r}")
    if num_classes == 1:
        return [int(n_max)]
    imb_factor = 1.0 / rho
    # evaluated exactly as the reference code does, so the floors agree to the image
    return [int(n_max * (imb_factor ** (c / (num_classes - 1.0)))) for c in range(num_classes)]


def long_tail_indices(
    labels: np.ndarray, rho: float, *, n_max: int | None = None, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Indices of a long-tailed subset of a (balanced) labelled set.

    Class ``c`` (natural index order) keeps the first ``n_c`` of its shuffled indices, with
    ``n_c`` from :func:`long_tail_counts` (``n_max`` defaults to the smallest class count, so every
    class can supply its quota). Uses a seeded Generator instead of the reference's global
    ``np.random.seed(0)``, so the chosen images differ from the reference while the counts agree.

    Returns
    -------
    (sum n_c,) sorted int64 indices into ``labels``.
    """
    y = as_label_vector(labels, "labels")
    if y.size == 0:
        raise ValueError("`labels` must not be empty")
    num_classes = int(y.max()) + 1
    per_class = np.bincount(y, minlength=num_classes)
    if n_max is None:
        n_max = int(per_class.min())
    counts = long_tail_counts(n_max, num_classes, rho)
    short = [c for c in range(num_classes) if per_class[c] < counts[c]]
    if short:
        raise ValueError(
            f"classes {short[:5]} have fewer samples than their long-tail quota (n_max={n_max})"
        )
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(y == c))[: counts[c]] for c in range(num_classes)]
    return np.sort(np.concatenate(keep)).astype(np.int64)


def shot_accuracy(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    train_class_counts: np.ndarray,
    *,
    many: int = 100,
    few: int = 20,
) -> dict[str, Any]:
    """Overall and many / medium / few-shot accuracy.

    A class is *many*-shot when it has more than ``many`` training images, *few*-shot with fewer
    than ``few``, *medium* otherwise (``few ≤ n ≤ many``). A group's accuracy is the mean of its
    classes' per-class test accuracies (classes without test samples are skipped), as in the
    OLTR / decoupling ``shot_acc`` code; equal to the sample-weighted accuracy for a balanced test
    set. ``overall`` is the plain accuracy over all test samples.

    Parameters
    ----------
    y_true, y_pred : (M,) test labels and predictions.
    train_class_counts : (C,) training images per class (in the pool, for active learning).
    many, few : thresholds.

    Returns
    -------
    dict: ``overall``, ``many``, ``medium``, ``few`` (``None`` for an empty group), and ``n_many``,
    ``n_medium``, ``n_few`` (number of classes in each group that have test samples).

    References
    ----------
    Liu et al., "Large-Scale Long-Tailed Recognition in an Open World" (OLTR), CVPR 2019;
    Kang et al., "Decoupling Representation and Classifier", ICLR 2020.
    """
    yt = as_label_vector(y_true, "y_true")
    yp = as_label_vector(y_pred, "y_pred", length=yt.shape[0])
    counts = np.asarray(train_class_counts)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any():
        raise ValueError("`train_class_counts` must be a 1-D array of non-negative counts")
    if few > many:
        raise ValueError(f"`few` ({few}) must not exceed `many` ({many})")
    if yt.size == 0:
        raise ValueError("`y_true` must hold at least one label")
    C = counts.size
    if yt.max() >= C:
        raise ValueError(
            f"`y_true` holds class {yt.max()} but `train_class_counts` has {C} entries"
        )
    n_test = np.bincount(yt, minlength=C)
    n_correct = np.bincount(yt[yt == yp], minlength=C)
    has_test = n_test > 0
    per_class = np.where(has_test, n_correct / np.maximum(n_test, 1), 0.0)
    groups = {
        "many": counts > many,
        "medium": (counts >= few) & (counts <= many),
        "few": counts < few,
    }
    out: dict[str, Any] = {"overall": float(np.mean(yt == yp))}
    for name, mask in groups.items():
        sel = mask & has_test
        out[name] = float(per_class[sel].mean()) if sel.any() else None
    for name, mask in groups.items():
        out[f"n_{name}"] = int((mask & has_test).sum())
    return out
