"""Input checks shared by every public function: clear errors that name the argument."""

from __future__ import annotations

from typing import Any

import numpy as np


def as_float_matrix(
    x: Any, name: str, *, dtype=np.float64, allow_empty: bool = False
) -> np.ndarray:
    """Return ``x`` as a 2-D finite float array, or raise naming ``name``."""
    if x is None:
        raise ValueError(f"`{name}` is required but was None")
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array (rows, columns); got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"`{name}` must hold real numbers; got dtype {arr.dtype}")
    if not allow_empty and arr.shape[0] == 0:
        raise ValueError(f"`{name}` must have at least one row")
    arr = arr.astype(dtype, copy=False)
    check_finite(arr, name)
    return arr


def check_finite(arr: np.ndarray, name: str, *, block: int = 1 << 16) -> None:
    """Raise if ``arr`` holds NaN or inf (checked in row blocks to keep memory flat)."""
    if arr.ndim == 0 or arr.shape[0] <= block:
        if not np.isfinite(arr).all():
            raise ValueError(f"`{name}` contains NaN or inf values")
        return
    for start in range(0, arr.shape[0], block):
        if not np.isfinite(arr[start : start + block]).all():
            raise ValueError(f"`{name}` contains NaN or inf values (rows from {start})")


def as_label_vector(
    y: Any, name: str, *, num_classes: int | None = None, length: int | None = None
) -> np.ndarray:
    """Return ``y`` as a 1-D int64 array of labels in ``[0, num_classes)``, or raise."""
    if y is None:
        raise ValueError(f"`{name}` is required but was None")
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array of integer labels; got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if (
            np.issubdtype(arr.dtype, np.floating)
            and np.all(np.isfinite(arr))
            and np.all(arr == np.round(arr))
        ):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"`{name}` must hold integer class labels; got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"`{name}` has {arr.shape[0]} entries but {length} were expected")
    if arr.size and arr.min() < 0:
        raise ValueError(f"`{name}` holds negative labels (min {arr.min()}); labels must be >= 0")
    if num_classes is not None and arr.size and arr.max() >= num_classes:
        raise ValueError(f"`{name}` holds label {arr.max()} outside [0, num_classes={num_classes})")
    return arr


def as_score_vector(x: Any, name: str, *, length: int | None = None) -> np.ndarray:
    """Return ``x`` as a 1-D float64 array without NaN (inf is allowed: it encodes forced picks)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array; got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"`{name}` has {arr.shape[0]} entries but {length} were expected")
    if np.isnan(arr).any():
        raise ValueError(
            f"`{name}` contains NaN (at index {int(np.flatnonzero(np.isnan(arr))[0])})"
        )
    return arr


def check_k(k: Any, name: str = "k") -> int:
    """Return ``k`` as a non-negative int, or raise."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer; got {type(k).__name__}")
    if k < 0:
        raise ValueError(f"`{name}` must be >= 0; got {k}")
    return int(k)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}; got {value!r}")
    return value


def check_same_rows(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"`{name_a}` has {a.shape[0]} rows but `{name_b}` has {b.shape[0]}; they must match"
        )


def check_count(value: Any, name: str) -> int:
    """``value`` as a non-negative int, or raise naming ``name`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer; got {value!r}")
    return int(value)
