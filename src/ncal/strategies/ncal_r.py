"""NCAL-R and its ablations: CMAP + FF (``ncal_r``), CMAP only (``cmap``), FF only (``ff``).

Score (docs/algorithms.md §1.10): ``(z(CMAP') + z(FF)) / 2`` over the pool, where CMAP' is CMAP oriented by
``direction`` (§6.7) and z uses the population std (0 when the std is 0). Top-k by the canonical rule.

FF is the paper's flip count (``ff="flips"``, signal ``ff_counts``) or, with ``ff="margin_std"``, the
std of the top-1 minus top-2 probability margin over the same checkpoints (signal ``ff_margin_std``,
:mod:`ncal.dynamics.margin`). Flip counts are 0 for most of the pool once the model fits its labels,
which leaves NCAL-R ranking by CMAP alone; a RuntimeWarning says so whenever more than
``ff_zero_share`` of the pool has FF == 0 or FF is constant, and ``Selection.info`` records the share.

References
----------
"Reliable Active Learning from Unreliable Labels via Neural Collapse Geometry", NeurIPS 2025 workshop,
arXiv:2510.09740. Papyan, Han & Donoho, "Prevalence of neural collapse during the terminal phase of deep
learning training", PNAS 2020.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._utils.validation import check_choice
from ..geometry import cmap as cmap_fn
from ._checks import check_float, check_int
from .base import Selection, Signals, Strategy, scored_selection
from .selection import DIRECTIONS, ncal_r_scores, orient_cmap

CENTERINGS = ("none", "frozen", "moving")
MU_G = ("class_avg", "sample_avg")
PAIRS = ("signed", "abs")
EMPTY_CLASS = ("formula", "force_select", "skip")
# FF variant -> the signal holding it
FF_SIGNALS = {"flips": "ff_counts", "margin_std": "ff_margin_std"}


def ff_values(signals: Signals, variant: str) -> np.ndarray:
    """The pool's FF of ``variant`` (a key of ``FF_SIGNALS``) in float64."""
    return np.asarray(getattr(signals, FF_SIGNALS[variant]), dtype=np.float64)


def ff_degeneracy(ff: np.ndarray, max_zero_share: float) -> dict[str, Any]:
    """Whether FF can rank the pool: the share of zeros, constancy, and the verdict.

    FF is degenerate when more than ``max_zero_share`` of the pool has FF == 0 or when it is
    constant (its z-score is then 0 everywhere).
    """
    zero_share = float(np.mean(ff == 0)) if ff.size else 1.0
    constant = bool(ff.size == 0 or np.ptp(ff) == 0.0)
    return {
        "ff_zero_share": zero_share,
        "ff_constant": constant,
        "ff_degenerate": bool(zero_share > max_zero_share or constant),
    }


def ff_warning(state: dict[str, Any], variant: str, consequence: str) -> str:
    """The RuntimeWarning text for a degenerate FF (the share first, then what follows from it)."""
    hint = " (ff='margin_std' ranks every item)" if variant == "flips" else ""
    return (
        f"FF is 0 for {state['ff_zero_share']:.1%} of the pool (constant: {state['ff_constant']}, "
        f"variant: {variant}){hint}; {consequence}"
    )


def _keep_policy_infinities(scores: np.ndarray, cmap: np.ndarray) -> np.ndarray:
    """Empty-class policies encode "always pick" as +inf and "never pick" as -inf, whatever the direction."""
    return np.where(np.isposinf(cmap), np.inf, np.where(np.isneginf(cmap), -np.inf, scores))


def check_weights(weights: tuple[float, float] | list[float]) -> tuple[float, float]:
    """The (CMAP, FF) weights as two floats, or raise a ValueError naming ``weights``."""
    w = tuple(float(x) for x in weights)
    if len(w) != 2 or not all(np.isfinite(x) and x >= 0 for x in w) or sum(w) == 0:
        raise ValueError(f"`weights` must be two non-negative numbers, not both 0; got {weights!r}")
    return w


class _CmapMixin:
    """Validated CMAP flags shared by ``ncal_r`` and ``cmap``."""

    def _init_cmap(
        self,
        direction: str,
        centering: str,
        mu_G: str,
        pair: str,
        empty_class: str,
        expected: bool,
        block_size: int,
    ) -> None:
        self.direction = check_choice(direction, "direction", DIRECTIONS)
        self.centering = check_choice(centering, "centering", CENTERINGS)
        self.mu_G = check_choice(mu_G, "mu_G", MU_G)
        self.pair = check_choice(pair, "pair", PAIRS)
        self.empty_class = check_choice(empty_class, "empty_class", EMPTY_CLASS)
        if not isinstance(expected, bool):
            raise TypeError(f"`expected` must be a bool; got {type(expected).__name__}")
        self.expected = expected
        self.block_size = check_int(block_size, "block_size")

    def _cmap(self, signals: Signals) -> np.ndarray:
        # The argmax is taken in blocks; the full float64 softmax is built only for `expected`.
        probs = signals.probabilities() if self.expected else None
        pred = signals.predictions()
        src = signals.logits_pool if signals.logits_pool is not None else signals.probs_pool
        return cmap_fn(
            signals.features_labeled,
            signals.labels_labeled,
            signals.features_pool,
            pred,
            probs_pool=probs,
            num_classes=signals.num_classes or np.shape(src)[1],
            centering=self.centering,
            mu_G=self.mu_G,
            pair=self.pair,
            empty_class=self.empty_class,
            expected=self.expected,
            block_size=self.block_size,
        )


