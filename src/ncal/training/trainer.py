"""`train_round`: train one round's model into the terminal phase, record FF, extract the signals.

See :mod:`ncal.training.config` for the recipe (pre-window phase → FF window at a held learning
rate) and docs/findings.md §1–2 for why it is built this way. References: Papyan, Han & Donoho,
"Prevalence of neural collapse during the terminal phase of deep learning training", PNAS 2020
(terminal phase); docs/algorithms.md §1.10 (FF), §0.2 (extraction), §1.3 (MC dropout).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._utils.numeric import softmax
from .._utils.random import derive_seed
from .._utils.torch import (
    deterministic,
    make_generator,
    resolve_device,
    seeded,
    thread_limit,
)
from .._utils.validation import as_label_vector
from ..dynamics import FluctuationRecorder, MarginFluctuationRecorder
from ..models.inputs import input_layout_matches
from .augment import Normalizer, default_crop_padding, default_flip, random_crop, random_hflip
from .config import TrainConfig
from .extract import Preprocessor, eval_pass, mc_dropout_probs, prepare_batches


@dataclass
class RoundOutputs:
    """Everything one round's training hands to selection and evaluation (arrays in pool order).

    Attributes
    ----------
    logits_pool, features_pool : (N, C), (N, d) float32 — final model, eval mode.
    logits_labeled, features_labeled : (N_L, C), (N_L, d) float32 — same model.
    ff_counts : (N,) int64 flip counts over the window, or None when FF was not asked for.
    ff_margin_std : (N,) float64 std of the top-1 minus top-2 probability margin over the window
        checkpoints (the continuous FF variant, :mod:`ncal.dynamics.margin`), or None with FF.
    mc_probs_pool : (T, N, C) float32 MC-dropout probabilities, or None.
    extra : name → (logits, features) for each extra set (e.g. "test").
    info : training record (epochs, stop reason, terminal phase, timings, per-epoch log, …).
    pred_history : (ff_window, N) int64 window predictions (only with ``record_history=True``).
    logits_history : (ff_window, N, C) float32 window pool logits (only with ``record_history``).
    """

    logits_pool: np.ndarray
    features_pool: np.ndarray
    logits_labeled: np.ndarray
    features_labeled: np.ndarray
    ff_counts: np.ndarray | None
    mc_probs_pool: np.ndarray | None
    extra: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    pred_history: np.ndarray | None = None
    logits_history: np.ndarray | None = None
    ff_margin_std: np.ndarray | None = None
    # the round's input preprocessing, so later evaluations see inputs exactly as training did
    preprocess: Any = field(default=None, repr=False, compare=False)
    eval_batch_size: int = 256

    def predict(self, model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits and penultimate features of new inputs ``x`` under the round's preprocessing."""
        if self.preprocess is None:
            raise RuntimeError("these outputs carry no preprocessing (built outside train_round)")
        return eval_pass(model, x, self.preprocess, batch_size=self.eval_batch_size)

    def signals(self, labels_labeled: np.ndarray, num_classes: int):
        """The round's :class:`ncal.signals.Signals` (probabilities: float64 softmax)."""
        from ..signals import Signals

        y = as_label_vector(
            labels_labeled,
            "labels_labeled",
            num_classes=num_classes,
            length=len(self.logits_labeled),
        )
        return Signals(
            probs_pool=softmax(self.logits_pool),
            logits_pool=self.logits_pool,
            features_pool=self.features_pool,
            features_labeled=self.features_labeled,
            labels_labeled=y,
            probs_labeled=softmax(self.logits_labeled),
            ff_counts=self.ff_counts,
            ff_margin_std=self.ff_margin_std,
            mc_probs_pool=self.mc_probs_pool,
            num_classes=int(num_classes),
        )


