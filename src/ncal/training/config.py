"""`TrainConfig`: the per-round training recipe (one recipe for every strategy, docs/findings.md
§1–2).

Recipe
------
1. **Pre-window phase.** SGD with momentum trains until the training accuracy on the (noisy)
   labeled set — measured in eval mode on un-augmented inputs after each epoch — reaches ``tau``
   (the terminal phase), or it plateaus (the best accuracy so far has not improved by
   ``plateau_delta`` within ``plateau_patience`` epochs), or ``epochs_max`` epochs have run.
   ``info["stop_reason"]`` says which.
2. **FF window.** ``ff_window`` more epochs at a learning rate *held constant* at
   ``window_lr_factor × lr``; after each, the pool's eval-mode predictions feed the FF recorder.
   A rate decayed to ~0 here freezes every prediction (docs/findings.md §2: 96 % of the pool had
   FF = 0).
3. The round's signals come from the model after the last window epoch.

``schedule="cosine_hold"`` decays the rate by a cosine from ``lr`` at epoch 0 towards the window
rate at ``epochs_max`` (so the window rate is also the floor), and holds it there during the window.
``"constant"`` keeps ``lr`` before the window. ``"cosine"`` is the pre-project recipe, kept for
ablations: a cosine from ``lr`` to 0 over ``epochs_max + ff_window`` epochs that runs on into the
window.

An "epoch" is ``passes = max(1, ceil(min_samples_per_epoch / n_labeled))`` shuffled passes over the
labeled set, so a round with 100 labels still takes enough SGD steps per epoch to make the per-epoch
bookkeeping (accuracy check, pool prediction in the window) cheap relative to training.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

SCHEDULES = ("cosine_hold", "constant", "cosine")
WINDOW_POLICIES = ("threshold", "last_k")
NORMALIZE = ("auto", "fixed", "labeled")
TRAIN_ACC_MODES = ("eval", "running")


@dataclass
class TrainConfig:
    """Training recipe for one active-learning round.

    Parameters
    ----------
    epochs_max : int
        Cap on pre-window epochs (the window's ``ff_window`` epochs come on top).
    lr : float
        Base learning rate (SGD).
    momentum : float
        SGD momentum.
    weight_decay : float
        L2 weight decay. 5e-4 still lets the small CNN fit 30 % symmetric noise to ``tau = 0.99``
        (measured on MNIST-5k): what blocked the terminal phase before was too few SGD steps per
        epoch on small labeled sets and a rate decayed to ~0, not weight decay.
    batch_size : int
        SGD mini-batch size.
    schedule : {"cosine_hold", "constant", "cosine"}
        Learning-rate schedule (module docstring).
    tau : float
        Training-accuracy threshold in (0, 1] that marks the terminal phase.
    ff_window : int
        Number of recorded window epochs (checkpoints); FF takes values in ``0 … ff_window - 1``.
    window_policy : {"threshold", "last_k"}
        ``threshold``: the window opens at ``tau`` / plateau / cap; ``last_k``: always train
        ``epochs_max`` epochs in total, the last ``ff_window`` of which are the window.
    window_lr_factor : float
        Window learning rate as a fraction of ``lr`` (held constant; > 0).
    train_acc_mode : {"eval", "running"}
        How the per-epoch training accuracy (for ``tau`` and the plateau rule) is measured:
        ``eval`` — an eval-mode pass over the un-augmented labeled set (exact; costs about a third
        of a training pass); ``running`` — accuracy of the (augmented, train-mode) mini-batches of
        the epoch's last pass (free, slightly pessimistic). ``final_train_acc`` is always measured
        in eval mode.
    plateau_patience : int or None
        Epochs without an improvement of ``plateau_delta`` in the best training accuracy that end
        the pre-window phase; ``None`` disables the plateau rule.
    plateau_delta : float
        Minimum improvement (accuracy fraction) that resets the plateau counter.
    min_samples_per_epoch : int
        Lower bound on samples per epoch (module docstring); 0 = one pass.
    augment : bool
        Random crop (+ flip where ``flip``) for images; never for feature inputs.
    crop_padding : int or None
        Crop padding in pixels; ``None``: 4 for ≥ 32 px, 2 for 28 px-like, 1 for 8 px images.
    flip : bool or None
        Horizontal flips; ``None``: on for 3-channel images only (off for digits / MNIST-like).
    normalize : {"auto", "fixed", "labeled"}
        ``fixed``: images ``(x - 0.5) / 0.5`` per channel, features unchanged; ``labeled``:
        mean/std of the round's labeled set; ``auto``: ``fixed`` for images, ``labeled`` for
        features.
    device : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda[:i]"``.
    num_threads : int or None
        ``torch.set_num_threads`` during the round (restored after); ``None`` leaves it.
    eval_batch_size : int
        Batch size of eval-mode passes (accuracy, pool predictions, extraction). 256 is ~2× faster
        than 1024 for the small CNN on CPU (cache); raise it on a GPU.
    deterministic : bool
        ``torch.use_deterministic_algorithms`` during the round (restored after).
    """

    epochs_max: int = 60
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    schedule: str = "cosine_hold"
    tau: float = 0.99
    ff_window: int = 8
    window_policy: str = "threshold"
    window_lr_factor: float = 0.2
    train_acc_mode: str = "eval"
    plateau_patience: int | None = 10
    plateau_delta: float = 0.005
    min_samples_per_epoch: int = 1024
    augment: bool = True
    crop_padding: int | None = None
    flip: bool | None = None
    normalize: str = "auto"
    device: str = "auto"
    num_threads: int | None = None
    eval_batch_size: int = 256
    deterministic: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` / ``TypeError`` naming the offending field."""
        _int(self, "epochs_max", 1)
        _int(self, "batch_size", 1)
        _int(self, "ff_window", 1)
        _int(self, "min_samples_per_epoch", 0)
        _int(self, "eval_batch_size", 1)
        _num(self, "lr", lo=0.0, lo_open=True)
        _num(self, "momentum", lo=0.0, hi=1.0, hi_open=True)
        _num(self, "weight_decay", lo=0.0)
        _num(self, "tau", lo=0.0, hi=1.0, lo_open=True)
        _num(self, "window_lr_factor", lo=0.0, lo_open=True)
        _num(self, "plateau_delta", lo=0.0)
        if self.plateau_patience is not None:
            _int(self, "plateau_patience", 1)
        if self.crop_padding is not None:
            _int(self, "crop_padding", 0)
        if self.num_threads is not None:
            _int(self, "num_threads", 1)
        for name in ("augment", "deterministic"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"TrainConfig.{name} must be a bool; got {getattr(self, name)!r}")
        if self.flip is not None and not isinstance(self.flip, bool):
            raise TypeError(f"TrainConfig.flip must be a bool or None; got {self.flip!r}")
        for name, choices in (
            ("schedule", SCHEDULES),
            ("window_policy", WINDOW_POLICIES),
            ("normalize", NORMALIZE),
            ("train_acc_mode", TRAIN_ACC_MODES),
        ):
            if getattr(self, name) not in choices:
                value = getattr(self, name)
                raise ValueError(
                    f"TrainConfig.{name} must be one of {list(choices)}; got {value!r}"
                )
        if self.window_policy == "last_k" and self.ff_window > self.epochs_max:
            raise ValueError(
                f"TrainConfig.ff_window ({self.ff_window}) must not exceed epochs_max "
                f"({self.epochs_max}) with window_policy='last_k'"
            )
        if not isinstance(self.device, str):
            raise TypeError(f"TrainConfig.device must be a string; got {self.device!r}")

    @property
    def window_lr(self) -> float:
        """The learning rate held during the FF window (``cosine_hold`` / ``constant``)."""
        return self.lr * self.window_lr_factor

    def lr_at(self, epoch_float: float, in_window: bool) -> float:
        """Learning rate at fractional epoch ``epoch_float`` (0-based, from the round start)."""
        if self.schedule == "cosine":
            total = self.epochs_max + self.ff_window
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(epoch_float / total, 1.0)))
        if in_window:
            return self.window_lr
        if self.schedule == "constant":
            return self.lr
        floor = self.window_lr
        frac = min(epoch_float / self.epochs_max, 1.0)
        return floor + (self.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * frac))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a dict, rejecting unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {unknown}; known: {sorted(known)}")
        return cls(**d)


def _int(cfg: TrainConfig, name: str, lo: int) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"TrainConfig.{name} must be an integer; got {v!r}")
    if v < lo:
        raise ValueError(f"TrainConfig.{name} must be >= {lo}; got {v}")


def _num(
    cfg: TrainConfig,
    name: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"TrainConfig.{name} must be a number; got {v!r}")
    if not math.isfinite(v):
        raise ValueError(f"TrainConfig.{name} must be finite; got {v!r}")
    bad = (lo is not None and (v <= lo if lo_open else v < lo)) or (
        hi is not None and (v >= hi if hi_open else v > hi)
    )
    if bad:
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        rng = f"{lb}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{rb}"
        raise ValueError(f"TrainConfig.{name} must lie in {rng}; got {v}")
