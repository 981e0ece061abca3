"""Neural-collapse report under label noise: NC metrics with given and with clean labels.

Spec: docs/algorithms.md §3 (metrics, computed by :mod:`ncal.geometry`) and §4.5 (inter-class
distance).
Under label noise the given-label NC1 is inflated by mislabeled points, so the same features are
also measured with the clean labels (§3.7).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._utils.validation import as_float_matrix, as_label_vector


def collapse_report(
    features: np.ndarray,
    labels_given: np.ndarray,
    labels_clean: np.ndarray | None = None,
    W: np.ndarray | None = None,
    b: np.ndarray | None = None,
    *,
    num_classes: int | None = None,
    mu_G: str = "class_avg",
) -> dict[str, Any]:
    """NC metrics and inter-class distances of one feature set, with given and clean labels.

    Parameters
    ----------
    features : (N, d) penultimate features (eval mode), e.g. of the labeled set or the test set.
    labels_given : (N,) the labels the learner saw (possibly noisy).
    labels_clean : (N,) true labels, optional (omitted → only the given-label part).
    W, b : (C, d), (C,) classifier of the same model (NC2/NC3/NC4 need them).
    num_classes : int, optional
    mu_G : {"class_avg", "sample_avg"} global-mean convention (§3.1).

    Returns
    -------
    dict: ``given`` = :func:`ncal.geometry.nc_metrics` with the given labels, ``inter_class_given``
    = :func:`ncal.geometry.inter_class_distances` with them; when ``labels_clean`` is given also
    ``clean``, ``inter_class_clean`` and ``label_noise_rate`` (share of given ≠ clean); ``n``.

    References
    ----------
    Papyan, Han & Donoho, "Prevalence of neural collapse during the terminal phase of deep
    learning training", PNAS 2020.
    """
    from ncal.geometry import inter_class_distances, nc_metrics  # lazy: geometry is optional here

    h = as_float_matrix(features, "features")
    yg = as_label_vector(labels_given, "labels_given", num_classes=num_classes, length=h.shape[0])
    out: dict[str, Any] = {
        "n": int(h.shape[0]),
        "given": nc_metrics(h, yg, W, b, num_classes=num_classes, mu_G=mu_G),
        "inter_class_given": inter_class_distances(h, yg, num_classes=num_classes),
    }
    if labels_clean is not None:
        yc = as_label_vector(
            labels_clean, "labels_clean", num_classes=num_classes, length=h.shape[0]
        )
        out["clean"] = nc_metrics(h, yc, W, b, num_classes=num_classes, mu_G=mu_G)
        out["inter_class_clean"] = inter_class_distances(h, yc, num_classes=num_classes)
        out["label_noise_rate"] = float(np.mean(yg != yc))
    return out
