"""Reader for the IDX format of MNIST / Fashion-MNIST (``*-idx3-ubyte[.gz]``).

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number of
dimensions ``k``, ``k`` big-endian uint32 sizes, then the data in C order.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (plain or gzip-compressed, decided by the magic bytes).

    Parameters
    ----------
    path
        File such as ``train-images-idx3-ubyte.gz``.

    Returns
    -------
    numpy.ndarray
        Array with the file's shape, in native byte order (uint8 for image and label files).
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        raw = f.read()
    return parse_idx(raw, source=str(path))


def parse_idx(raw: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file; see :func:`read_idx`."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{source} is not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        raise ValueError(f"{source}: unknown IDX data type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{source}: truncated IDX header")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{source}: IDX payload has {len(raw) - header} bytes but shape {shape} needs "
            f"{expected}"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write ``arr`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``); for tests."""
    arr = np.asarray(arr)
    codes = {v.newbyteorder("=") if v.itemsize > 1 else v: k for k, v in _DTYPES.items()}
    dt = arr.dtype.newbyteorder("=") if arr.dtype.itemsize > 1 else arr.dtype
    if dt not in codes:
        raise ValueError(f"`arr` has dtype {arr.dtype}, which IDX cannot store")
    code = codes[dt]
    big = arr.astype(_DTYPES[code], copy=False)
    head = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload = head + np.ascontiguousarray(big).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)
