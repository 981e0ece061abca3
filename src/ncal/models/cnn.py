"""Small CNN for small images (MNIST-like 28×28, sklearn digits 8×8, also 32×32 colour).

conv3×3(32)–ReLU–maxpool2–conv3×3(64)–ReLU–maxpool2–FC(128)–ReLU → features → [dropout] → Linear(C):
the network of the pre-project study (docs/findings.md). Convolutions are padded ("same"), so any
input of at least 4×4 works: 28×28 → 7×7×64, 8×8 → 2×2×64. Inputs whose pooled map would exceed 7×7 are
average-pooled adaptively to 7×7 so the FC layer stays small.
"""

from __future__ import annotations

from torch import nn

from .base import Backbone


class SmallCNN(Backbone):
    """See module docstring. ``batchnorm=True`` adds BatchNorm after each convolution."""

    def __init__(
        self,
        sample_shape: tuple[int, int, int],
        num_classes: int,
        dropout: float = 0.0,
        *,
        width: int = 32,
        hidden: int = 128,
        batchnorm: bool = False,
    ) -> None:
        super().__init__("image", sample_shape, num_classes)
        c, h, w = sample_shape
        if h < 4 or w < 4:
            raise ValueError(f"the `cnn` model needs images of at least 4×4 pixels; got {h}×{w}")
        ph, pw = h // 4, w // 4
        pool: list[nn.Module] = []
        if ph > 7 or pw > 7:
            ph, pw = min(ph, 7), min(pw, 7)
            pool = [nn.AdaptiveAvgPool2d((ph, pw))]

        def block(cin: int, cout: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batchnorm)]
            if batchnorm:
                layers.append(nn.BatchNorm2d(cout))
            return [*layers, nn.ReLU(inplace=True), nn.MaxPool2d(2)]

        self.body = nn.Sequential(
            *block(c, width),
            *block(width, 2 * width),
            *pool,
            nn.Flatten(),
            nn.Linear(2 * width * ph * pw, hidden),
            nn.ReLU(inplace=True),
        )
        self._finish(hidden, dropout)
