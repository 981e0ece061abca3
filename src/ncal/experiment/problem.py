"""The fixed part of an experiment: pool, test set, classes and the annotators, built once per run.

The pool and test subsamples depend only on ``data_seed`` (shared by every seed and strategy); the
oracle's or the annotator pool's draws depend on ``seed`` (shared by every strategy): the paired
design of docs/algorithms.md §0.3. A run has either one noise oracle (``noise``, one annotation per
item) or, with ``annotators``, an :class:`~ncal.data.annotators.AnnotatorPool`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._utils.random import derive_seed
from ..errors import NcalError
from .config import ExperimentConfig


@dataclass
class Problem:
    x_pool: np.ndarray
    y_pool: np.ndarray  # clean labels: evaluation only
    is_ood: (
        np.ndarray
    )  # pool samples from another dataset (the oracle answers "not in the label set")
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: list[str]
    kind: str  # "image" | "features"
    oracle: Any  # the `noise` oracle; None when the run has an annotator pool
    info: dict[str, Any] = field(default_factory=dict)
    annotator_pool: Any = None  # ncal.data.annotators.AnnotatorPool, with `annotators` only

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_pool.shape[1:])


def _subsample(y: np.ndarray, n: int | None, seed: int, what: str) -> np.ndarray:
    from ..data import stratified_subsample

    if n is None or n >= len(y):
        return np.arange(len(y))
    if n < 1:
        raise NcalError(f"`{what}` must be a positive number of samples; got {n}")
    return np.sort(stratified_subsample(y, n, seed=seed))


def build_problem(config: ExperimentConfig) -> Problem:
    """Load data, subsample, apply long tail / OOD contamination, and build the oracle."""
    from ..data import (
        contaminate_pool,
        load_dataset,
        long_tail_indices,
        make_oracle,
        resize_images,
    )

    ds = load_dataset(config.dataset, seed=config.data_seed)
    num_classes = len(ds.class_names)
    info: dict[str, Any] = {"dataset": ds.name, "num_classes": num_classes}

    keep = _subsample(
        ds.y_train, config.pool_size, derive_seed(config.data_seed, "pool"), "pool_size"
    )
    x_pool, y_pool = ds.x_train[keep], ds.y_train[keep]
    if config.pool_imbalance is not None and config.pool_imbalance > 1:
        lt = long_tail_indices(y_pool, float(config.pool_imbalance), seed=config.data_seed)
        x_pool, y_pool = x_pool[lt], y_pool[lt]
        info["pool_class_counts"] = np.bincount(y_pool, minlength=num_classes).tolist()
    is_ood = np.zeros(len(y_pool), dtype=bool)
    if config.pool_ood_fraction:
        ood = load_dataset(config.pool_ood_dataset, seed=config.data_seed)
        x_ood = ood.x_train
        if _resizable(x_ood, x_pool):
            # another image size (Fashion-MNIST 28 x 28 into an 8 x 8 digits pool): area-average it
            info["pool_ood_resized_from"] = list(x_ood.shape[1:3])
            x_ood = resize_images(x_ood, x_pool.shape[1:3])
        if x_ood.shape[1:] != x_pool.shape[1:]:
            raise NcalError(
                f"`pool_ood_dataset` {config.pool_ood_dataset!r} has inputs of shape {x_ood.shape[1:]}, "
                f"but the pool's are {x_pool.shape[1:]}"
            )
        x_pool, y_pool, is_ood = contaminate_pool(
            x_pool,
            y_pool,
            x_ood,
            config.pool_ood_fraction,
            seed=derive_seed(config.data_seed, "ood"),
        )
        info["pool_ood"] = int(is_ood.sum())

    tkeep = _subsample(
        ds.y_test, config.test_size, derive_seed(config.data_seed, "test"), "test_size"
    )
    # both see the images (IDN and difficulty noise depend on them), before any feature extraction
    oracle, pool = None, None
    if config.annotators is None:
        oracle = make_oracle(
            config.noise,
            np.where(is_ood, 0, y_pool),
            num_classes=num_classes,
            seed=derive_seed(config.seed, "oracle"),
            x=x_pool,
        )
    else:
        pool = build_annotator_pool(config, x_pool, y_pool, is_ood, num_classes)
    x_test, kind = ds.x_test[tkeep], ds.kind
    if config.features == "pretrained":
        if kind != "image":
            raise NcalError("`features: pretrained` needs an image dataset")
        from ..models.pretrained import extract_pretrained_features

        size = config.feature_size
        x_pool = extract_pretrained_features(
            x_pool, dataset=f"{ds.name}-pool", split="train", size=size
        )
        x_test = extract_pretrained_features(
            x_test, dataset=f"{ds.name}-test", split="test", size=size
        )
        kind = "features"
        info["features"] = f"efficientnet-lite0, images resized to {size} px"
    info.update(pool_size=len(y_pool), test_size=len(tkeep), input_shape=list(x_pool.shape[1:]))
    return Problem(
        x_pool=x_pool,
        y_pool=y_pool,
        is_ood=is_ood,
        x_test=x_test,
        y_test=ds.y_test[tkeep],
        num_classes=num_classes,
        class_names=list(ds.class_names),
        kind=kind,
        oracle=oracle,
        info=info,
        annotator_pool=pool,
    )


def build_annotator_pool(
    config: ExperimentConfig,
    x_pool: np.ndarray,
    y_pool: np.ndarray,
    is_ood: np.ndarray,
    num_classes: int,
) -> Any:
    """The run's :class:`~ncal.data.annotators.AnnotatorPool`, seeded from
    ``derive_seed(seed, "annotators")``.

    ``oracle:ε`` annotators need reference probabilities; they are computed exactly as the
    difficulty oracle of a single-annotator run computes its own (a cross-fitted logistic regression
    on the downscaled in-distribution images), with fold seed from
    ``derive_seed(seed, "annotators", "reference")``. OOD items (``is_ood``) are answered
    "not in the label set" at the cost of one annotation.
    """
    from ..data import DifficultyOracle, parse_noise_spec
    from ..data.annotators import AnnotatorPool

    specs = [parse_noise_spec(s) for s in config.annotators]
    oracle_specs = [s for s in specs if s.model == "oracle"]
    try:
        reference = None
        if oracle_specs:
            ind = ~is_ood
            ref_oracle = DifficultyOracle(  # only its reference probabilities p_ref are used
                y_pool[ind],
                num_classes=num_classes,
                target_rate=oracle_specs[0].rate,
                seed=derive_seed(config.seed, "annotators", "reference"),
                x=x_pool[ind],
            )
            reference = np.full((len(y_pool), num_classes), 1.0 / num_classes)
            reference[ind] = ref_oracle.p_ref
        return AnnotatorPool.from_specs(
            list(config.annotators),
            y_pool,
            num_classes,
            errors=config.annotator_setting("annotator_errors"),
            assignment=config.annotator_setting("annotator_assignment"),
            seed=derive_seed(config.seed, "annotators"),
            reference_probs=reference,
            is_ood=is_ood,
        )
    except (NcalError, ValueError) as exc:
        raise NcalError(f"`annotators`: {exc}") from None


def query(problem: Problem, idx: np.ndarray, round_: int) -> np.ndarray:
    """Ask the oracle for pool samples ``idx``; OOD samples come back as -1 ("not in the label set")."""
    idx = np.asarray(idx, dtype=np.int64)
    labels, _ = problem.oracle.query(idx, round_)
    labels = np.asarray(labels, dtype=np.int64).copy()
    labels[problem.is_ood[idx]] = -1
    return labels


def _resizable(x_ood: np.ndarray, x_pool: np.ndarray) -> bool:
    """Both are image stacks of the same channel layout and dtype that differ only in height and width."""
    return (
        x_ood.ndim == x_pool.ndim
        and x_pool.ndim in (3, 4)
        and x_ood.shape[3:] == x_pool.shape[3:]
        and x_ood.dtype == x_pool.dtype == np.uint8
        and x_ood.shape[1:3] != x_pool.shape[1:3]
    )
