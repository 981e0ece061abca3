"""Training for one active-learning round: into the terminal phase, FF window, signal extraction.

>>> from ncal.training import TrainConfig, train_round, seeded   # doctest: +SKIP
>>> out = train_round(model, x_l, y_l, x_pool, config=TrainConfig(), seed=0)   # doctest: +SKIP
>>> signals = out.signals(y_l, num_classes=10)   # doctest: +SKIP
"""

from .._utils.torch import make_generator, resolve_device, seeded, thread_limit
from .config import TrainConfig
from .extract import Preprocessor, dropout_only_train, eval_pass, mc_dropout_probs
from .trainer import RoundOutputs, train_round

__all__ = [
    "Preprocessor",
    "RoundOutputs",
    "TrainConfig",
    "dropout_only_train",
    "eval_pass",
    "make_generator",
    "mc_dropout_probs",
    "resolve_device",
    "seeded",
    "thread_limit",
    "train_round",
]
