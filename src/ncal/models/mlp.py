"""MLP for feature-vector inputs (N, D), e.g. frozen pretrained features, or for small images
flattened to vectors (a cheap backbone for large benchmark grids on CPUs).

Linear(D, h1)–ReLU–…–Linear(·, hk)–ReLU → features (the last hidden layer) → [dropout] → Linear(C).
With ``hidden=()`` the features are the inputs themselves and the model is a linear classifier.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from torch import nn

from .base import Backbone


class MLP(Backbone):
    def __init__(
        self,
        sample_shape: tuple[int, ...],
        num_classes: int,
        dropout: float = 0.0,
        *,
        hidden: Sequence[int] = (256,),
    ) -> None:
        image = len(sample_shape) == 3
        super().__init__("image" if image else "features", sample_shape, num_classes)
        dims = [math.prod(int(s) for s in sample_shape), *(int(h) for h in hidden)]
        if any(d < 1 for d in dims[1:]):
            raise ValueError(f"`hidden` widths must be positive; got {tuple(hidden)}")
        layers: list[nn.Module] = [nn.Flatten(1)] if image else []
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers) if layers else nn.Identity()
        self._finish(dims[-1], dropout)
