"""The seam between training and selection: `Signals` in, `Selection` out.

A strategy never trains and never touches a model. It declares the signals it needs in ``needs``
and receives them as arrays; every stochastic strategy draws only from the ``rng`` it is given.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np

from .._utils.validation import as_label_vector, check_k
from ..signals import SIGNAL_NAMES, Selection, Signals  # noqa: F401  (re-exported)
from ._registry import register

_NAMED_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class Strategy:
    """Base class of every acquisition strategy.

    Subclasses set ``name`` (registry key), ``needs`` (signal names; ``"probs_pool"`` is satisfied by
    ``logits_pool`` as well), validate their parameters in ``__init__``, store each one as the
    attribute of the same name (:meth:`params` reads them from there) and implement ``_select``.
    ``stochastic`` says whether the picks depend on the ``rng``; a subclass whose randomness depends
    on its parameters sets it per instance in ``__init__``.
    """

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()
    stochastic: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            register(cls)

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """Names of the ``__init__`` parameters, in signature order (empty without an ``__init__``).

        Raises
        ------
        TypeError
            When ``__init__`` takes ``*args`` or ``**kwargs`` (its parameters cannot be recorded).
        """
        if cls.__init__ is object.__init__:
            return ()
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # skip `self`
        loose = [p.name for p in params if p.kind not in _NAMED_KINDS]
        if loose:
            raise TypeError(
                f"{cls.__name__}.__init__ takes {', '.join(loose)}; a strategy's parameters must "
                "be named so that params() can record them"
            )
        return tuple(p.name for p in params)

    def params(self) -> dict[str, Any]:
        """The ``__init__`` parameters as stored on the instance (recorded with every result).

        Raises
        ------
        TypeError
            When the subclass does not store an ``__init__`` parameter as the attribute of that name.
        """
        out: dict[str, Any] = {}
        for key in self.parameter_names():
            try:
                out[key] = getattr(self, key)
            except AttributeError:
                raise TypeError(
                    f"{type(self).__name__}.__init__ takes `{key}` but does not store it as "
                    f"`self.{key}`; params() reads every __init__ parameter from that attribute"
                ) from None
        return out

    def required_signals(self) -> tuple[str, ...]:
        """Signals this instance needs (``needs``, plus any its parameters add)."""
        return tuple(self.needs)

    def check_signals(self, signals: Signals) -> None:
        """Raise a ValueError naming every required signal that ``signals`` lacks."""
        have = signals.present()
        missing = []
        for need in self.required_signals():
            if need == "probs_pool" and ("probs_pool" in have or "logits_pool" in have):
                continue
            if need not in have:
                missing.append(need)
        if missing:
            raise ValueError(
                f"`{self.name}` needs {', '.join(f'`{m}`' for m in self.required_signals())}; "
                f"missing: {', '.join(f'`{m}`' for m in missing)}"
            )

    def _check_call(
        self, signals: Signals, k: int, rng: np.random.Generator | None
    ) -> tuple[int, np.random.Generator]:
        """Check the arguments of :meth:`select`: ``(k, rng)`` validated, ``rng`` defaulted to a
        fixed generator for deterministic strategies; the required signals present."""
        if not isinstance(signals, Signals):
            raise TypeError(
                f"`signals` must be a ncal.strategies.Signals; got {type(signals).__name__}"
            )
        k = check_k(k)
        if rng is None:
            if self.stochastic:
                raise ValueError(f"`{self.name}` is stochastic: pass `rng` (a numpy Generator)")
            rng = np.random.default_rng(0)
        elif not isinstance(rng, np.random.Generator):
            raise TypeError(f"`rng` must be a numpy.random.Generator; got {type(rng).__name__}")
        self.check_signals(signals)
        return k, rng

    def select(self, signals: Signals, k: int, rng: np.random.Generator | None = None) -> Selection:
        """Pick ``k`` distinct pool indices (all of them when ``k`` >= pool size)."""
        k, rng = self._check_call(signals, k, rng)
        n = signals.n_pool
        if signals.labels_labeled is not None and signals.num_classes is not None:
            as_label_vector(
                signals.labels_labeled, "labels_labeled", num_classes=signals.num_classes
            )
        # rows, classes, probabilities and counts of the signals this strategy uses agree
        signals.validate(names=self.required_signals())
        if n == 0 or k == 0:
            return Selection(np.zeros(0, dtype=np.int64), np.zeros(0))
        k = min(k, n)
        sel = self._select(signals, k, rng)
        idx = np.asarray(sel.indices, dtype=np.int64)
        if idx.shape != (k,) or len(np.unique(idx)) != k or idx.min() < 0 or idx.max() >= n:
            raise RuntimeError(f"`{self.name}` returned an invalid selection (bug): {idx[:10]}...")
        return Selection(idx, sel.scores, sel.info)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def scored_selection(scores: np.ndarray, k: int, **info: Any) -> Selection:
    """Selection of the top-k of ``scores`` by the canonical rule, with the picked scores."""
    from .selection import top_k

    idx = top_k(scores, k)
    return Selection(idx, np.asarray(scores, dtype=np.float64)[idx], dict(info))
