"""Backbones for ncal (torch): a small CNN, ResNet-18 (CIFAR stem) and an MLP for feature vectors.

Every model is a :class:`Backbone`: ``forward(x) -> logits``, ``features(x) -> (N, d)`` penultimate
features, ``head`` (the final ``nn.Linear``), ``feature_dim``, ``has_dropout``. Models take float
tensors ``(N, C, H, W)`` (images) or ``(N, D)`` (features); :mod:`ncal.training` does the
conversion from the stored numpy arrays.

>>> from ncal.models import build_model
>>> m = build_model("cnn", input_shape=(28, 28), num_classes=10, seed=0)
>>> m.feature_dim
128
"""

from __future__ import annotations

from typing import Any

from .base import Backbone, check_dropout, parse_input_shape
from .cnn import SmallCNN
from .mlp import MLP
from .resnet import ResNet18

MODEL_NAMES = ("cnn", "resnet18", "mlp")


def build_model(
    name: str,
    *,
    input_shape: tuple,
    num_classes: int,
    dropout: float = 0.0,
    seed: int | None = None,
    **options: Any,
) -> Backbone:
    """Build a freshly initialised backbone.

    Parameters
    ----------
    name : {"cnn", "resnet18", "mlp", "auto"}
        ``cnn``: small CNN for small grayscale/colour images (≥ 4×4); ``resnet18``: ResNet-18 with
        the CIFAR stem; ``mlp``: MLP for feature vectors (images are flattened); ``auto``: :func:`default_model_name`.
    input_shape : tuple
        Shape of one sample as stored: ``(D,)``, ``(H, W)``, ``(H, W, C)`` (or ``(C, H, W)``).
    num_classes : int
    dropout : float
        Dropout probability before the head (0 = none). BALD needs ``dropout > 0``.
    seed : int, optional
        Seed the initialisation (via :func:`ncal.training.seeded`, leaving torch's global RNG as it
        was). Without it the initialisation draws from torch's global RNG, so
        ``torch.manual_seed(s)`` before the call makes it deterministic too.
    **options
        Model-specific: ``cnn``: ``width=32, hidden=128, batchnorm=False``; ``resnet18``:
        ``width=64``; ``mlp``: ``hidden=(256,)``.

    Returns
    -------
    Backbone
    """
    if seed is not None:
        from ..training.device import seeded

        with seeded(seed):
            return build_model(
                name, input_shape=input_shape, num_classes=num_classes, dropout=dropout, **options
            )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2; got {num_classes!r}")
    p = check_dropout(dropout)
    kind, shape = parse_input_shape(input_shape)
    if name == "auto":
        name = default_model_name(input_shape)
    if name not in MODEL_NAMES:
        raise ValueError(f"`name` must be one of {[*MODEL_NAMES, 'auto']}; got {name!r}")
    if name == "mlp":  # feature vectors, or images flattened to vectors
        return MLP(shape, num_classes, p, **options)
    if kind != "image":
        raise ValueError(
            f"model {name!r} needs images (input_shape (H, W) or (H, W, C)); got {input_shape}; "
            "use 'mlp' for feature vectors"
        )
    if name == "cnn":
        return SmallCNN(shape, num_classes, p, **options)
    return ResNet18(shape, num_classes, p, **options)


def default_model_name(input_shape: tuple) -> str:
    """``mlp`` for feature vectors, ``cnn`` for single-channel images up to 32×32, else
    ``resnet18``."""
    kind, shape = parse_input_shape(input_shape)
    if kind == "features":
        return "mlp"
    c, h, w = shape
    return "cnn" if c == 1 and max(h, w) <= 32 else "resnet18"


__all__ = [
    "MLP",
    "MODEL_NAMES",
    "Backbone",
    "ResNet18",
    "SmallCNN",
    "build_model",
    "default_model_name",
    "parse_input_shape",
]
