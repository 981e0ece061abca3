"""BAIT's Fisher algebra on torch tensors (Kronecker-structured factors, Woodbury state).

Imports torch: :mod:`ncal.strategies.bait` imports it inside ``_select`` only (see that module's
docstring for the algorithm, docs/algorithms.md §1.7).
"""

from __future__ import annotations

import numpy as np
import torch

from . import _kernels as K

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


def top_classes(probs: torch.Tensor, rank: int | None) -> torch.Tensor:
    """(M, r) class indices kept in each candidate's Fisher factor, ascending: all C classes when
    ``rank`` is None or >= C, else the ``rank`` most probable (ties to the smaller class index)."""
    m, c = probs.shape
    if rank is None or rank >= c:
        return torch.arange(c, device=probs.device).expand(m, c)
    order = np.argsort(-K.to_numpy(probs), axis=1, kind="stable")[:, :rank]
    return torch.as_tensor(np.sort(order, axis=1), device=probs.device)


# candidates scored exactly before the bound test prunes the others: in practice the candidate
# with the largest bound is the only one whose bound reaches its score, and every extra candidate
# costs a pass over A⁻¹ and H (memory-bound at C = 100)
FIRST_SCORED = 1
# A candidate whose bound falls below best - DEACTIVATE·|best| leaves the per-step trace update
# (its bound is relaxed from then on); it rejoins, with an exact trace, when its relaxed bound
# reaches best - ACTIVATE·|best| (best: the last step's best score). Only the work depends on them.
ACTIVATE = 0.5
DEACTIVATE = 0.75


