"""ResNet-18 with the CIFAR stem, written from scratch (torchvision cannot be used, docs/data.md).

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016; CIFAR variant as in the common
``kuangliu/pytorch-cifar`` layout: 3×3 stride-1 stem convolution, no max-pool, four stages of two
BasicBlocks (64, 128, 256, 512 channels, strides 1, 2, 2, 2), global average pooling → 512-d
features.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import Backbone


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(Backbone):
    """ResNet-18, CIFAR stem; works for any input of at least 1×1 (adaptive global pooling)."""

    def __init__(
        self,
        sample_shape: tuple[int, int, int],
        num_classes: int,
        dropout: float = 0.0,
        *,
        width: int = 64,
    ) -> None:
        super().__init__("image", sample_shape, num_classes)
        c = sample_shape[0]
        widths = [width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = [
            nn.Conv2d(c, width, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        cin = width
        for i, cout in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self._finish(widths[-1], dropout)
