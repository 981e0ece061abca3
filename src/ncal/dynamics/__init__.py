"""Training dynamics: streaming feature-fluctuation (FF) recording over the terminal phase."""

from .fluctuation import FluctuationRecorder, feature_fluctuation

__all__ = ["FluctuationRecorder", "feature_fluctuation"]
