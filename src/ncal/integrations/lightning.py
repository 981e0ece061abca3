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

from torch import nn

from .torch_loop import FFCallbackBase

try:
    from lightning.pytorch import Callback
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise ImportError(
        "ncal.integrations.lightning needs PyTorch Lightning: install the extra `lightning` "
        "(pip install 'ncal[lightning]')"
    ) from exc


class FFCallback(FFCallbackBase, Callback):
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

    def on_train_epoch_end(self, trainer: Any, pl_module: nn.Module) -> None:
        max_epochs = trainer.max_epochs
        total = int(max_epochs) if max_epochs is not None and max_epochs > 0 else None
        self._record(pl_module, int(trainer.current_epoch), total)
