"""Feature fluctuation (FF): how often a sample's predicted label flips between consecutive
terminal-phase checkpoints (docs/algorithms.md §1.10).

``FF(x) = sum_{t=T_i+1}^{T_f} 1[yhat_t(x) != yhat_{t-1}(x)]``. The recorder keeps only the last prediction
and a counter per sample (O(N) memory); no checkpoint is ever stored.
"""

from __future__ import annotations

import numpy as np

from .._utils.validation import check_count

# Counts are uint32 (4 bytes per sample); a count can grow by at most one per update, so refusing
# the update that would exceed this bound guarantees no counter ever wraps.
_MAX_UPDATES = int(np.iinfo(np.uint32).max)


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
        self.n_samples = check_count(n_samples, "n_samples")
        self._last: np.ndarray | None = None
        self._counts = np.zeros(self.n_samples, dtype=np.uint32)
        self.n_updates = 0

    def update(self, preds: np.ndarray) -> None:
        """Record one checkpoint's predictions, shape (N,).

        Raises
        ------
        OverflowError
            After 2**32 - 1 updates (the flip counters could wrap past that).
        """
        p = np.asarray(preds)
        if p.shape != (self.n_samples,):
            raise ValueError(f"`preds` must have shape ({self.n_samples},); got {p.shape}")
        if p.size and not np.issubdtype(p.dtype, np.integer):
            raise TypeError(f"`preds` must hold integer labels; got dtype {p.dtype}")
        if self.n_updates >= _MAX_UPDATES:
            raise OverflowError(
                f"FluctuationRecorder took {self.n_updates} updates, the most its uint32 flip "
                "counters can count without wrapping; start a new recorder"
            )
        p = p.astype(np.int32, copy=True)
        if self._last is not None:
            self._counts += (p != self._last).astype(np.uint32)
        self._last = p
        self.n_updates += 1

    @property
    def counts(self) -> np.ndarray:
        """(N,) int64 flip counts so far."""
        return self._counts.astype(np.int64)
