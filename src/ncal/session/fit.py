"""Fitting the session's model on the currently labeled items and turning it into selection signals.

The model is an MLP head (or, with no hidden layer, a logistic regression) on the session's features, fitted by the round step that ``ncal run``
uses too (:func:`ncal.experiment.step.fit_round`: into the terminal phase, then an FF window at a
held learning rate whose predictions give the feature-fluctuation counts), with the run's seeding.
Nothing here trains by itself; this module only arranges the arrays and collects what a round
records.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._utils.io import jsonable
from .._utils.numeric import softmax
from ..signals import Signals
from .progress import SILENT, Progress, count

#: Hidden widths of the network that gives the round's training-dynamics and geometry signals.
SIGNAL_NET_HIDDEN = (256,)

#: TrainConfig fields a session uses unless its settings override them (features: no augmentation).
DEFAULT_TRAIN: dict[str, Any] = {"epochs_max": 60, "ff_window": 8, "augment": False}

_INFO_KEYS = (
    "epochs",
    "stop_reason",
    "reached_terminal",
    "terminal_epoch",
    "train_acc_at_window",
    "final_train_acc",
    "train_seconds",
    "total_seconds",
    "ff_seconds",
    "window_lr",
    "device",
)


@dataclass
class FitResult:
    """What one session fit produced.

    Attributes
    ----------
    signals : Signals for the candidate pool (pool order = ``candidate_rows`` order).
    pred_candidates, conf_candidates : (N_c,) predicted class and its probability per candidate.
    heldout_accuracy : accuracy on the held-out labeled items (None without them).
    info : JSON-safe training record (epochs, stop reason, terminal phase, timings, FF summary).
    """

    signals: Signals
    pred_candidates: np.ndarray
    conf_candidates: np.ndarray
    heldout_accuracy: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


def train_config(settings: dict[str, Any] | None = None):
    """A :class:`ncal.training.TrainConfig` from the session defaults updated by ``settings``."""
    from ..training import TrainConfig

    cfg = dict(DEFAULT_TRAIN)
    cfg.update(settings or {})
    try:
        return TrainConfig(**cfg)
    except TypeError as exc:
        raise ValueError(f"bad training settings {cfg}: {exc}") from exc


def _with_logreg(
    signals: Signals,
    features: np.ndarray,
    cand: np.ndarray,
    x_l: np.ndarray,
    y: np.ndarray,
    extra: dict[str, np.ndarray],
    num_classes: int,
    whole: bool,
    block: int = 65536,
) -> tuple[Signals, np.ndarray | None]:
    """``signals`` with the logistic regression's probabilities; and its held-out logits."""
    from .model_choice import LogReg

    lr = LogReg.fit(x_l, y, num_classes)
    if whole:  # contiguous row blocks of the pool (streamed), then keep the candidates in place
        logits = keep_rows(lr.logits(features), cand)
    else:
        logits = np.empty((cand.size, int(num_classes)), dtype=np.float32)
        for s in range(0, cand.size, block):  # candidate rows read block by block
            logits[s : s + block] = lr.logits(features[cand[s : s + block]])
    sig = replace(
        signals,
        logits_pool=logits,
        probs_pool=softmax(logits),
        probs_labeled=softmax(lr.logits(x_l)),
    )
    return sig, lr.logits(extra["heldout"]) if "heldout" in extra else None


def keep_rows(arr: np.ndarray, rows: np.ndarray, block: int = 65536) -> np.ndarray:
    """``arr[rows]`` for sorted unique ``rows``, computed in place in row blocks (no second copy).

    Row ``rows[i] >= i`` always, so writing row ``i`` never overwrites a row still to be read; the
    result is a view of ``arr``'s first ``len(rows)`` rows. Large pools keep one copy of their
    per-candidate outputs instead of two.
    """
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == arr.shape[0]:
        return arr  # sorted unique rows covering every row: the identity
    for s in range(0, rows.size, block):
        chunk = rows[s : s + block]
        arr[s : s + chunk.size] = arr[chunk]
    return arr[: rows.size]


def _pool_input(features: np.ndarray, candidate_rows: np.ndarray) -> tuple[np.ndarray, bool]:
    """The pool the round step scores: every row (no copy) when candidates are most of them.

    A memory-mapped pool copied to candidate rows would be a second full float32 copy of the pool
    (2 GB at 1M x 512); scoring the few labeled and held-out rows as well costs less than that.
    Returns the pool and whether it holds every row.
    """
    if candidate_rows.size >= 0.5 * features.shape[0]:
        return np.asarray(features), True
    return np.asarray(features[candidate_rows], dtype=np.float32), False