def train_round(
    model: nn.Module,
    x_labeled: np.ndarray,
    y_labeled: np.ndarray,
    x_pool: np.ndarray,
    *,
    config: TrainConfig,
    seed: int,
    extra_sets: dict[str, np.ndarray] | None = None,
    need_mc: bool = False,
    mc_passes: int = 10,
    progress: bool = False,
    need_ff: bool = True,
    record_history: bool = False,
) -> RoundOutputs:
    """Train ``model`` (freshly initialised by the caller) on the labeled set and extract the
    signals.

    Parameters
    ----------
    model : Backbone
        From :func:`ncal.models.build_model`; trained in place and left on the device in eval mode.
    x_labeled, y_labeled : arrays
        Stored samples (uint8 images (N, H, W[, C]) or float features (N, D)) and their given,
        possibly noisy, labels.
    x_pool : array
        The unlabeled pool (may be empty).
    config : TrainConfig
    seed : int
        Drives data order, augmentation, training dropout and MC masks (each its own derived stream;
        torch's global RNG is restored afterwards). Initialisation is the caller's
        (``build_model(..., seed=s)`` or :func:`ncal.training.seeded`).
    extra_sets : dict, optional
        Name → samples to extract ``(logits, features)`` for with the final model (e.g. ``"test"``).
    need_mc, mc_passes : bool, int
        Run ``mc_passes`` MC-dropout passes over the pool (needs a model with dropout).
    progress : bool
        tqdm bar over epochs (phase, training accuracy, learning rate).
    need_ff : bool
        Predict the pool after each window epoch, count flips and track the spread of the
        probability margin (``ff_counts``, ``ff_margin_std``). The window epochs are trained either
        way, so the final model does not depend on which signals were asked for.
    record_history : bool
        Debug: also return the (ff_window, N) window predictions and (ff_window, N, C) logits.

    Returns
    -------
    RoundOutputs

    Raises
    ------
    ValueError, TypeError
        Mismatched lengths or shapes (naming the argument), labels outside ``[0, num_classes)``, a
        bad config, ``need_mc`` without dropout.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"`config` must be a TrainConfig; got {type(config).__name__}")
    config.validate()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an integer; got {type(seed).__name__}")
    if not isinstance(model, nn.Module) or not hasattr(model, "sample_shape"):
        raise TypeError("`model` must be an ncal Backbone (from ncal.models.build_model)")
    sample_shape = tuple(model.sample_shape)
    num_classes = int(model.num_classes)
    x_labeled = np.asarray(x_labeled)
    x_pool = np.asarray(x_pool)
    _check_x(x_labeled, "x_labeled", sample_shape)
    if len(x_labeled) == 0:
        raise ValueError("`x_labeled` is empty: there is nothing to train on")
    y = as_label_vector(y_labeled, "y_labeled", num_classes=num_classes)
    if len(y) != len(x_labeled):
        raise ValueError(
            f"`y_labeled` has {len(y)} labels but `x_labeled` has {len(x_labeled)} samples"
        )
    _check_x(x_pool, "x_pool", sample_shape)
    extras = {}
    for name, xe in (extra_sets or {}).items():
        xe = np.asarray(xe)
        _check_x(xe, f"extra_sets[{name!r}]", sample_shape)
        extras[str(name)] = xe
    if need_mc:
        if isinstance(mc_passes, bool) or not isinstance(mc_passes, int) or mc_passes < 1:
            raise ValueError(f"`mc_passes` must be a positive integer; got {mc_passes!r}")
        if not getattr(model, "has_dropout", False):
            raise ValueError(
                "`need_mc=True` (MC dropout, e.g. for `bald`) needs a model with dropout: build it "
                "with `build_model(..., dropout=0.3)` (or any p in (0, 1))"
            )
    device = resolve_device(config.device)
    det = deterministic(device) if config.deterministic else contextlib.nullcontext()
    with thread_limit(config.num_threads), det, seeded(derive_seed(seed, "dropout")):
        return _run(
            model,
            x_labeled,
            y,
            x_pool,
            extras,
            config=config,
            seed=int(seed),
            device=device,
            need_mc=need_mc,
            mc_passes=mc_passes,
            need_ff=need_ff,
            progress=progress,
            record_history=record_history,
        )


def _check_x(x: np.ndarray, name: str, sample_shape: tuple[int, ...]) -> None:
    if x.ndim < 2 or not input_layout_matches(x.shape, sample_shape):
        want = (
            f"(N, {sample_shape[0]})"
            if len(sample_shape) == 1
            else f"(N, {sample_shape[1]}, {sample_shape[2]}[, {sample_shape[0]}])"
        )
        raise ValueError(f"`{name}` has shape {x.shape}; the model expects {want}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise TypeError(f"`{name}` must hold numbers (uint8 images or float); got dtype {x.dtype}")


def _batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Batch bounds over a pass; a trailing batch of one sample joins the previous one (BatchNorm
    cannot normalise a single sample)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    ends = [*starts[1:], n]
    return list(zip(starts, ends))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class _Phases:
    """What the two training phases leave for the round record."""

    pre_epochs: int = 0
    terminal_epoch: int | None = None
    stop_reason: str = "cap"
    acc_at_window: float = float("nan")
    final_acc: float = float("nan")
    epochs: int = 0


class _RoundTrainer:
    """One round's training state: the optimiser, the data-order and augmentation streams, the
    labeled set's latest eval pass, timings and the per-epoch log.

    The steps (:meth:`fit_to_terminal_phase`, :meth:`ff_window`, :meth:`extract`) run in that
    order; every random draw happens in the same order as in one straight-line loop, so the split
    does not change any result.
    """

    def __init__(
        self,
        model: nn.Module,
        x_l: np.ndarray,
        y: np.ndarray,
        *,
        config: TrainConfig,
        seed: int,
        device: torch.device,
        n_pool: int,
        need_ff: bool,
        progress: bool,
    ) -> None:
        self.model, self.x_l, self.y, self.config, self.device = model, x_l, y, config, device
        sample_shape = tuple(model.sample_shape)
        is_image = len(sample_shape) == 3
        mode = config.normalize
        if mode == "auto":
            mode = "fixed" if is_image else "labeled"
        self.normalize = mode
        self.prep = Preprocessor(
            sample_shape, Normalizer.fit_array(mode, x_l, sample_shape), device
        )
        self.augment = config.augment and is_image
        self.pad = (
            config.crop_padding
            if config.crop_padding is not None
            else default_crop_padding(sample_shape)
        )
        self.flip = config.flip if config.flip is not None else default_flip(sample_shape)

        model.to(device)
        if is_image:  # channels_last: see Preprocessor
            model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(
            model.parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        self.loss_fn = nn.CrossEntropyLoss()
        self.g_order = make_generator(seed, "order")
        self.g_aug = make_generator(seed, "augment")
        self.y_dev = torch.from_numpy(y).to(device)
        # the labeled set's eval inputs, prepared once for the per-epoch accuracy passes
        self.lab_batches = prepare_batches(
            x_l, self.prep, batch_size=config.eval_batch_size, sample_shape=sample_shape
        )

        self.n_l = len(x_l)
        self.passes = max(1, math.ceil(config.min_samples_per_epoch / self.n_l))
        self.bounds = _batches(self.n_l, config.batch_size)
        self.steps_per_epoch = self.passes * len(self.bounds)
        self.last_k = config.window_policy == "last_k"
        self.pre_cap = config.epochs_max - config.ff_window if self.last_k else config.epochs_max
        self.running = config.train_acc_mode == "running"

        self.t_train = self.t_acc = self.t_ff = 0.0
        self.epoch_log: list[dict[str, Any]] = []
        self.history: list[np.ndarray] = []
        self.logits_history: list[np.ndarray] = []
        self.recorder = FluctuationRecorder(n_pool) if need_ff else None
        self.margin_recorder = MarginFluctuationRecorder(n_pool) if need_ff else None
        self.pool_logits: np.ndarray | None = None
        self.pool_feats: np.ndarray | None = None
        self.lab_logits: np.ndarray | None = None
        self.lab_feats: np.ndarray | None = None
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.pre_cap + config.ff_window, desc="train", unit="ep", leave=False
            )

    # ---- one epoch, accuracy, log --------------------------------------------------------------
    def train_epoch(self, epoch: int, in_window: bool) -> tuple[float, float, float, float]:
        """One epoch; returns (mean loss, first lr, last lr, running accuracy of its last pass)."""
        model, config, device = self.model, self.config, self.device
        model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.int64)
        step = 0
        lr_first = lr_last = 0.0
        for p in range(self.passes):
            perm = torch.randperm(self.n_l, generator=self.g_order).numpy()
            for a, b in self.bounds:
                lr = config.lr_at(epoch + step / self.steps_per_epoch, in_window)
                lr_first = lr if step == 0 else lr_first
                lr_last = lr
                for group in self.opt.param_groups:
                    group["lr"] = lr
                idx = perm[a:b]
                xb = self.prep.raw(self.x_l[idx])
                if self.augment:
                    xb = random_crop(xb, self.pad, self.g_aug)
                    if self.flip:
                        xb = random_hflip(xb, self.g_aug)
                yb = self.y_dev[torch.from_numpy(idx).to(device)]
                logits = model(self.prep.finish(xb))
                loss = self.loss_fn(logits, yb)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                loss_sum += loss.detach().double() * (b - a)
                if p == self.passes - 1:
                    correct += (logits.detach().argmax(1) == yb).sum()
                step += 1
        return (
            float(loss_sum) / (self.passes * self.n_l),
            lr_first,
            lr_last,
            float(correct) / self.n_l,
        )

    def labeled_accuracy(self) -> float:
        """Eval-mode accuracy on the un-augmented labeled set (keeps its logits and features)."""
        self.lab_logits, self.lab_feats = eval_pass(
            self.model,
            self.x_l,
            self.prep,
            batch_size=self.config.eval_batch_size,
            batches=self.lab_batches,
        )
        return float(np.mean(self.lab_logits.argmax(axis=1) == self.y))

    def log_epoch(
        self, epoch: int, phase: str, loss: float, lr0: float, lr1: float, acc: float
    ) -> None:
        self.epoch_log.append(
            {
                "epoch": epoch + 1,
                "phase": phase,
                "loss": loss,
                "lr_first": lr0,
                "lr_last": lr1,
                "train_acc": acc,
            }
        )
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(phase=phase, acc=f"{acc:.3f}", lr=f"{lr1:.4f}")

    # ---- the steps -----------------------------------------------------------------------------
    def fit_to_terminal_phase(self) -> _Phases:
        """Pre-window epochs until the training accuracy reaches ``tau``, plateaus, or the cap
        (``last_k``: always ``epochs_max - ff_window`` epochs)."""
        config = self.config
        out = _Phases(stop_reason="last_k" if self.last_k else "cap")
        epoch, best_ref, since_best = 0, -math.inf, 0
        acc = float("nan")
        while epoch < self.pre_cap:
            t0 = time.perf_counter()
            loss, lr0, lr1, acc = self.train_epoch(epoch, in_window=False)
            _sync(self.device)
            t1 = time.perf_counter()
            if not self.running:
                acc = self.labeled_accuracy()
            self.t_acc += time.perf_counter() - t1
            self.t_train += t1 - t0
            self.log_epoch(epoch, "pre", loss, lr0, lr1, acc)
            epoch += 1
            if acc >= config.tau and out.terminal_epoch is None:
                out.terminal_epoch = epoch
            if self.last_k:
                continue
            if acc >= config.tau:
                out.stop_reason = "tau"
                break
            if acc >= best_ref + config.plateau_delta:
                best_ref, since_best = acc, 0
            else:
                since_best += 1
                if config.plateau_patience is not None and since_best >= config.plateau_patience:
                    out.stop_reason = "plateau"
                    break
        if epoch == 0:
            acc = self.labeled_accuracy()  # the untrained model's accuracy
        out.pre_epochs = out.epochs = epoch
        out.acc_at_window = out.final_acc = acc
        if self.bar is not None:
            self.bar.total = epoch + config.ff_window
            self.bar.refresh()
        return out

    def ff_window(self, phases: _Phases, x_pool: np.ndarray, record_history: bool) -> None:
        """``ff_window`` epochs at the held learning rate; after each, predict the pool and count
        prediction flips (when FF was asked for). The last epoch's passes are the final ones."""
        config = self.config
        epoch = phases.epochs
        acc = phases.final_acc
        pool_batches = None
        if self.recorder is not None:  # the pool's inputs, prepared once for all window passes
            t0 = time.perf_counter()
            pool_batches = prepare_batches(
                x_pool,
                self.prep,
                batch_size=config.eval_batch_size,
                sample_shape=tuple(self.model.sample_shape),
            )
            self.t_ff += time.perf_counter() - t0
        for w in range(config.ff_window):
            t0 = time.perf_counter()
            loss, lr0, lr1, acc = self.train_epoch(epoch, in_window=True)
            _sync(self.device)
            t1 = time.perf_counter()
            last = w == config.ff_window - 1
            if not self.running or last:  # the final labeled logits/features come from this pass
                acc = self.labeled_accuracy()
            t2 = time.perf_counter()
            self.t_train += t1 - t0
            self.t_acc += t2 - t1
            if self.recorder is not None:
                self.pool_logits, feats = eval_pass(
                    self.model,
                    x_pool,
                    self.prep,
                    batch_size=config.eval_batch_size,
                    features=last,
                    batches=pool_batches,
                )
                self.pool_feats = feats if last else None
                preds = self.pool_logits.argmax(axis=1)
                self.recorder.update(preds)
                self.margin_recorder.update(self.pool_logits)
                if record_history:
                    self.history.append(preds.astype(np.int64))
                    self.logits_history.append(self.pool_logits.copy())
                self.t_ff += time.perf_counter() - t2
            self.log_epoch(epoch, "window", loss, lr0, lr1, acc)
            epoch += 1
            if acc >= config.tau and phases.terminal_epoch is None:
                phases.terminal_epoch = epoch
        phases.epochs, phases.final_acc = epoch, acc
        if self.bar is not None:
            self.bar.close()

    def extract(
        self,
        x_pool: np.ndarray,
        extras: dict[str, np.ndarray],
        *,
        seed: int,
        need_mc: bool,
        mc_passes: int,
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray | None, float, float]:
        """Pool (unless the window's last pass already has it), extra sets and MC-dropout passes
        with the final model; returns (extra outputs, MC probabilities, extract and MC seconds)."""
        bs = self.config.eval_batch_size
        t0 = time.perf_counter()
        if self.pool_logits is None or self.pool_feats is None:
            self.pool_logits, self.pool_feats = eval_pass(
                self.model, x_pool, self.prep, batch_size=bs
            )
        extra_out = {
            name: eval_pass(self.model, xe, self.prep, batch_size=bs) for name, xe in extras.items()
        }
        t_extract = time.perf_counter() - t0
        mc = None
        t_mc = 0.0
        if need_mc:
            t0 = time.perf_counter()
            mc = mc_dropout_probs(
                self.model,
                x_pool,
                self.prep,
                passes=mc_passes,
                seed=derive_seed(seed, "mc"),
                batch_size=bs,
            )
            t_mc = time.perf_counter() - t0
        self.model.eval()
        return extra_out, mc, t_extract, t_mc

    def record(self, phases: _Phases, *, seed: int, n_pool: int, times: dict[str, float]) -> dict:
        """The round's training record (``RoundOutputs.info``)."""
        config = self.config
        ff = self.recorder.counts if self.recorder is not None else None
        window_lrs = [
            v
            for e in self.epoch_log
            if e["phase"] == "window"
            for v in (e["lr_first"], e["lr_last"])
        ]
        return {
            "epochs": phases.epochs,
            "pre_window_epochs": phases.pre_epochs,
            "window_epochs": config.ff_window,
            "stop_reason": phases.stop_reason,
            "reached_terminal": bool(phases.acc_at_window >= config.tau),
            "terminal_epoch": phases.terminal_epoch,
            "train_acc_at_window": phases.acc_at_window,
            "final_train_acc": phases.final_acc,  # eval mode, un-augmented, final model
            "train_acc_mode": config.train_acc_mode,
            "window_lr": config.window_lr if config.schedule != "cosine" else None,
            "window_lr_range": [min(window_lrs), max(window_lrs)] if window_lrs else None,
            "passes_per_epoch": self.passes,
            "steps_per_epoch": self.steps_per_epoch,
            "train_seconds": self.t_train,
            "acc_seconds": self.t_acc,
            "ff_seconds": self.t_ff,
            "extract_seconds": times["extract"],
            "mc_seconds": times["mc"],
            "total_seconds": time.perf_counter() - times["start"],
            "ff_zero_fraction": float(np.mean(ff == 0)) if ff is not None and len(ff) else None,
            "ff_mean": float(np.mean(ff)) if ff is not None and len(ff) else None,
            "n_labeled": self.n_l,
            "n_pool": n_pool,
            "device": str(self.device),
            "num_threads": torch.get_num_threads(),
            "seed": seed,
            "normalize": self.normalize,
            "augment": {
                "enabled": self.augment,
                "crop_padding": self.pad if self.augment else 0,
                "flip": self.augment and self.flip,
            },
            "epoch_log": self.epoch_log,
        }


