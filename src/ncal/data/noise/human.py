"""Human noise statistics (docs/algorithms.md §2.4): labels drawn class-conditionally from the
transition matrix of a CIFAR-10N / CIFAR-100N annotation set (see :mod:`ncal.data.human_noise`).

This applies the class-level confusion of human annotators to any 10- or 100-class dataset; it is
not CIFAR-N itself (which images humans confuse is not carried over).

Reference: Wei, J. et al. "Learning with Noisy Labels Revisited: A Study Using Real-World Human
Annotations", ICLR 2022.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import human_noise
from ._base import NoiseModel, NoiseRequest, NoiseSpec, need_classes, sample_class_conditional


def human_T(spec: NoiseSpec, num_classes: int, coarse_labels: Any, y_clean: Any) -> np.ndarray:
    """Row-normalised confusion of the annotation set ``spec.source``."""
    need_classes(spec, num_classes, 100 if spec.source == "cifar100n" else 10)
    return human_noise.human_noise_T(spec.source)


def draw_human(request: NoiseRequest, info: dict) -> np.ndarray:
    """Class-conditional draw; ``info`` records the source and the annotation set's own rate."""
    T = human_T(request.spec, request.num_classes, None, None)
    yn = sample_class_conditional(request.y, T, request.rng)
    source = request.spec.source
    info["source"] = (
        f"human noise statistics of {source} (class-level transition matrix "
        "estimated from the CIFAR-N files), not CIFAR-N itself"
    )
    info["rate_nominal"] = human_noise.human_noise_rate(source)
    return yn


HUMAN = NoiseModel(
    "human",
    "class-conditional draw from CIFAR-10N/100N human statistics",
    draw_human,
    parameter="SET",
    transition=human_T,
    source_names=tuple(human_noise.HUMAN_NOISE_SETS),
    canonical_source=human_noise.canonical_name,
)
