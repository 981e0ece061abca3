"""The `Backbone` contract every ncal model follows (docs/algorithms.md §0.1–0.2).

``forward(x) = head(dropout(features(x)))``: the penultimate feature ``h(x)`` is taken after global
pooling (or the last hidden layer) and before the final linear layer ``head`` (``W``, ``b``).
Dropout, when present, sits only between ``features`` and ``head``, so in eval mode
``head(features(x)) == forward(x)`` and MC-dropout can re-use one feature pass
(docs/algorithms.md §1.3).
"""

from __future__ import annotations

import torch
from torch import nn


def parse_input_shape(input_shape: tuple) -> tuple[str, tuple[int, ...]]:
    """Normalise a sample shape to ``("image", (C, H, W))`` or ``("features", (D,))``.

    Accepted: ``(D,)`` feature vectors; ``(H, W)`` grayscale; ``(H, W, C)`` as images are stored in
    a :class:`ncal.data.Dataset`; ``(C, H, W)`` when unambiguous (first entry 1–4, last entry > 4).
    """
    if isinstance(input_shape, (str, bytes)):
        raise TypeError(f"`input_shape` must be a tuple of ints; got {input_shape!r}")
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"`input_shape` must be a tuple of ints; got {input_shape!r}") from None
    if any(s < 1 for s in shape):
        raise ValueError(f"`input_shape` entries must be positive; got {shape}")
    if len(shape) == 1:
        return "features", shape
    if len(shape) == 2:
        return "image", (1, *shape)
    if len(shape) == 3:
        if shape[2] <= 4:  # (H, W, C): the Dataset layout
            return "image", (shape[2], shape[0], shape[1])
        if shape[0] <= 4:  # (C, H, W)
            return "image", shape
        raise ValueError(
            f"`input_shape` {shape} has no channel axis of size 1–4 "
            "(expected (H, W, C) or (C, H, W))"
        )
    raise ValueError(f"`input_shape` must be (D,), (H, W), (H, W, C) or (C, H, W); got {shape}")


class Backbone(nn.Module):
    """Base class: subclasses build ``self.body`` (input → penultimate features) and call
    :meth:`_finish` to add the dropout and the linear ``head``.

    Attributes
    ----------
    head : nn.Linear
        The final layer (``W = head.weight`` (C, d), ``b = head.bias`` (C,)).
    feature_dim : int
        ``d``, the width of :meth:`features`.
    num_classes : int
    input_kind : {"image", "features"}
    sample_shape : tuple
        One sample as the model consumes it: ``(C, H, W)`` or ``(D,)``.
    """

    head: nn.Linear

    def __init__(self, input_kind: str, sample_shape: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        self.input_kind = input_kind
        self.sample_shape = tuple(sample_shape)
        self.num_classes = int(num_classes)
        self.feature_dim = 0

    def _finish(self, feature_dim: int, dropout: float) -> None:
        self.feature_dim = int(feature_dim)
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(self.feature_dim, self.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``h(x)``, shape (N, feature_dim)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape (N, num_classes)."""
        return self.head(self.dropout(self.features(x)))

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, features)`` from one pass."""
        h = self.features(x)
        return self.head(self.dropout(h)), h

    @property
    def has_dropout(self) -> bool:
        """Whether the model contains an active dropout layer (needed for MC dropout / BALD)."""
        return any(isinstance(m, nn.Dropout) and m.p > 0 for m in self.modules())

    @property
    def head_only_dropout(self) -> bool:
        """True when the only dropout is the one before the head (MC passes can re-use features)."""
        drops = [m for m in self.modules() if isinstance(m, nn.Dropout) and m.p > 0]
        return len(drops) == 1 and drops[0] is self.dropout


def check_dropout(dropout: float) -> float:
    try:
        p = float(dropout)
    except (TypeError, ValueError):
        raise TypeError(f"`dropout` must be a number in [0, 1); got {dropout!r}") from None
    if not 0.0 <= p < 1.0:
        raise ValueError(f"`dropout` must lie in [0, 1); got {dropout!r}")
    return p
