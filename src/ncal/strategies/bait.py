"""BAIT: Fisher-information-based batch selection (docs/algorithms.md §1.7).

Per-sample last-layer Fisher ``I(x) = V_xᵀV_x`` with ``V_x`` (C × C·d) whose row c is
``√p_c (e_c - p) ⊗ h``. BAIT minimises ``tr((λI + N_L/(N_L+k)·F_L + k/(N_L+k)·Σ_{x∈S} I(x))⁻¹ F)``
(``F`` = mean Fisher over L ∪ U, ``F_L`` over L; the weight ``k/(N_L+k)`` on every selected term is
kept as in the reference code) by forward greedy over ``2k`` picks and backward pruning to ``k``,
with rank-C Woodbury updates of ``A⁻¹`` (float64).

Never materialised: ``V_x = B_x ⊗ h_xᵀ`` with ``B_x = diag(√p)(I - 1pᵀ)`` (C × C), so every
projection ``V_x M V_xᵀ`` of a (C·d)² matrix is ``B_x [(I⊗h_xᵀ) M (I⊗h_x)] B_xᵀ``. For every
candidate the two C × C matrices ``K1 = V_x A⁻¹FA⁻¹ V_xᵀ`` and ``K2 = V_x A⁻¹ V_xᵀ`` are kept and
updated after every pick (low-rank updates), so a step costs O(M·(C²d' + C³) + D²C) with D = C·d'.

Two documented approximations make it run at C = 100 (both recorded in ``params()``):

* ``pca_dim`` (default 32): features are projected on the top ``pca_dim`` eigenvectors of the
  uncentred second-moment matrix of L ∪ U (the directions that carry most of ``h hᵀ``);
  the objective is invariant to the basis chosen inside that subspace. ``None`` keeps all d.
* ``max_candidates`` (default 1000) with ``prefilter``: only M = max(max_candidates, 2k) pool
samples
  are candidates, chosen by ``fisher_trace`` (``tr I(x) = (1 - ||p||²)·||h||²``, default),
  ``entropy``, ``margin`` or ``random`` (from ``rng``). ``None`` keeps the whole pool.

References
----------
Ash, Goel, Krishnamurthy & Kakade, "Gone fishing: neural active learning with Fisher embeddings",
NeurIPS 2021 (reference code: JordanAsh/badge ``query_strategies/bait_sampling.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from .._utils.validation import as_float_matrix, check_choice, check_same_rows
from . import _kernels as K
from .base import Selection, Signals, Strategy
from .selection import top_k

PREFILTERS = ("fisher_trace", "entropy", "margin", "random")


# --------------------------------------------------------------------------- Fisher algebra


def mean_fisher(probs: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """(D, D) mean of ``(diag(p) - ppᵀ) ⊗ hhᵀ`` over the rows; D = C·d, index ``c·d + i``."""
    n, c = probs.shape
    d = h.shape[1]
    dim = c * d
    out = torch.zeros(dim, dim, dtype=torch.float64, device=h.device)
    diag = torch.zeros(c, d, d, dtype=torch.float64, device=h.device)
    step = K.rows_per_block(dim)
    for s in range(0, n, step):
        p, hb = probs[s : s + step], h[s : s + step]
        z = (p[:, :, None] * hb[:, None, :]).reshape(-1, dim)  # rows p ⊗ h
        out -= K.matmul(z.T, z)
        diag += K.matmul(z.T, hb).reshape(c, d, d)
    for j in range(c):
        out[j * d : (j + 1) * d, j * d : (j + 1) * d] += diag[j]
    return out / max(n, 1)


def project_kron(mat: torch.Tensor, h: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(M, C, C): ``(I⊗hᵀ) mat (I⊗h)`` for each row h of ``h``; ``mat`` is (C·d, C·d). Chunked."""
    c = num_classes
    m, d = h.shape
    dim = c * d
    out = torch.empty(m, c, c, dtype=torch.float64, device=h.device)
    step = K.rows_per_block(dim * c)
    flat = mat.reshape(dim * c, d)  # rows (c, i, c'), columns j
    for s in range(0, m, step):
        hb = h[s : s + step]
        t = K.matmul(flat, hb.T).reshape(c, d, c, -1)  # [c, i, c', m]
        out[s : s + step] = torch.einsum("cidm,mi->mcd", t, hb)
    return out


