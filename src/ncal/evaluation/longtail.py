"""Long-tailed datasets: exponential class counts, subsampling, many/medium/few-shot accuracy.

Spec: docs/algorithms.md §4.4 and Appendix A.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._utils.validation import as_label_vector

# one implementation of the Cao et al. profile (docs/algorithms.md §4.4), shared with the pool
# builder
from ..data.builders import long_tail_counts, long_tail_indices

__all__ = ["long_tail_counts", "long_tail_indices", "shot_accuracy"]


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
