"""Class-mean alignment (CMA) and its exact perturbation by one candidate (CMAP).

``CMA = 1/(C(C-1)) sum_{i != j} phi(mbar_i . mbar_j)`` over the present classes' (centred) unit
means, and ``CMAP(x) = CMA(L ∪ {(x, c(x))}) - CMA(L)`` (not rescaled), evaluated in closed form for
the whole pool in row blocks (docs/algorithms.md §6). The pool may be a float32 ``np.memmap``: it is read
block by block, each block converted to float64, never the whole pool at once.

Variants (§6.1): ``centering`` none/frozen/moving, ``mu_G`` class_avg/sample_avg, ``pair``
signed/abs, ``expected`` (probability-weighted over hypothetical classes), ``empty_class``
formula/force_select/skip.

References
----------
"Reliable Active Learning from Unreliable Labels via Neural Collapse Geometry", NeurIPS 2025
workshop, arXiv:2510.09740 (CMAP). Papyan, Han & Donoho, PNAS 2020 (class means, simplex ETF).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._utils.validation import as_label_vector, check_choice
from ._blocks import check_pool_matrix, iter_blocks, iter_raw_blocks, raise_if_nonfinite
from ._cmap_kernels import CmapGeometry, E1Blocks
from .stats import MU_G, ClassStats, check_num_classes

CENTERINGS = ("none", "frozen", "moving")
PAIRS = ("signed", "abs")
EMPTY_CLASS = ("formula", "force_select", "skip")

_E0_ROWS = 512  # O(d) kernel: small blocks stay in cache (measured faster than large GEMM blocks)
_E0_GROUP_ROWS = 8192  # rows read per block by the class-grouped E0 path (one class at a time)
_GEMM_ROWS = 1024
_E1_ROWS = 512  # E1 (moving, signed, hard labels): rows scored at once
_E1_READ_ROWS = 8192  # ... and rows read per block (each block's pages are released after it)
_TENSOR_ELEMS = 1 << 20  # rows x C^2 budget of the O(C^2)-per-candidate kernels


def _check_flags(centering: Any, mu_G: Any, pair: Any) -> None:
    check_choice(centering, "centering", CENTERINGS)
    check_choice(mu_G, "mu_G", MU_G)
    check_choice(pair, "pair", PAIRS)


def _check_block_size(block_size: Any) -> int:
    if (
        isinstance(block_size, bool)
        or not isinstance(block_size, (int, np.integer))
        or block_size < 1
    ):
        raise ValueError(f"`block_size` must be a positive integer; got {block_size!r}")
    return int(block_size)


def _labeled_stats(
    features_labeled: Any, labels: np.ndarray, num_classes: int, labels_name: str
) -> ClassStats:
    stats = ClassStats(
        features_labeled,
        labels,
        num_classes,
        features_name="features_labeled" if labels_name == "labels_labeled" else "features",
        labels_name=labels_name,
    )
    if stats.num_present < 2:
        raise ValueError(
            f"CMA needs at least two labeled classes; `{labels_name}` holds "
            f"{stats.num_present} distinct class(es)"
        )
    return stats


def cma(
    features: Any,
    labels: Any,
    *,
    num_classes: int | None = None,
    centering: str = "none",
    mu_G: str = "class_avg",
    pair: str = "signed",
) -> float:
    """Class-mean alignment of a labeled feature set.

    Parameters
    ----------
    features : (N, d) array
        Penultimate features.
    labels : (N,) int array
        Given labels in ``[0, num_classes)``; at least two distinct classes.
    num_classes : int, optional
        Number of classes (inferred as ``labels.max() + 1``); absent classes are ignored.
    centering : {"none", "frozen", "moving"}
        ``none`` uses raw class means; ``frozen``/``moving`` subtract the global mean (identical for
        a fixed set; they differ only for CMAP).
    mu_G : {"class_avg", "sample_avg"}
        Global-mean convention (used only when centring).
    pair : {"signed", "abs"}
        Pair function applied to each cosine.

    Returns
    -------
    float
        ``1/(C(C-1)) sum_{i != j} phi(cos(m_i, m_j))``; ``-1/(C-1)`` at a centred simplex ETF.

    References
    ----------
    docs/algorithms.md §6.1; arXiv:2510.09740.
    """
    _check_flags(centering, mu_G, pair)
    num_classes = check_num_classes(num_classes)
    y = as_label_vector(labels, "labels", num_classes=num_classes)
    k = int(num_classes if num_classes is not None else (y.max() + 1 if y.size else 0))
    stats = _labeled_stats(features, y, k, "labels")
    return float(CmapGeometry(stats, centering, mu_G, pair).cma)


class _Prepared:
    """Validated inputs shared by :func:`cmap` and :func:`cmap_first_order`."""

    def __init__(
        self,
        features_labeled: Any,
        labels_labeled: Any,
        features_pool: Any,
        pred_pool: Any,
        probs_pool: Any,
        num_classes: Any,
        expected: bool,
    ) -> None:
        num_classes = check_num_classes(num_classes)
        pool = check_pool_matrix(features_pool, "features_pool")
        n = pool.shape[0]
        y = as_label_vector(labels_labeled, "labels_labeled", num_classes=num_classes)
        probs = None
        if expected or probs_pool is not None:
            if probs_pool is None:
                raise ValueError("`probs_pool` is required when expected=True")
            probs = check_pool_matrix(probs_pool, "probs_pool")
            if probs.shape[0] != n:
                raise ValueError(
                    f"`probs_pool` has {probs.shape[0]} rows but `features_pool` has {n}; "
                    "they must match"
                )
            if num_classes is None:
                num_classes = probs.shape[1]
            elif probs.shape[1] != num_classes:
                raise ValueError(
                    f"`probs_pool` has {probs.shape[1]} columns but num_classes={num_classes}"
                )
        pred = None
        if pred_pool is not None:
            pred = as_label_vector(pred_pool, "pred_pool", num_classes=num_classes, length=n)
        elif not expected:
            raise ValueError("`pred_pool` (predicted class of every pool sample) is required")
        if num_classes is None:
            num_classes = int(y.max()) + 1 if y.size else 0
            if pred is not None and pred.size and int(pred.max()) >= num_classes:
                # a class no labeled sample has: say how many classes there are, never guess
                raise ValueError(
                    f"`pred_pool` holds class {int(pred.max())} but `labels_labeled` only reach "
                    f"class {num_classes - 1}; pass `num_classes`"
                )
        self.num_classes = int(num_classes)
        self.stats = _labeled_stats(features_labeled, y, self.num_classes, "labels_labeled")
        if pool.shape[1] != self.stats.dim:
            raise ValueError(
                f"`features_pool` has {pool.shape[1]} feature columns but `features_labeled` has "
                f"{self.stats.dim}; they must come from the same model layer"
            )
        self.pool, self.pred, self.probs, self.n = pool, pred, probs, n

    def probs_block(self, start: int, stop: int) -> np.ndarray:
        p = np.array(self.probs[start:stop], dtype=np.float64, copy=True)
        if not np.isfinite(p).all():
            raise ValueError(f"`probs_pool` contains NaN or inf values (rows {start}..{stop - 1})")
        if (p < 0).any():
            raise ValueError(
                f"`probs_pool` holds negative probabilities (rows {start}..{stop - 1})"
            )
        s = p.sum(axis=1)
        if np.any(np.abs(s - 1.0) > 1e-3):
            raise ValueError(
                f"`probs_pool` rows must sum to 1 (softmax outputs); got sums in "
                f"[{s.min():.4g}, {s.max():.4g}] (rows {start}..{stop - 1})"
            )
        return p / s[:, None]


def _warn_degenerate(count: int) -> None:
    if count:
        warnings.warn(
            f"CMAP set to 0 for {count} candidate(s) whose updated class mean has (numerically) "
            "zero norm (docs/algorithms.md §6.8)",
            RuntimeWarning,
            stacklevel=3,
        )


def cmap(
    features_labeled: Any,
    labels_labeled: Any,
    features_pool: Any,
    pred_pool: Any = None,
    *,
    probs_pool: Any = None,
    num_classes: int | None = None,
    centering: str = "none",
    mu_G: str = "class_avg",
    pair: str = "signed",
    empty_class: str = "formula",
    expected: bool = False,
    block_size: int = 8192,
) -> np.ndarray:
    """Exact class-mean alignment perturbation of every pool candidate.

    ``CMAP(x) = CMA(L ∪ {(x, pred(x))}) - CMA(L)``, evaluated in closed form: E0 (O(d) per
    candidate, none/frozen + signed), E0-pairs (O(C d), abs / expected), E1 (O(C d), moving +
    signed) and an O(C d + C^2) all-pairs update (moving + abs, moving with an empty predicted
    class).

    Parameters
    ----------
    features_labeled : (N_L, d) array
        Labeled features from the round's final model.
    labels_labeled : (N_L,) int array
        Given (possibly noisy) labels; at least two distinct classes.
    features_pool : (N, d) array or np.memmap
        Candidate features (float32 memmaps are read block by block).
    pred_pool : (N,) int array, optional
        Hypothetical label of each candidate (the model's argmax). Required unless ``expected=True``
        (then the argmax of ``probs_pool`` decides the empty-class policy).
    probs_pool : (N, C) array, optional
        Class probabilities; required for ``expected=True``.
    num_classes : int, optional
        ``C``; inferred from ``probs_pool`` or the largest label.
    centering : {"none", "frozen", "moving"}
        Reference subtracted from class means (§6.1): none, the labeled global mean held fixed, or
        the global mean recomputed after the hypothetical addition.
    mu_G : {"class_avg", "sample_avg"}
        Global-mean convention for ``frozen``/``moving``.
    pair : {"signed", "abs"}
        Pair function on cosines.
    empty_class : {"formula", "force_select", "skip"}
        Candidates predicted into a class absent from the labeled set: exact value with the class
        set grown by one (``formula``), ``+inf`` (``force_select``) or ``-inf`` (``skip``).
    expected : bool
        If True, return ``sum_c p_c(x) CMAP_c(x)`` over every hypothetical class ``c`` (absent
        classes use the ``formula`` value inside the expectation).
    block_size : int
        Maximum number of pool rows held in memory (as float64) at once.

    Returns
    -------
    (N,) float64 array.

    Raises
    ------
    ValueError
        Mismatched lengths/dimensions, NaN/inf, labels outside ``[0, num_classes)``, fewer than two
        labeled classes, a labeled class whose (centred) mean is zero.

    Notes
    -----
    Candidates whose updated class mean has norm below 1e-12 get 0 (with a ``RuntimeWarning``).
    Every path keeps float64 precision except hard labels under ``centering="moving"`` with
    signed pairs, whose one product runs in float32 on float64 differences (about 1e-6 of the
    largest |CMAP|; docs/algorithms.md §6.5).

    References
    ----------
    docs/algorithms.md §6.2-§6.8; arXiv:2510.09740.
    """
    _check_flags(centering, mu_G, pair)
    check_choice(empty_class, "empty_class", EMPTY_CLASS)
    if not isinstance(expected, (bool, np.bool_)):
        raise TypeError(f"`expected` must be a bool; got {type(expected).__name__}")
    block_size = _check_block_size(block_size)
    prep = _Prepared(
        features_labeled,
        labels_labeled,
        features_pool,
        pred_pool,
        probs_pool,
        num_classes,
        bool(expected),
    )
    geo = CmapGeometry(prep.stats, centering, mu_G, pair)
    out = np.empty(prep.n, dtype=np.float64)
    if prep.n == 0:
        return out
    if not expected and pair == "signed":  # hard labels (pred_pool is required): stored rows
        if centering == "moving":
            degenerate = _e1_by_block(
                prep, geo, out, min(_E1_ROWS, block_size), min(_E1_READ_ROWS, block_size)
            )
        else:
            degenerate = _e0_by_class(prep, geo, out, min(_E0_GROUP_ROWS, block_size))
        if empty_class != "formula":
            absent = prep.stats.row_of[prep.pred] < 0
            out[absent] = np.inf if empty_class == "force_select" else -np.inf
        _warn_degenerate(degenerate)
        return out
    C = geo.C
    if expected:
        rows = _E0_ROWS if (centering != "moving" and pair == "signed") else _GEMM_ROWS
        if pair == "abs" or centering == "moving":
            rows = max(1, min(rows, _TENSOR_ELEMS // ((C + 1) * (C + 1))))
    elif centering == "moving":  # hard labels, abs pairs
        rows = max(1, _TENSOR_ELEMS // ((C + 1) * (C + 1)))
    else:
        rows = _E0_ROWS
    rows = min(rows, block_size)
    degenerate = 0
    for start, stop, H in iter_blocks(prep.pool, rows, "features_pool"):
        U = H
        if centering != "none":
            U -= geo.g[None, :]
        if prep.pred is not None:
            pred = prep.pred[start:stop]
        else:
            pred = None
        probs = prep.probs_block(start, stop) if expected else None
        if pred is None:
            pred = probs.argmax(axis=1)
        r = prep.stats.row_of[pred]
        if expected:
            vals, deg = _expected_block(geo, U, r, probs, prep.stats.row_of)
        else:
            vals, deg = _hard_block(geo, U, r)
        degenerate += int(deg.sum())
        absent = r < 0
        if empty_class != "formula" and absent.any():
            vals[absent] = np.inf if empty_class == "force_select" else -np.inf
        out[start:stop] = vals
    _warn_degenerate(degenerate)
    return out


def _e0_by_class(prep: _Prepared, geo: CmapGeometry, out: np.ndarray, rows: int) -> int:
    """E0 (none/frozen, signed, hard labels) into ``out``, one predicted class at a time.

    Within a block the candidates of one class share ``t_c`` and ``mbar_c``, so their dot products
    run against that one row instead of gathered (rows, d) copies of ``T`` and ``Mbar``, and each
    candidate row is converted to float64 once, straight from the stored (float32) rows. The
    arithmetic is that of :meth:`CmapGeometry.e0_signed` (the same einsum kernel per row, the same
    scalar formula), so the values are bit-identical for candidates of present classes (those of absent classes go through a
    GEMM over more rows at once and may differ in the last bit). NaN/inf rows are found through
    ``|u|^2`` (a non-finite entry makes it non-finite); only then is the block scanned for the
    first bad row. Returns the number of degenerate candidates.
    """
    row_of = prep.stats.row_of
    degenerate = 0
    for start, stop, raw in iter_raw_blocks(prep.pool, rows):
        raw = np.asarray(raw)  # plain ndarray view: memmap fancy indexing is slow
        b = stop - start
        r = row_of[prep.pred[start:stop]]
        order = np.argsort(r, kind="stable")
        ut, al, uu = np.empty(b), np.empty(b), np.empty(b)
        vals, deg = np.empty(b), np.zeros(b, dtype=bool)
        absent = None
        for idx in np.split(order, np.flatnonzero(np.diff(r[order])) + 1):
            U = _centred_rows(geo, raw, idx)
            uu[idx] = np.einsum("ij,ij->i", U, U)
            c = int(r[idx[0]])
            if c >= 0:
                ut[idx] = np.einsum("ij,j->i", U, geo.T[c])
                al[idx] = np.einsum("ij,j->i", U, geo.Mbar[c])
            else:  # predicted class absent from the labeled set: scored below
                absent = idx
        if not np.isfinite(uu).all():  # NaN/inf input, or a float64 row whose |u|^2 overflows
            raise_if_nonfinite(np.asarray(raw, dtype=np.float64), start, "features_pool")
        sel = slice(None) if absent is None else np.flatnonzero(r >= 0)
        rp = r[sel]
        vals[sel], deg[sel] = geo._e0_scalar(
            ut[sel], al[sel], uu[sel], geo.n[rp], geo.rho[rp], geo.a[rp]
        )
        if absent is not None:
            U = _centred_rows(geo, raw, absent)
            vals[absent], deg[absent] = geo.new_class_static(U @ geo.Mbar.T, uu[absent])
        out[start:stop] = vals
        degenerate += int(deg.sum())
    return degenerate


def _e1_by_block(
    prep: _Prepared, geo: CmapGeometry, out: np.ndarray, rows: int, read_rows: int
) -> int:
    """E1 (moving, signed, hard labels) into ``out`` straight from the stored rows.

    Rows are read ``read_rows`` at a time (fewer page releases) and scored ``rows`` at a time.
    Candidates of present classes go through :class:`E1Blocks` (work arrays reused across blocks),
    those of absent classes through :meth:`CmapGeometry.pairs_new_class`. Returns the number of
    degenerate candidates.
    """
    row_of = prep.stats.row_of
    e1 = E1Blocks(geo, rows)
    degenerate = 0
    for start, stop, raw in iter_raw_blocks(prep.pool, read_rows):
        raw = np.asarray(raw)  # plain ndarray view: memmap slicing and indexing are slow
        r = row_of[prep.pred[start:stop]]
        present = r >= 0
        if present.all():
            out[start:stop], deg = e1(raw, r, start)
        else:
            raise_if_nonfinite(raw, start, "features_pool")  # the subsets below renumber rows
            vals = np.empty(stop - start)
            deg = np.zeros(stop - start, dtype=bool)
            sel = np.flatnonzero(present)
            if sel.size:
                vals[sel], deg[sel] = e1(raw[sel], r[sel], start)
            ia = np.flatnonzero(~present)
            Ua = _centred_rows(geo, raw, ia)
            uu = np.einsum("ij,ij->i", Ua, Ua)
            vals[ia], deg[ia] = geo.pairs_new_class(Ua @ geo.M.T, uu)
            out[start:stop] = vals
        degenerate += int(deg.sum())
    return degenerate


def _centred_rows(geo: CmapGeometry, raw: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of a stored block as float64 candidates ``u = h - g``."""
    U = raw[idx].astype(np.float64)
    if geo.centering != "none":
        U -= geo.g[None, :]
    return U


def _hard_block(geo: CmapGeometry, U: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CMAP of each candidate added to its predicted class (rows ``r``; -1 = absent class).

    Present classes are scored here only for ``pair="abs"``: signed pairs with hard labels go
    through :func:`_e0_by_class` and :func:`_e1_by_block` (A1's absent rows come here with any
    pair)."""
    b = U.shape[0]
    vals = np.empty(b)
    deg = np.zeros(b, dtype=bool)
    present = r >= 0
    moving = geo.centering == "moving"
    if present.all():
        sel = slice(None)
        Up, rp = U, r
    else:
        sel = np.flatnonzero(present)
        Up, rp = U[sel], r[sel]
    if rp.size:
        uu = np.einsum("ij,ij->i", Up, Up)
        if moving:
            v, d = geo.pairs_general(Up @ geo.M.T, uu, rp)
        else:
            v, d = geo.e0_pairs(Up @ geo.Mbar.T, uu, rp)
        vals[sel], deg[sel] = v, d
    if not present.all():
        ia = np.flatnonzero(~present)
        Ua = U[ia]
        uu = np.einsum("ij,ij->i", Ua, Ua)
        if moving:
            v, d = geo.pairs_new_class(Ua @ geo.M.T, uu)
        else:
            v, d = geo.new_class_static(Ua @ geo.Mbar.T, uu)
        vals[ia], deg[ia] = v, d
    return vals, deg


def _expected_block(
    geo: CmapGeometry, U: np.ndarray, r: np.ndarray, probs: np.ndarray, row_of: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """sum_c p_c(x) CMAP_c(x) over all hypothetical classes (absent ones: new-class value)."""
    b = U.shape[0]
    present_ids = np.flatnonzero(row_of >= 0)
    absent_ids = np.flatnonzero(row_of < 0)
    uu = np.einsum("ij,ij->i", U, U)
    vals = np.zeros(b)
    deg = np.zeros(b, dtype=bool)
    moving = geo.centering == "moving"
    P = U @ geo.M.T if moving else None
    pb = None if moving else U @ geo.Mbar.T
    pres_p = probs[:, present_ids]  # columns in present-row order (present_ids ascending)
    if not moving and geo.pair == "signed":
        # E0 vectorised over every hypothetical class at once: (b, C) scalars from two GEMMs.
        ut = U @ geo.T.T
        v, d = geo._e0_scalar(ut, pb, uu[:, None], geo.n[None, :], geo.rho[None, :], geo.a[None, :])
        vals += (pres_p * v).sum(axis=1)
        deg |= (d & (pres_p > 0)).any(axis=1)
    else:
        for row in range(geo.C):
            w = pres_p[:, row]
            if not np.any(w > 0):
                continue
            rr = np.full(b, row)
            if not moving:
                v, d = geo.e0_pairs(pb, uu, rr)
            elif geo.pair == "signed":
                v, d = geo.e1_signed(P, uu, rr)
            else:
                v, d = geo.pairs_general(P, uu, rr)
            vals += w * v
            deg |= d & (w > 0)
    if absent_ids.size:
        w = probs[:, absent_ids].sum(axis=1)
        if np.any(w > 0):
            v, d = geo.pairs_new_class(P, uu) if moving else geo.new_class_static(pb, uu)
            vals += w * v
            deg |= d & (w > 0)
    return vals, deg


def cmap_first_order(
    features_labeled: Any,
    labels_labeled: Any,
    features_pool: Any,
    pred_pool: Any,
    *,
    num_classes: int | None = None,
    centering: str = "none",
    mu_G: str = "class_avg",
    block_size: int = 8192,
) -> np.ndarray:
    """First-order approximation of signed CMAP (analysis only; docs/algorithms.md §6.6).

    A1 (none/frozen): ``2/(C(C-1)) u.t_c / (rho_c (n_c+1))`` with ``t_c = P_c (S - mbar_c)``;
    A1m (moving): ``2/(C(C-1)) [delta.P_c S / rho_c - eta.q]``, ``q = sum_j P_j S / rho_j``.
    Both are linear in the candidate, O(d) each. Candidates predicted into a class absent from the
    labeled set get the exact ``formula`` value (there is no first-order expansion for them).

    Parameters
    ----------
    features_labeled, labels_labeled, features_pool, pred_pool
        As in :func:`cmap`.
    num_classes, centering, mu_G, block_size
        As in :func:`cmap` (``pair`` is signed).

    Returns
    -------
    (N,) float64 array.

    References
    ----------
    docs/algorithms.md §6.6; arXiv:2510.09740.
    """
    _check_flags(centering, mu_G, "signed")
    block_size = _check_block_size(block_size)
    prep = _Prepared(
        features_labeled, labels_labeled, features_pool, pred_pool, None, num_classes, False
    )
    geo = CmapGeometry(prep.stats, centering, mu_G, "signed")
    out = np.empty(prep.n, dtype=np.float64)
    for start, stop, H in iter_blocks(prep.pool, min(block_size, _GEMM_ROWS), "features_pool"):
        U = H
        if centering != "none":
            U -= geo.g[None, :]
        r = prep.stats.row_of[prep.pred[start:stop]]
        vals = np.empty(stop - start)
        present = r >= 0
        if present.any():
            vals[present] = geo.first_order(U[present], r[present])
        if not present.all():
            vals[~present] = _hard_block(geo, U[~present], r[~present])[0]
        out[start:stop] = vals
    return out
