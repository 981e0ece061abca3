"""Asymmetric and pair-flip noise: a wrong label is a fixed "similar" class (docs/algorithms.md
§2.2).

References
----------
Patrini, G. et al. "Making Deep Neural Networks Robust to Label Noise: a Loss Correction
Approach", CVPR 2017 (the CIFAR-10 map).
Han, B. et al. "Co-teaching: Robust Training of Deep Neural Networks with Extremely Noisy
Labels", NeurIPS 2018 (pair flip).
Li, J. et al. "DivideMix: Learning with Noisy Labels as Semi-supervised Learning", ICLR 2020.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._utils.validation import as_label_vector
from ._base import (
    NoiseModel,
    NoiseRequest,
    NoiseSpec,
    class_conditional_draw,
    need_classes,
    sample_class_conditional,
)

#: CIFAR-10 asymmetric map (source → target); classes 0, 1, 6, 7, 8 never flip.
CIFAR10_ASYM_MAP = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

#: Official CIFAR-100 fine→coarse map (fine labels in the archive's alphabetical order).
# fmt: off
CIFAR100_FINE_TO_COARSE = np.array([
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
], dtype=np.int64)
# fmt: on

# At η = 0.5 a flipped class would hold as many wrong labels as its source holds right ones.
_BELOW_HALF = {"rate_max": 0.5, "range_note": " (at 0.5 a flipped class outnumbers its source)"}


# ------------------------------------------------------------------------------------- CIFAR-10
def asym_T(spec: NoiseSpec, num_classes: int, coarse_labels: Any, y_clean: Any) -> np.ndarray:
    """CIFAR-10 map with probability η: ``T[a, a] = 1-η``, ``T[a, map(a)] = η``."""
    need_classes(spec, num_classes, 10)
    T = np.eye(num_classes)
    for a, b in CIFAR10_ASYM_MAP.items():
        T[a, a], T[a, b] = 1 - spec.rate, spec.rate
    return T


def _cifar10_mapping(num_classes: int) -> np.ndarray:
    mapping = np.arange(num_classes)
    for a, b in CIFAR10_ASYM_MAP.items():
        mapping[a] = b
    return mapping


def draw_asym_dividemix(request: NoiseRequest, info: dict) -> np.ndarray:
    """⌊ηn⌋ random samples of all classes mapped by the CIFAR-10 map (realised rate ≈ η/2)."""
    need_classes(request.spec, request.num_classes, 10)
    y, n = request.y, request.y.size
    mapping = _cifar10_mapping(request.num_classes)
    yn = y.copy()
    pick = request.rng.permutation(n)[: int(np.floor(request.spec.rate * n))]
    yn[pick] = mapping[y[pick]]
    return yn


def draw_asym_exact(request: NoiseRequest, info: dict) -> np.ndarray:
    """Per source class ``a`` of the CIFAR-10 map, exactly ⌊η n_a⌋ members flipped to ``map(a)``."""
    need_classes(request.spec, request.num_classes, 10)
    y = request.y
    mapping = _cifar10_mapping(request.num_classes)
    yn = y.copy()
    for a in sorted(CIFAR10_ASYM_MAP):
        members = np.flatnonzero(y == a)
        size = int(np.floor(request.spec.rate * members.size))
        pick = request.rng.choice(members, size=size, replace=False)
        yn[pick] = mapping[a]
    return yn


# ------------------------------------------------------------------------------------ CIFAR-100
def _cyclic_groups_T(groups: list[np.ndarray], C: int, eta: float) -> np.ndarray:
    T = np.eye(C)
    for g in groups:
        g = np.sort(g)
        for a, b in zip(g, np.roll(g, -1)):
            if a != b:
                T[a, a], T[a, b] = 1.0 - eta, eta
    return T


def _superclass_groups(
    num_classes: int, coarse_labels: Any, y: np.ndarray
) -> tuple[list[np.ndarray], str]:
    """Fine classes grouped by super-class: the official map, or the one ``coarse_labels`` gives."""
    if coarse_labels is None:
        f2c, src = CIFAR100_FINE_TO_COARSE, "official CIFAR-100 fine->coarse map"
    else:
        coarse = as_label_vector(coarse_labels, "coarse_labels", length=y.size)
        f2c = np.full(num_classes, -1, dtype=np.int64)
        f2c[y] = coarse
        if not np.array_equal(f2c[y], coarse):
            raise ValueError("`coarse_labels` must give one super-class per fine class")
        src = "coarse_labels argument"
    groups = [np.flatnonzero(f2c == k) for k in np.unique(f2c[f2c >= 0])]
    return groups, src


def asym100_blocks_T(
    spec: NoiseSpec, num_classes: int, coarse_labels: Any, y_clean: Any
) -> np.ndarray:
    """Next class inside blocks of 5 consecutive indices, cyclic, with probability η."""
    need_classes(spec, num_classes, 100)
    blocks = [np.arange(i, i + 5) for i in range(0, 100, 5)]
    return _cyclic_groups_T(blocks, num_classes, spec.rate)


def asym100_superclass_T(
    spec: NoiseSpec, num_classes: int, coarse_labels: Any, y_clean: Any
) -> np.ndarray:
    """Next fine class inside its super-class, cyclic (``coarse_labels`` needs ``y_clean``)."""
    need_classes(spec, num_classes, 100)
    y = None if y_clean is None else as_label_vector(y_clean, "y_clean", num_classes=num_classes)
    if coarse_labels is not None and y is None:
        raise ValueError("asym100_superclass with `coarse_labels` also needs the aligned `y_clean`")
    groups, _ = _superclass_groups(
        num_classes, coarse_labels, y if y is not None else np.arange(num_classes)
    )
    return _cyclic_groups_T(groups, num_classes, spec.rate)


def draw_asym100_superclass(request: NoiseRequest, info: dict) -> np.ndarray:
    """Class-conditional draw over the super-classes of the official map or of ``coarse_labels``."""
    need_classes(request.spec, request.num_classes, 100)
    groups, src = _superclass_groups(request.num_classes, request.coarse_labels, request.y)
    T = _cyclic_groups_T(groups, request.num_classes, request.spec.rate)
    info["grouping"] = src
    return sample_class_conditional(request.y, T, request.rng)


# ------------------------------------------------------------------------------------ pair flip
def pairflip_T(spec: NoiseSpec, num_classes: int, coarse_labels: Any, y_clean: Any) -> np.ndarray:
    """``c → (c+1) mod C`` with probability η."""
    eta = spec.rate
    return (1 - eta) * np.eye(num_classes) + eta * np.roll(np.eye(num_classes), 1, axis=1)


ASYM_T = NoiseModel(
    "asym_T",
    "CIFAR-10 map 9→1, 2→0, 4→7, 3→5, 5→3 with probability η (Patrini 2017)",
    class_conditional_draw(asym_T),
    aliases=("asym",),
    transition=asym_T,
    **_BELOW_HALF,
)
ASYM_DIVIDEMIX = NoiseModel(
    "asym_dividemix",
    "⌊ηn⌋ random samples of all classes mapped by the CIFAR-10 map (realised rate ≈ η/2)",
    draw_asym_dividemix,
    **_BELOW_HALF,
)
ASYM_EXACT = NoiseModel(
    "asym_exact",
    "per source class of the CIFAR-10 map, exactly ⌊η n_s⌋ members flipped",
    draw_asym_exact,
    **_BELOW_HALF,
)
ASYM100_BLOCKS = NoiseModel(
    "asym100_blocks",
    "CIFAR-100: next class in blocks of 5 consecutive indices, cyclic",
    class_conditional_draw(asym100_blocks_T),
    transition=asym100_blocks_T,
    **_BELOW_HALF,
)
ASYM100_SUPERCLASS = NoiseModel(
    "asym100_superclass",
    "CIFAR-100: next fine class inside its official super-class, cyclic",
    draw_asym100_superclass,
    transition=asym100_superclass_T,
    **_BELOW_HALF,
)
PAIRFLIP = NoiseModel(
    "pairflip",
    "c → (c+1) mod C with probability η (Han et al. 2018)",
    class_conditional_draw(pairflip_T),
    aliases=("pair", "pair_flip"),
    transition=pairflip_T,
    **_BELOW_HALF,
)
