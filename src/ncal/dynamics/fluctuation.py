"""Feature fluctuation (FF): how often a sample's predicted label flips between consecutive
terminal-phase checkpoints (ALGORITHMS.md §1.10).

``FF(x) = sum_{t=T_i+1}^{T_f} 1[yhat_t(x) != yhat_{t-1}(x)]``. The recorder keeps only the last prediction
and a counter per sample (O(N) memory); no checkpoint is ever stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_choice


def feature_fluctuation(pred_history: np.ndarray) -> np.ndarray:
    """Flip counts of a stacked prediction history.

    Parameters
    ----------
    pred_history : (T, N) integer array
        Predicted label of each of N samples at each of T consecutive checkpoints.

    Returns
    -------
    (N,) int64 array with values in ``[0, T-1]``.
    """
    h = np.asarray(pred_history)
    if h.ndim != 2:
        raise ValueError(
            f"`pred_history` must be a (T, N) array of predictions; got shape {h.shape}"
        )
    if h.size and not np.issubdtype(h.dtype, np.integer):
        raise TypeError(f"`pred_history` must hold integer labels; got dtype {h.dtype}")
    if h.shape[0] < 2:
        return np.zeros(h.shape[1], dtype=np.int64)
    return (h[1:] != h[:-1]).sum(axis=0).astype(np.int64)


class FluctuationRecorder:
    """Streaming FF: call :meth:`update` once per checkpoint with the pool's predictions.

    Equal to ``feature_fluctuation(np.stack(all_updates))`` at every point, in O(N) memory.

    Parameters
    ----------
    n_samples : int
        Pool size N.
    """

    def __init__(self, n_samples: int) -> None:
        if (
            isinstance(n_samples, bool)
            or not isinstance(n_samples, (int, np.integer))
            or n_samples < 0
        ):
            raise ValueError(f"`n_samples` must be a non-negative integer; got {n_samples!r}")
        self.n_samples = int(n_samples)
        self._last: np.ndarray | None = None
        self._counts = np.zeros(self.n_samples, dtype=np.uint16)
        self.n_updates = 0

    def update(self, preds: np.ndarray) -> None:
        """Record one checkpoint's predictions, shape (N,)."""
        p = np.asarray(preds)
        if p.shape != (self.n_samples,):
            raise ValueError(f"`preds` must have shape ({self.n_samples},); got {p.shape}")
        if p.size and not np.issubdtype(p.dtype, np.integer):
            raise TypeError(f"`preds` must hold integer labels; got dtype {p.dtype}")
        p = p.astype(np.int32, copy=True)
        if self._last is not None:
            self._counts += (p != self._last).astype(np.uint16)
        self._last = p
        self.n_updates += 1

    @property
    def counts(self) -> np.ndarray:
        """(N,) int64 flip counts so far."""
        return self._counts.astype(np.int64)

    def reset(self) -> None:
        self._last = None
        self._counts[:] = 0
        self.n_updates = 0


@dataclass
class TerminalWindow:
    """When to record FF during training.

    Parameters
    ----------
    policy : {"last_k", "threshold"}
        ``last_k``: the last ``k`` epochs of training. ``threshold``: every epoch from the first one whose
        training accuracy reaches ``tau`` (then training continues for ``k`` more epochs).
    k : int
        Window length in epochs (number of recorded checkpoints).
    tau : float
        Training-accuracy threshold for the ``threshold`` policy.
    """

    policy: str = "threshold"
    k: int = 8
    tau: float = 0.99

    def __post_init__(self) -> None:
        check_choice(self.policy, "policy", ("last_k", "threshold"))
        if not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValueError(f"`k` must be a positive integer; got {self.k!r}")
        if not 0.0 < float(self.tau) <= 1.0:
            raise ValueError(f"`tau` must lie in (0, 1]; got {self.tau!r}")

    def starts_at(self, epoch: int, train_accuracy: float, max_epochs: int) -> bool:
        """Whether the window opens at ``epoch`` (0-based) given that epoch's training accuracy."""
        if self.policy == "last_k":
            return epoch >= max_epochs - self.k
        return train_accuracy >= self.tau
