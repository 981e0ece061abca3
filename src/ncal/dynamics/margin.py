"""Continuous feature fluctuation: how much a sample's top-1 minus top-2 probability margin moves
over the terminal-phase checkpoints.

The flip count FF (:mod:`.fluctuation`) is zero for most of the pool once a model fits its labeled
set: a prediction that never changes says nothing about how close it came to changing. The margin
``m_t(x) = p_(1),t(x) - p_(2),t(x)`` (softmax probabilities, top-1 minus top-2) moves at every
checkpoint, so its spread ranks every sample:

* ``margin_std``: population standard deviation of ``m_t`` over the ``T`` checkpoints;
* ``margin_change``: mean absolute change ``mean_t |m_t - m_{t-1}|`` (``T - 1`` differences).

The recorder keeps running sums (Welford's mean and sum of squared deviations, the last margin and
the summed absolute change): four float64 numbers per sample, O(N) memory, no (T, N, C) history.
"""

from __future__ import annotations

import numpy as np

from .._utils.validation import check_count

MARGIN_STATS = ("margin_std", "margin_change")
_BLOCK = 1 << 15  # rows converted to float64 at once, so a large pool is never copied whole


def probability_margin(logits: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 softmax probability of every row of ``logits``, in float64.

    Computed as ``(1 - exp(z_(2) - z_(1))) / sum_j exp(z_j - z_(1))``, which needs no full softmax
    and is exact for large logit gaps; 1 for a single class.

    Parameters
    ----------
    logits : (N, C) array of finite numbers

    Returns
    -------
    (N,) float64 array in [0, 1].
    """
    z = np.asarray(logits)
    if z.ndim != 2:
        raise ValueError(f"`logits` must be a (N, C) array; got shape {z.shape}")
    out = np.empty(z.shape[0], dtype=np.float64)
    if z.shape[1] < 2:
        out.fill(1.0)
        return out
    for start in range(0, z.shape[0], _BLOCK):
        chunk = np.asarray(z[start : start + _BLOCK], dtype=np.float64)
        if not np.isfinite(chunk).all():
            raise ValueError("`logits` contains NaN or inf values")
        top2 = np.partition(chunk, -2, axis=1)[:, -2:]
        first, second = top2.max(axis=1), top2.min(axis=1)
        denom = np.exp(chunk - first[:, None]).sum(axis=1)
        out[start : start + _BLOCK] = -np.expm1(second - first) / denom
    return out


def margin_fluctuation(margin_history: np.ndarray, stat: str = "margin_std") -> np.ndarray:
    """Fluctuation of a stacked margin history, computed directly (the recorder's reference).

    Parameters
    ----------
    margin_history : (T, N) float array
        The margin of each of N samples at each of T consecutive checkpoints.
    stat : {"margin_std", "margin_change"}
        Population std over the checkpoints, or mean absolute change between consecutive ones.

    Returns
    -------
    (N,) float64 array (zeros when fewer checkpoints than the statistic needs).
    """
    if stat not in MARGIN_STATS:
        raise ValueError(f"`stat` must be one of {list(MARGIN_STATS)}; got {stat!r}")
    h = np.asarray(margin_history, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"`margin_history` must be a (T, N) array; got shape {h.shape}")
    if stat == "margin_std":
        return h.std(axis=0) if h.shape[0] else np.zeros(h.shape[1])
    if h.shape[0] < 2:
        return np.zeros(h.shape[1])
    return np.abs(np.diff(h, axis=0)).mean(axis=0)


class MarginFluctuationRecorder:
    """Streaming margin fluctuation: call :meth:`update` once per checkpoint with the pool's
    logits.

    After ``T`` updates, :meth:`stat` equals ``margin_fluctuation(np.stack(margins), stat)`` up to
    float64 rounding (the std by Welford's update, not a second pass).

    Parameters
    ----------
    n_samples : int
        Pool size N.
    """

    def __init__(self, n_samples: int) -> None:
        self.n_samples = check_count(n_samples, "n_samples")
        self.n_updates = 0
        self._mean = np.zeros(self.n_samples)
        self._m2 = np.zeros(self.n_samples)  # sum of squared deviations from the running mean
        self._abs_change = np.zeros(self.n_samples)
        self._last: np.ndarray | None = None

    def update(self, logits: np.ndarray) -> None:
        """Record one checkpoint's pool logits, shape (N, C)."""
        z = np.asarray(logits)
        if z.ndim != 2 or z.shape[0] != self.n_samples:
            raise ValueError(f"`logits` must have shape ({self.n_samples}, C); got {z.shape}")
        self.update_margins(probability_margin(z))

    def update_margins(self, margins: np.ndarray) -> None:
        """Record one checkpoint's margins directly, shape (N,)."""
        m = np.asarray(margins, dtype=np.float64)
        if m.shape != (self.n_samples,):
            raise ValueError(f"`margins` must have shape ({self.n_samples},); got {m.shape}")
        if not np.isfinite(m).all():
            raise ValueError("`margins` contains NaN or inf values")
        self.n_updates += 1
        delta = m - self._mean
        self._mean += delta / self.n_updates
        self._m2 += delta * (m - self._mean)
        if self._last is not None:
            self._abs_change += np.abs(m - self._last)
        self._last = m.copy()

    def stat(self, name: str = "margin_std") -> np.ndarray:
        """(N,) float64 fluctuation so far: ``"margin_std"`` or ``"margin_change"``."""
        if name not in MARGIN_STATS:
            raise ValueError(f"`name` must be one of {list(MARGIN_STATS)}; got {name!r}")
        if name == "margin_std":
            if self.n_updates == 0:
                return np.zeros(self.n_samples)
            # clip the rounding residue of m2 (it can end a hair below 0 for a constant margin)
            return np.sqrt(np.maximum(self._m2, 0.0) / self.n_updates)
        if self.n_updates < 2:
            return np.zeros(self.n_samples)
        return self._abs_change / (self.n_updates - 1)
