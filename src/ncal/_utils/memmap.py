"""Streaming rows of a memory-mapped array without mapping the file into the process.

Reading a 2 GB ``.npy`` through ``np.load(..., mmap_mode="r")`` leaves every page that was read
mapped into the process: its resident size grows by the whole file although each block is needed
only once per pass. :func:`read_rows` reads a block of a read-only memmap with ordinary file reads
into a fresh array instead (the kernel's page cache still serves repeated passes), so a pass over
the pool costs one block of memory, not the file.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np


def _file_position(arr: np.ndarray) -> tuple[Path, int] | None:
    """(file, byte offset of ``arr[0]``) for a C-contiguous view of a read-only memmap, else None.

    Copy-on-write maps (``mmap_mode="c"``) are left alone: they may hold changes the file lacks.
    """
    if not (isinstance(arr, np.ndarray) and arr.flags.c_contiguous and arr.size):
        return None
    base = arr
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    mm = getattr(base, "_mmap", None)
    if getattr(base, "mode", None) != "r" or not isinstance(mm, mmap.mmap) or base.filename is None:
        return None
    mapped_from = base.offset - base.offset % mmap.ALLOCATIONGRANULARITY  # where the map starts
    origin = np.frombuffer(mm, dtype=np.uint8).ctypes.data
    return Path(base.filename), mapped_from + arr.ctypes.data - origin


def read_rows(arr: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``arr[start:stop]`` as an array of its own, read from the file when ``arr`` is a read-only
    memmap (or a contiguous view of one), else the usual slice.

    The result never aliases the map, so the process does not keep the file's pages.
    """
    where = _file_position(arr)
    start, stop = max(0, int(start)), min(len(arr), int(stop))
    if where is None or stop <= start:
        return arr[start:stop]
    path, offset = where
    out = np.empty((stop - start, *arr.shape[1:]), dtype=arr.dtype)
    row_bytes = arr.strides[0]
    with open(path, "rb", buffering=0) as fh:
        fh.seek(offset + start * row_bytes)
        view = memoryview(out).cast("B")
        got = 0
        while got < view.nbytes:  # readinto may return less than asked
            n = fh.readinto(view[got:])
            if not n:
                raise OSError(f"{path} ended before row {stop} of the memory-mapped array")
            got += n
    return out