class BaitState:
    """``A⁻¹``, ``G = A⁻¹FA⁻¹`` and every candidate's ``tr K1 = tr(VGVᵀ)``, kept exact under
    low-rank Woodbury updates as candidates are added to / removed from ``A``; the per-candidate
    ``K1 = VGVᵀ`` and ``K2 = VA⁻¹Vᵀ`` are formed only for the few candidates scored exactly.

    A candidate's factor is ``V = B ⊗ hᵀ`` with ``B = scale·diag(√p_R)(E_R - 1pᵀ)`` (rows R: all
    classes, or the top ``rank``); ``B`` is applied through its structure, O(C) per column. ``A⁻¹``
    and ``G`` are stored as ``T + Tᵀ`` and ``H + Hᵀ`` (one (2, D, D) tensor, so that each pass over
    them is one call): ``G``'s symmetric rank-2r update is then the rank-r product ``USZᵀ`` on
    ``H``, and ``A⁻¹``'s a syrk on one triangle of ``T`` (CPU).

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
        m, self.c = probs.shape
        self.d = h.shape[1]
        dim = self.c * self.d
        g = K.matmul(K.matmul(a_inv, fisher), a_inv)
        # A⁻¹ = T + Tᵀ and G = H + Hᵀ: T starts as the upper triangle of A⁻¹ with half its
        # diagonal, so that on the CPU its symmetric rank-r update is a syrk on that triangle (half
        # the multiply-adds); H's rank-2r update USZᵀ + Z(US)ᵀ is the rank-r product USZᵀ
        self.mats = torch.empty(2, dim, dim, dtype=torch.float64, device=h.device)
        torch.triu(a_inv, out=self.mats[0])
        self.mats[0].diagonal().mul_(0.5)
        torch.add(g, g.T, alpha=1.0, out=self.mats[1]).mul_(0.25)  # H = sym(G) / 2
        del g
        self.p = probs
        self.h = h
        self.rows = top_classes(probs, rank)
        self.sp = scale * torch.gather(probs, 1, self.rows).sqrt()
        self.r = self.rows.shape[1]
        self.full = self.r == self.c
        # tr(BᵀBQ) = Σ s2_c Q_cc - s2ᵀQp - pᵀQs2 + Σs2·pᵀQp with s2 = sp² on the kept classes (0
        # elsewhere); with every class kept s2 = scale²·p
        self.scale2 = scale * scale
        self.s2 = torch.zeros_like(probs).scatter_(1, self.rows, self.sp * self.sp)
        self.s2sum = self.s2.sum(1)
        # rank-t trace updates: project the t columns on every candidate directly while 2t <= d,
        # else go through the d×d diagonal blocks and the rows p ⊗ h (fewer multiply-adds)
        self.direct = 2 * self.r <= self.d
        self.zp = self.zs = None
        if not self.direct:
            self.zp = (probs[:, :, None] * h[:, None, :]).reshape(m, dim)
            if not self.full:
                self.zs = (self.s2[:, :, None] * h[:, None, :]).reshape(m, dim)
        self.tk1 = self._trace_half(self.mats[1])
        # Relaxed bounds. |Δ tr K1_m| = 2|<V_m x, V_m y>| <= φ_m·γ with φ_m = tr(B_mᵀB_m)·||h_m||²
        # >= ||V_m||₂² and γ = 2||x||·||y||: a candidate far below the best score keeps its last
        # exact trace (tk1 at the cumulative γ = gam_at) plus φ_m·(gam - gam_at), and leaves the
        # per-step trace update ("active": updated exactly every step).
        nrm = (probs * probs).sum(1, keepdim=True)
        self.phi = (self.s2 * (1.0 - 2.0 * probs + nrm)).sum(1) * (h * h).sum(1)
        self.gam = 0.0
        self.gam_at = torch.zeros_like(self.tk1)
        self.active = torch.ones(m, dtype=torch.bool, device=h.device)
        self._best: tuple[float, float] | None = None  # (sign, best score) of the last scores()
        # T(I⊗h) and H(I⊗h) of the candidates scored since the last update (the next update
        # picks one of them and reuses its columns instead of another pass)
        self._cols: list[tuple[torch.Tensor, torch.Tensor]] = []

    @property
    def a_inv(self) -> torch.Tensor:
        """(D, D) ``A⁻¹``."""
        return self.mats[0] + self.mats[0].T

    @property
    def g(self) -> torch.Tensor:
        """(D, D) ``G = A⁻¹FA⁻¹``."""
        return self.mats[1] + self.mats[1].T

    def subset(self, keep: torch.Tensor) -> None:
        """Keep only the candidates ``keep`` (e.g. the forward picks before pruning)."""
        for name in (
            "p",
            "h",
            "rows",
            "sp",
            "s2",
            "s2sum",
            "zp",
            "zs",
            "tk1",
            "phi",
            "gam_at",
            "active",
        ):
            val = getattr(self, name)
            if val is not None:
                setattr(self, name, val[keep])
        self._cols = []
        self._best = None
        self.refresh(torch.arange(self.tk1.shape[0], device=self.h.device))

    # ------------------------------------------------------------------ per-candidate products

    def _bmul(self, q: torch.Tensor, sel: slice | torch.Tensor | int = slice(None)) -> torch.Tensor:
        """(m, r, t): ``B_m q_m`` for (m, C, t) matrices q of the candidates ``sel``."""
        p, rows, sp = self.p[sel], self.rows[sel], self.sp[sel]
        if p.ndim == 1:
            p, rows, sp = p[None], rows[None], sp[None]
        pq = K.matmul(p[:, None, :], q)  # (m, 1, t); numpy's batched product: small matrices
        # with every class kept, the row selection is the identity: skip the gather
        qr = q if self.full else torch.gather(q, 1, rows[:, :, None].expand(-1, -1, q.shape[2]))
        return sp[:, :, None] * (qr - pq)

    def _sandwich(self, x: torch.Tensor, sel: slice | torch.Tensor = slice(None)) -> torch.Tensor:
        """(m, r, r): ``B_m x_m B_mᵀ`` for (m, C, C) matrices x of the candidates ``sel``."""
        y = self._bmul(x, sel)  # B x  (m, r, C)
        out = self._bmul(y.transpose(1, 2).contiguous(), sel)  # B (B x)ᵀ = B xᵀ Bᵀ
        return 0.5 * (out + out.transpose(1, 2))

    def _diag_quad(self, blocks: torch.Tensor, sel: slice | torch.Tensor) -> torch.Tensor:
        """(m, C): ``h_mᵀ N_c h_m`` for (C, d, d) matrices N_c and the candidates ``sel``."""
        c, d = self.c, self.d
        h = self.h[sel]
        hn = K.matmul(h, blocks.permute(1, 0, 2).reshape(d, c * d)).reshape(-1, c, d)
        return (hn * h[:, None, :]).sum(2)

    def _trace_half(
        self, hm: torch.Tensor, sel: slice | torch.Tensor = slice(None)
    ) -> torch.Tensor:
        """(m,): ``tr(V_m (hm + hmᵀ) V_mᵀ)`` for a (D, D) matrix hm and the candidates ``sel``
        (O(m·D²), one pass over hm; no D × D temporary)."""
        c, d = self.c, self.d
        p, h, s2 = self.p[sel], self.h[sel], self.s2[sel]
        diag = torch.diagonal(hm.reshape(c, d, c, d), dim1=0, dim2=2).permute(2, 0, 1)
        qd = 2.0 * self._diag_quad(diag, sel)  # Q_cc with Q = (I⊗hᵀ)(hm + hmᵀ)(I⊗h)
        zp = (p[:, :, None] * h[:, None, :]).reshape(-1, c * d)
        if self.full:
            pqp = 2.0 * (K.matmul(zp, hm) * zp).sum(1)  # (p⊗h)ᵀ(hm + hmᵀ)(p⊗h)
            pqs = self.scale2 * pqp
        else:
            zs = (s2[:, :, None] * h[:, None, :]).reshape(-1, c * d)
            t = K.matmul(torch.cat([zp, zs]), hm)
            n = zp.shape[0]
            pqp = 2.0 * (t[:n] * zp).sum(1)
            pqs = (t[:n] * zs).sum(1) + (t[n:] * zp).sum(1)
        return (s2 * qd).sum(1) - 2.0 * pqs + self.s2sum[sel] * pqp

    def _trace_lowrank(
        self, x: torch.Tensor, y: torch.Tensor, sel: slice | torch.Tensor = slice(None)
    ) -> torch.Tensor:
        """(m,): ``tr(V_m x yᵀ V_mᵀ)`` for (D, t) matrices x, y and the candidates ``sel``.

        With ``Q_x = (I⊗h_mᵀ)x`` (C × t), ``xp = pᵀQ_x`` and ``xs = s2ᵀQ_x``, the trace is
        ``Σ_c s2_c <Q_x[c], Q_y[c]> - xp·ys - yp·xs + Σs2·xp·yp``: no per-candidate matrix product.
        """
        c, d, t = self.c, self.d, x.shape[1]
        s2, s2sum = self.s2[sel], self.s2sum[sel]
        if not self.direct:  # Σ_c s2_c h_mᵀ(x_c y_cᵀ)h_m through C d×d blocks; xp, ... by GEMM
            blocks = K.matmul(x.reshape(c, d, t), y.reshape(c, d, t).transpose(1, 2))
            xy = torch.cat([x, y], dim=1)
            xpyp = K.matmul(self.zp[sel], xy)  # rows (p⊗h)ᵀ[x y]
            xsys = None if self.full else K.matmul(self.zs[sel], xy)
            return self._combine(self._diag_quad(blocks, sel), xpyp, xsys, t, s2, s2sum)
        # project x and y on every candidate's h at once: (m, 2, C, t)
        w = torch.stack([x, y]).reshape(2, c, d, t).permute(2, 0, 1, 3).reshape(d, 2 * c * t)
        h, p = self.h[sel], self.p[sel]
        wts = p[:, None, :] if self.full else torch.stack([p, s2], 1)
        out = torch.empty(h.shape[0], dtype=torch.float64, device=h.device)
        step = K.rows_per_block(2 * c * t)
        for s in range(0, out.shape[0], step):
            blk = slice(s, s + step)
            q = K.matmul(h[blk], w).reshape(-1, 2, c, t)
            diag = (q[:, 0] * q[:, 1]).sum(2)  # (m, C): <Q_x[c], Q_y[c]>
            proj = K.matmul(wts[blk, None], q)  # (m, 2, 1 or 2, t): [x y] × [p s2]
            xs = None if self.full else torch.cat([proj[:, 0, 1], proj[:, 1, 1]], 1)
            xpyp = torch.cat([proj[:, 0, 0], proj[:, 1, 0]], 1)
            out[blk] = self._combine(diag, xpyp, xs, t, s2[blk], s2sum[blk])
        return out

    def _combine(
        self,
        diag: torch.Tensor,
        xpyp: torch.Tensor,
        xsys: torch.Tensor | None,
        t: int,
        s2: torch.Tensor,
        s2sum: torch.Tensor,
    ) -> torch.Tensor:
        """``Σ_c s2_c diag_c - xp·ys - yp·xs + Σs2·xp·yp`` (``xs = scale²·xp`` when ``xsys`` is
        None: every class kept)."""
        xp, yp = xpyp[:, :t], xpyp[:, t:]
        pqp = (xp * yp).sum(1)
        if xsys is None:
            cross = (2.0 * self.scale2) * pqp
        else:
            cross = (xp * xsys[:, t:]).sum(1) + (yp * xsys[:, :t]).sum(1)
        return (s2 * diag).sum(1) - cross + s2sum * pqp

    def _columns(self, hb: torch.Tensor) -> torch.Tensor:
        """(n, 2, D, C): ``T(I⊗h)`` and ``H(I⊗h)`` for the n rows of ``hb``: one pass."""
        dim = self.c * self.d
        flat = self.mats.reshape(2 * dim * self.c, self.d)
        return K.matmul(hb, flat.T).reshape(-1, 2, dim, self.c)

    # ------------------------------------------------------------------ scores

    def kernels(self, sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(K1, K2), each (m, r, r), of the candidates ``sel`` from the current ``A⁻¹`` and ``G``."""
        c, d = self.c, self.d
        step = K.rows_per_block(2 * c * c * d)
        k1, k2 = [], []
        for s in range(0, sel.shape[0], step):
            part = sel[s : s + step]
            hb = self.h[part]
            cols = self._columns(hb)
            if sel.shape[0] <= 4:  # keep a few for the update (a large batch would hold memory)
                self._cols.append((part, cols))
            # (I⊗hᵀ) M (I⊗h): contract the row index (c, i) of the columns with h
            q = K.matmul(hb[:, None, None, None, :], cols.reshape(-1, 2, c, d, c)).squeeze(3)
            q = q + q.transpose(2, 3)  # A⁻¹ = T + Tᵀ, G = H + Hᵀ
            x = torch.cat([q[:, 1], q[:, 0]])  # K1, K2 before B
            k = self._sandwich(x, torch.cat([part, part]))
            k1.append(k[: part.shape[0]])
            k2.append(k[part.shape[0] :])
        return torch.cat(k1), torch.cat(k2)

    def refresh(self, sel: torch.Tensor) -> None:
        """Exact ``tr K1`` of the candidates ``sel`` from the current ``G``; they become active."""
        if sel.shape[0]:
            self.tk1[sel] = self._trace_half(self.mats[1], sel)
            self.gam_at[sel] = self.gam
            self.active[sel] = True

    def scores(self, sign: float, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """``tr(K1 (sign·I + K2)⁻¹)`` for every candidate (sign = +1 forward: candidates not in
        ``A``; -1 backward: candidates in ``A``); ``-inf`` where ``allowed`` (bool mask) is False
        and where the candidate provably cannot reach the maximum.

        Every score is at most a cheap bound (:meth:`upper_bounds`). The candidates with the
        largest bounds are scored first; the rest only where their bound reaches the best score
        found (with a relative margin far above round-off), so the maximum and its first index are
        those of the full computation. Inactive candidates whose relaxed bound came near the last
        best score get an exact bound first (:meth:`refresh`); only the work depends on that.
        """
        idx = torch.arange(self.tk1.shape[0], device=self.h.device)
        if allowed is not None:
            idx = idx[allowed]
        out = torch.full(
            (self.tk1.shape[0],), -torch.inf, dtype=torch.float64, device=self.h.device
        )
        if idx.shape[0] == 0:
            return out
        ub = self.upper_bounds(sign)
        if self._best is not None and self._best[0] == sign:
            last = self._best[1]
            wake = idx[~self.active[idx] & (ub[idx] >= last - ACTIVATE * abs(last))]
            if wake.shape[0]:
                self.refresh(wake)
                ub[wake] = sign * self.tk1[wake]
        ub = ub[idx]
        first = idx[torch.topk(ub, min(FIRST_SCORED, idx.shape[0])).indices]
        out[first] = self._exact_scores(first, sign)
        best = float(out[first].max())
        slack = 1e-6 * abs(best) + 1e-12 * float(ub.abs().max())
        rest = idx[(ub >= best - slack) & (out[idx] == -torch.inf)]
        if rest.shape[0]:
            out[rest] = self._exact_scores(rest, sign)
        self.active[idx[ub < best - DEACTIVATE * abs(best)]] = False
        if allowed is not None:  # chosen / pruned candidates: no longer scored in this pass
            self.active[~allowed] = False
        self._best = (sign, best)
        return out

    def upper_bounds(self, sign: float) -> torch.Tensor:
        """Upper bounds on the scores, with ``K1 ⪰ 0``: forward ``tr K1`` (``K2 ⪰ 0``, so
        ``(I + K2)⁻¹ ≼ I``); backward ``-tr K1`` (for a candidate in ``A``, ``K2 ≺ I``, so
        ``(I - K2)⁻¹ ≽ I`` and the score ``-tr(K1 (I - K2)⁻¹)`` is at most ``-tr K1``). For an
        inactive candidate ``sign·tr K1`` is bounded by its last exact value plus ``φ·Σγ``."""
        return sign * self.tk1 + self.phi * (self.gam - self.gam_at)

    def _exact_scores(self, sel: torch.Tensor, sign: float) -> torch.Tensor:
        k1, k2 = self.kernels(sel)
        eye = torch.eye(self.r, dtype=torch.float64, device=self.h.device)
        spd = eye + sign * k2  # I + K2, or I - K2 = -(-I + K2): positive definite
        chol, info = torch.linalg.cholesky_ex(spd)
        if bool((info != 0).any()):  # lost definiteness to round-off: general solve
            inv = torch.linalg.inv(spd)
        else:
            inv = torch.cholesky_inverse(chol)
        return sign * (inv * k1).sum((1, 2))

    # ------------------------------------------------------------------ updates

    def _update_t(self, u: torch.Tensor, s: torch.Tensor, us: torch.Tensor, sign: float) -> None:
        """``T`` such that ``T + Tᵀ`` loses ``USUᵀ``."""
        t = self.mats[0]
        if t.device.type == "cpu":
            # sign·S is positive definite (S = (I + K2)⁻¹, or -(I - K2)⁻¹ for a candidate in A)
            chol, info = torch.linalg.cholesky_ex(sign * s)
            if int(info) == 0:
                from scipy.linalg.blas import dsyrk

                w = K.matmul(u, chol)  # USUᵀ = sign·WWᵀ
                # one triangle of T (the upper one of the row-major array) gains -sign·WWᵀ; its
                # diagonal only half of it, as T + Tᵀ counts the diagonal twice
                dsyrk(-sign, w.numpy(), beta=1.0, c=t.numpy().T, overwrite_c=1, lower=1)
                t.diagonal().add_((w * w).sum(1), alpha=0.5 * sign)
                return
        t.addmm_(us, u.T, alpha=-0.5)

    def update(self, j: int, sign: float) -> None:
        """Add (``sign=+1``) or remove (``sign=-1``) candidate ``j``'s ``V_jᵀV_j`` from ``A``.

        With ``U = A⁻¹V_jᵀ``, ``R = GV_jᵀ``, ``S = (sign·I + V_jA⁻¹V_jᵀ)⁻¹``:
        ``A⁻¹ -= USUᵀ`` and ``G -= USZᵀ + Z(US)ᵀ`` with ``Z = R - ½US(V_jGV_jᵀ)``; every
        candidate's ``tr K1`` follows from the trace of the projected rank-r product.
        """
        c, d, rr = self.c, self.d, self.r
        dim = c * d
        hj = self.h[j]
        cols = next(
            (cs[i] for sel, cs in self._cols for i, m in enumerate(sel.tolist()) if m == j), None
        )
        if cols is None:
            cols = self._columns(hj[None])[0]
        self._cols = []
        # [A⁻¹(I⊗h_j) | G(I⊗h_j)], (C, 2D): (T + Tᵀ)(I⊗h) = T(I⊗h) + ((I⊗hᵀ)T)ᵀ, same for H
        tq = K.matmul(hj, self.mats.reshape(2, c, d, dim))  # (2, C, D), one pass
        q = torch.cat([cols[0].T + tq[0], cols[1].T + tq[1]], 1)
        bq = self._bmul(q[None], j)[0]  # [U | R]ᵀ = B_j q  (r, 2D)
        # (I⊗h_jᵀ)[U R], then B_j: [K2 | K1] of j, (r, 2r)
        w = K.matmul(bq.reshape(rr, 2, c, d), hj).permute(2, 1, 0).reshape(c, 2 * rr)
        kk = self._bmul(w[None], j)[0]
        k2 = 0.5 * (kk[:, :rr] + kk[:, :rr].T)
        k1 = 0.5 * (kk[:, rr:] + kk[:, rr:].T)
        eye = torch.eye(rr, dtype=torch.float64, device=self.h.device)
        s = torch.linalg.inv(sign * eye + k2)
        s = 0.5 * (s + s.T)
        u, r = bq[:, :dim].T, bq[:, dim:].T
        us = K.matmul(u, s)
        z = r - 0.5 * K.matmul(us, k1)  # USRᵀ + RSUᵀ - USK1SUᵀ = US Zᵀ + Z (US)ᵀ
        # In place, the only O(D²) work of a step: A⁻¹ -= USUᵀ, H -= USZᵀ.
        self._update_t(u, s, us, sign)
        self.mats[1].addmm_(us, z.T, alpha=-1.0)
        act = torch.nonzero(self.active).flatten()
        sel = slice(None) if act.shape[0] == self.tk1.shape[0] else act
        if act.shape[0]:
            self.tk1[sel] -= 2.0 * self._trace_lowrank(us, z, sel)
        self.gam += 2.0 * float(torch.linalg.norm(us) * torch.linalg.norm(z))
        self.gam_at[sel] = self.gam


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
