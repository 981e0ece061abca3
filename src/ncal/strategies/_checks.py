"""Constructor-argument checks of the strategies that import no torch.

Strategies validate their parameters when they are built; building one (and listing them) must not
import torch, so these checks live apart from the torch kernels in :mod:`._kernels`. Only a device
string that names CUDA is checked through torch (its availability cannot be known otherwise).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check_int(value: Any, name: str, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    """``value`` as an int; raise unless it is an integer >= ``minimum`` (or None when allowed).

    Raises
    ------
    TypeError
        When ``value`` is not an integer (bools are refused).
    ValueError
        When it is below ``minimum``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an integer; got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}; got {value}")
    return int(value)


def check_float(
    value: Any,
    name: str,
    *,
    low: float = -np.inf,
    high: float = np.inf,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
) -> float | None:
    """``value`` as a float; raise unless it is a finite number in the given interval.

    Raises
    ------
    TypeError
        When ``value`` is not a real number (bools are refused).
    ValueError
        When it is not finite or lies outside the interval.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be a number; got {type(value).__name__}")
    v = float(value)
    bad = (
        not np.isfinite(v)
        or v < low
        or v > high
        or (low_open and v == low)
        or (high_open and v == high)
    )
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"`{name}` must be in {lo}{low}, {high}{hi}; got {value!r}")
    return v


def check_device(device: Any) -> str:
    """Validate a device now (so a bad value fails at construction); return it as a string.

    ``"cpu"`` and ``"auto"`` are accepted without importing torch; anything else is resolved by
    :func:`ncal._utils.torch.resolve_device` (CUDA must then be available).

    Raises
    ------
    TypeError
        When ``device`` is neither a string nor a ``torch.device``.
    ValueError
        When the string names no device, or CUDA is requested but not available.
    """
    if isinstance(device, str) and device in ("cpu", "auto"):
        return device
    if not isinstance(device, str) and type(device).__module__ != "torch":
        raise TypeError(
            f"`device` must be a string such as 'cpu', 'cuda[:i]' or 'auto'; "
            f"got {type(device).__name__}"
        )
    from .._utils.torch import resolve_device

    resolve_device(device)
    return str(device)
