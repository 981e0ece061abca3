"""SISOM proxy: feature-space distance ratio to the labeled set (docs/algorithms.md §1.9).

**This is a stand-in, not the authors' algorithm.** SISOM / SISOMe (Schmidt, Schenk, Schwinn &
Günnemann, "A unified approach towards active learning and out-of-distribution detection", TMLR
2025, arXiv:2405.11337) had no public code when this was written (github.com/TUM-DAML/SISOM holds
only the OpenOOD base); replace this module by the official implementation when it is released.

What is implemented (the verifiable part of the paper's description):

* ``ζ(x) = h(x)/||h(x)||`` (normalised penultimate features);
* ``d_in(x)`` = distance to the nearest labeled sample whose (given) label equals the prediction
  ``ŷ(x)``, ``d_out(x)`` = distance to the nearest labeled sample with another label;
* ``sisom``: score ``r(x) = d_in / (d_out + 1e-12)`` (high = query). If no labeled sample has label
  ``ŷ(x)``, ``d_in = inf`` and ``r = inf`` (queried first, ties by index); if all labeled samples
  have label ``ŷ(x)``, ``d_out = inf`` and ``r = 0``.
* ``sisome``: ``½[z(r) + z(E)]`` with the energy ``E(x) = -log Σ_c exp(z_c)`` (high = uncertain) and
  the pool z-score ``z``; infinite ratios are clipped to the largest finite ratio first.

The gradient-weighted feature variant of docs/algorithms.md §1.9 (``ζ = h ⊙ |∂ℓ/∂h|``) needs the classifier
weights, which are not among the selection signals, and is not offered. Cost O(N·N_L·d), blocked;
memory O(N·C + N_L·d).
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from .._utils.validation import as_float_matrix, as_label_vector, check_choice
from ._checks import check_device
from .base import Selection, Signals, Strategy, scored_selection
from .coreset import check_feature_pair
from .selection import zscore

VARIANTS = ("sisom", "sisome")


def distance_ratio(
    features_pool: np.ndarray,
    pred_pool: np.ndarray,
    features_labeled: np.ndarray,
    labels_labeled: np.ndarray,
    num_classes: int,
    *,
    device: str = "cpu",
) -> np.ndarray:
    """``d_in / (d_out + 1e-12)`` in normalised feature space (see module docstring)."""
    from .._utils.torch import resolve_device
    from . import _kernels as K  # torch, only when selecting

    dev = resolve_device(device)
    cmin = K.class_min_sqdist(
        K.as_tensor(features_pool, dev),
        K.as_tensor(features_labeled, dev),
        labels_labeled,
        num_classes,
        unit=True,
    )
    cmin = K.to_numpy(cmin)  # (N, C) squared distances between normalised features
    rows = np.arange(cmin.shape[0])
    d_in = np.sqrt(cmin[rows, pred_pool])
    other = cmin.copy()
    other[rows, pred_pool] = np.inf
    d_out = np.sqrt(other.min(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = d_in / (d_out + 1e-12)
    r[np.isinf(d_out) & np.isfinite(d_in)] = 0.0
    r[np.isinf(d_in)] = np.inf
    return r


class SisomProxy(Strategy):
    """Stand-in for SISOM/SISOMe (see the module docstring for exactly what it computes).

    Parameters
    ----------
    variant : {"sisom", "sisome"}
        Distance ratio only, or its z-score averaged with the z-scored energy (needs logits).
    device : str
        Where the distance blocks are computed.
    """

    name = "sisom_proxy"
    needs = ("features_pool", "probs_pool", "features_labeled", "labels_labeled")
    stochastic = False

    def __init__(self, variant: str = "sisom", device: str = "cpu") -> None:
        self.variant = check_choice(variant, "variant", VARIANTS)
        self.device = check_device(device)

    def required_signals(self) -> tuple[str, ...]:
        return (*self.needs, "logits_pool") if self.variant == "sisome" else self.needs

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        fp, fl = check_feature_pair(signals)
        if fl.shape[0] == 0:
            raise ValueError("`sisom_proxy` needs a non-empty labeled set (`features_labeled`)")
        probs = signals.probabilities()
        c = int(signals.num_classes or probs.shape[1])
        y = as_label_vector(signals.labels_labeled, "labels_labeled", num_classes=c, length=len(fl))
        r = distance_ratio(fp, probs.argmax(axis=1), fl, y, c, device=self.device)
        if self.variant == "sisom":
            return scored_selection(r, k, variant="sisom")
        finite = np.isfinite(r)
        r = np.where(finite, r, r[finite].max() if finite.any() else 0.0)
        z = as_float_matrix(signals.logits_pool, "logits_pool")
        energy = -logsumexp(z, axis=1)
        return scored_selection(0.5 * (zscore(r) + zscore(energy)), k, variant="sisome")
