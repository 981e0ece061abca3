"""Noise spec strings (``"sym:0.3"``, ``"human:cifar10n-worst"``): parsing, checking and the help
texts, all derived from the registry."""

from __future__ import annotations

import numpy as np

from ._base import NoiseModel, NoiseSpec
from .registry import NOISE_MODELS, find_noise_model


def noise_models() -> tuple[str, ...]:
    """Canonical names of the registered noise models, in registry order."""
    return tuple(m.name for m in NOISE_MODELS)


def _ranges_text() -> str:
    """``"η in [0, 1.0] for sym_exclusive/…; τ in [0, 1.0) for idn; …"`` grouped by range."""
    groups: dict[str, list[str]] = {}
    for m in NOISE_MODELS:
        if m.rate_range:
            groups.setdefault(f"{m.parameter} in {m.rate_range}", []).append(m.name)
    return "; ".join(f"{rng} for {'/'.join(names)}" for rng, names in groups.items())


def _form_with_aliases(m: NoiseModel) -> str:
    return f"{m.form} (={'|'.join(m.aliases)})" if m.aliases else m.form


def accepted_forms() -> str:
    """One line listing every accepted spec form and rate range (used in error messages)."""
    forms = ", ".join(_form_with_aliases(m) for m in NOISE_MODELS)
    return f"{forms} ({_ranges_text()})"


def describe_noise_models() -> str:
    """Several lines, one per model: its spec form, aliases, rate range and what it does (for CLI
    help texts and documentation)."""
    lines = []
    for m in NOISE_MODELS:
        head = m.form + (f" in {m.rate_range}" if m.rate_range else "")
        also = f" (also: {', '.join(m.aliases)})" if m.aliases else ""
        lines.append(f"{head}{also}: {m.summary}")
    return "\n".join(lines)


def parse_noise_spec(spec: str | NoiseSpec) -> NoiseSpec:
    """Parse a spec string such as ``"sym:0.3"`` or ``"human:cifar10n-worst"``.

    Raises
    ------
    ValueError
        Unknown model, missing or malformed rate, or a rate out of its range; the message lists the
        accepted forms.
    """
    if isinstance(spec, NoiseSpec):
        return parse_noise_spec(str(spec))
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"noise spec must be a non-empty string; accepted forms: {accepted_forms()}"
        )
    head, sep, arg = spec.strip().partition(":")
    model = find_noise_model(head)
    if model is None:
        raise ValueError(
            f"unknown noise model {head!r} in {spec!r}; accepted forms: {accepted_forms()}"
        )
    if model.parameter is None:
        if sep and arg.strip() not in ("", "0", "0.0"):
            raise ValueError(
                f"noise spec {spec!r}: {model.name!r} takes no rate; "
                f"accepted forms: {accepted_forms()}"
            )
        return NoiseSpec(model.name)
    if model.parameter == "SET":
        try:
            return NoiseSpec(model.name, 0.0, model.canonical_source(arg))
        except ValueError as e:
            raise ValueError(
                f"noise spec {spec!r}: {e}; accepted forms: {accepted_forms()}"
            ) from None
    return NoiseSpec(model.name, _parse_rate(model, spec, arg))


def _parse_rate(model: NoiseModel, spec: str, arg: str) -> float:
    try:
        rate = float(arg)
    except ValueError:
        raise ValueError(
            f"noise spec {spec!r} needs a numeric rate after ':'; "
            f"accepted forms: {accepted_forms()}"
        ) from None
    hi = model.rate_max
    above = rate > hi or (rate == hi and not model.rate_max_included)
    if not np.isfinite(rate) or rate < 0 or above:
        raise ValueError(
            f"noise rate {arg.strip()} of {spec!r} must be in {model.rate_range}{model.range_note}"
        )
    return rate


def check_noise_spec(spec: str) -> str:
    """The canonical form of ``spec`` (``"sym:0.3"`` → ``"sym_exclusive:0.3"``); ValueError, naming
    the accepted forms, when it is not a valid spec. For config validation before any data is
    loaded."""
    return str(parse_noise_spec(spec))


#: The accepted forms as one line (kept for callers that print it).
ACCEPTED_FORMS = accepted_forms()
