"""Active-learning experiments: configuration, the round loop, persistence and resume."""

from .budget import budget_schedule
from .config import ExperimentConfig
from .runner import run_experiment
from .step import RoundFit, fit_round, select_batch
from .store import RunStore

__all__ = [
    "ExperimentConfig",
    "RoundFit",
    "RunStore",
    "budget_schedule",
    "fit_round",
    "run_experiment",
    "select_batch",
]
