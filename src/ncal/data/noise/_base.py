"""What every noise model shares: the parsed spec, the draw request, the model record, and the two
label-level kernels (class-conditional sampling and the realised transition)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class NoiseSpec:
    """A parsed noise spec: canonical ``model``, nominal ``rate`` and human ``source`` set."""

    model: str
    rate: float = 0.0
    source: str | None = None

    def __str__(self) -> str:
        if self.source is not None:
            return f"{self.model}:{self.source}"
        if self.model == "none":
            return "none"
        return f"{self.model}:{self.rate:g}"


@dataclass(frozen=True)
class NoiseRequest:
    """One call of :func:`ncal.data.make_noisy_labels`, as a noise model's draw sees it.

    ``y`` is already validated (int64 labels in ``[0, num_classes)``); ``rng`` is the only source
    of randomness a draw may use.
    """

    spec: NoiseSpec
    y: np.ndarray
    num_classes: int
    rng: np.random.Generator
    x: Any = None
    coarse_labels: Any = None
    features: Any = None


#: ``draw(request, info) -> y_noisy``; a draw may add model-specific notes to ``info``.
Draw = Callable[[NoiseRequest, dict], np.ndarray]
#: ``transition(spec, num_classes, coarse_labels, y_clean) -> T`` with ``T[i, j] = P(ỹ=j | y=i)``.
Transition = Callable[[NoiseSpec, int, Any, Any], np.ndarray]


@dataclass(frozen=True)
class NoiseModel:
    """One registered noise model, named by its spec prefix.

    Attributes
    ----------
    name
        Canonical spec prefix (``"sym_exclusive"``).
    summary
        One line for help texts.
    draw
        Draws the noisy labels (see :data:`Draw`).
    aliases
        Other accepted prefixes (lower case).
    parameter
        Symbol of the rate (``"η"``, ``"τ"``, ``"ε"``), ``"SET"`` for a named source, or ``None``
        when the model takes no argument.
    rate_max, rate_max_included
        Upper end of the rate range (``[0, rate_max]`` or ``[0, rate_max)``).
    range_note
        Why the range stops where it does (added to out-of-range errors).
    transition
        Expected class-conditional transition, or ``None`` for instance-dependent and fixed-count
        models.
    source_names, canonical_source
        For ``parameter="SET"``: the accepted names and the function that canonicalises one
        (raising ValueError for an unknown name).
    """

    name: str
    summary: str
    draw: Draw
    aliases: tuple[str, ...] = ()
    parameter: str | None = "η"
    rate_max: float = 1.0
    rate_max_included: bool = False
    range_note: str = ""
    transition: Transition | None = None
    source_names: tuple[str, ...] = ()
    canonical_source: Callable[[str], str] | None = None

    @property
    def form(self) -> str:
        """How the spec is written, e.g. ``sym_exclusive:η`` or ``human:{cifar10n-aggre|...}``."""
        if self.parameter is None:
            return self.name
        if self.parameter == "SET":
            return f"{self.name}:{{{'|'.join(self.source_names)}}}"
        return f"{self.name}:{self.parameter}"

    @property
    def rate_range(self) -> str:
        """The accepted rate interval as text (``"[0, 1.0]"``, ``"[0, 0.5)"``), or ``""``."""
        if self.parameter in (None, "SET"):
            return ""
        return f"[0, {self.rate_max}]" if self.rate_max_included else f"[0, {self.rate_max})"


def need_classes(spec: NoiseSpec, num_classes: int, want: int) -> None:
    """Raise unless a model defined for ``want`` classes is used with that many."""
    if num_classes != want:
        raise ValueError(
            f"noise {spec} is defined for {want} classes; got num_classes={num_classes}"
        )


def empirical_transition(y_clean: Any, y_noisy: Any, num_classes: int) -> np.ndarray:
    """``T_hat[i, j]`` = fraction of clean class ``i`` labelled ``j`` (absent classes: zero row)."""
    y = np.asarray(y_clean, dtype=np.int64)
    z = np.asarray(y_noisy, dtype=np.int64)
    C = int(num_classes)
    counts = np.bincount(y * C + z, minlength=C * C).reshape(C, C).astype(np.float64)
    tot = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, tot, out=np.zeros_like(counts), where=tot > 0)


def sample_class_conditional(y: np.ndarray, T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw ``ỹ_i ~ Cat(T[y_i])`` for each ``i`` by inverse CDF (zero-probability labels: never)."""
    u = rng.random(y.size)
    out = np.empty_like(y)
    for c in np.unique(y):
        m = y == c
        cum = np.cumsum(T[c])
        cum /= cum[-1]  # exact 1.0 at the last non-zero entry and beyond
        out[m] = np.minimum(np.searchsorted(cum, u[m], side="right"), T.shape[1] - 1)
    return out


def class_conditional_draw(transition: Transition) -> Draw:
    """The draw of a class-conditional model: ``ỹ ~ Cat(T[y])`` with ``T = transition(spec, C)``."""

    def draw(request: NoiseRequest, info: dict) -> np.ndarray:
        T = transition(request.spec, request.num_classes, None, None)
        return sample_class_conditional(request.y, T, request.rng)

    return draw
