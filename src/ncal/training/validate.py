"""Check training-recipe overrides (``ncal run --train``, grid ``train:``) before anything runs."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

from ..errors import NcalError
from .config import TrainConfig


def train_keys() -> tuple[str, ...]:
    """The names of the :class:`TrainConfig` fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(TrainConfig))


def unknown_train_key_message(key: str) -> str:
    """``"unknown TrainConfig field (did you mean `epochs_max`?); valid: epochs_max, ..."``."""
    valid = train_keys()
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    return f"unknown TrainConfig field{hint}; valid: {', '.join(valid)}"


def check_train_keys(values: Mapping[str, Any]) -> None:
    """Raise unless every key of ``values`` is a :class:`TrainConfig` field.

    Raises
    ------
    NcalError
        Naming every unknown key, with the closest valid name and the list of valid ones.
    """
    if not isinstance(values, Mapping):
        raise NcalError(
            f"training overrides must be a mapping of TrainConfig fields; got {values!r}"
        )
    unknown = [k for k in values if k not in train_keys()]
    if unknown:
        raise NcalError("; ".join(f"`{k}`: {unknown_train_key_message(str(k))}" for k in unknown))


def check_train_config(values: Mapping[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` with ``values`` as overrides, its names and values checked.

    Raises
    ------
    NcalError
        Unknown keys (:func:`check_train_keys`) or a value that ``TrainConfig.validate`` refuses.
    """
    check_train_keys(values)
    try:
        return TrainConfig(**dict(values))
    except (TypeError, ValueError) as exc:
        raise NcalError(f"training override: {exc}") from None
