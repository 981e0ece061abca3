"""The two entry points over the registry: draw noisy labels, and the expected transition."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..._utils.random import as_generator
from ..._utils.validation import as_label_vector
from ._base import NoiseRequest, NoiseSpec, empirical_transition
from .registry import get_noise_model
from .spec import parse_noise_spec


def _check_num_classes(num_classes: int) -> int:
    C = int(num_classes)
    if C < 2:
        raise ValueError(f"`num_classes` must be >= 2; got {num_classes}")
    return C


def make_noisy_labels(
    y_clean: Any,
    spec: str | NoiseSpec,
    *,
    num_classes: int,
    seed: Any,
    x: Any = None,
    coarse_labels: Any = None,
    features: Any = None,
    return_info: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, dict]:
    """Corrupt clean labels with a named noise model (docs/algorithms.md §2).

    Parameters
    ----------
    y_clean
        Clean labels in ``[0, num_classes)``.
    spec
        Spec string or :class:`NoiseSpec` (see :func:`describe_noise_models`; bad specs raise
        ValueError listing
        the accepted forms).
    num_classes
        Number of classes ``C``.
    seed
        Seed or ``numpy.random.Generator``; the same seed gives the same noisy labels.
    x
        Inputs, required by ``idn`` (scaled to [0, 1] and flattened; see :class:`IdnInputs`) and by
        ``oracle`` unless ``features`` are given.
    coarse_labels
        Per-sample super-class labels for ``asym100_superclass`` (default: the official CIFAR-100
        map).
    features
        Optional features for the ``oracle`` model's reference classifier.
    return_info
        Also return a metadata dict (model, nominal and realised rate, model-specific notes such as
        the IDN input scaling or the human-statistics source).

    Returns
    -------
    y_noisy : numpy.ndarray
        int64 noisy labels.
    T_hat : numpy.ndarray
        ``(C, C)`` realised transition: ``T_hat[i, j]`` = fraction of clean class ``i`` labelled
        ``j``.
    info : dict
        Only with ``return_info=True``.

    Notes
    -----
    ``human:*`` draws labels class-conditionally from the transition matrix of the CIFAR-10N/100N
    annotation files: human noise statistics applied to this dataset, not CIFAR-10N itself.
    """
    s = parse_noise_spec(spec)
    C = _check_num_classes(num_classes)
    y = as_label_vector(y_clean, "y_clean", num_classes=C)
    request = NoiseRequest(
        s, y, C, as_generator(seed), x=x, coarse_labels=coarse_labels, features=features
    )
    info: dict[str, Any] = {"spec": str(s), "model": s.model, "rate_nominal": s.rate}
    yn = get_noise_model(s.model).draw(request, info)
    T_hat = empirical_transition(y, yn, C)
    info["rate_realised"] = float(np.mean(yn != y)) if y.size else 0.0
    return (yn, T_hat, info) if return_info else (yn, T_hat)


def noise_transition_matrix(
    spec: str | NoiseSpec, num_classes: int, *, coarse_labels: Any = None, y_clean: Any = None
) -> np.ndarray:
    """Expected transition matrix ``T[i, j] = P(ỹ=j | y=i)`` of a class-conditional noise model.

    Defined for the models with a fixed class-conditional transition (none, sym_exclusive,
    sym_inclusive, asym_T, asym100_blocks, asym100_superclass, pairflip, human); the others are
    instance-dependent or fixed-count and raise ValueError. ``coarse_labels``/``y_clean`` (aligned)
    define super-classes for asym100_superclass.
    """
    s = parse_noise_spec(spec)
    C = _check_num_classes(num_classes)
    model = get_noise_model(s.model)
    if model.transition is None:
        raise ValueError(
            f"noise model {s.model!r} has no fixed class-conditional transition matrix"
        )
    return model.transition(s, C, coarse_labels, y_clean)
