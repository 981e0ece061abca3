"""How stored samples become model inputs: the numpy → torch layout conversion every consumer of a
:class:`Backbone` shares (training, evaluation passes, the pretrained extractor).

Images arrive as stored in a :class:`ncal.data.Dataset`: ``uint8`` (N, H, W) or (N, H, W, C) in
0–255 (float arrays are taken to be already in [0, 1]); they become float (N, C, H, W) in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(x: np.ndarray, sample_shape: tuple[int, ...]) -> torch.Tensor:
    """Convert a numpy batch to a float32 tensor in the model's layout (not yet normalised).

    Images: uint8 → ``/255``; (N, H, W) → (N, 1, H, W); (N, H, W, C) → (N, C, H, W).
    Features: float32 (N, D).
    """
    a = np.asarray(x)
    if len(sample_shape) == 1:
        return torch.from_numpy(_owned(np.ascontiguousarray(a, dtype=np.float32)))
    t = torch.from_numpy(_owned(np.ascontiguousarray(a)))
    if a.ndim == 3:
        t = t.unsqueeze(1)
    elif a.shape[1:] != tuple(sample_shape):  # (N, H, W, C), the Dataset layout
        t = t.permute(0, 3, 1, 2)
    t = t.float()
    if a.dtype == np.uint8:
        t = t.div_(255.0)
    return t.contiguous()


def _owned(a: np.ndarray) -> np.ndarray:
    """``a``, or a copy when it is read-only (a slice of a read-only memmap): torch tensors must
    not alias memory they cannot write."""
    return a if a.flags.writeable else a.copy()


def input_layout_matches(x_shape: tuple[int, ...], sample_shape: tuple[int, ...]) -> bool:
    """Whether stored samples of shape ``x_shape[1:]`` fit a model consuming ``sample_shape``."""
    s = tuple(x_shape[1:])
    if len(sample_shape) == 1:
        return s == tuple(sample_shape)
    c, h, w = sample_shape
    return (s == (h, w) and c == 1) or s == (h, w, c) or s == (c, h, w)
