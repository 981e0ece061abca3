"""Training dynamics: streaming feature-fluctuation (FF) recording over the terminal phase."""

from .fluctuation import FluctuationRecorder, TerminalWindow, feature_fluctuation

__all__ = ["FluctuationRecorder", "TerminalWindow", "feature_fluctuation"]
