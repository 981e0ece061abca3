"""Acquisition strategies: one small module each, a registry by name, shared selection utilities.

>>> import ncal.strategies as S
>>> S.available()[:3]
['badge', 'bait', 'bald']
"""

from .base import Selection, Signals, Strategy, available, get, scored_selection, strategy_class
from .selection import ncal_r_scores, orient_cmap, top_k, zscore

__all__ = [
    "Selection",
    "Signals",
    "Strategy",
    "available",
    "get",
    "ncal_r_scores",
    "orient_cmap",
    "scored_selection",
    "strategy_class",
    "top_k",
    "zscore",
]