def top_classes(probs: torch.Tensor, rank: int | None) -> torch.Tensor:
    """(M, r) class indices kept in each candidate's Fisher factor, ascending: all C classes when
    ``rank`` is None or >= C, else the ``rank`` most probable (ties to the smaller class index)."""
    m, c = probs.shape
    if rank is None or rank >= c:
        return torch.arange(c, device=probs.device).expand(m, c)
    order = np.argsort(-K.to_numpy(probs), axis=1, kind="stable")[:, :rank]
    return torch.as_tensor(np.sort(order, axis=1), device=probs.device)


class BaitState:
    """``A⁻¹``, ``G = A⁻¹FA⁻¹`` and the per-candidate ``K1 = VGVᵀ``, ``K2 = VA⁻¹Vᵀ``, kept exact
    under low-rank Woodbury updates as candidates are added to / removed from ``A``.

    A candidate's factor is ``V = B ⊗ hᵀ`` with ``B = scale·diag(√p_R)(E_R - 1pᵀ)`` (rows R: all
    classes, or the top ``rank``); ``B`` is applied through its structure, O(C) per column.

    Parameters
    ----------
    a_inv : (D, D) initial ``A⁻¹``; fisher : (D, D) target ``F``
    probs : (M, C) candidate probabilities; h : (M, d) candidate features
    scale : factor on every candidate's ``V``; rank : classes kept per factor (None: all)
    """

    def __init__(
        self,
        a_inv: torch.Tensor,
        fisher: torch.Tensor,
        probs: torch.Tensor,
        h: torch.Tensor,
        scale: float = 1.0,
        rank: int | None = None,
    ) -> None:
        self.c = probs.shape[1]
        self.d = h.shape[1]
        self.a_inv = a_inv
        self.g = K.matmul(K.matmul(a_inv, fisher), a_inv)
        self.g = 0.5 * (self.g + self.g.T)
        self.p = probs
        self.h = h
        self.rows = top_classes(probs, rank)
        self.sp = scale * torch.gather(probs, 1, self.rows).sqrt()
        self.r = self.rows.shape[1]
        self.k2 = self._sandwich(project_kron(self.a_inv, h, self.c))
        self.k1 = self._sandwich(project_kron(self.g, h, self.c))

    def subset(self, keep: torch.Tensor) -> None:
        """Keep only the candidates ``keep`` (e.g. the forward picks before pruning)."""
        for name in ("p", "h", "rows", "sp", "k1", "k2"):
            setattr(self, name, getattr(self, name)[keep])

    def _bmul(self, q: torch.Tensor, sel: slice | torch.Tensor | int = slice(None)) -> torch.Tensor:
        """(m, r, t): ``B_m q_m`` for (m, C, t) matrices q of the candidates ``sel``."""
        p, rows, sp = self.p[sel], self.rows[sel], self.sp[sel]
        if p.ndim == 1:
            p, rows, sp = p[None], rows[None], sp[None]
        pq = torch.bmm(p[:, None, :], q)  # (m, 1, t)
        qr = torch.gather(q, 1, rows[:, :, None].expand(-1, -1, q.shape[2]))
        return sp[:, :, None] * (qr - pq)

    def _sandwich(self, x: torch.Tensor) -> torch.Tensor:
        """(M, r, r): ``B_m x_m B_mᵀ`` for (M, C, C) matrices x."""
        y = self._bmul(x)  # B x  (M, r, C)
        out = self._bmul(y.transpose(1, 2).contiguous())  # B (B x)ᵀ = B xᵀ Bᵀ
        return 0.5 * (out + out.transpose(1, 2))

    def _apply(self, mat: torch.Tensor, j: int) -> torch.Tensor:
        """(D, r): ``mat V_jᵀ`` via the Kronecker structure."""
        dim = self.c * self.d
        t = K.matmul(mat.reshape(dim * self.c, self.d), self.h[j]).reshape(dim, self.c)
        return self._bmul(t.T.contiguous()[None], j)[0].T  # (B_j tᵀ)ᵀ

    def _project(self, u: torch.Tensor) -> torch.Tensor:
        """(M, r, r'): ``V_m u`` for every candidate m, for a (D, r') matrix u."""
        rr = u.shape[1]
        u3 = u.reshape(self.c, self.d, rr).permute(1, 0, 2).reshape(self.d, self.c * rr)
        q = K.matmul(self.h, u3).reshape(-1, self.c, rr)  # (I⊗h_mᵀ) u
        return self._bmul(q)

    def scores(self, sign: float) -> torch.Tensor:
        """``tr(K1 (sign·I + K2)⁻¹)`` for every candidate (sign = +1 forward, -1 backward)."""
        eye = torch.eye(self.r, dtype=torch.float64, device=self.h.device)
        spd = eye + sign * self.k2  # I + K2, or I - K2 = -(-I + K2): positive definite
        chol, info = torch.linalg.cholesky_ex(spd)
        if bool((info != 0).any()):  # lost definiteness to round-off: general solve
            inv = torch.linalg.inv(spd)
        else:
            inv = torch.cholesky_inverse(chol)
        return sign * (inv * self.k1).sum((1, 2))

    def update(self, j: int, sign: float) -> None:
        """Add (``sign=+1``) or remove (``sign=-1``) candidate ``j``'s ``V_jᵀV_j`` from ``A``.

        With ``U = A⁻¹V_jᵀ``, ``R = GV_jᵀ``, ``S = (sign·I + V_jA⁻¹V_jᵀ)⁻¹``:
        ``A⁻¹ -= USUᵀ`` and ``G -= USRᵀ + RSUᵀ - US(V_jGV_jᵀ)SUᵀ``; every candidate's ``K2`` and
        ``K1`` follow by projecting these updates with its own ``V``.
        """
        eye = torch.eye(self.r, dtype=torch.float64, device=self.h.device)
        u = self._apply(self.a_inv, j)  # A⁻¹Vᵀ  (D, r)
        r = self._apply(self.g, j)  # G Vᵀ    (D, r)
        hj = self.h[j]
        k2 = self._bmul(torch.einsum("cir,i->cr", u.reshape(self.c, self.d, -1), hj)[None], j)[0]
        k1 = self._bmul(torch.einsum("cir,i->cr", r.reshape(self.c, self.d, -1), hj)[None], j)[0]
        k2 = 0.5 * (k2 + k2.T)
        k1 = 0.5 * (k1 + k1.T)
        s = torch.linalg.inv(sign * eye + k2)
        s = 0.5 * (s + s.T)
        us = K.matmul(u, s)
        z = r - 0.5 * K.matmul(us, k1)  # USRᵀ + RSUᵀ - USK1SUᵀ = US Zᵀ + Z (US)ᵀ
        # In place: these are the only O(D²) passes of a step (the updates are symmetric by
        # construction; S is symmetrised above, so no drift to correct).
        self.a_inv.sub_(K.matmul(us, u.T))
        t = K.matmul(us, z.T)
        self.g.sub_(t).sub_(t.T)
        w = self._project(u)  # V_m U  (M, r, r)
        y = self._project(r)  # V_m R
        ws = w @ s
        self.k2 -= ws @ w.transpose(1, 2)
        t = ws @ (y - 0.5 * (ws @ k1)).transpose(1, 2)
        self.k1 -= t + t.transpose(1, 2)


