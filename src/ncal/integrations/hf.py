"""A Hugging Face ``transformers.Trainer`` callback that records feature fluctuation (FF) on a pool.

Needs the optional extra ``hf`` (``pip install 'ncal[hf]'``). FF counts label flips between
consecutive checkpoints of the terminal phase (docs/algorithms.md §1.10); here a checkpoint is the
model at the end of a training epoch inside the window (the last ``window`` of the trainer's
epochs, or every epoch from ``start_epoch``). The pool is predicted with ``model(**inputs)``, so a
dict of tokenized tensors (``input_ids``, ``attention_mask``, …) is the natural pool.

>>> ff = FFCallback(pool_tokens, window=3, feature_layer="bert.pooler")   # doctest: +SKIP
>>> Trainer(model, args, train_dataset=ds, callbacks=[ff]).train()       # doctest: +SKIP
>>> signals = ff.signals(labeled_tokens, y_labeled)                       # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

from .torch_loop import FFCallbackBase

try:
    from transformers import TrainerCallback
except ImportError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise ImportError(
        "ncal.integrations.hf needs Hugging Face transformers: install the extra `hf` "
        "(pip install 'ncal[hf]')"
    ) from exc


class FFCallback(FFCallbackBase, TrainerCallback):
    """Record FF on ``pool`` in ``on_epoch_end`` for every epoch inside the window.

    Parameters
    ----------
    pool, window, start_epoch, embed, feature_layer, batch_size, keep_history
        As for :class:`ncal.integrations.FFTracker`; the total number of epochs is read from the
        trainer state (``num_train_epochs``).

    Attributes
    ----------
    tracker : FFTracker
        The recorder (``tracker.ff_counts``, ``tracker.recorded_epochs``, ``tracker.history``).
    """

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        if model is None:
            raise RuntimeError("the Trainer passed no `model` to on_epoch_end")
        # `state.epoch` is the float epoch count, e.g. 3.0 at the end of the third epoch
        epoch = round(state.epoch) - 1
        total = getattr(state, "num_train_epochs", 0) or args.num_train_epochs
        total_epochs = math.ceil(total) if total and total > 0 else None
        self._record(model, epoch, total_epochs)
