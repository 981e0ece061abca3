"""Closed-form CMAP kernels on one block of candidates (docs/algorithms.md §6.2-§6.5, §6.8).

Notation (present classes only, ``C`` of them): centred means ``m_j = mu_j - g``,
``rho_j = ||m_j||``, ``mbar_j = m_j / rho_j``, ``S = sum_j mbar_j``, ``G = Mbar Mbar^T`` (cosines),
``K = M M^T``, and for a candidate ``u = h - g``. Every kernel returns ``(delta_cma, degenerate)``,
where ``degenerate`` flags candidates whose updated class mean has (numerically) zero norm; their
value is set to 0.

Each kernel is written in a "difference form" (the small change is computed from small terms) so the
result keeps full relative precision even when ``CMAP << CMA``. :class:`E1Blocks` runs its one
product in float32 and keeps float64 where it would matter (its docstring).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from scipy.linalg.blas import dtrmm

from ._blocks import raise_if_nonfinite
from .stats import ClassStats

_E1_MAX_CANCEL = 64.0  # E1Blocks: rows whose terms cancel by more than this get a float64 product
_E1_CHUNK = 256  # rows per pass when E1Blocks builds its float64 rows (a little faster than all)
ZERO_NORM = 1e-12  # docs/algorithms.md §6.8: ||m~_c|| below this => CMAP := 0 (with a warning)


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two (n, k) arrays."""
    if hasattr(np, "vecdot"):  # numpy >= 2.0: about twice as fast as einsum here
        return np.vecdot(a, b)
    return np.einsum("ij,ij->i", a, b)


def pair_fn(pair: str):
    return (lambda t: t) if pair == "signed" else np.abs


