"""Device, thread and seed helpers for torch: every torch-side source of nondeterminism is set here.

Importing this module imports torch; only code that already needs torch imports it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from .random import derive_seed


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"`` … as given.

    Raises
    ------
    ValueError
        When CUDA is asked for but not available, or the string is not a device.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(
                f"`device` must be 'auto', 'cpu' or 'cuda[:i]'; got {device!r}"
            ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` is {device!r} but CUDA is not available; use 'cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"`device` must be 'auto', 'cpu' or 'cuda[:i]'; got {device!r}")
    return dev


def make_generator(seed: int, *tags: int | str) -> torch.Generator:
    """A local CPU ``torch.Generator`` on the stream ``derive_seed(seed, *tags)``."""
    g = torch.Generator(device="cpu")
    g.manual_seed(derive_seed(seed, *tags))
    return g


@contextlib.contextmanager
def seeded(seed: int, *, cuda: bool | None = None) -> Iterator[None]:
    """Run the block with torch's global RNG seeded to ``seed``; restore the previous RNG state
    after.

    Use it around model construction so initialisation is a function of the seed only::

        with seeded(round_seed):
            model = build_model("cnn", input_shape=(28, 28), num_classes=10)
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an integer; got {type(seed).__name__}")
    use_cuda = torch.cuda.is_available() if cuda is None else cuda
    devices = list(range(torch.cuda.device_count())) if use_cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
        yield


@contextlib.contextmanager
def thread_limit(num_threads: int | None) -> Iterator[None]:
    """Set ``torch.set_num_threads`` for the block (``None``: leave as is) and restore it after."""
    if num_threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the block (cheap on CPU; on CUDA cuDNN autotuning is off too).

    ``warn_only=True`` so an op without a deterministic CUDA kernel warns instead of failing.
    """
    prev_alg = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    prev_det = torch.backends.cudnn.deterministic
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_alg, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench
        torch.backends.cudnn.deterministic = prev_det
