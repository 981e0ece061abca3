"""BADGE: k-means++ seeding on last-layer gradient embeddings (docs/algorithms.md §1.6).

The gradient embedding of a pool sample is ``g = (e_ŷ - p) ⊗ h`` (gradient of the cross-entropy at
the predicted label w.r.t. the last linear layer, bias ignored). It has C·d entries and is never
formed: distances use ``||a⊗h - a'⊗h'||² = ||a||²||h||² + ||a'||²||h'||² - 2(a·a')(h·h')``, so
selection costs O(k·N·(C + d)) time and O(N·(C + d)) memory instead of O(N·C·d).

The first center is the largest ``||g||`` (deterministic, smallest index on ties); the others are
drawn with probability ``D²/ΣD²`` from the strategy's ``rng`` (uniform among unchosen points when
``ΣD² = 0``). The labeled set is not used.

References
----------
Ash, Zhang, Krishnamurthy, Langford & Agarwal, "Deep batch active learning by diverse, uncertain
gradient lower bounds", ICLR 2020.
"""

from __future__ import annotations

import numpy as np

from .._utils.validation import as_float_matrix, check_same_rows
from ._checks import check_device
from .base import Selection, Signals, Strategy
from .coreset import _float_dtype


def gradient_embedding_factors(probs: np.ndarray) -> np.ndarray:
    """``a = e_ŷ - p`` (N, C) float64, with ŷ the argmax (smallest class index on ties)."""
    a = -np.asarray(probs, dtype=np.float64)
    a[np.arange(a.shape[0]), a.argmin(axis=1)] += 1.0
    return a


class Badge(Strategy):
    """BADGE: uncertainty and diversity through k-means++ on gradient embeddings.

    Parameters
    ----------
    device : str
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:i"`` or ``"auto"``.

    Notes
    -----
    ``Selection.scores`` holds ``D`` (the embedding distance to the nearest chosen center) of each
    pick when it was drawn; the first pick's score is its embedding norm.
    """

    name = "badge"
    needs = ("features_pool", "probs_pool")
    stochastic = True

    def __init__(self, device: str = "cpu") -> None:
        self.device = check_device(device)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        import torch

        from .._utils.torch import resolve_device
        from . import _kernels as K  # torch, only when selecting

        h = as_float_matrix(
            signals.features_pool, "features_pool", dtype=_float_dtype(signals.features_pool)
        )
        probs = signals.probabilities()
        check_same_rows(h, probs, "features_pool", "probs_pool")
        dev = resolve_device(self.device)
        a = K.as_tensor(gradient_embedding_factors(probs), dev, torch.float64)
        idx, dist = K.kmeanspp_kronecker(a, K.as_tensor(h, dev), k, rng)
        return Selection(idx, dist)
