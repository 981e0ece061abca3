"""Training dynamics over the terminal phase: streaming feature fluctuation (FF) as prediction flip
counts and, continuous, as the spread of the probability margin."""

from .fluctuation import FluctuationRecorder, feature_fluctuation
from .margin import (
    MARGIN_STATS,
    MarginFluctuationRecorder,
    margin_fluctuation,
    probability_margin,
)

__all__ = [
    "MARGIN_STATS",
    "FluctuationRecorder",
    "MarginFluctuationRecorder",
    "feature_fluctuation",
    "margin_fluctuation",
    "probability_margin",
]
