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
        the CIFAR stem; ``mlp``: MLP for feature vectors (images are flattened); ``auto``:
        :func:`default_model_name`.
    input_shape : tuple
        Shape of one sample as stored: ``(D,)``, ``(H, W)``, ``(H, W, C)`` (or ``(C, H, W)``).
    num_classes : int
    dropout : float
        Dropout probability before the head (0 = none). BALD needs ``dropout > 0``.
    seed : int, optional
        Seed the initialisation (via :func:`ncal._utils.torch.seeded`, leaving torch's global RNG
        as it was). Without it the initialisation draws from torch's global RNG, so
        ``torch.manual_seed(s)`` before the call makes it deterministic too.
    **options
        Model-specific: ``cnn``: ``width=32, hidden=128, batchnorm=False``; ``resnet18``:
        ``width=64``; ``mlp``: ``hidden=(256,)``.

    Returns
    -------
    Backbone
    """
    if seed is not None:
        from .._utils.torch import seeded

        with seeded(seed):
            return build_model(
                name, input_shape=input_shape, num_classes=num_classes, dropout=dropout, **options
            )
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an integer >= 2; got {num_classes!r}")
    p = check_dropout(dropout)
    kind, shape = parse_input_shape(input_shape)
    name = resolve_model_name(name, input_shape)
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


def default_model_name(input_shape: tuple, kind: str | None = None) -> str:
    """The backbone ``auto`` stands for: ``mlp`` for feature vectors, ``resnet18`` for 3-channel
    (colour) images, ``cnn`` for every other image (grayscale, any size).

    This is the rule the experiment loop has always applied to stored samples (``(H, W)`` and
    ``(H, W, 1)`` → cnn, ``(H, W, 3)`` → resnet18, ``(D,)`` → mlp); the layout is read with
    :func:`parse_input_shape`, so ``(3, 32, 32)`` is a colour image too.

    Parameters
    ----------
    input_shape : tuple
        Shape of one sample as stored (see :func:`build_model`).
    kind : {"image", "features"}, optional
        The data's declared kind; ``"features"`` picks ``mlp`` whatever the shape.
    """
    if kind is not None and kind not in ("image", "features"):
        raise ValueError(f"`kind` must be 'image', 'features' or None; got {kind!r}")
    shape_kind, shape = parse_input_shape(input_shape)
    if kind == "features" or shape_kind == "features":
        return "mlp"
    return "resnet18" if shape[0] == 3 else "cnn"


def resolve_model_name(name: str, input_shape: tuple, kind: str | None = None) -> str:
    """``name`` itself when it is a backbone name, or what ``"auto"`` stands for
    (:func:`default_model_name`).

    Raises
    ------
    ValueError
        ``name`` is neither ``"auto"`` nor one of :data:`MODEL_NAMES`.
    """
    if name == "auto":
        return default_model_name(input_shape, kind)
    if name not in MODEL_NAMES:
        raise ValueError(f"`name` must be one of {[*MODEL_NAMES, 'auto']}; got {name!r}")
    return name


__all__ = [
    "MLP",
    "MODEL_NAMES",
    "Backbone",
    "ResNet18",
    "SmallCNN",
    "build_model",
    "default_model_name",
    "parse_input_shape",
    "resolve_model_name",
]
