"""Acquisition strategies: one small module each, a registry by name, shared selection utilities.

Listing the strategies imports none of them (and no torch); :func:`get` imports only the module of
the strategy asked for.

>>> import ncal.strategies as S
>>> S.available()[:3]
['badge', 'bait', 'bald']
>>> S.info("entropy").needs
('probs_pool',)
"""

from ._registry import StrategyInfo, available, get, info, strategy_class
from .base import Selection, Signals, Strategy, scored_selection
from .selection import ncal_r_scores, orient_cmap, top_k, zscore

__all__ = [
    "Selection",
    "Signals",
    "Strategy",
    "StrategyInfo",
    "available",
    "get",
    "info",
    "ncal_r_scores",
    "orient_cmap",
    "scored_selection",
    "strategy_class",
    "top_k",
    "zscore",
]
