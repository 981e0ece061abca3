"""Row-block access to a pool that may be a (float32) ``np.memmap`` larger than memory.

Blocks are converted to float64 one at a time and checked for NaN/inf. For file-backed memmaps the
pages of a finished block are dropped from this process's resident set (``madvise(MADV_DONTNEED)``;
the kernel page cache keeps them), so scoring a pool of any size keeps the RSS flat.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from typing import Any

import numpy as np


def check_pool_matrix(x: Any, name: str) -> np.ndarray:
    """Validate shape/dtype of a pool matrix *without* converting or copying it."""
    if x is None:
        raise ValueError(f"`{name}` is required but was None")
    arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array (rows, columns); got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"`{name}` must hold real numbers; got dtype {arr.dtype}")
    return arr


class _PageReleaser:
    """Drops already-read pages of a file-backed memmap from the process (no-op otherwise)."""

    def __init__(self, arr: np.ndarray) -> None:
        self._mm = None
        mm = getattr(arr, "_mmap", None)
        # MAP_PRIVATE ("c") pages may hold unsaved edits that DONTNEED would discard: skip them.
        if (
            isinstance(arr, np.memmap)
            and isinstance(mm, mmap.mmap)
            and getattr(arr, "mode", "c") in ("r", "r+", "w+")
            and hasattr(mm, "madvise")
            and hasattr(mmap, "MADV_DONTNEED")
            and arr.flags.c_contiguous
        ):
            try:
                base = np.frombuffer(mm, dtype=np.uint8).ctypes.data
            except (TypeError, ValueError, BufferError):
                return
            self._mm = mm
            self._base = base
            self._size = len(mm)
            self._data = arr.ctypes.data
            self._row_bytes = arr.strides[0]

    def release(self, start: int, stop: int) -> None:
        if self._mm is None or stop <= start:
            return
        lo = self._data - self._base + start * self._row_bytes
        hi = self._data - self._base + stop * self._row_bytes
        page = mmap.PAGESIZE
        lo = (lo // page) * page  # a page shared with the next block is re-read later: harmless
        hi = min(self._size, hi)
        if hi > lo:
            try:
                self._mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
            except (OSError, ValueError):
                self._mm = None


def raise_if_nonfinite(block: np.ndarray, start: int, name: str) -> None:
    """Raise naming the first row of ``block`` (pool row ``start + i``) that holds NaN or inf."""
    finite = np.isfinite(block)
    if not finite.all():
        bad = start + int(np.flatnonzero(~finite.all(axis=1))[0])
        raise ValueError(f"`{name}` contains NaN or inf values (row {bad})")


def iter_blocks(x: np.ndarray, block_size: int, name: str) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, float64 block)`` over the rows of ``x``; NaN/inf raise (``name``)."""
    for start, stop, raw in iter_raw_blocks(x, block_size):
        block = np.array(raw, dtype=np.float64, copy=True)
        raise_if_nonfinite(block, start, name)
        yield start, stop, block


def iter_raw_blocks(x: np.ndarray, block_size: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(start, stop, rows)`` with the rows as stored (a view: no conversion, no check).

    A block's pages are released once the consumer asks for the next block.
    """
    releaser = _PageReleaser(x)
    n = x.shape[0]
    for start in range(0, n, block_size):
        stop = min(n, start + block_size)
        yield start, stop, x[start:stop]
        releaser.release(start, stop)
