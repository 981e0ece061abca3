"""Small numeric kernels used in several layers (float64, numerically safe)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ROW_BLOCK = 1 << 16  # rows per block of by_row_blocks: small temporaries for any pool size


def by_row_blocks(
    fn: Callable[[np.ndarray], np.ndarray],
    rows: np.ndarray,
    out: np.ndarray,
    block: int = ROW_BLOCK,
) -> np.ndarray:
    """Fill ``out[i:j] = fn(rows[i:j])`` a block of rows at a time and return ``out``.

    For a row-wise ``fn`` the values are those of one call on all rows, but no temporary of ``fn``
    spans a large (possibly memory-mapped) pool.
    """
    for start in range(0, rows.shape[0], block):
        out[start : start + block] = fn(rows[start : start + block])
    return out


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row log-softmax in float64 via log-sum-exp."""
    z = np.asarray(logits, dtype=np.float64)
    if z.size == 0:
        return z.copy()
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row softmax in float64 (max-shifted, so large logits never overflow)."""
    return softmax_and_logsumexp(logits)[0]


def softmax_and_logsumexp(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row softmax and row ``logsumexp`` in float64 from one pass of ``exp``."""
    z = np.asarray(logits, dtype=np.float64)
    if z.size == 0:
        return z.copy(), np.zeros(z.shape[0])
    top = z.max(axis=1, keepdims=True)
    e = np.exp(z - top)
    total = e.sum(axis=1, keepdims=True)
    return e / total, (top + np.log(total))[:, 0]
