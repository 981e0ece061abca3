"""A PyTorch Lightning callback that records feature fluctuation (FF) on a pool while training.

Needs the optional extra ``lightning`` (``pip install 'ncal[lightning]'``). FF counts label flips
between consecutive checkpoints of the terminal phase (docs/algorithms.md §1.10); here a checkpoint
is the model at the end of a training epoch inside the window (the last ``window`` of
``trainer.max_epochs``, or every epoch from ``start_epoch``).

>>> ff = FFCallback(x_pool, window=8, feature_layer="body")       # doctest: +SKIP
>>> L.Trainer(max_epochs=30, callbacks=[ff]).fit(module, loader)   # doctest: +SKIP
>>> signals = ff.signals(x_labeled, y_labeled)                     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from .torch_loop import Embed, FFTracker, Inputs

try:
    from lightning.pytorch import Callback
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise ImportError(
        "ncal.integrations.lightning needs PyTorch Lightning: install the extra `lightning` "
        "(pip install 'ncal[lightning]')"
    ) from exc


class FFCallback(Callback):
    """Record FF on ``pool`` at the end of every training epoch inside the window.

    Parameters
    ----------
    pool, window, start_epoch, embed, feature_layer, batch_size, keep_history
        As for :class:`ncal.integrations.FFTracker`; the total number of epochs is read from
        ``trainer.max_epochs`` (give ``start_epoch`` when training has no epoch limit).

    Attributes
    ----------
    tracker : FFTracker
        The recorder (``tracker.ff_counts``, ``tracker.recorded_epochs``, ``tracker.history``).
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
        self._module: nn.Module | None = None

    def on_train_epoch_end(self, trainer: Any, pl_module: nn.Module) -> None:
        self._module = pl_module
        max_epochs = trainer.max_epochs
        total = int(max_epochs) if max_epochs is not None and max_epochs > 0 else None
        self.tracker.on_epoch_end(pl_module, int(trainer.current_epoch), total_epochs=total)

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
    ):
        """:class:`ncal.signals.Signals` of the trained module (or ``model``); see
        :meth:`ncal.integrations.FFTracker.signals`."""
        model = model if model is not None else self._module
        if model is None:
            raise RuntimeError("no model seen yet: train first or pass `model`")
        return self.tracker.signals(model, labeled, labels_labeled, num_classes=num_classes)
