"""Augmentation and normalisation of image batches, in torch (no torchvision, docs/data.md).

Batches are converted by :func:`ncal.models.inputs.to_tensor` to float (N, C, H, W) in [0, 1],
augmented there (so crop padding is black, as in the usual torchvision pipeline) and normalised
last.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ..models.inputs import to_tensor


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` on each side and crop back to (H, W) at a random offset per
    sample."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    off = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(x.device)
    rows = off[0, :, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = off[1, :, None] + torch.arange(w, device=x.device)  # (N, W)
    # Gather rows then columns: (N, C, H, W+2p) then (N, C, H, W).
    xr = torch.gather(xp, 2, rows[:, None, :, None].expand(n, xp.shape[1], h, xp.shape[3]))
    return torch.gather(xr, 3, cols[:, None, None, :].expand(n, xp.shape[1], h, w))


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each sample left–right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def default_crop_padding(sample_shape: tuple[int, ...]) -> int:
    """4 px for ≥ 32×32, 2 px for 28×28-like, 1 px for tiny (8×8) images (⌊size/8⌋ capped to [1,
    4])."""
    if len(sample_shape) == 1:
        return 0
    size = min(sample_shape[1:])
    if size >= 32:
        return 4
    return max(1, min(2, size // 8))


def default_flip(sample_shape: tuple[int, ...]) -> bool:
    """Horizontal flips only for colour images (natural photos); never for grayscale
    digits/glyphs."""
    return len(sample_shape) == 3 and sample_shape[0] == 3


class Normalizer:
    """Per-channel (images) or per-dimension (features) ``(x - mean) / std``."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean = mean
        self.std = std

    @classmethod
    def fit(cls, mode: str, x: torch.Tensor) -> Normalizer:
        """``fixed``: mean = std = 0.5 for images, identity for features; ``labeled``: statistics of
        ``x`` (the labeled set), std floored at 1e-6 (constant pixels/dimensions)."""
        if x.ndim == 4:
            shape = (1, x.shape[1], 1, 1)
            if mode == "fixed":
                return cls(torch.full(shape, 0.5), torch.full(shape, 0.5))
            mean = x.mean(dim=(0, 2, 3), dtype=torch.float64).reshape(shape)
            std = x.double().std(dim=(0, 2, 3), unbiased=False).reshape(shape)
        else:
            shape = (1, x.shape[1])
            if mode == "fixed":
                return cls(torch.zeros(shape), torch.ones(shape))
            mean = x.mean(dim=0, dtype=torch.float64).reshape(shape)
            std = x.double().std(dim=0, unbiased=False).reshape(shape)
        return cls(mean.float(), std.clamp_min(1e-6).float())

    @classmethod
    def fit_array(
        cls, mode: str, x: np.ndarray, sample_shape: tuple[int, ...], *, chunk: int = 4096
    ) -> Normalizer:
        """Like :meth:`fit` on ``to_tensor(x)``, accumulated in float64 over row chunks."""
        if mode == "fixed" or len(x) == 0:
            return cls.fit("fixed", to_tensor(x[:1], sample_shape))
        dims = (0, 2, 3) if len(sample_shape) == 3 else (0,)
        s1 = s2 = None
        count = 0
        for start in range(0, len(x), chunk):
            t = to_tensor(x[start : start + chunk], sample_shape).double()
            a, b = t.sum(dim=dims), (t * t).sum(dim=dims)
            s1, s2 = (a, b) if s1 is None else (s1 + a, s2 + b)
            count += t.numel() // t.shape[1]
        mean = s1 / count
        std = (s2 / count - mean * mean).clamp_min(0.0).sqrt().clamp_min(1e-6)
        shape = (1, -1, 1, 1) if len(sample_shape) == 3 else (1, -1)
        return cls(mean.reshape(shape).float(), std.reshape(shape).float())

    def to(self, device: torch.device) -> Normalizer:
        return Normalizer(self.mean.to(device), self.std.to(device))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
