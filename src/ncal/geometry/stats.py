"""Per-class statistics shared by CMA/CMAP, the neural-collapse metrics and inter-class distances.

Spec: docs/algorithms.md §3.1 (class counts, means, the two global-mean conventions, within-class
scatter). Every derived quantity is float64; classes without samples are dropped (``C_eff`` present
classes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._utils.validation import as_float_matrix, as_label_vector, check_choice

MU_G = ("class_avg", "sample_avg")


def check_num_classes(num_classes: Any, name: str = "num_classes") -> int | None:
    """Return ``num_classes`` as a positive int (or None), raising a clear error otherwise."""
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"`{name}` must be a positive integer or None; got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {num_classes}")
    return int(num_classes)


class ClassStats:
    """Class counts, means and within-class scatter of a labeled feature set (float64).

    Parameters
    ----------
    features : (N, d) array
        Penultimate features (any real dtype; converted to float64).
    labels : (N,) int array
        Class labels in ``[0, num_classes)``.
    num_classes : int, optional
        Number of classes ``C``; inferred as ``labels.max() + 1`` when omitted.
    features_name, labels_name : str
        Argument names used in error messages (so callers' errors name *their* arguments).

    Attributes
    ----------
    num_classes : int
        ``C`` (including classes absent from ``labels``).
    present : (C_eff,) int64
        Ids of the classes with at least one sample, ascending.
    row_of : (C,) int64
        Row of each class id in ``means``/``counts`` (-1 for absent classes).
    counts : (C_eff,) int64
        Samples per present class.
    means : (C_eff, d) float64
        Class means ``mu_c``.
    sample_avg, class_avg : (d,) float64
        Global means: over samples (count-weighted) and over present class means.
    within_ss : (C_eff,) float64
        ``sum_{i: y_i=c} ||h_i - mu_c||^2`` (within-class scatter norm).
    sigma2 : (C_eff,) float64
        ``within_ss / counts`` (per-class feature variance, CDNV's sigma_c^2).

    References
    ----------
    Papyan, Han & Donoho, "Prevalence of neural collapse during the terminal phase of deep learning
    training", PNAS 2020 (class means, global mean, Sigma_W).
    """

    def __init__(
        self,
        features: Any,
        labels: Any,
        num_classes: int | None = None,
        *,
        features_name: str = "features",
        labels_name: str = "labels",
    ) -> None:
        x = as_float_matrix(features, features_name)
        num_classes = check_num_classes(num_classes)
        y = as_label_vector(labels, labels_name, num_classes=num_classes, length=x.shape[0])
        self.num_classes = int(num_classes if num_classes is not None else y.max() + 1)
        self.n_samples, self.dim = x.shape
        counts_all = np.bincount(y, minlength=self.num_classes)
        self.present = np.flatnonzero(counts_all).astype(np.int64)
        self.row_of = np.full(self.num_classes, -1, dtype=np.int64)
        self.row_of[self.present] = np.arange(self.present.size)
        self.counts = counts_all[self.present].astype(np.int64)
        # Sort once by label: per-class sums become contiguous reductions (O(N d), no one-hot GEMM).
        order = np.argsort(y, kind="stable")
        xs = x[order]
        starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.means = np.add.reduceat(xs, starts, axis=0) / self.counts[:, None]
        self._sorted, self._starts = xs, starts  # for the within-class scatter, made on demand
        self._within_ss: np.ndarray | None = None
        self.sample_avg = x.mean(axis=0)
        self.class_avg = self.means.mean(axis=0)
        self._labels = y

    @property
    def within_ss(self) -> np.ndarray:
        """Within-class scatter norms (computed on first use: CMAP never needs them)."""
        if self._within_ss is None:
            # Two-pass scatter (deviations from the mean) avoids the E[h^2] - mu^2 cancellation.
            dev = self._sorted - np.repeat(self.means, self.counts, axis=0)
            self._within_ss = np.add.reduceat(np.einsum("ij,ij->i", dev, dev), self._starts)
        return self._within_ss

    @property
    def sigma2(self) -> np.ndarray:
        """``within_ss / counts``."""
        return self.within_ss / self.counts

    @property
    def num_present(self) -> int:
        """Number of present classes ``C_eff``."""
        return int(self.present.size)

    @property
    def labels(self) -> np.ndarray:
        """The validated int64 labels."""
        return self._labels

    def global_mean(self, mu_G: str = "class_avg") -> np.ndarray:
        """Global mean under the ``class_avg`` or ``sample_avg`` convention (docs/algorithms.md §3.1)."""
        check_choice(mu_G, "mu_G", MU_G)
        return self.class_avg if mu_G == "class_avg" else self.sample_avg

    def centred_means(self, mu_G: str = "class_avg") -> np.ndarray:
        """``M_tilde`` rows: ``m_c = mu_c - mu_G`` for the present classes, shape (C_eff, d)."""
        return self.means - self.global_mean(mu_G)[None, :]

    def rows(self, class_ids: np.ndarray) -> np.ndarray:
        """Rows of ``class_ids`` in the per-class arrays (-1 where the class is absent)."""
        return self.row_of[np.asarray(class_ids, dtype=np.int64)]
