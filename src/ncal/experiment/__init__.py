"""Active-learning experiments: configuration, the round loop, persistence and resume."""

from .budget import budget_schedule
from .config import ExperimentConfig
from .runner import run_experiment
from .seeds import derive_seed, rng_for
from .store import RunStore

__all__ = [
    "ExperimentConfig",
    "RunStore",
    "budget_schedule",
    "derive_seed",
    "rng_for",
    "run_experiment",
]
