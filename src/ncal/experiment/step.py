"""One active-learning round step, shared by ``ncal run`` and ``ncal session``.

A round fits a freshly initialised model on the labels given so far, reads off the signals the
strategy declares (:class:`ncal.signals.Signals`) and selects the next batch
(:class:`ncal.signals.Selection`). Labels, labeled samples and the candidate pool are explicit
arguments, never state kept here: the caller decides which labels a round trains on (given labels,
or consensus labels of several annotators). For relabel-aware strategies the caller adds the
annotations of the labeled items with :func:`with_relabel_signals`; their selection then holds
relabel requests (rows of the labeled set) besides new pool items.

Seeding (one scheme for every caller, each stream independent of the others; see
:mod:`ncal._utils.random`): round ``r`` of a run with seed ``s`` initialises the model from
``derive_seed(s, "init", r)``, trains with ``derive_seed(s, "train", r)``, splits the out-of-fold
folds with ``derive_seed(s, "oof", r)`` and selects with ``rng_for(s, "select", r, strategy.name)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .._utils.random import derive_seed, rng_for
from ..signals import Selection, Signals


@dataclass
class RoundFit:
    """What fitting one round produced.

    Attributes
    ----------
    model : ncal.models.Backbone
        The trained model (eval mode), for evaluations beyond the signals.
    outputs : ncal.training.RoundOutputs
        Logits and features of the labeled set, the pool and every extra set; FF counts, MC passes
        and the training record (``outputs.info``).
    signals : Signals
        The pool's selection signals (pool order = ``x_pool`` order).
    """

    model: Any
    outputs: Any
    signals: Signals


def fit_round(
    x_labeled: np.ndarray,
    y_labeled: np.ndarray,
    x_pool: np.ndarray,
    *,
    model: str,
    num_classes: int,
    train_config: Any,
    seed: int,
    round_index: int,
    dropout: float = 0.0,
    model_options: dict[str, Any] | None = None,
    extra_sets: dict[str, np.ndarray] | None = None,
    need_mc: bool = False,
    need_ff: bool = True,
    progress: bool = False,
) -> RoundFit:
    """Train a fresh ``model`` on ``(x_labeled, y_labeled)`` and extract the signals for ``x_pool``.

    Parameters
    ----------
    x_labeled, y_labeled : arrays
        The samples a round trains on and their labels (given or consensus labels, in ``[0, C)``).
    x_pool : array
        The candidates a strategy chooses from (may be empty).
    model : str
        A backbone name of :func:`ncal.models.build_model` (``cnn``, ``resnet18``, ``mlp``).
    num_classes : int
    train_config : ncal.training.TrainConfig
    seed : int
        The run's (or session's) seed; the round's streams are derived from it (module docstring).
    round_index : int
        The round ``r`` the streams are keyed by.
    dropout : float
        Dropout before the head (needs to be > 0 for ``need_mc``).
    model_options : dict, optional
        Extra keyword arguments of :func:`ncal.models.build_model` (e.g. ``hidden`` of the MLP).
    extra_sets : dict, optional
        Name -> samples to get ``(logits, features)`` for with the final model (e.g. ``"test"``).
    need_mc, need_ff : bool
        MC-dropout passes over the pool; feature-fluctuation counts over the pool.
    progress : bool
        Progress bar over epochs.

    Returns
    -------
    RoundFit
    """
    from ..models import build_model
    from ..training import train_round

    net = build_model(
        model,
        input_shape=tuple(np.shape(x_labeled)[1:]),
        num_classes=int(num_classes),
        dropout=dropout,
        seed=derive_seed(seed, "init", round_index),
        **(model_options or {}),
    )
    out = train_round(
        net,
        x_labeled,
        y_labeled,
        x_pool,
        config=train_config,
        seed=derive_seed(seed, "train", round_index),
        extra_sets=extra_sets,
        need_mc=need_mc,
        need_ff=need_ff,
        progress=progress,
    )
    return RoundFit(model=net, outputs=out, signals=out.signals(y_labeled, int(num_classes)))


RELABEL_SIGNALS = ("annotations_labeled", "probs_labeled_oof")


def labeled_oof_probabilities(
    features_labeled: np.ndarray,
    labels_labeled: np.ndarray,
    num_classes: int,
    *,
    seed: int,
    round_index: int,
    folds: int = 5,
) -> np.ndarray:
    """Out-of-fold probabilities of the labeled items from the round model's features.

    ActiveLab (and the ``relabel`` wrapper) must judge each labeled item's labels with a model
    that did not train on that item. Retraining the network ``folds`` times per round would cost
    ``folds`` times the round's training on CPU, so instead a ``folds``-fold multinomial logistic
    regression runs on the round model's standardised penultimate features
    (:func:`ncal._crossfit.out_of_fold_probabilities`). The features did see every item, so this
    is out-of-sample for the head only: a cheap stand-in, not a held-out network.

    Parameters
    ----------
    features_labeled : (N_L, d) penultimate features of the labeled items.
    labels_labeled : (N_L,) the labels the round trained on (consensus labels).
    num_classes : int
    seed, round_index : int
        The folds are split with ``derive_seed(seed, "oof", round_index)``.
    folds : int

    Returns
    -------
    (N_L, num_classes) float64
    """
    from threadpoolctl import threadpool_limits

    from .._crossfit import out_of_fold_probabilities

    z = np.asarray(features_labeled, dtype=np.float64)
    sd = z.std(axis=0)
    z = (z - z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    fold_seed = derive_seed(seed, "oof", round_index) % 2**32  # sklearn takes 32-bit seeds
    with threadpool_limits(limits=1):  # small dense fits: one BLAS thread, same result anywhere
        return out_of_fold_probabilities(
            z, np.asarray(labels_labeled, dtype=np.int64), int(num_classes), folds=folds,
            seed=fold_seed,
        )  # fmt: skip


def with_relabel_signals(
    signals: Signals, annotations_labeled: np.ndarray, *, seed: int, round_index: int
) -> Signals:
    """``signals`` plus what relabel-aware strategies read: ``annotations_labeled`` (given) and
    ``probs_labeled_oof`` (:func:`labeled_oof_probabilities` of ``signals.features_labeled`` and
    ``signals.labels_labeled``).

    Parameters
    ----------
    signals : Signals
        The round's signals (:func:`fit_round`).
    annotations_labeled : (N_L, M) int
        Each annotator's label of each labeled item (-1: none), rows as ``labels_labeled``.
    seed, round_index : int
        See :func:`labeled_oof_probabilities`.
    """
    ann = np.asarray(annotations_labeled, dtype=np.int64)
    if ann.ndim != 2 or ann.shape[0] != signals.n_labeled:
        raise ValueError(
            f"`annotations_labeled` must have one row per labeled item ({signals.n_labeled}); "
            f"got shape {ann.shape}"
        )
    oof = labeled_oof_probabilities(
        signals.features_labeled,
        signals.labels_labeled,
        int(signals.num_classes),
        seed=seed,
        round_index=round_index,
    )
    return replace(signals, annotations_labeled=ann, probs_labeled_oof=oof)


def select_batch(
    strategy: Any,
    signals: Signals,
    k: int,
    *,
    seed: int,
    round_index: int,
    num_threads: int | None = None,
) -> Selection:
    """The ``k`` candidates ``strategy`` picks from ``signals`` in round ``round_index``.

    Parameters
    ----------
    strategy : ncal.strategies.Strategy
    signals : Signals
        The candidates' signals (indices of the result point into their pool order).
    k : int
        Batch size.
    seed, round_index : int
        Select from the stream ``rng_for(seed, "select", round_index, strategy.name)``.
    num_threads : int, optional
        Torch thread cap while selecting (selection kernels run in torch too); None = no cap.

    Returns
    -------
    Selection
    """
    from .._utils.torch import thread_limit

    with thread_limit(num_threads):
        return strategy.select(signals, k, rng_for(seed, "select", round_index, strategy.name))
