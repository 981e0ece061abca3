"""A pickle reader that only rebuilds plain containers and NumPy arrays.

The official CIFAR archives and the CIFAR-N ``.pt`` files are pickles of dicts of NumPy arrays.
Loading them with the stock :mod:`pickle` would execute any callable the file names; this reader
refuses every global except the handful NumPy needs to rebuild an ``ndarray``, so a tampered file
fails loudly.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO

import numpy as np

try:  # NumPy >= 2 moved the array reconstructor; old pickles still name ``numpy.core``.
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): __import__("_codecs").encode,
    ("builtins", "list"): list,
    ("builtins", "dict"): dict,
    ("builtins", "tuple"): tuple,
    ("collections", "OrderedDict"): __import__("collections").OrderedDict,
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only NumPy arrays and plain containers "
                "are allowed in data pickles"
            ) from None


def safe_load(source: bytes | BinaryIO) -> Any:
    """Unpickle ``source`` allowing only NumPy arrays, dicts, lists and scalars.

    Python-2 ``str`` objects (the official CIFAR pickles) are decoded as latin-1, which is what
    NumPy expects for array payloads; dict keys that arrive as ``bytes`` are left to the caller.
    """
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    return _ArrayOnlyUnpickler(stream, encoding="latin1").load()


def str_keys(d: dict) -> dict:
    """Return ``d`` with ``bytes`` keys decoded (pickles written from Python 3 keep ``b"data"``)."""
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def as_str(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v)
