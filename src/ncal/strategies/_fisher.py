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


# candidates scored exactly before the bound test prunes the others
FIRST_SCORED = 64


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
        # with every class kept, the row selection is the identity: skip the gather
        qr = (
            q
            if self.r == self.c
            else torch.gather(q, 1, rows[:, :, None].expand(-1, -1, q.shape[2]))
        )
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

    def scores(self, sign: float, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """``tr(K1 (sign·I + K2)⁻¹)`` for every candidate (sign = +1 forward: candidates not in
        ``A``; -1 backward: candidates in ``A``); ``-inf`` where ``allowed`` (bool mask) is False
        and where the candidate provably cannot reach the maximum.

        Every score is at most a cheap bound (:meth:`upper_bounds`). The candidates with the
        largest bounds are scored first; the rest only where their bound reaches the best score
        found (with a relative margin far above round-off), so the maximum and its first index are
        those of the full computation; a computed score equals the full computation's up to the
        last bit (LAPACK and the reduction may round differently for another batch size).
        """
        idx = torch.arange(self.k1.shape[0], device=self.h.device)
        if allowed is not None:
            idx = idx[allowed]
        out = torch.full((self.k1.shape[0],), -torch.inf, dtype=torch.float64, device=self.h.device)
        if idx.shape[0] == 0:
            return out
        ub = self.upper_bounds(sign)[idx]
        first = idx[torch.topk(ub, min(FIRST_SCORED, idx.shape[0])).indices]
        out[first] = self._exact_scores(first, sign)
        best = float(out[first].max())
        slack = 1e-6 * abs(best) + 1e-12 * float(ub.abs().max())
        rest = idx[(ub >= best - slack) & (out[idx] == -torch.inf)]
        if rest.shape[0]:
            out[rest] = self._exact_scores(rest, sign)
        return out

    def upper_bounds(self, sign: float) -> torch.Tensor:
        """Upper bounds on the scores, with ``K1 ⪰ 0``: forward ``tr K1`` (``K2 ⪰ 0``, so
        ``(I + K2)⁻¹ ≼ I``); backward ``-tr K1`` (for a candidate in ``A``, ``K2 ≺ I``, so
        ``(I - K2)⁻¹ ≽ I`` and the score ``-tr(K1 (I - K2)⁻¹)`` is at most ``-tr K1``)."""
        return sign * torch.diagonal(self.k1, dim1=1, dim2=2).sum(1)

    def _exact_scores(self, sel: torch.Tensor, sign: float) -> torch.Tensor:
        eye = torch.eye(self.r, dtype=torch.float64, device=self.h.device)
        spd = eye + sign * self.k2[sel]  # I + K2, or I - K2 = -(-I + K2): positive definite
        chol, info = torch.linalg.cholesky_ex(spd)
        if bool((info != 0).any()):  # lost definiteness to round-off: general solve
            inv = torch.linalg.inv(spd)
        else:
            inv = torch.cholesky_inverse(chol)
        return sign * (inv * self.k1[sel]).sum((1, 2))

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
        rr = self.r
        wy = self._project(torch.cat([u, r], dim=1))  # [V_m U | V_m R]  (M, r, 2r), one pass
        m = wy.shape[0]
        w, y = wy[:, :, :rr].contiguous(), wy[:, :, rr:].contiguous()
        # products with the shared S and K1_j are single GEMMs over all candidates; the two
        # per-candidate products (W S)Wᵀ and (W S)(Y - W S K1_j/2)ᵀ share one batched call
        ws = K.matmul(w.reshape(m * rr, rr), s).reshape(m, rr, rr)
        y -= 0.5 * K.matmul(ws.reshape(m * rr, rr), k1).reshape(m, rr, rr)
        both = torch.bmm(ws, torch.cat([w, y], dim=1).transpose(1, 2))
        self.k2 -= both[:, :, :rr]
        t = both[:, :, rr:]
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
