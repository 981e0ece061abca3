"""Symmetric noise: a wrong label is uniform over the classes (docs/algorithms.md §2.1).

``sym_exclusive`` resamples each label from ``T = (1-η)I + η/(C-1)(11ᵀ-I)`` (realised rate ≈ η);
``sym_inclusive`` gives the first ⌊ηn⌋ of a permutation a uniform label over all C classes (≈
η(C-1)/C, the convention of several public code bases); ``sym_exact`` flips exactly ⌊η n_c⌋ members
of each class to a uniform other class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import NoiseModel, NoiseRequest, NoiseSpec, class_conditional_draw


def sym_exclusive_T(
    spec: NoiseSpec, num_classes: int, coarse_labels: Any, y_clean: Any
) -> np.ndarray:
    """``(1-η)I + η/(C-1)(11ᵀ-I)``."""
    C, eta = num_classes, spec.rate
    return (1 - eta) * np.eye(C) + eta / (C - 1) * (1 - np.eye(C))


def sym_inclusive_T(
    spec: NoiseSpec, num_classes: int, coarse_labels: Any, y_clean: Any
) -> np.ndarray:
    """``(1-η)I + η/C 11ᵀ``."""
    C, eta = num_classes, spec.rate
    return (1 - eta) * np.eye(C) + eta / C


def draw_sym_inclusive(request: NoiseRequest, info: dict) -> np.ndarray:
    """The first ⌊ηn⌋ samples of a random permutation get a uniform label over all C classes."""
    y, rng, n = request.y, request.rng, request.y.size
    yn = y.copy()
    pick = rng.permutation(n)[: int(np.floor(request.spec.rate * n))]
    yn[pick] = rng.integers(0, request.num_classes, size=pick.size)
    return yn


def draw_sym_exact(request: NoiseRequest, info: dict) -> np.ndarray:
    """Per class ``c``, exactly ⌊η n_c⌋ members get a uniform label among the other classes."""
    y, rng, C = request.y, request.rng, request.num_classes
    yn = y.copy()
    for c in range(C):
        members = np.flatnonzero(y == c)
        k = int(np.floor(request.spec.rate * members.size))
        pick = rng.choice(members, size=k, replace=False)
        yn[pick] = (c + rng.integers(1, C, size=k)) % C
    return yn


SYM_EXCLUSIVE = NoiseModel(
    "sym_exclusive",
    "each label resampled from (1-η)I + η/(C-1)(11ᵀ-I) (realised rate ≈ η)",
    class_conditional_draw(sym_exclusive_T),
    aliases=("sym", "symmetric"),
    rate_max_included=True,
    transition=sym_exclusive_T,
)
SYM_INCLUSIVE = NoiseModel(
    "sym_inclusive",
    "first ⌊ηn⌋ of a permutation get a uniform label of all C (realised rate ≈ η(C-1)/C)",
    draw_sym_inclusive,
    rate_max_included=True,
    transition=sym_inclusive_T,
)
SYM_EXACT = NoiseModel(
    "sym_exact",
    "per class, exactly ⌊η n_c⌋ members flipped to a uniform other class",
    draw_sym_exact,
    aliases=("sym_exact_per_class",),
    rate_max_included=True,
)
