"""Instance-dependent noise (IDN; docs/algorithms.md §2.3): the flip probability and the wrong label
depend on the sample's pixels.

Reference: Xia, X. et al. "Part-dependent Label Noise: Towards Instance-dependent Label Noise",
NeurIPS 2020.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._base import NoiseModel, NoiseRequest


class IdnInputs:
    """Rows of ``x`` flattened for IDN and scaled to [0, 1] (docs/algorithms.md §2.3).

    uint8 images are divided by 255; float input already in [0, 1] is kept; other float input is
    min–max scaled globally. Channels-last images ``(N, H, W, C)`` are flattened in CHW order like
    ``ToTensor()``. Rows are converted on demand (:meth:`rows`), so a 50k×3072 pool never needs a
    full float copy; ``description`` records the scaling for metadata.
    """

    def __init__(self, x: Any):
        x = np.asarray(x)
        if x.ndim < 2:
            raise ValueError(
                f"`x` must have one row per sample (2-D or image batch); got shape {x.shape}"
            )
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise TypeError(f"`x` must hold real numbers; got {x.dtype}")
        self.x = x
        self.chw = x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4)
        self.n, self.dim = x.shape[0], int(np.prod(x.shape[1:]))
        layout = ", HWC transposed to CHW" if self.chw else ""
        if x.dtype == np.uint8:
            self.lo, self.span = 0.0, 255.0
            self.description = "uint8/255 in [0,1], flattened" + layout
            return
        lo = hi = None
        for s in range(0, self.n, 8192):  # finite check and range in blocks
            blk = x[s : s + 8192]
            if not np.isfinite(blk).all():
                raise ValueError("`x` contains NaN or inf")
            lo = min(float(blk.min()), lo) if lo is not None else float(blk.min())
            hi = max(float(blk.max()), hi) if hi is not None else float(blk.max())
        lo, hi = (0.0, 1.0) if lo is None else (lo, hi)
        if lo >= 0.0 and hi <= 1.0:
            self.lo, self.span = 0.0, 1.0
            self.description = "float already in [0,1], flattened" + layout
        else:
            self.lo, self.span = lo, (hi - lo if hi > lo else 1.0)
            self.description = f"min-max scaled from [{lo:g}, {hi:g}] to [0,1], flattened" + layout

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Scaled float32 rows ``idx`` as a ``(len(idx), dim)`` matrix."""
        blk = self.x[idx]
        if self.chw:
            blk = blk.transpose(0, 3, 1, 2)
        blk = blk.reshape(len(idx), -1).astype(np.float32)
        if self.lo != 0.0:
            blk -= np.float32(self.lo)
        if self.span != 1.0:
            blk /= np.float32(self.span)
        return blk


def idn_labels(
    y: np.ndarray,
    tau: float,
    x: Any,
    C: int,
    rng: np.random.Generator,
    norm_std: float = 0.1,
    chunk: int = 8192,
) -> tuple[np.ndarray, dict]:
    """Xia et al.'s generator: per-sample flip rate ``q ~ TruncNormal(τ, norm_std; [0, 1])``, and a
    wrong label drawn from ``softmax(x W_y)`` over the other classes (``W_c`` Gaussian, one per
    class). Returns the noisy labels and the notes for ``info``."""
    from scipy.stats import truncnorm

    if x is None:
        raise ValueError("idn noise needs the inputs `x` (one row or image per label)")
    xin = IdnInputs(x)
    if xin.n != y.size:
        raise ValueError(f"`x` has {xin.n} rows but `y_clean` has {y.size}")
    n, S = xin.n, xin.dim
    q = truncnorm.rvs(
        (0 - tau) / norm_std,
        (1 - tau) / norm_std,
        loc=tau,
        scale=norm_std,
        size=n,
        random_state=rng,
    )
    u = rng.random(n)
    out = y.copy()
    for c in range(C):  # W_c drawn for every class in order (absent classes too: stable streams)
        Wc = rng.standard_normal((S, C)).astype(np.float32)
        rows = np.flatnonzero(y == c)
        for s in range(0, rows.size, chunk):
            r = rows[s : s + chunk]
            a = (xin.rows(r) @ Wc).astype(np.float64)
            a[:, c] = -np.inf
            a -= a.max(axis=1, keepdims=True)
            p = np.exp(a)
            p /= p.sum(axis=1, keepdims=True)
            p *= q[r, None]
            p[:, c] = 1.0 - q[r]
            cum = np.cumsum(p, axis=1)
            cum /= cum[:, -1:]
            out[r] = np.minimum((u[r, None] >= cum).sum(axis=1), C - 1)
    info = {
        "x_scaling": xin.description,
        "norm_std": norm_std,
        "input_dim": S,
        "flip_prob_mean": float(q.mean()),
    }
    return out, info


def draw_idn(request: NoiseRequest, info: dict) -> np.ndarray:
    """IDN labels at mean flip rate τ; the input scaling and flip statistics go to ``info``."""
    yn, extra = idn_labels(
        request.y, request.spec.rate, request.x, request.num_classes, request.rng
    )
    info.update(extra)
    return yn


IDN = NoiseModel(
    "idn",
    "instance-dependent (Xia et al. 2020); needs the inputs x",
    draw_idn,
    aliases=("instance",),
    parameter="τ",
)
