"""Label-noise models (docs/algorithms.md §2.1–2.5), one per spec prefix, in one registry.

A spec string names a model and its argument: ``"none"``, ``"sym:0.3"``, ``"asym100_blocks:0.2"``,
``"idn:0.4"``, ``"oracle:0.3"``, ``"human:cifar10n-worst"``. The models, their aliases and rate
ranges are listed once, in :data:`NOISE_MODELS` (:mod:`.registry`); :func:`describe_noise_models`
prints them, :func:`check_noise_spec` validates a spec before any data is loaded.

Modules: :mod:`._base` (shared records and kernels), one module per family (:mod:`.symmetric`,
:mod:`.asymmetric`, :mod:`.instance`, :mod:`.human`, :mod:`.difficulty`), :mod:`.registry` (the one
list), :mod:`.spec` (parsing and help texts), :mod:`.api` (drawing and expected transitions).
"""

from ._base import NoiseModel, NoiseSpec, empirical_transition, sample_class_conditional
from .api import make_noisy_labels, noise_transition_matrix
from .asymmetric import CIFAR10_ASYM_MAP, CIFAR100_FINE_TO_COARSE
from .instance import IdnInputs
from .registry import NOISE_MODELS, get_noise_model
from .spec import (
    ACCEPTED_FORMS,
    accepted_forms,
    check_noise_spec,
    describe_noise_models,
    noise_models,
    parse_noise_spec,
)

__all__ = [
    "ACCEPTED_FORMS",
    "CIFAR10_ASYM_MAP",
    "CIFAR100_FINE_TO_COARSE",
    "NOISE_MODELS",
    "IdnInputs",
    "NoiseModel",
    "NoiseSpec",
    "accepted_forms",
    "check_noise_spec",
    "describe_noise_models",
    "empirical_transition",
    "get_noise_model",
    "make_noisy_labels",
    "noise_models",
    "noise_transition_matrix",
    "parse_noise_spec",
    "sample_class_conditional",
]
