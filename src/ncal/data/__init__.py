"""Data layer: dataset loaders, label-noise models, annotator oracles, pool builders (numpy).

>>> import numpy as np
>>> from ncal.data import make_noisy_labels
>>> y = np.repeat(np.arange(10), 100)
>>> y_noisy, T_hat = make_noisy_labels(y, "sym_exact:0.2", num_classes=10, seed=0)
>>> float(np.mean(y_noisy != y))
0.2
"""

from ._errors import DataNotFoundError
from .builders import (
    NOT_IN_LABEL_SET,
    contaminate_pool,
    long_tail_counts,
    long_tail_indices,
    resize_images,
    shot_groups,
    stratified_split,
    stratified_subsample,
)
from .datasets import Dataset, known_datasets, list_datasets, load_dataset
from .human_noise import HUMAN_NOISE_SETS, human_noise_rate, human_noise_T
from .noise import (
    CIFAR10_ASYM_MAP,
    CIFAR100_FINE_TO_COARSE,
    NoiseSpec,
    check_noise_spec,
    describe_noise_models,
    empirical_transition,
    make_noisy_labels,
    noise_models,
    noise_transition_matrix,
    parse_noise_spec,
)
from .oracle import DifficultyOracle, FixedNoisyOracle, OODAwareOracle, Oracle, make_oracle

__all__ = [
    "CIFAR10_ASYM_MAP",
    "CIFAR100_FINE_TO_COARSE",
    "HUMAN_NOISE_SETS",
    "NOT_IN_LABEL_SET",
    "DataNotFoundError",
    "Dataset",
    "DifficultyOracle",
    "FixedNoisyOracle",
    "NoiseSpec",
    "OODAwareOracle",
    "Oracle",
    "check_noise_spec",
    "contaminate_pool",
    "describe_noise_models",
    "empirical_transition",
    "human_noise_T",
    "human_noise_rate",
    "known_datasets",
    "list_datasets",
    "load_dataset",
    "long_tail_counts",
    "long_tail_indices",
    "make_noisy_labels",
    "make_oracle",
    "noise_models",
    "noise_transition_matrix",
    "parse_noise_spec",
    "resize_images",
    "shot_groups",
    "stratified_split",
    "stratified_subsample",
]
