"""Batched eval-mode extraction (docs/algorithms.md §0.2) and MC-dropout passes (§1.3).

Every pass is ``model.eval()`` + ``torch.no_grad()`` on deterministic (un-augmented) inputs, chunked
over the data so the pool never has to sit on the device as one float tensor.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from .._utils.memmap import read_rows
from ..models.inputs import to_tensor
from .augment import Normalizer


class Preprocessor:
    """numpy slice → normalised float tensor on ``device`` in the model's layout.

    Image batches are handed over in ``channels_last`` memory format: on CPU this makes the small
    CNN's convolutions and max-pooling about 3× faster in eval mode and 1.4× in training (measured,
    1 thread).
    """

    def __init__(
        self, sample_shape: tuple[int, ...], normalizer: Normalizer, device: torch.device
    ) -> None:
        self.sample_shape = tuple(sample_shape)
        self.normalizer = normalizer.to(device)
        self.device = device

    def raw(self, x: np.ndarray) -> torch.Tensor:
        """Un-normalised tensor in [0, 1] (images) on the device: the input of augmentation."""
        return to_tensor(x, self.sample_shape).to(self.device, non_blocking=True)

    def finish(self, t: torch.Tensor) -> torch.Tensor:
        """Normalise a raw (possibly augmented) batch and set its memory format."""
        t = self.normalizer(t)
        if t.ndim == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        return self.finish(self.raw(x))


def _forward(model: nn.Module, xb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    if hasattr(model, "forward_with_features"):
        return model.forward_with_features(xb)
    return model(xb), None


#: Largest prepared (float32, normalised) copy of a sample set kept for repeated eval passes: the
#: labeled set is passed once per epoch and the pool once per FF-window epoch.
PREPARED_CACHE_BYTES = 1 << 29


def prepare_batches(
    x: np.ndarray,
    prep: Callable[[np.ndarray], torch.Tensor],
    *,
    batch_size: int,
    sample_shape: tuple[int, ...],
    max_bytes: int = PREPARED_CACHE_BYTES,
) -> list[torch.Tensor] | None:
    """The model inputs of ``x``, batch by batch, for passes that repeat over the same samples.

    The inputs are exactly those :func:`eval_pass` would build (same ``prep``, same batch bounds),
    so a pass over them gives bit-identical outputs. Returns ``None`` when the float32 copy would
    exceed ``max_bytes``; the caller then prepares each batch as it goes.
    """
    if len(x) * math.prod(sample_shape) * 4 > max_bytes:
        return None
    return [prep(read_rows(x, start, start + batch_size)) for start in range(0, len(x), batch_size)]


def eval_pass(
    model: nn.Module,
    x: np.ndarray,
    prep: Callable[[np.ndarray], torch.Tensor],
    *,
    batch_size: int = 1024,
    features: bool = True,
    batches: list[torch.Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Logits (N, C) and penultimate features (N, d) of ``x`` in eval mode, float32 numpy.

    Parameters
    ----------
    model : Backbone (or any module; then features are ``None``)
    x : array
        Stored samples (uint8 images or float features), processed ``batch_size`` rows at a time.
    prep : callable
        numpy slice → model input tensor (see :class:`Preprocessor`).
    features : bool
        Return features too (they cost nothing extra but memory).
    batches : list of tensors, optional
        ``x`` already prepared by :func:`prepare_batches` with the same ``prep`` and
        ``batch_size`` (then ``x`` is not read).
    """
    if batches is None:
        # a read-only memmap is read block by block from its file, never mapped whole
        inputs: Iterable[torch.Tensor] = (
            prep(read_rows(x, start, start + batch_size)) for start in range(0, len(x), batch_size)
        )
    else:
        inputs = batches
    n = len(x) if batches is None else sum(len(b) for b in batches)
    # Outputs go into arrays allocated at the first batch (its widths): no list of blocks and no
    # concatenated copy (a 1M-row pool's features are 1 GB; a concatenation would hold two).
    logits: np.ndarray | None = None
    feats: np.ndarray | None = None
    has_features = True
    was_training = model.training
    model.eval()
    start = 0
    try:
        # inference_mode: no autograd bookkeeping at all (same kernels as no_grad, same numbers)
        with torch.inference_mode():
            for xb in inputs:
                z, h = _forward(model, xb)
                stop = start + z.shape[0]
                if logits is None:
                    logits = np.empty((n, z.shape[1]), dtype=np.float32)
                logits[start:stop] = z.float().cpu().numpy()
                has_features = has_features and h is not None
                if features and has_features:
                    if feats is None:
                        feats = np.empty((n, h.shape[1]), dtype=np.float32)
                    feats[start:stop] = h.float().cpu().numpy()
                start = stop
    finally:
        model.train(was_training)
    if logits is None:  # no rows
        logits = np.zeros((0, int(getattr(model, "num_classes", 0))), np.float32)
    if not features or not has_features:
        return logits, None
    if feats is None:
        feats = np.zeros((0, int(getattr(model, "feature_dim", 0))), np.float32)
    return logits, feats


@contextlib.contextmanager
def dropout_only_train(model: nn.Module) -> Iterator[None]:
    """Eval mode everywhere except ``nn.Dropout`` modules (docs/algorithms.md §1.3 pitfall:
    ``model.train()`` would switch BatchNorm to batch statistics and update its running buffers
    even under no_grad)."""
    was_training = model.training
    model.eval()
    drops = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    for m in drops:
        m.train()
    try:
        yield
    finally:
        model.train(was_training)


def mc_dropout_probs(
    model: nn.Module,
    x: np.ndarray,
    prep: Callable[[np.ndarray], torch.Tensor],
    *,
    passes: int,
    seed: int,
    batch_size: int = 1024,
    reuse_features: bool | None = None,
) -> np.ndarray:
    """Softmax probabilities of ``passes`` MC-dropout passes, shape (T, N, C) float32.

    Masks come from torch's global RNG seeded with ``seed`` inside a forked RNG state (the caller's
    RNG is left untouched), in a fixed order (pass, then batch), so the output is a function of
    ``seed``. With ``reuse_features`` (default: when the only dropout sits before the head) the
    features are computed once and only dropout + head run ``passes`` times (docs/algorithms.md
    §1.3); the masks drawn are the same as in the full forward passes, so both paths agree.

    Raises
    ------
    ValueError
        If the model has no dropout layer with ``p > 0`` or ``passes < 1``.
    """
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise ValueError(f"`mc_passes` must be a positive integer; got {passes!r}")
    if not any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        raise ValueError(
            "MC-dropout passes (e.g. for `bald`) need a model with dropout: build it with "
            "`build_model(..., dropout=0.3)` (or any p in (0, 1))"
        )
    if reuse_features is None:
        reuse_features = bool(getattr(model, "head_only_dropout", False))
    n = len(x)
    c = int(getattr(model, "num_classes", 0))
    out = np.empty((passes, n, c), dtype=np.float32)
    from .._utils.torch import seeded

    with seeded(seed), dropout_only_train(model), torch.no_grad():
        if reuse_features:
            feats = []
            for start in range(0, n, batch_size):
                feats.append(model.features(prep(x[start : start + batch_size])))
        for t in range(passes):
            for bi, start in enumerate(range(0, n, batch_size)):
                if reuse_features:
                    z = model.head(model.dropout(feats[bi]))
                else:
                    z = model(prep(x[start : start + batch_size]))
                p = torch.softmax(z.double(), dim=1)
                out[t, start : start + len(p)] = p.float().cpu().numpy()
    return out
