"""Blocked distance and greedy kernels shared by the diversity-based strategies.

Everything here works on torch tensors so that one code path runs on the CPU and on CUDA (``device``
parameter of the strategies). Importing this module imports torch: strategies import it inside
``_select`` only, so building or listing them does not. Pool-sized arrays are only ever processed
in row blocks: no kernel forms an N×N matrix. Distances are computed in float64 from inputs that may be stored in float32
(docs/algorithms.md §0.2–0.3): squared distances ``a + b - 2<x, y>`` are clamped at 0.

Kernels
-------
* :class:`PairSpace` — points with a "bilinear" divergence ``d(x, y) = a[x] + a[y] - <u[x], v[y]>``:
  squared Euclidean (CoreSet) and symmetric KL between softmax vectors (CDAL) both have this form.
* :func:`kcenter_greedy` — exact k-center greedy (Sener & Savarese 2018) with lazy, batched updates.
* :func:`kmeanspp_kronecker` — k-means++ seeding on Kronecker-structured embeddings (BADGE).
* :func:`pairwise_sqdist`, :func:`class_min_sqdist` — blocked helpers (the δ-ball graphs and
  neighbour lists of ProbCover and TypiClust live in ``_graph``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

# Transitional: typiclust, probcover and bait still reach these as `K.<name>`; they belong to
# ._checks (torch-free constructor checks) and ncal._utils.torch, and go once those modules import
# them from there.
from .._utils.torch import resolve_device  # noqa: F401
from ._checks import check_device, check_float, check_int  # noqa: F401

# A block of a pairwise matrix holds at most this many float64 entries (64 MiB).
BLOCK_ELEMENTS = 1 << 23


# --------------------------------------------------------------------------- tensors


def as_tensor(x: Any, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A tensor on ``device`` sharing memory with a CPU numpy array where possible."""
    if isinstance(x, np.ndarray):
        x = np.ascontiguousarray(x)
        with warnings.catch_warnings():
            # a read-only array (a memory-mapped pool) is shared, not copied: the kernels never
            # write into their inputs, so torch's warning about non-writable arrays does not apply
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            t = torch.as_tensor(x)
    else:
        t = torch.as_tensor(x)
    if dtype is not None and t.dtype != dtype:
        t = t.to(dtype)
    return t.to(device)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b``; on the CPU through numpy's BLAS (markedly faster in float64 on AMD cores)."""
    if a.device.type == "cpu":
        return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))
    return a @ b