def _run(
    model: nn.Module,
    x_l: np.ndarray,
    y: np.ndarray,
    x_pool: np.ndarray,
    extras: dict[str, np.ndarray],
    *,
    config: TrainConfig,
    seed: int,
    device: torch.device,
    need_mc: bool,
    mc_passes: int,
    need_ff: bool,
    progress: bool,
    record_history: bool,
) -> RoundOutputs:
    """Fit to the terminal phase, run the FF window, extract: the round's steps in order."""
    t_start = time.perf_counter()
    trainer = _RoundTrainer(
        model,
        x_l,
        y,
        config=config,
        seed=seed,
        device=device,
        n_pool=len(x_pool),
        need_ff=need_ff,
        progress=progress,
    )
    phases = trainer.fit_to_terminal_phase()
    trainer.ff_window(phases, x_pool, record_history)
    extra_out, mc, t_extract, t_mc = trainer.extract(
        x_pool, extras, seed=seed, need_mc=need_mc, mc_passes=mc_passes
    )
    ff = trainer.recorder.counts if trainer.recorder is not None else None
    times = {"start": t_start, "extract": t_extract, "mc": t_mc}
    return RoundOutputs(
        logits_pool=trainer.pool_logits,
        features_pool=trainer.pool_feats,
        logits_labeled=trainer.lab_logits,
        features_labeled=trainer.lab_feats,
        ff_counts=ff,
        mc_probs_pool=mc,
        extra=extra_out,
        info=trainer.record(phases, seed=seed, n_pool=len(x_pool), times=times),
        pred_history=np.stack(trainer.history) if record_history and trainer.history else None,
        logits_history=(
            np.stack(trainer.logits_history) if record_history and trainer.logits_history else None
        ),
        ff_margin_std=(
            trainer.margin_recorder.stat("margin_std")
            if trainer.margin_recorder is not None
            else None
        ),
        preprocess=trainer.prep,
        eval_batch_size=config.eval_batch_size,
    )
