"""The base strategy of a wrapper strategy (``diverse``, ``relabel``, ``ood_gate``).

A wrapper takes its base either as a :class:`~ncal.strategies.Strategy` instance or as a registered
name plus ``base_params``; :func:`build_base` turns either into the instance.
"""

from __future__ import annotations

from typing import Any

from ._registry import available, get
from .base import Strategy


def build_base(base: str | Strategy, base_params: dict[str, Any] | None, wrapper: str) -> Strategy:
    """The base strategy of the wrapper named ``wrapper``.

    Parameters
    ----------
    base : str or Strategy
        A registered strategy name (built with ``base_params``) or an instance (used as it is).
    base_params : dict, optional
        Parameters of the base; only allowed when ``base`` is a name.
    wrapper : str
        Registry name of the wrapper, which cannot be its own base.

    Returns
    -------
    Strategy
        The base strategy instance.

    Raises
    ------
    ValueError
        ``base_params`` given with an instance, ``base`` naming the wrapper or an unknown strategy.
    TypeError
        ``base`` is neither a name nor a Strategy, or ``base_params`` do not fit the base.
    """
    if isinstance(base, Strategy):
        if base_params:
            raise ValueError("`base_params` only applies when `base` is a strategy name")
        return base
    if not isinstance(base, str):
        raise TypeError(f"`base` must be a strategy name or Strategy; got {type(base).__name__}")
    if base == wrapper:
        raise ValueError(f"`base` cannot itself be {wrapper!r}")
    if base not in available():
        raise ValueError(f"`base` must be a strategy name {available()}; got {base!r}")
    try:
        return get(base, **(base_params or {}))
    except TypeError as e:
        raise TypeError(f"`base_params` do not fit the base {base!r}: {e}") from e


class WrapsBase:
    """Mixin (listed before the Strategy base) of a wrapper holding its base strategy as ``_base``.

    Records the base by name and full parameters (``base``, ``base_params``), so the wrapper is
    rebuilt by ``get(**params())``, and needs the base's signals plus its own
    (:meth:`_own_needs`).
    """

    _base: Strategy
    needs: tuple[str, ...]

    def _record_base(self) -> None:
        """Store ``base`` and ``base_params`` from the built base (call last in ``__init__``)."""
        self.base = self._base.name
        self.base_params = self._base.params()

    def _own_needs(self) -> tuple[str, ...]:
        """Signals the wrapper needs on top of its base's (default: ``needs``)."""
        return tuple(self.needs)

    def required_signals(self) -> tuple[str, ...]:
        """The base's signals, then the wrapper's own that the base does not need."""
        base = self._base.required_signals()
        return (*base, *(s for s in self._own_needs() if s not in base))