def to64(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float64; on the CPU through numpy, whose conversion is several times faster."""
    if t.dtype == torch.float64:
        return t
    if t.device.type == "cpu":
        return torch.from_numpy(t.numpy().astype(np.float64))
    return t.to(torch.float64)


def rows_per_block(cols: int, budget: int = BLOCK_ELEMENTS) -> int:
    """Rows of a block with ``cols`` columns that fit the element budget (at least 1)."""
    return max(1, budget // max(1, cols))


def first_argmax(values: torch.Tensor) -> int:
    """Index of the maximum, the smallest index among equal maxima (canonical tie rule, §0.3)."""
    vmax = values.max()
    return int(torch.nonzero(values == vmax)[0, 0])


# --------------------------------------------------------------------------- bilinear divergences


class PairSpace:
    """Points with a divergence ``d(x, y) = a[x] + a[y] - <u[x], v[y]>``, ``v = scale * u`` (halves
    swapped when ``swap``), computed in float64 and clamped at 0.

    * squared Euclidean: ``u = x``, ``a = ||x||^2``, ``v = 2 x``;
    * symmetric KL of softmax vectors (docs/algorithms.md §1.5):
      ``½KL(p||q) + ½KL(q||p) = ½Σp log p + ½Σq log q - [p, log p]·½[log q, q]``.

    ``u`` may be stored in float32 (it is upcast block by block); ``a`` is float64.
    """

    def __init__(self, u: torch.Tensor, a: torch.Tensor, scale: float, swap: bool) -> None:
        self.u = u
        self.a = a
        self.scale = float(scale)
        self.swap = bool(swap)

    @property
    def n(self) -> int:
        return int(self.u.shape[0])

    @classmethod
    def euclidean(cls, x: Any, device: torch.device) -> PairSpace:
        """Squared Euclidean distances between the rows of ``x`` (kept in its float dtype)."""
        u = as_tensor(x, device)
        if not u.is_floating_point():
            u = u.to(torch.float64)
        a = torch.empty(u.shape[0], dtype=torch.float64, device=device)
        step = rows_per_block(u.shape[1])
        for s in range(0, u.shape[0], step):
            blk = to64(u[s : s + step])
            a[s : s + step] = (blk * blk).sum(1)
        return cls(u, a, 2.0, False)

    @classmethod
    def sym_kl(cls, log_probs: Any, device: torch.device) -> PairSpace:
        """Symmetric KL between the softmax rows whose logs are ``log_probs`` (float64)."""
        logp = as_tensor(log_probs, device, torch.float64)
        p = logp.exp()
        a = 0.5 * (p * logp).sum(1)
        return cls(torch.cat([p, logp], dim=1), a, 0.5, True)

    def rows(self, idx: Any) -> torch.Tensor:
        """``u`` rows (index tensor or slice) in float64."""
        return to64(self.u[idx])

    def centers(self, idx: Any) -> torch.Tensor:
        """``v`` rows for the given points, float64, as a (m, D) tensor."""
        r = self.rows(idx)
        if r.ndim == 1:
            r = r[None]
        if self.swap:
            h = r.shape[1] // 2
            r = torch.cat([r[:, h:], r[:, :h]], dim=1)
        return self.scale * r

    @staticmethod
    def divergence(
        rows_u: torch.Tensor, rows_a: torch.Tensor, cent_v: torch.Tensor, cent_a: torch.Tensor
    ) -> torch.Tensor:
        """(B, m) divergences between rows (u, a) and centers (v, a), clamped at 0."""
        d = matmul(rows_u, cent_v.T)
        d.neg_().add_(rows_a[:, None]).add_(cent_a[None, :])
        return d.clamp_(min=0.0)

    def min_to(self, other: PairSpace) -> torch.Tensor:
        """(n,) float64: for every point, the smallest divergence to any point of ``other``."""
        out = torch.full((self.n,), torch.inf, dtype=torch.float64, device=self.u.device)
        cstep = min(other.n, 2048)
        rstep = rows_per_block(max(cstep, self.u.shape[1]))
        for c0 in range(0, other.n, cstep):
            cv = other.centers(slice(c0, c0 + cstep))
            ca = other.a[c0 : c0 + cstep]
            for r0 in range(0, self.n, rstep):
                sl = slice(r0, r0 + rstep)
                d = self.divergence(self.rows(sl), self.a[sl], cv, ca)
                out[sl] = torch.minimum(out[sl], d.min(1).values)
        return out

    def update_min(self, delta: torch.Tensor, idx: list[int]) -> None:
        """``delta = min(delta, d(., idx))`` in place, over all points, in row blocks."""
        if not idx:
            return
        it = torch.as_tensor(idx, device=self.u.device)
        cv, ca = self.centers(it), self.a[it]
        step = rows_per_block(max(len(idx), self.u.shape[1]))
        for r0 in range(0, self.n, step):
            sl = slice(r0, r0 + step)
            d = self.divergence(self.rows(sl), self.a[sl], cv, ca)
            delta[sl] = torch.minimum(delta[sl], d.min(1).values)


# --------------------------------------------------------------------------- k-center greedy


def kcenter_greedy(
    space: PairSpace,
    k: int,
    *,
    init: PairSpace | None,
    rng: np.random.Generator,
    first: int | None = None,
    candidates: int = 256,
    max_pending: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k-center greedy: repeatedly pick the point farthest from all centers.

    The centers start as the points of ``init`` (the labeled set); when ``init`` is empty the first
    pick is ``first`` or, when that is None, ``rng.integers(n)``. Ties go to the smallest index
    (docs/algorithms.md §0.3).

    Returns the picked indices (pick order) and each pick's divergence to its nearest center at the
    time it was picked (``inf`` for a random first pick).

    Notes
    -----
    The textbook greedy updates all ``n`` distances after every pick (one memory-bound pass over the
    pool per pick). Here new centers are kept *pending* and applied to the whole pool in batches of
    up to ``max_pending`` (one compute-bound matrix product). Between batches the exact argmax is
    still found: distances only decrease, so the stored (stale) value is an upper bound; the
    ``candidates`` points with the largest stale values are evaluated exactly against the pending
    centers, and the best of them is accepted only when it beats the largest stale value outside the
    candidate set. Otherwise the pending centers are applied and the plain argmax is taken. The
    result is the same pick sequence as the textbook algorithm, up to float rounding of exact ties.
    """
    n = space.n
    dev = space.u.device
    neg_inf = torch.tensor(-torch.inf, dtype=torch.float64, device=dev)
    if init is not None and init.n > 0:
        delta = space.min_to(init)
    else:
        delta = torch.full((n,), torch.inf, dtype=torch.float64, device=dev)
    picks: list[int] = []
    scores: list[float] = []
    remaining = n
    if init is None or init.n == 0:
        first = int(rng.integers(n)) if first is None else int(first)
        picks.append(first)
        scores.append(float("inf"))
        delta[first] = neg_inf
        space.update_min(delta, [first])
        remaining -= 1
    pending: list[int] = []
    cand_idx: torch.Tensor | None = None
    cand_val = bound = None
    while len(picks) < k:
        if not pending:
            u = first_argmax(delta)
            best = float(delta[u])
        else:
            if cand_idx is None:
                m = min(candidates, remaining)
                if remaining > m:
                    top = torch.topk(delta, m + 1)
                    bound = float(top.values[m])
                    cand_idx = torch.sort(top.indices[:m]).values
                else:
                    bound = -np.inf
                    cand_idx = torch.nonzero(delta > -torch.inf)[:, 0]
                d = space.divergence(
                    space.rows(cand_idx),
                    space.a[cand_idx],
                    space.centers(torch.as_tensor(pending, device=dev)),
                    space.a[pending],
                )
                cand_val = torch.minimum(delta[cand_idx], d.min(1).values)
            j = first_argmax(cand_val)
            best = float(cand_val[j])
            if not best > bound:
                # Not certified: apply the pending centers and take the exact argmax next round.
                space.update_min(delta, pending)
                pending, cand_idx = [], None
                continue
            u = int(cand_idx[j])
            cand_val[j] = neg_inf
        picks.append(u)
        scores.append(best)
        delta[u] = neg_inf
        remaining -= 1
        pending.append(u)
        if len(pending) >= max_pending:
            space.update_min(delta, pending)
            pending, cand_idx = [], None
        elif cand_idx is not None:
            d = space.divergence(
                space.rows(cand_idx), space.a[cand_idx], space.centers(u), space.a[u : u + 1]
            )
            torch.minimum(cand_val, d[:, 0], out=cand_val)
    return np.asarray(picks, dtype=np.int64), np.asarray(scores, dtype=np.float64)


# --------------------------------------------------------------------------- k-means++ (BADGE)


def kmeanspp_kronecker(
    a: torch.Tensor,
    h: torch.Tensor,
    k: int,
    rng: np.random.Generator,
    *,
    first: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding on the embeddings ``g_i = a_i ⊗ h_i`` without forming them.

    Uses ``||a⊗h - a'⊗h'||² = ||a||²||h||² + ||a'||²||h'||² - 2 (a·a')(h·h')`` (docs/algorithms.md §1.6).
    The first center is ``first`` or, when ``None``, the largest ``||g||`` (smallest index on ties).
    Each next center is drawn with probability ``D²/ΣD²`` by inverting the cumulative sum at
    ``rng.random() * ΣD²``; when ``ΣD² = 0`` it is drawn uniformly among the unchosen points with
    ``rng.integers``. Plain k-means++ is the case ``a = 1`` (one column).

    Parameters
    ----------
    a : (N, C) float64 tensor
    h : (N, d) float tensor (same device). float32 features stay float32: the products ``h·h'`` are
        then accumulated in float32 (relative error ~1e-7, immaterial to D² sampling) and the rest of
        the arithmetic is float64; this halves the memory traffic of the one pool pass per pick.
    k : number of centers (``<= N``)
    rng : numpy Generator (the only source of randomness)
    first : index of the first center, or None for the argmax of the norm

    Returns
    -------
    indices : (k,) int64 in pick order
    dist : (k,) float64, ``D`` (not squared) of each pick when it was drawn (norm for the first)

    References
    ----------
    Arthur & Vassilvitskii, "k-means++: the advantages of careful seeding", SODA 2007.
    Ash et al., "Deep batch active learning by diverse, uncertain gradient lower bounds", ICLR 2020.
    """
    n = a.shape[0]
    na = (a * a).sum(1)
    nh = sqnorms(h)
    w = na * nh
    # |computed h·h'| <= ||h|| ||h'|| (1 + tau): the accumulation error of the dot product in the
    # dtype of `h`, with a margin; used to skip points the new center cannot bring closer.
    unit = 2.0**-24 if h.dtype == torch.float32 else 2.0**-53
    tau = 4.0 * (h.shape[1] + 4) * unit + 1e-12
    hn = nh.sqrt().mul_(2.0 * (1.0 + tau))
    c = first_argmax(w) if first is None else int(first)
    picks = [c]
    dists = [float(w[c].sqrt())]
    chosen = torch.zeros(n, dtype=torch.bool, device=a.device)
    d2 = torch.full((n,), torch.inf, dtype=torch.float64, device=a.device)
    for _ in range(1, k):
        chosen[c] = True
        _lower_d2(a, h, w, hn, c, d2)
        d2[c] = 0.0  # earlier centers are already 0 and stay 0 under the minimum
        cum = torch.cumsum(d2, 0)
        total = float(cum[-1])
        if total > 0.0 and np.isfinite(total):
            r = torch.tensor(rng.random() * total, dtype=torch.float64, device=a.device)
            c = int(torch.searchsorted(cum, r, right=True))
            if c >= n or bool(chosen[c]) or float(d2[c]) == 0.0:
                c = int(torch.nonzero(d2 > 0)[-1, 0])  # r rounded up to the total
        else:
            free = torch.nonzero(~chosen)[:, 0]
            c = int(free[int(rng.integers(free.shape[0]))])
        picks.append(c)
        dists.append(float(d2[c].sqrt()))
    return np.asarray(picks, dtype=np.int64), np.asarray(dists, dtype=np.float64)


def _lower_d2(
    a: torch.Tensor,
    h: torch.Tensor,
    w: torch.Tensor,
    hn: torch.Tensor,
    c: int,
    d2: torch.Tensor,
) -> None:
    """``d2 = min(d2, ||g - g_c||²)`` in place, computing ``h·h_c`` only where it can matter.

    By Cauchy-Schwarz ``||g_i - g_c||² >= w_i + w_c - 2|a_i·a_c| ||h_i|| ||h_c||`` (``hn`` holds
    ``2||h||`` inflated by the dot product's rounding bound), so points whose bound exceeds their
    current ``d2`` keep it: the pool pass per pick (memory-bound, one read of ``h``) shrinks to
    the few rows that may move (about 1% at N = 50k). Skipped points keep exactly the value the
    full pass leaves; recomputed rows use the same products in the same dtype, equal to the full
    pass's up to the BLAS accumulation order of a float32 ``h·h_c`` over a row subset (an ulp, far
    below what D² sampling resolves: the 1,000 picks at N = 50k are those of the full pass).
    """
    aa = matmul(a, a[c])
    bound = (aa.abs() * hn).mul_(-hn[c] * 0.5).add_(w).add_(w[c])
    rows = torch.nonzero(bound <= d2)[:, 0]
    if rows.shape[0] == 0:
        return
    # gathered a block of rows at a time: in the first picks nearly every row may move, and one
    # gather would copy the whole (possibly memory-mapped) pool
    hc = torch.empty(rows.shape[0], dtype=torch.float64, device=h.device)
    step = rows_per_block(h.shape[1])
    for s in range(0, rows.shape[0], step):
        hc[s : s + step] = to64(matmul(h[rows[s : s + step]], h[c]))
    cross = aa[rows].mul_(hc)
    cur = cross.mul_(-2.0).add_(w[rows]).add_(w[c]).clamp_(min=0.0)
    d2[rows] = torch.minimum(d2[rows], cur)


# --------------------------------------------------------------------------- blocked helpers


def sqnorms(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    step = rows_per_block(x.shape[1])
    for s in range(0, x.shape[0], step):
        b = to64(x[s : s + step])
        out[s : s + step] = (b * b).sum(1)
    return out


def pairwise_sqdist(
    xa: torch.Tensor,
    xb: torch.Tensor,
    na: torch.Tensor | None = None,
    nb: torch.Tensor | None = None,
) -> torch.Tensor:
    """(len(xa), len(xb)) squared Euclidean distances in float64, clamped at 0 (one block)."""
    a = to64(xa)
    b = to64(xb)
    na = (a * a).sum(1) if na is None else na
    nb = (b * b).sum(1) if nb is None else nb
    d = matmul(a, b.T)
    d.mul_(-2.0).add_(na[:, None]).add_(nb[None, :])
    return d.clamp_(min=0.0)


def class_min_sqdist(
    x: torch.Tensor,
    ref: torch.Tensor,
    ref_labels: np.ndarray,
    num_classes: int,
    *,
    unit: bool = False,
) -> torch.Tensor:
    """(N, C): smallest squared distance from each row of ``x`` to a ``ref`` row of each class
    (``inf`` where the class has no reference row). Blocked over both sets. With ``unit``, rows of
    both sets are L2-normalised first (block by block, in float64; zero rows stay zero)."""
    order = np.argsort(ref_labels, kind="stable")
    ref = to64(ref[torch.as_tensor(order, device=ref.device)])
    labels = np.asarray(ref_labels)[order]
    bounds = np.searchsorted(labels, np.arange(num_classes + 1))
    nref = sqnorms(ref)
    nx = sqnorms(x)
    if unit:
        ref = ref / torch.where(nref > 0, nref.sqrt(), 1.0)[:, None]
        nref = (nref > 0).to(torch.float64)
        sx = torch.where(nx > 0, nx.rsqrt(), 1.0)
        nx = (nx > 0).to(torch.float64)
    out = torch.full((x.shape[0], num_classes), torch.inf, dtype=torch.float64, device=x.device)
    cstep = min(ref.shape[0], 4096)
    rstep = rows_per_block(cstep)
    for c0 in range(0, ref.shape[0], cstep):
        c1 = min(c0 + cstep, ref.shape[0])
        classes = [
            c
            for c in range(num_classes)
            if bounds[c] < bounds[c + 1] and bounds[c] < c1 and bounds[c + 1] > c0
        ]
        for r0 in range(0, x.shape[0], rstep):
            sl = slice(r0, r0 + rstep)
            xb = to64(x[sl]) * sx[sl, None] if unit else x[sl]
            d = pairwise_sqdist(xb, ref[c0:c1], nx[sl], nref[c0:c1])
            for c in classes:
                lo, hi = max(bounds[c], c0) - c0, min(bounds[c + 1], c1) - c0
                out[sl, c] = torch.minimum(out[sl, c], d[:, lo:hi].min(1).values)
    return out
