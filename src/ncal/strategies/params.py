"""Check a strategy's parameters by name before anything runs (``ncal run --param``, grids).

The names are those of the strategy's ``__init__`` (:meth:`ncal.strategies.Strategy.parameter_names`);
the values are checked by building the strategy, so its own ``__init__`` validation runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ..errors import NcalError
from ._registry import available, strategy_class


def strategy_parameter_names(name: str) -> tuple[str, ...]:
    """The parameter names of strategy ``name`` (imports only that strategy's module).

    Raises
    ------
    NcalError
        When ``name`` is not a known strategy (the message lists the known ones).
    """
    try:
        cls = strategy_class(name)
    except ValueError:
        raise NcalError(
            f"unknown strategy {name!r}{did_you_mean(name, available())}; "
            f"known strategies: {', '.join(available())}"
        ) from None
    return tuple(cls.parameter_names())


def unknown_parameter_message(name: str, key: str, valid: tuple[str, ...]) -> str:
    """``"unknown parameter of `ncal_r` (did you mean `direction`?); valid: direction, ..."``."""
    listed = ", ".join(valid) if valid else "none (it takes no parameters)"
    return f"unknown parameter of `{name}`{did_you_mean(key, valid)}; valid: {listed}"


def check_strategy_params(name: str, params: Mapping[str, Any] | None = None) -> Any:
    """Build strategy ``name`` with ``params`` after checking every parameter name.

    Parameters
    ----------
    name : str
        Registry name (:func:`ncal.strategies.available`).
    params : mapping, optional
        Constructor parameters.

    Returns
    -------
    Strategy
        The built strategy (its ``__init__`` validated the values).

    Raises
    ------
    NcalError
        Unknown strategy; every unknown parameter name, each with the valid names; or the
        strategy's own complaint about a value.
    """
    params = dict(params or {})
    valid = strategy_parameter_names(name)
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise NcalError(
            "; ".join(f"`{k}`: {unknown_parameter_message(name, k, valid)}" for k in unknown)
        )
    try:
        return strategy_class(name)(**params)
    except (TypeError, ValueError) as exc:
        raise NcalError(f"strategy `{name}`: {exc}") from None


def did_you_mean(word: str, choices: Any) -> str:
    """`` (did you mean `x`?)`` for the closest of ``choices``, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""
