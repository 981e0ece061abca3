"""Feature fluctuation (FF) and selection signals from your own PyTorch training loop.

FF counts how often a pool sample's predicted label flips between consecutive checkpoints of the
terminal phase of training (docs/algorithms.md §1.10). Here a checkpoint is the model at the end of
an epoch inside the *window*: the last ``window`` epochs of training, or every epoch from
``start_epoch`` on. With ``T`` checkpoints, FF takes values in ``0 … T-1``; only the previous
prediction and a counter per pool sample are kept (:class:`ncal.dynamics.FluctuationRecorder`).

>>> tracker = FFTracker(x_pool, epochs=30, window=8, feature_layer="body")   # doctest: +SKIP
>>> for epoch in range(30):                                                  # doctest: +SKIP
...     train_one_epoch(model)
...     tracker.on_epoch_end(model, epoch)
>>> signals = tracker.signals(model, x_labeled, y_labeled)                   # doctest: +SKIP

The Lightning and Hugging Face callbacks (:mod:`ncal.integrations.lightning`,
:mod:`ncal.integrations.hf`) wrap one :class:`FFTracker`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .._utils.numeric import softmax
from .._utils.validation import as_label_vector
from ..dynamics import FluctuationRecorder
from ..signals import Signals

#: Pool or labeled inputs: a tensor or array (rows = samples), a dict of such (keyword inputs, e.g.
#: ``input_ids`` and ``attention_mask``), or a re-iterable of batches in a fixed order (a DataLoader
#: with ``shuffle=False``; a batch may be ``(inputs, targets, ...)`` or a dict).
Inputs = torch.Tensor | np.ndarray | Mapping[str, Any] | Iterable[Any]
Embed = Callable[[nn.Module, Any], torch.Tensor]

#: keys of a dict batch that hold targets, not model inputs
_TARGET_KEYS = ("labels", "label", "targets", "target")


class DegenerateFFWarning(UserWarning):
    """FF carries no information: fewer than two checkpoints, or no pool sample ever flipped."""


class FFTracker:
    """Record FF on a fixed pool while you train, then hand over the selection signals.

    Parameters
    ----------
    pool : tensor, array, dict of those, or DataLoader
        The unlabeled pool, always predicted in the same order (a DataLoader must not shuffle).
        Floating numpy arrays are passed to the model as float32 tensors.
    epochs : int, optional
        Total number of training epochs; the window is then the last ``window`` of them.
    window : int
        Number of window epochs (checkpoints) when ``epochs`` is given (default 8, as in ncal's own
        training).
    start_epoch : int, optional
        Open the window at this 0-based epoch instead (every later epoch is a checkpoint).
    embed : callable, optional
        ``embed(model, inputs) -> (batch, d)`` penultimate features.
    feature_layer : str, optional
        Name (as in ``model.named_modules()``) of the layer whose output, flattened per sample, is
        the penultimate feature, read by a forward hook. Without ``embed`` or ``feature_layer`` the
        features come from ``model.forward_with_features`` (ncal backbones) or are left out.
    batch_size : int
        Rows per forward pass when ``pool`` is a tensor, array or dict.
    keep_history : bool
        Also keep every checkpoint's predictions (``history``, shape (T, N)); costs T·N memory.

    Notes
    -----
    Predictions are taken in eval mode under ``torch.no_grad()`` and the model's train/eval mode is
    restored after, so recording does not change training. Pass un-augmented inputs.
    """

    def __init__(
        self,
        pool: Inputs,
        *,
        epochs: int | None = None,
        window: int = 8,
        start_epoch: int | None = None,
        embed: Embed | None = None,
        feature_layer: str | None = None,
        batch_size: int = 1024,
        keep_history: bool = False,
    ) -> None:
        _check_inputs(pool, "pool")
        self.pool = pool
        self.epochs = _check_int(epochs, "epochs", low=1, optional=True)
        self.window = _check_int(window, "window", low=1)
        self.start_epoch = _check_int(start_epoch, "start_epoch", low=0, optional=True)
        if embed is not None and feature_layer is not None:
            raise ValueError("give either `embed` or `feature_layer`, not both")
        if embed is not None and not callable(embed):
            raise TypeError(f"`embed` must be callable(model, inputs); got {type(embed).__name__}")
        if feature_layer is not None and not isinstance(feature_layer, str):
            raise TypeError(f"`feature_layer` must be a module name (str); got {feature_layer!r}")
        self.embed = embed
        self.feature_layer = feature_layer
        self.batch_size = _check_int(batch_size, "batch_size", low=1)
        self.keep_history = bool(keep_history)
        self.recorded_epochs: list[int] = []
        self._history: list[np.ndarray] = []
        self._recorder: FluctuationRecorder | None = None
        self._last_epoch: int | None = None
        self._n_checkpoints = 0

    # ---- the window ----------------------------------------------------------------------------
    def window_start(self, total_epochs: int | None = None) -> int:
        """First 0-based epoch of the window: ``start_epoch``, else ``total_epochs - window``.

        Raises
        ------
        ValueError
            When neither ``start_epoch`` nor a total number of epochs is known.
        """
        if self.start_epoch is not None:
            return self.start_epoch
        total = total_epochs if total_epochs is not None else self.epochs
        if total is None:
            raise ValueError(
                "the FF window is unknown: give `epochs` (the window is the last `window` epochs) "
                "or `start_epoch`"
            )
        return max(0, int(total) - self.window)

    def on_epoch_end(
        self, model: nn.Module, epoch: int, *, total_epochs: int | None = None
    ) -> bool:
        """Call after every training epoch (0-based ``epoch``); records a checkpoint inside the window.

        Returns
        -------
        bool
            Whether this epoch was recorded.
        """
        epoch = _check_int(epoch, "epoch", low=0)
        if self._last_epoch is not None and epoch <= self._last_epoch:
            raise ValueError(
                f"`epoch` must increase from call to call; got {epoch} after {self._last_epoch}"
            )
        self._last_epoch = epoch
        if epoch < self.window_start(total_epochs):
            return False
        self.record(model)
        self.recorded_epochs.append(epoch)
        return True

    def record(self, model: nn.Module) -> np.ndarray:
        """Predict the pool now and count flips against the previous checkpoint; returns the (N,)
        predicted labels."""
        logits, _ = self._pass(model, self.pool, features=False)
        preds = logits.argmax(axis=1)
        if self._recorder is None:
            self._recorder = FluctuationRecorder(len(preds))
        elif len(preds) != self._recorder.n_samples:
            raise ValueError(
                f"`pool` yielded {len(preds)} samples but {self._recorder.n_samples} at the first "
                "checkpoint; the pool must not change during training"
            )
        self._recorder.update(preds)
        self._n_checkpoints += 1
        if self.keep_history:
            self._history.append(preds)
        return preds

    # ---- results -------------------------------------------------------------------------------
    @property
    def n_checkpoints(self) -> int:
        """Checkpoints recorded so far."""
        return self._n_checkpoints

    @property
    def ff_counts(self) -> np.ndarray | None:
        """(N,) int64 flip counts so far, or None before the first checkpoint."""
        return None if self._recorder is None else self._recorder.counts

    @property
    def history(self) -> np.ndarray:
        """(T, N) int64 predictions of every checkpoint (needs ``keep_history=True``)."""
        if not self.keep_history:
            raise RuntimeError("build the tracker with `keep_history=True` to keep predictions")
        return np.stack(self._history) if self._history else np.zeros((0, 0), dtype=np.int64)

    def predict(self, model: nn.Module, inputs: Inputs) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits (N, C) and penultimate features (N, d) or None of ``inputs``, float32, eval mode."""
        _check_inputs(inputs, "inputs")
        return self._pass(model, inputs, features=True)

    def signals(
        self,
        model: nn.Module,
        labeled: Inputs,
        labels_labeled: Any,
        *,
        num_classes: int | None = None,
    ) -> Signals:
        """The selection signals of ``model`` (the final one): probabilities, logits and features of
        the pool and the labeled set, the labels and the FF counts.

        Parameters
        ----------
        model : nn.Module
        labeled : inputs of the labeled set (un-augmented), in the order of ``labels_labeled``.
        labels_labeled : (N_L,) integer labels (as given, possibly noisy).
        num_classes : int, optional
            Defaults to the number of logits.

        Warns
        -----
        DegenerateFFWarning
            When fewer than two checkpoints were recorded or no pool sample ever flipped.
        """
        _check_inputs(labeled, "labeled")
        logits_pool, feats_pool = self._pass(model, self.pool, features=True)
        logits_l, feats_l = self._pass(model, labeled, features=True)
        c = logits_pool.shape[1] if num_classes is None else num_classes
        c = _check_int(c, "num_classes", low=1)
        y = as_label_vector(labels_labeled, "labels_labeled", num_classes=c, length=len(logits_l))
        ff = self.ff_counts
        warn_if_degenerate(ff, self.n_checkpoints)
        if ff is not None and len(ff) != len(logits_pool):
            raise ValueError(f"`pool` now yields {len(logits_pool)} samples; FF has {len(ff)}")
        return Signals(
            probs_pool=softmax(logits_pool),
            logits_pool=logits_pool,
            features_pool=feats_pool,
            features_labeled=feats_l,
            labels_labeled=y,
            probs_labeled=softmax(logits_l),
            ff_counts=ff,
            num_classes=c,
        )

    # ---- forward passes ------------------------------------------------------------------------
    def _pass(
        self, model: nn.Module, inputs: Inputs, *, features: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module; got {type(model).__name__}")
        device = _device_of(model)
        was_training = model.training
        captured: list[torch.Tensor] = []
        hook = self._hook(model, captured) if features and self.feature_layer else None
        logits_out: list[np.ndarray] = []
        feats_out: list[np.ndarray] = []
        model.eval()
        try:
            with torch.no_grad():
                for batch in _batches(inputs, self.batch_size):
                    batch = _to_device(batch, device)
                    logits, feats = self._forward(model, batch, features)
                    if hook is not None:
                        feats = captured.pop()
                    logits_out.append(logits.float().cpu().numpy())
                    if feats is not None:
                        feats_out.append(feats.reshape(len(logits), -1).float().cpu().numpy())
        finally:
            model.train(was_training)
            if hook is not None:
                hook.remove()
        if not logits_out:
            raise ValueError("the inputs yielded no samples")
        logits_np = np.concatenate(logits_out)
        return logits_np, (np.concatenate(feats_out) if feats_out else None)

    def _forward(
        self, model: nn.Module, batch: Any, features: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if features and self.embed is not None:
            return _logits_of(_call(model, batch)), _first_tensor(self.embed(model, batch))
        if features and self.feature_layer is None and hasattr(model, "forward_with_features"):
            return model.forward_with_features(batch)
        return _logits_of(_call(model, batch)), None

    def _hook(self, model: nn.Module, captured: list[torch.Tensor]):
        modules = dict(model.named_modules())
        if self.feature_layer not in modules:
            names = [n for n in modules if n][:20]
            raise ValueError(
                f"`feature_layer` {self.feature_layer!r} is not a module of the model; "
                f"some names: {names}"
            )

        def keep_output(_module: nn.Module, _args: Any, output: Any) -> None:
            captured.append(_first_tensor(output))

        return modules[self.feature_layer].register_forward_hook(keep_output)


class FFCallbackBase:
    """The framework-independent half of the Lightning and Hugging Face callbacks.

    Holds one :class:`FFTracker` (``tracker``) and the last model seen, and answers ``ff_counts``
    and ``signals``; a framework callback mixes this in before its framework's base class and
    calls :meth:`_record` from its epoch-end hook.

    Parameters
    ----------
    pool, window, start_epoch, embed, feature_layer, batch_size, keep_history
        As for :class:`FFTracker`; the total number of epochs comes from the framework.
    """

    def __init__(
        self,
        pool: Inputs,
        *,
        window: int = 8,
        start_epoch: int | None = None,
        embed: Embed | None = None,
        feature_layer: str | None = None,
        batch_size: int = 1024,
        keep_history: bool = False,
    ) -> None:
        super().__init__()
        self.tracker = FFTracker(
            pool,
            window=window,
            start_epoch=start_epoch,
            embed=embed,
            feature_layer=feature_layer,
            batch_size=batch_size,
            keep_history=keep_history,
        )
        self._model: nn.Module | None = None

    def _record(self, model: nn.Module, epoch: int, total_epochs: int | None) -> None:
        """Remember ``model`` and let the tracker record ``epoch`` if it lies in the window."""
        self._model = model
        self.tracker.on_epoch_end(model, epoch, total_epochs=total_epochs)

    @property
    def ff_counts(self) -> np.ndarray | None:
        """(N,) int64 flip counts so far, or None before the first checkpoint."""
        return self.tracker.ff_counts

    def signals(
        self,
        labeled: Inputs,
        labels_labeled: Any,
        *,
        num_classes: int | None = None,
        model: nn.Module | None = None,
    ) -> Signals:
        """:class:`ncal.signals.Signals` of the last model trained (or ``model``); see
        :meth:`FFTracker.signals`."""
        model = model if model is not None else self._model
        if model is None:
            raise RuntimeError("no model seen yet: train first or pass `model`")
        return self.tracker.signals(model, labeled, labels_labeled, num_classes=num_classes)


def warn_if_degenerate(ff_counts: np.ndarray | None, n_checkpoints: int) -> None:
    """Warn (:class:`DegenerateFFWarning`) when FF cannot rank the pool.

    The threshold: FF is degenerate when fewer than 2 checkpoints were recorded or when not a single
    pool sample changed its predicted label over the window (every count 0). Then z(FF) is 0 for
    every sample and ``ncal_r`` ranks by CMAP alone.
    """
    if ff_counts is None or n_checkpoints < 2:
        warnings.warn(
            f"FF is degenerate: {n_checkpoints} checkpoint(s) recorded, at least 2 are needed "
            "(call on_epoch_end after every epoch; check `epochs`/`window`/`start_epoch`)",
            DegenerateFFWarning,
            stacklevel=3,
        )
    elif not np.any(ff_counts):
        warnings.warn(
            f"FF is degenerate: all {len(ff_counts)} pool counts are 0 over {n_checkpoints} "
            "checkpoints (threshold: at least one flip). The window may open after training has "
            "converged, or the learning rate in the window is too small to move predictions; "
            "ncal_r then ranks by CMAP alone",
            DegenerateFFWarning,
            stacklevel=3,
        )


# ---- inputs ------------------------------------------------------------------------------------
def _check_int(value: Any, name: str, *, low: int, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"`{name}` must be an integer >= {low}; got {value!r}")
    return int(value)


def _check_inputs(inputs: Any, name: str) -> None:
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        if inputs.ndim < 1 or len(inputs) == 0:
            raise ValueError(f"`{name}` must hold at least one sample; got shape {inputs.shape}")
        return
    if isinstance(inputs, Mapping):
        lengths = {k: len(v) for k, v in inputs.items() if k not in _TARGET_KEYS}
        if not lengths or len(set(lengths.values())) != 1:
            raise ValueError(f"`{name}` values must have the same number of rows; got {lengths}")
        return
    if isinstance(inputs, torch.utils.data.DataLoader):
        if isinstance(inputs.sampler, torch.utils.data.RandomSampler):
            raise ValueError(
                f"`{name}` is a shuffling DataLoader; FF compares each sample's predictions "
                "across epochs, so build it with shuffle=False"
            )
        return
    if not isinstance(inputs, Iterable) or iter(inputs) is inputs:
        raise TypeError(
            f"`{name}` must be a tensor, an array, a dict of them or a re-iterable of batches "
            f"(e.g. a DataLoader); got {type(inputs).__name__}"
        )


def _batches(inputs: Inputs, batch_size: int) -> Iterator[Any]:
    """Model inputs batch by batch, in a fixed order."""
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        for start in range(0, len(inputs), batch_size):
            yield _as_tensor(inputs[start : start + batch_size])
    elif isinstance(inputs, Mapping):
        n = len(next(v for k, v in inputs.items() if k not in _TARGET_KEYS))
        for start in range(0, n, batch_size):
            yield {
                k: _as_tensor(v[start : start + batch_size])
                for k, v in inputs.items()
                if k not in _TARGET_KEYS
            }
    else:
        for batch in inputs:
            if isinstance(batch, Mapping):
                yield {k: v for k, v in batch.items() if k not in _TARGET_KEYS}
            elif isinstance(batch, (tuple, list)):
                yield batch[0]  # (inputs, targets, ...)
            else:
                yield batch


def _as_tensor(x: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    arr = np.asarray(x)
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32, copy=False)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _device_of(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch.to(device) if isinstance(batch, torch.Tensor) else batch


def _call(model: nn.Module, batch: Any) -> Any:
    return model(**batch) if isinstance(batch, Mapping) else model(batch)


def _first_tensor(out: Any) -> torch.Tensor:
    """The tensor of a module output: itself, ``.logits``, or the first element of a tuple/dict."""
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits") and isinstance(out.logits, torch.Tensor):
        return out.logits
    if isinstance(out, Mapping):
        out = list(out.values())
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"cannot read a tensor from a model output of type {type(out).__name__}")


def _logits_of(out: Any) -> torch.Tensor:
    logits = _first_tensor(out)
    if logits.ndim != 2:
        raise ValueError(
            f"the model must return (batch, classes) logits; got {tuple(logits.shape)}"
        )
    return logits