def fit_session_round(
    features: np.ndarray,
    labeled_rows: np.ndarray,
    labels: np.ndarray,
    candidate_rows: np.ndarray,
    *,
    num_classes: int,
    seed: int,
    round_index: int,
    train: dict[str, Any] | None = None,
    heldout_rows: np.ndarray | None = None,
    heldout_labels: np.ndarray | None = None,
    need_mc: bool = False,
    hidden: tuple[int, ...] | None = (256,),
    dropout: float = 0.0,
    progress: Progress = SILENT,
) -> FitResult:
    """Train a fresh MLP on ``features[labeled_rows]`` and extract signals for
    ``features[candidate_rows]`` (the shared round step, :func:`ncal.experiment.step.fit_round`).

    Parameters
    ----------
    features : (N, D) the session's feature matrix (memory-mapped is fine: it is read in row
        blocks, never copied whole).
    labeled_rows, labels : rows of the labeled items and their aggregated labels.
    candidate_rows : sorted rows of the unlabeled pool items a strategy chooses from.
    num_classes : int
    seed, round_index : int
        The session's seed and the round the fit belongs to: initialisation and training draw from
        the run's streams ``derive_seed(seed, "init" | "train", round_index)``.
    train : dict, optional
        TrainConfig overrides (:data:`DEFAULT_TRAIN` otherwise).
    heldout_rows, heldout_labels : optional held-out evaluation items (learning curve).
    need_mc : bool
        MC-dropout passes (for strategies that need ``mc_probs_pool``); builds the MLP with dropout.
    hidden : tuple or None
        MLP hidden widths; None: the session's model is a logistic regression
        (:class:`ncal.session.model_choice.LogReg`) whose probabilities replace the network's
        (``probs_pool``, ``logits_pool``, ``probs_labeled``, held-out accuracy, predictions) while
        the network, an MLP of :data:`SIGNAL_NET_HIDDEN`, still gives the training-dynamics and
        geometry signals (``ff_counts``, ``features_*``, ``mc_probs_pool``).
    dropout : float
        Dropout of the network.
    progress : Progress
        Phase lines (silent by default).

    Returns
    -------
    FitResult
    """
    from ..experiment.step import fit_round

    cand = np.asarray(candidate_rows, dtype=np.int64)
    x_l = np.asarray(features[np.asarray(labeled_rows)], dtype=np.float32)
    x_pool, whole = _pool_input(features, cand)
    extra = {}
    if heldout_rows is not None and len(heldout_rows):
        extra["heldout"] = np.asarray(features[np.asarray(heldout_rows)], dtype=np.float32)
    if need_mc and dropout <= 0:
        dropout = 0.3
    y = np.asarray(labels, dtype=np.int64)
    net_hidden = SIGNAL_NET_HIDDEN if hidden is None else tuple(hidden)
    cfg = train_config(train)
    with progress.phase(
        f"training MLP {net_hidden} on {count(len(y))} labels, scoring {count(cand.size)} candidates "
        f"(up to {cfg.epochs_max + cfg.ff_window} epochs)"
    ):
        fit = fit_round(
            x_l,
            y,
            x_pool,
            model="mlp",
            num_classes=int(num_classes),
            train_config=cfg,
            seed=int(seed),
            round_index=int(round_index),
            dropout=dropout,
            model_options={"hidden": net_hidden},
            extra_sets=extra or None,
            need_mc=need_mc,
            need_ff=True,  # the round's FF counts are kept in rounds/round_XXX.npz
            progress=progress.bars,
        )
    out = fit.outputs
    signals = fit.signals
    if whole:  # drop the labeled and held-out rows the pool pass scored along
        signals = replace(
            signals,
            probs_pool=keep_rows(signals.probs_pool, cand),
            logits_pool=keep_rows(signals.logits_pool, cand),
            features_pool=keep_rows(signals.features_pool, cand),
            ff_counts=None if signals.ff_counts is None else keep_rows(signals.ff_counts, cand),
            ff_margin_std=None
            if signals.ff_margin_std is None
            else keep_rows(signals.ff_margin_std, cand),
            mc_probs_pool=None if signals.mc_probs_pool is None else signals.mc_probs_pool[:, cand],
        )
    logits_h = out.extra["heldout"][0] if "heldout" in out.extra else None
    if hidden is None:
        with progress.phase(
            f"logistic regression on {count(len(y))} labels, scoring {count(cand.size)} candidates"
        ):
            signals, logits_h = _with_logreg(
                signals, features, cand, x_l, y, extra, num_classes, whole
            )
    probs = signals.probs_pool
    acc = None
    if logits_h is not None and heldout_labels is not None:
        acc = float(np.mean(np.asarray(logits_h).argmax(axis=1) == np.asarray(heldout_labels)))
    info = {k: jsonable(out.info[k]) for k in _INFO_KEYS if k in out.info}
    info["model"] = "logreg" if hidden is None else {"mlp_hidden": list(hidden)}
    if signals.ff_counts is not None and len(signals.ff_counts):
        ff = np.asarray(signals.ff_counts)
        info["ff_mean"] = float(ff.mean())
        info["ff_nonzero_fraction"] = float((ff > 0).mean())
    return FitResult(
        signals=signals,
        pred_candidates=probs.argmax(axis=1).astype(np.int64),
        conf_candidates=probs.max(axis=1),
        heldout_accuracy=acc,
        info=info,
    )