class CmapGeometry:
    """Per-round precomputation shared by every kernel (O(C d + C^2) memory)."""

    def __init__(self, stats: ClassStats, centering: str, mu_G: str, pair: str) -> None:
        self.centering, self.mu_G, self.pair = centering, mu_G, pair
        self.phi = pair_fn(pair)
        self.C = C = stats.num_present
        self.n = stats.counts.astype(np.float64)
        self.NL = float(stats.n_samples)
        self.g = np.zeros(stats.dim) if centering == "none" else stats.global_mean(mu_G).copy()
        self.means = stats.means
        self.M = stats.means - self.g[None, :]
        self.rho = np.sqrt(np.einsum("ij,ij->i", self.M, self.M))
        bad = np.flatnonzero(self.rho < ZERO_NORM)
        if bad.size:
            raise ValueError(
                f"the (centred) mean of labeled class {int(stats.present[bad[0]])} has zero norm "
                f"(centering={centering!r}); class-mean cosines and CMA are undefined for "
                "`features_labeled`/`labels_labeled`"
            )
        self.Mbar = self.M / self.rho[:, None]
        self.S = self.Mbar.sum(axis=0)
        self.K = self.M @ self.M.T
        self.G = self.Mbar @ self.Mbar.T
        np.fill_diagonal(self.G, 1.0)
        off = ~np.eye(C, dtype=bool)
        self.phiG = self.phi(self.G)
        self.base_sum = float(self.phiG[off].sum())  # sum_{i != j} phi(cos_ij)
        self.norm = 1.0 / (C * (C - 1))
        self.cma = self.base_sum * self.norm
        # E0 precompute: a_c = mbar_c . (S - mbar_c), t_c = P_c (S - mbar_c) (orthogonal to mbar_c)
        self.a = (self.G * off).sum(axis=1)
        self.T = (self.S[None, :] - self.Mbar) - self.a[:, None] * self.Mbar
        self.MS = self.M @ self.S
        self._e1: SimpleNamespace | None = None  # E1 constants, made on first use

    # ------------------------------------------------------------------ none / frozen
    def e0_signed(self, U: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """E0 (§6.2): O(d) per candidate; rows ``r`` are the predicted classes (all present)."""
        ut = np.einsum("ij,ij->i", U, self.T[r])
        al = np.einsum("ij,ij->i", U, self.Mbar[r])
        uu = np.einsum("ij,ij->i", U, U)
        return self._e0_scalar(ut, al, uu, self.n[r], self.rho[r], self.a[r])

    def _e0_scalar(self, ut, al, uu, n, rho, a):
        """Scalar E0 from u.t_c, u.mbar_c, ||u||^2 (broadcasts, so it also serves ``expected``).

        With v = n m_c + u = beta mbar_c + u_perp:
        dCMA = 2/(C(C-1)) [a (beta/|v| - 1) + u.t_c/|v|].
        """
        beta = n * rho + al
        q2 = np.maximum(uu - al * al, 0.0)
        nv = np.sqrt(beta * beta + q2)
        degenerate = nv < ZERO_NORM * (n + 1.0)
        nv_safe = np.where(degenerate, 1.0, nv)
        # beta/|v| - 1 without cancellation when beta > 0
        ratio_m1 = np.where(
            beta > 0, -q2 / (nv_safe * (np.abs(beta) + nv_safe)), beta / nv_safe - 1.0
        )
        val = 2.0 * self.norm * (a * ratio_m1 + ut / nv_safe)
        return np.where(degenerate, 0.0, val), degenerate

    def e0_pairs(
        self, pb: np.ndarray, uu: np.ndarray, r: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """E0-pairs (§6.3), any pair function: only the cosines of class ``r`` change. O(C) each."""
        b = pb.shape[0]
        idx = np.arange(b)
        n, rho = self.n[r], self.rho[r]
        al = pb[idx, r]
        beta = n * rho + al
        q2 = np.maximum(uu - al * al, 0.0)
        nv = np.sqrt(beta * beta + q2)
        degenerate = nv < ZERO_NORM * (n + 1.0)
        nv_safe = np.where(degenerate, 1.0, nv)
        cos_new = ((n * rho)[:, None] * self.G[r] + pb) / nv_safe[:, None]
        diff = self.phi(cos_new) - self.phiG[r]
        diff[idx, r] = 0.0
        val = 2.0 * self.norm * diff.sum(axis=1)
        return np.where(degenerate, 0.0, val), degenerate

    def new_class_static(self, pb: np.ndarray, uu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predicted class absent from L (§6.8 `formula`), none/frozen: the set gains u/|u|."""
        C = self.C
        nu = np.sqrt(uu)
        degenerate = nu < ZERO_NORM
        cos_new = pb / np.where(degenerate, 1.0, nu)[:, None]
        s = self.phi(cos_new).sum(axis=1)
        val = 2.0 * s / ((C + 1) * C) - 2.0 * self.base_sum / ((C + 1) * C * (C - 1))
        return np.where(degenerate, 0.0, val), degenerate

    # ------------------------------------------------------------------ moving
    def e1_signed(
        self, P: np.ndarray, uu: np.ndarray, r: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """E1 (§6.5): moving reference, signed pairs, from ``P`` and ``|u|^2``.

        Parameters
        ----------
        P : (b, C) float64 array
            ``m_j . u`` with ``u = h - g`` (``U @ M.T``).
        uu : (b,) float64 array
            ``|u|^2``.
        r : (b,) int array
            Rows of the predicted classes (all present).

        Returns
        -------
        (b,) float64 array and (b,) bool array
            dCMA and the degenerate flags (see :meth:`_e1_core`; :class:`E1Blocks` builds the
            same input straight from stored pool rows).
        """
        b = P.shape[0]
        if self.C == 2:
            return self._two_class_moving(b)
        tab = self._e1_tables()
        if self.mu_G == "class_avg":  # v = u - m_c = h - mu_c
            V = P - self.K[r]
            vv = uu - 2.0 * P[np.arange(b), r] + self.K[r, r]
        else:  # v = u
            V, vv = P, uu
        return self._e1_core(V - (0.5 * tab.e[r] * vv)[:, None], vv, r)

    def _e1_tables(self) -> SimpleNamespace:
        """Per-class constants of E1 (made on first use)."""
        if self._e1 is None:
            C = self.C
            n1 = self.n + 1.0
            irho = 1.0 / self.rho
            if self.mu_G == "class_avg":
                e, anchor = 1.0 / (n1 * C), self.means
            else:
                e = np.full(C, 1.0 / (self.NL + 1.0))
                anchor = np.repeat(self.g[None, :], C, axis=0)
            # G = R^T R with R upper triangular (QR of Mbar^T; zero rows pad it to C x C when
            # d < C), so x^T G x = |R x|^2: a triangular product, C^2/2 multiply-adds.
            R = np.zeros((C, C))
            Rq = np.linalg.qr(self.Mbar.T, mode="r")
            R[: Rq.shape[0]] = Rq
            self._e1 = SimpleNamespace(
                n1=n1,
                e=e,
                anchor=anchor,
                rho2=self.rho**2,
                irho=irho,
                sirho=float(irho.sum()),
                irhoMS=irho * self.MS,
                kcc=np.diag(self.K).copy(),
                R=np.asfortranarray(R),
                Rt=np.ascontiguousarray(R.T),
            )
        return self._e1

    def _e1_core(
        self,
        E: np.ndarray,
        vv: np.ndarray,
        r: np.ndarray,
        work: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        terms: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """E1 of ``b`` candidates in the form every caller reduces them to.

        Adding ``h`` to class ``c`` moves the reference by ``eta = e v``, with ``v = h - mu_c``
        and ``e = 1/((n_c+1) C)`` (``class_avg``) or ``v = h - g`` and ``e = 1/(N_L+1)``
        (``sample_avg``). For ``j != c``, ``rho'_j^2 - rho_j^2 = -2 m_j.eta + |eta|^2 = -2 e E_j``
        with ``E_j = m_j.v - e |v|^2 / 2``: one product gives every difference, and
        ``dvh_j = rho_j (1/rho_j - 1/rho'_j) = (rho'^2 - rho^2) / (rho' (rho + rho'))`` follows
        without cancellation. Then ``S' - S = D = M^T x + cv v`` with ``x = -dvh/rho + cm e_c``,
        and ``dCMA = (|D|^2 + 2 D.S) / (C(C-1))`` is a sum of inner products among the ``m_j``
        (``G = R^T R``), ``v`` (``E``, ``|v|^2``) and ``S`` (``M S``): O(C^2) per candidate.

        Parameters
        ----------
        E : (b, C) float64 array
            ``m_j . v - e |v|^2 / 2``; left unchanged.
        vv : (b,) float64 array
            ``|v|^2``.
        r : (b,) int array
            Rows of the predicted classes (all present).
        work : tuple of three (>= b, C) float64 arrays, optional
            Scratch space (allocated when omitted).
        terms : (b,) float64 array, optional
            Filled with the sum of the magnitudes of the terms that add up to dCMA: how far an
            error in ``E`` can be amplified by cancellation (see :class:`E1Blocks`).

        Returns
        -------
        (b,) float64 array and (b,) bool array
            dCMA, 0 where a candidate is degenerate (some ``rho'_j < ZERO_NORM``), and the flags.
        """
        tab = self._e1_tables()
        b, C = E.shape
        if work is None:
            work = (np.empty_like(E), np.empty_like(E), np.empty_like(E))
        Z, Q, Y = (w[:b] for w in work)
        idx = np.arange(b)
        n1, e = tab.n1[r], tab.e[r]
        half_evv = 0.5 * e * vv
        Vc = E[idx, r] + half_evv  # m_c . v
        np.multiply(E, (-2.0 * e)[:, None], out=Z)  # rho'_j^2 - rho_j^2, j != c
        if self.mu_G == "class_avg":  # m'_c - m_c = delta - eta = tt v
            tt = 1.0 / n1 - e
            Z[idx, r] = (2.0 * Vc + tt * vv) * tt
        else:  # delta = (v - m_c)/(n_c+1), eta = e v
            kcc = tab.kcc[r]
            dd = (vv - 2.0 * Vc + kcc) / (n1 * n1)  # |delta|^2
            Z[idx, r] = (
                2.0 * ((Vc - kcc) / n1 - e * Vc) + dd - 2.0 * e * (vv - Vc) / n1 + e * e * vv
            )
        with np.errstate(divide="ignore", invalid="ignore"):  # degenerate rows: found below
            np.add(Z, tab.rho2, out=Q)  # rho'^2
            np.sqrt(Q, out=Y)  # rho'
            np.add(Y, self.rho, out=Q)
            Q *= Y  # rho' (rho + rho')
            dvh = np.divide(Z, Q, out=Y)
            dvi = dvh @ tab.irho
            dvms = dvh @ tab.irhoMS  # -(dv . M S)
            dvhc = dvh[idx, r]
            np.multiply(dvh, E, out=Q)
            dvV = -(Q @ tab.irho) - half_evv * dvi  # dv . V,  V_j = m_j . v = E_j + e|v|^2/2
            VS = E @ tab.irho + half_evv * tab.sirho  # V . (1/rho) = v . S
            # dv K dv = dvh G dvh = |R dvh|^2 (in place: dvh is not needed after this)
            T = dtrmm(1.0, tab.R, dvh.T, side=0, lower=0, trans_a=0, overwrite_b=1).T
            xx = _rowdot(T, T)
            vsum = tab.sirho - dvi  # sum_j 1/rho'_j
            vc = (1.0 - dvhc) / self.rho[r]  # 1/rho'_c
            if self.mu_G == "class_avg":  # D = M^T dv + cv v
                cv = (vc - vsum / C) / n1
            else:  # D = M^T (dv + cm e_c) + cv v
                cm = -vc / n1
                cv = vc / n1 - e * vsum
                Kdv_c = -self.rho[r] * _rowdot(T, tab.Rt[r])  # (K dv)_c = -rho_c (G dvh)_c
                xx += cm * (2.0 * Kdv_c + cm * tab.kcc[r])
                dvV += cm * Vc
                dvms -= cm * self.MS[r]
            val = (xx + cv * (2.0 * dvV + cv * vv + 2.0 * VS) - 2.0 * dvms) * self.norm
            if terms is not None:
                terms[:] = np.abs(self.norm) * (
                    np.abs(xx)
                    + np.abs(cv) * (2.0 * np.abs(dvV) + np.abs(cv) * vv + 2.0 * np.abs(VS))
                    + 2.0 * np.abs(dvms)
                )
        # Degenerate: some rho'_j^2 < ZERO_NORM^2. Then 1/rho'_j - 1/rho_j > 1/ZERO_NORM - 1/rho_j
        # while every other term is > -1/rho_k, so sum_j (1/rho'_j - 1/rho_j) = -dvi exceeds
        # 1/ZERO_NORM - sum(1/rho) (or is NaN): only rows past half that bound get the exact test.
        degenerate = np.zeros(b, dtype=bool)
        sus = np.flatnonzero(~(dvi >= tab.sirho - 0.5 / ZERO_NORM))
        if sus.size:
            degenerate[sus] = (tab.rho2 + Z[sus] < ZERO_NORM**2).any(axis=1)
            val[degenerate] = 0.0
        return val, degenerate

    @staticmethod
    def _two_class_moving(b: int) -> tuple[np.ndarray, np.ndarray]:
        """Two classes, moving reference: g' lies on the segment between the two means, so they
        stay antipodal (cos = -1) and CMAP is exactly 0 (returned exactly, not as round-off)."""
        return np.zeros(b), np.zeros(b, dtype=bool)

    # ------------------------------------------------------------------ generic, O(C^2) each
    def _eta_coeffs(self, n1: np.ndarray, new_class: bool) -> tuple[np.ndarray, np.ndarray]:
        """eta = e_u u + e_m m_c: how far the reference g moves when the candidate is added."""
        z = np.zeros_like(n1)
        if self.centering != "moving":
            return z, z
        if self.mu_G == "sample_avg":
            return z + 1.0 / (self.NL + 1.0), z
        if new_class:
            return z + 1.0 / (self.C + 1.0), z
        return 1.0 / (n1 * self.C), -1.0 / (n1 * self.C)

    def pairs_general(
        self, P: np.ndarray, uu: np.ndarray, r: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """All C^2 new cosines per candidate (any centering/pair; present class ``r``).

        With eta = e_u u + e_m m_c (the reference shift) and delta = (u - m_c)/(n_c+1):
        for i, j != c, m'_i.m'_j = K_ij - eta.m_i - eta.m_j + |eta|^2 (an outer *sum*: two
        passes); row/column c uses m'_c = m_c + delta - eta. All from ``P = U @ M.T``, ``K`` and
        ``|u|^2``.
        """
        b = P.shape[0]
        if self.C == 2 and self.centering == "moving":
            return self._two_class_moving(b)
        idx = np.arange(b)
        n1 = self.n[r] + 1.0
        e_u, e_m = self._eta_coeffs(n1, new_class=False)
        Y = self.K[:, r].T  # m_j . m_c
        pc = P[idx, r]
        kcc = self.K[r, r]
        eta_m = e_u[:, None] * P + e_m[:, None] * Y  # eta . m_j
        ee = e_u * e_u * uu + 2.0 * e_u * e_m * pc + e_m * e_m * kcc
        d_m = (P - Y) / n1[:, None]  # delta . m_j
        du = (uu - pc) / n1  # delta . u
        dmc = (pc - kcc) / n1  # delta . m_c
        de = e_u * du + e_m * dmc
        dd = (uu - 2.0 * pc + kcc) / n1**2
        half = 0.5 * ee[:, None] - eta_m
        gram = self.K[None] + half[:, :, None]
        gram += half[:, None, :]
        # row/column c: (m_c + delta - eta).(m_j - eta)
        row_c = Y + d_m - eta_m - eta_m[idx, r][:, None] - de[:, None] + ee[:, None]
        gram[idx, r, :] = row_c
        gram[idx, :, r] = row_c
        gram[idx, r, r] = kcc + 2.0 * (dmc - eta_m[idx, r]) + dd - 2.0 * de + ee
        return self._sum_change(gram, None)

    def pairs_new_class(self, P: np.ndarray, uu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New class (absent from L) with mean h; under `moving` old means shift by -e_u u."""
        b = P.shape[0]
        e_u, _ = self._eta_coeffs(np.ones(b), new_class=True)
        half = (0.5 * e_u * e_u * uu)[:, None] - e_u[:, None] * P
        gram = self.K[None] + half[:, :, None]
        gram += half[:, None, :]
        cross = (1.0 - e_u)[:, None] * (P - (e_u * uu)[:, None])  # m'_new . m'_j
        new_sq = (1.0 - e_u) ** 2 * uu
        return self._sum_change(gram, (cross, new_sq))

    def _sum_change(self, gram: np.ndarray, new: tuple[np.ndarray, np.ndarray] | None):
        """Turn Gram matrices (b, C, C) of the updated means into dCMA (in place on ``gram``)."""
        C = self.C
        diag = np.einsum("bii->bi", gram)  # a view
        bad = diag < ZERO_NORM**2
        degenerate = bad.any(axis=1)
        rinv = 1.0 / np.sqrt(np.where(bad, 1.0, diag))
        gram *= rinv[:, :, None]
        gram *= rinv[:, None, :]
        if self.pair == "abs":
            np.abs(gram, out=gram)
        gram -= self.phiG[None]
        np.einsum("bii->bi", gram)[...] = 0.0
        change = gram.sum(axis=(1, 2))  # sum_{i != j} phi(cos') - phi(cos)
        if new is None:
            val = change * self.norm
        else:
            cross, new_sq = new
            deg_new = new_sq < ZERO_NORM**2
            degenerate = degenerate | deg_new
            nrm = np.sqrt(np.where(deg_new, 1.0, new_sq))
            s_new = self.phi(cross * rinv / nrm[:, None]).sum(axis=1)
            k = (C + 1) * C
            val = change / k + 2.0 * s_new / k - 2.0 * self.base_sum / (k * (C - 1))
        return np.where(degenerate, 0.0, val), degenerate

    # ------------------------------------------------------------------ first order (analysis)
    def first_order(self, U: np.ndarray, r: np.ndarray) -> np.ndarray:
        """A1 (none/frozen) or A1m (moving), §6.6: linear in the candidate, O(d) each."""
        n1 = self.n[r] + 1.0
        ut = np.einsum("ij,ij->i", U, self.T[r])
        if self.centering != "moving":
            return 2.0 * self.norm * ut / (self.rho[r] * n1)
        # delta . t_c / rho_c - eta . q,  q = sum_j P_j S / rho_j;  delta = (u - m_c)/(n_c+1)
        first = ut / (n1 * self.rho[r])  # m_c is orthogonal to t_c
        q = self._q_vector()
        uq = U @ q
        mq = self.M @ q
        if self.mu_G == "sample_avg":
            eta_q = uq / (self.NL + 1.0)
        else:
            eta_q = (uq - mq[r]) / (n1 * self.C)
        return 2.0 * self.norm * (first - eta_q)

    def _q_vector(self) -> np.ndarray:
        if not hasattr(self, "_q"):
            proj = self.Mbar @ self.S  # mbar_j . S
            self._q = ((self.S[None, :] - proj[:, None] * self.Mbar) / self.rho[:, None]).sum(
                axis=0
            )
        return self._q


class E1Blocks:
    """E1 (moving reference, signed pairs, hard labels) of stored pool rows.

    Builds :meth:`CmapGeometry._e1_core`'s input straight from the rows as stored (e.g. a float32
    memmap). The difference ``v = h - anchor_c`` (``anchor_c = mu_c`` for ``class_avg``, ``g`` for
    ``sample_avg``) subtracts near-equal numbers, so it and ``|v|^2`` are formed in float64. The
    one (rows, d) x (d, C) product ``M v`` subtracts nothing: it runs on ``v`` rounded to float32
    (in float64 it cost as much as the rest of the kernel), and ``E = M v - e |v|^2 / 2`` is
    formed in float64. Two kinds of rows get a float64 product instead, because there a float32
    error would be amplified: those whose ``|v|`` is large enough for some updated centred mean
    to shrink towards zero norm (``rho'^2 = rho^2 - 2 e E`` cancels), and those whose dCMA is
    more than ``_E1_MAX_CANCEL`` times smaller than the terms it is summed from. Over 5,000
    random small cases the result stayed within 6.7e-7 of the largest |CMAP| of the float64 kernel
    (docs/algorithms.md §6.5). Work arrays are allocated once and reused for every block.

    Parameters
    ----------
    geo : CmapGeometry
        Geometry of the labeled set (``centering="moving"``, ``pair="signed"``).
    rows : int
        Rows scored at once.
    """

    def __init__(self, geo: CmapGeometry, rows: int) -> None:
        tab = geo._e1_tables()
        C, d = geo.M.shape
        self.geo, self.rows, self.d = geo, rows, d
        self.M32 = geo.M.astype(np.float32)
        self.anchor = np.ascontiguousarray(tab.anchor)
        k = min(rows, _E1_CHUNK)
        self.V64 = np.empty((k, d))  # float64 rows of one chunk
        self.A = np.empty((k, d))
        self.V32 = np.empty((rows, d), dtype=np.float32)
        self.P = np.empty((rows, C), dtype=np.float32)
        self.E = np.empty((rows, C))
        self.work = (np.empty((rows, C)), np.empty((rows, C)), np.empty((rows, C)))
        # a centred mean moves by at most t |v| (plus m_c / (n_c+1) for the own class under
        # sample_avg), t the larger of e and 1/(n_c+1) - e: with s = t |v| / rho_min, rows where
        # 2 s + s^2 < 1/2 keep every rho'^2 above about a tenth of rho^2 (no cancellation)
        self.t = np.maximum(tab.e, 1.0 / tab.n1 - tab.e) * float(tab.irho.max())

    def __call__(
        self, raw: np.ndarray, r: np.ndarray, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """dCMA of adding each of the rows ``raw`` to its class.

        Parameters
        ----------
        raw : (b, d) array
            Pool rows as stored (any real dtype), pool rows ``start`` to ``start + b - 1``.
        r : (b,) int array
            Rows of the predicted classes (all present).
        start : int
            Pool index of ``raw[0]`` (names the row in the NaN/inf error).

        Returns
        -------
        (b,) float64 array and (b,) bool array
            As :meth:`CmapGeometry._e1_core`.
        """
        b = raw.shape[0]
        if self.geo.C == 2:
            return self.geo._two_class_moving(b)
        vals, deg = np.empty(b), np.empty(b, dtype=bool)
        exact = np.empty(b, dtype=bool)
        vv = np.empty(b)
        for i in range(0, b, self.rows):
            j = min(b, i + self.rows)
            vals[i:j], deg[i:j], exact[i:j], vv[i:j] = self._block(raw[i:j], r[i:j], start + i)
        if exact.any():  # all of them at once: a few rows per block
            rows = np.flatnonzero(exact)
            geo, rr = self.geo, r[rows]
            V = raw[rows].astype(np.float64) - self.anchor[rr]
            E = V @ geo.M.T - (0.5 * geo._e1_tables().e[rr] * vv[rows])[:, None]
            vals[rows], deg[rows] = geo._e1_core(E, vv[rows], rr)
        return vals, deg

    def _block(
        self, raw: np.ndarray, r: np.ndarray, start: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """dCMA and degenerate flags with the float32 product, the rows that need the float64
        one, and ``|v|^2``."""
        geo = self.geo
        b = raw.shape[0]
        vv = np.empty(b)
        k = self.V64.shape[0]
        for i in range(0, b, k):  # k rows at a time, so that the passes run in cache
            ri = r[i : i + k]
            Vi, Ai = self.V64[: ri.size], self.A[: ri.size]
            np.copyto(Vi, raw[i : i + k], casting="unsafe")
            np.take(self.anchor, ri, axis=0, out=Ai, mode="clip")
            np.subtract(Vi, Ai, out=Vi)
            vv[i : i + k] = _rowdot(Vi, Vi)
            np.copyto(self.V32[i : i + ri.size], Vi, casting="same_kind")
        if not np.isfinite(vv).all():  # NaN/inf input (or a float64 row whose |v|^2 overflows)
            raise_if_nonfinite(raw, start, "features_pool")
        E = self.E[:b]
        np.matmul(self.V32[:b], self.M32.T, out=self.P[:b])
        np.copyto(E, self.P[:b])
        E -= (0.5 * geo._e1_tables().e[r] * vv)[:, None]
        terms = np.empty(b)
        vals, deg = geo._e1_core(E, vv, r, self.work, terms)
        s = self.t[r] * np.sqrt(vv)
        exact = ~(s * (2.0 + s) < 0.5)  # NaN (an overflowed |v|^2) included
        exact |= ~(terms <= _E1_MAX_CANCEL * np.abs(vals))
        return vals, deg, exact, vv
