"""The one list of noise models: spec prefix → :class:`NoiseModel` (order = order in help texts).

Adding a model means writing its draw (and, if class-conditional, its transition) in a module of
this package and adding its record to :data:`NOISE_MODELS`; parsing, dispatch, the accepted-forms
message and the help texts all follow from this table.
"""

from __future__ import annotations

import numpy as np

from ._base import NoiseModel, NoiseRequest
from .asymmetric import (
    ASYM100_BLOCKS,
    ASYM100_SUPERCLASS,
    ASYM_DIVIDEMIX,
    ASYM_EXACT,
    ASYM_T,
    PAIRFLIP,
)
from .difficulty import ORACLE
from .human import HUMAN
from .instance import IDN
from .symmetric import SYM_EXACT, SYM_EXCLUSIVE, SYM_INCLUSIVE


def _draw_none(request: NoiseRequest, info: dict) -> np.ndarray:
    return request.y.copy()


NONE = NoiseModel(
    "none",
    "clean labels (no noise)",
    _draw_none,
    aliases=("clean",),
    parameter=None,
    transition=lambda spec, num_classes, coarse_labels, y_clean: np.eye(num_classes),
)

NOISE_MODELS: tuple[NoiseModel, ...] = (
    NONE,
    SYM_EXCLUSIVE,
    SYM_INCLUSIVE,
    SYM_EXACT,
    ASYM_T,
    ASYM_DIVIDEMIX,
    ASYM_EXACT,
    ASYM100_BLOCKS,
    ASYM100_SUPERCLASS,
    PAIRFLIP,
    IDN,
    ORACLE,
    HUMAN,
)

# Lookup by lower-cased prefix: canonical names ("asym_T" is written "asym_t" too) and aliases.
_BY_PREFIX: dict[str, NoiseModel] = {}
for _model in NOISE_MODELS:
    for _key in (_model.name, _model.name.lower(), *_model.aliases):
        if _BY_PREFIX.setdefault(_key, _model) is not _model:
            raise RuntimeError(
                f"noise spec prefix {_key!r} is registered twice"
            )  # pragma: no cover
del _model, _key


def find_noise_model(prefix: str) -> NoiseModel | None:
    """The model a spec prefix names (case-insensitive, aliases included), or None."""
    return _BY_PREFIX.get(prefix.strip().lower())


def get_noise_model(name: str) -> NoiseModel:
    """The model with canonical name ``name`` (as in :attr:`NoiseSpec.model`); KeyError if none."""
    model = _BY_PREFIX.get(name)
    if model is None or model.name != name:
        raise KeyError(f"no noise model named {name!r}")
    return model