class _CompositeMixin(_CmapMixin):
    """NCAL-R's composite score, shared by ``ncal_r`` and ``ncal_plus`` (which set ``ff``,
    ``ff_zero_share``, ``weights`` and ``direction``)."""

    def _composite(
        self, signals: Signals, note: str, constant_note: str | None = None, stacklevel: int = 4
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """``w_cmap·z(CMAP') + w_ff·z(FF)`` with the empty-class policies' infinities kept, CMAP
        and FF's degeneracy state. A degenerate FF is kept and warned about: ``note`` says what
        follows (``constant_note`` instead when FF is constant); ``stacklevel`` is the caller's."""
        c = self._cmap(signals)
        ff = ff_values(signals, self.ff)
        state = ff_degeneracy(ff, self.ff_zero_share)
        if state["ff_degenerate"]:
            said = constant_note if state["ff_constant"] and constant_note else note
            warnings.warn(
                ff_warning(state, self.ff, said), RuntimeWarning, stacklevel=stacklevel + 1
            )
        finite = np.where(np.isfinite(c), c, 0.0)
        scores = ncal_r_scores(finite, ff, direction=self.direction, weights=self.weights)
        return _keep_policy_infinities(scores, c), c, state


class NCALR(_CompositeMixin, Strategy):
    """NCAL-R: average of the z-scored class-mean alignment perturbation and feature fluctuation.

    Parameters
    ----------
    direction : {"high", "low", "abs"}
        CMAP orientation (default ``high``, the paper's text).
    centering, mu_G, pair, empty_class, expected
        CMAP variant flags (docs/algorithms.md §6.1); defaults are the literal paper reading.
    weights : (float, float)
        Weights of z(CMAP) and z(FF); default (0.5, 0.5).
    block_size : int
        Pool rows per CMAP block.
    ff : {"flips", "margin_std"}
        Which feature fluctuation is z-scored: the paper's flip count (``ff_counts``) or the std
        of the probability margin over the window (``ff_margin_std``).
    ff_zero_share : float
        Warn (RuntimeWarning, FF kept) when more than this share of the pool has FF == 0, or when
        FF is constant; in [0, 1]. ``Selection.info`` records the share either way.
    """

    name = "ncal_r"
    needs = ("probs_pool", "features_pool", "features_labeled", "labels_labeled", "ff_counts")

    def __init__(
        self,
        direction: str = "high",
        centering: str = "none",
        mu_G: str = "class_avg",
        pair: str = "signed",
        empty_class: str = "formula",
        expected: bool = False,
        weights: tuple[float, float] | list[float] = (0.5, 0.5),
        block_size: int = 8192,
        ff: str = "flips",
        ff_zero_share: float = 0.95,
    ) -> None:
        self._init_cmap(direction, centering, mu_G, pair, empty_class, expected, block_size)
        self.weights = check_weights(weights)
        self.ff = check_choice(ff, "ff", tuple(FF_SIGNALS))
        self.ff_zero_share = check_float(ff_zero_share, "ff_zero_share", low=0.0, high=1.0)

    def required_signals(self) -> tuple[str, ...]:
        return (*self.needs[:-1], FF_SIGNALS[self.ff])  # `needs` ends with the default FF signal

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        # a degenerate FF is kept, not dropped: the paper's score stays the paper's score
        scores, c, state = self._composite(signals, "NCAL-R ranks (almost) by CMAP alone")
        return scored_selection(scores, k, cmap=c, ff=self.ff, **state)


class CMAPOnly(_CmapMixin, Strategy):
    """Ablation: select by oriented CMAP alone."""

    name = "cmap"
    needs = ("probs_pool", "features_pool", "features_labeled", "labels_labeled")

    def __init__(
        self,
        direction: str = "high",
        centering: str = "none",
        mu_G: str = "class_avg",
        pair: str = "signed",
        empty_class: str = "formula",
        expected: bool = False,
        block_size: int = 8192,
    ) -> None:
        self._init_cmap(direction, centering, mu_G, pair, empty_class, expected, block_size)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        c = self._cmap(signals)
        oriented = orient_cmap(np.where(np.isfinite(c), c, 0.0), self.direction)
        return scored_selection(_keep_policy_infinities(oriented, c), k)


class FFOnly(Strategy):
    """Ablation: select by feature fluctuation alone (ties to the lower pool index)."""

    name = "ff"
    needs = ("ff_counts",)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        return scored_selection(np.asarray(signals.ff_counts, dtype=np.float64), k)