# --------------------------------------------------------------------------- strategy


def pca_basis(h_all: list[torch.Tensor], dim: int | None) -> torch.Tensor | None:
    """Top ``dim`` eigenvectors of the uncentred second moment of the rows (None: no PCA)."""
    d = h_all[0].shape[1]
    if dim is None or dim >= d:
        return None
    gram = torch.zeros(d, d, dtype=torch.float64, device=h_all[0].device)
    for h in h_all:
        step = K.rows_per_block(d)
        for s in range(0, h.shape[0], step):
            hb = K.to64(h[s : s + step])
            gram += K.matmul(hb.T, hb)
    _, vecs = torch.linalg.eigh(gram)
    return vecs[:, -dim:].flip(1).contiguous()


class Bait(Strategy):
    """BAIT with float64 Woodbury updates, PCA-reduced features and a candidate prefilter.

    Parameters
    ----------
    lamb : float
        Ridge ``λ > 0`` added to ``A`` (reference default 1).
    pca_dim : int or None
        Feature dimension after PCA (default 32); None keeps all features.
    max_candidates : int or None
        Candidate pool size before greedy selection (at least ``2k`` are always kept); None = all.
    prefilter : {"fisher_trace", "entropy", "margin", "random"}
        How the candidates are chosen when the pool is larger than ``max_candidates``.
    oversample : int
        Forward picks are ``oversample·k`` (reference: 2) before backward pruning to ``k``.
    fisher_rank : int or None
        None (default): the exact rank-C Fisher factors. An integer r < C keeps, in each candidate's
        factor, only its r most probable classes (dropping Fisher terms weighted by the tail mass of
        ``p``); a step then costs O(M·(C·r·d' + r³) + D²r) instead of O(M·C³ + D²C).
    device : str
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:i"`` or ``"auto"``.

    Notes
    -----
    ``Selection.scores`` holds each kept pick's forward-greedy objective decrease
    ``tr(K1 (I + K2)⁻¹)`` at the time it was added. ``info`` records the effective feature
    dimension, the number of candidates and the picks removed by pruning.
    """

    name = "bait"
    needs = ("features_pool", "probs_pool", "features_labeled", "probs_labeled")
    stochastic = False

    def __init__(
        self,
        lamb: float = 1.0,
        pca_dim: int | None = 32,
        max_candidates: int | None = 1000,
        prefilter: str = "fisher_trace",
        oversample: int = 2,
        fisher_rank: int | None = None,
        device: str = "cpu",
    ) -> None:
        self.lamb = K.check_float(lamb, "lamb", low=0.0, low_open=True)
        self.pca_dim = K.check_int(pca_dim, "pca_dim", allow_none=True)
        self.max_candidates = K.check_int(max_candidates, "max_candidates", allow_none=True)
        self.prefilter = check_choice(prefilter, "prefilter", PREFILTERS)
        # only the random prefilter draws from `rng`; every other setting is deterministic
        self.stochastic = self.prefilter == "random"
        self.oversample = K.check_int(oversample, "oversample")
        self.fisher_rank = K.check_int(fisher_rank, "fisher_rank", allow_none=True)
        self.device = K.check_device(device)

    def _inputs(self, signals: Signals) -> tuple[np.ndarray, ...]:
        hp = as_float_matrix(signals.features_pool, "features_pool")
        pp = signals.probabilities()
        check_same_rows(hp, pp, "features_pool", "probs_pool")
        hl = np.asarray(signals.features_labeled, dtype=np.float64).reshape(-1, hp.shape[1])
        pl = np.asarray(signals.probs_labeled, dtype=np.float64).reshape(-1, pp.shape[1])
        if hl.shape[0]:
            hl = as_float_matrix(hl, "features_labeled")
            pl = as_float_matrix(pl, "probs_labeled")
            check_same_rows(hl, pl, "features_labeled", "probs_labeled")
        return hp, pp, hl, pl

    def _candidates(self, hp: torch.Tensor, pp: np.ndarray, k: int, rng: np.random.Generator):
        n = pp.shape[0]
        m = (
            n
            if self.max_candidates is None
            else min(n, max(self.max_candidates, self.oversample * k))
        )
        if m >= n:
            return np.arange(n)
        if self.prefilter == "random":
            return np.sort(rng.choice(n, size=m, replace=False))
        if self.prefilter == "fisher_trace":
            score = (1.0 - (pp * pp).sum(1)) * K.to_numpy((hp * hp).sum(1))
        elif self.prefilter == "entropy":
            from scipy.special import xlogy

            score = -xlogy(pp, pp).sum(1)
        else:
            top2 = np.partition(pp, pp.shape[1] - 2, axis=1)[:, -2:] if pp.shape[1] > 1 else pp
            score = -(top2[:, -1] - top2[:, 0]) if pp.shape[1] > 1 else np.zeros(n)
        return np.sort(top_k(score, m))

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        hp_np, pp_np, hl_np, pl_np = self._inputs(signals)
        dev = K.resolve_device(self.device)
        f64 = torch.float64
        hp = K.as_tensor(hp_np, dev, f64)
        hl = K.as_tensor(hl_np, dev, f64)
        basis = pca_basis([hp, hl] if hl.shape[0] else [hp], self.pca_dim)
        if basis is not None:
            hp = K.matmul(hp, basis)
            hl = K.matmul(hl, basis) if hl.shape[0] else hl.new_zeros(0, basis.shape[1])
        pp = K.as_tensor(pp_np, dev, f64)
        pl = K.as_tensor(pl_np, dev, f64)
        c, d = pp.shape[1], hp.shape[1]
        n_lab = hl.shape[0]

        fisher = mean_fisher(torch.cat([pl, pp]), torch.cat([hl, hp]))
        a = self.lamb * torch.eye(c * d, dtype=f64, device=dev)
        if n_lab:
            a += (n_lab / (n_lab + k)) * mean_fisher(pl, hl)
        a_inv = torch.linalg.inv(a)
        a_inv = 0.5 * (a_inv + a_inv.T)

        cand = self._candidates(hp, pp_np, k, rng)
        ct = torch.as_tensor(cand, device=dev)
        scale = float(np.sqrt(k / (n_lab + k)))
        state = BaitState(a_inv, fisher, pp[ct], hp[ct], scale, self.fisher_rank)
        del fisher, a_inv

        m = len(cand)
        chosen = torch.zeros(m, dtype=torch.bool, device=dev)
        order: list[int] = []  # positions in `cand`, in pick order
        gain: dict[int, float] = {}
        for _ in range(min(self.oversample * k, m)):
            sc = state.scores(1.0)
            sc[chosen] = -torch.inf
            j = K.first_argmax(sc)
            gain[j] = float(sc[j])
            chosen[j] = True
            order.append(j)
            state.update(j, 1.0)
        # Backward pruning only involves the forward picks: shrink the state to them.
        kept = sorted(order)
        state.subset(torch.as_tensor(kept, device=dev))
        alive = list(range(len(kept)))  # positions in `kept`
        removed: list[int] = []
        while len(alive) > k:
            sc = state.scores(-1.0)
            mask = torch.ones(len(kept), dtype=torch.bool, device=dev)
            mask[alive] = False
            sc[mask] = -torch.inf
            j = K.first_argmax(sc)
            state.update(j, -1.0)
            alive.remove(j)
            removed.append(int(cand[kept[j]]))
        final = {kept[j] for j in alive}
        order = [j for j in order if j in final]
        idx = cand[np.asarray(order, dtype=np.int64)]
        info = {"feature_dim": d, "candidates": m, "pruned": removed}
        return Selection(idx.astype(np.int64), np.array([gain[j] for j in order]), info)
