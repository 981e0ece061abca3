"""Closed-form CMAP kernels on one float64 block of candidates (docs/algorithms.md §6.2-§6.5, §6.8).

Notation (present classes only, ``C`` of them): centred means ``m_j = mu_j - g``,
``rho_j = ||m_j||``, ``mbar_j = m_j / rho_j``, ``S = sum_j mbar_j``, ``G = Mbar Mbar^T`` (cosines),
``K = M M^T``, and for a candidate ``u = h - g``. Every kernel returns ``(delta_cma, degenerate)``,
where ``degenerate`` flags candidates whose updated class mean has (numerically) zero norm; their
value is set to 0.

Each kernel is written in a "difference form" (the small change is computed from small terms) so the
result keeps full relative precision even when ``CMAP << CMA``.
"""

from __future__ import annotations

import numpy as np

from .stats import ClassStats

ZERO_NORM = 1e-12  # docs/algorithms.md §6.8: ||m~_c|| below this => CMAP := 0 (with a warning)


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
        self, U: np.ndarray, P: np.ndarray, uu: np.ndarray, r: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """E1 (§6.5): moving reference, signed pairs; O(C d + C^2) per candidate.

        ``P = U @ M.T`` (``m_j . u``). Difference form: dCMA = (S'-S).(S'+S) / (C(C-1)) with
        ``1/rho'_j - 1/rho_j`` computed from ``rho'^2 - rho^2`` (no cancellation).
        """
        b = U.shape[0]
        if self.C == 2:
            return self._two_class_moving(b)
        idx = np.arange(b)
        C = self.C
        n1 = self.n[r] + 1.0
        pc = P[idx, r]
        Kc = self.K[:, r].T  # (b, C): m_j . m_c
        m_delta = (P - Kc) / n1[:, None]  # m_j . delta
        dd = (uu - 2.0 * pc + self.K[r, r]) / n1**2  # |delta|^2
        if self.mu_G == "sample_avg":
            e = 1.0 / (self.NL + 1.0)
            m_eta = P * e
            ee = uu * e * e
            de = (uu - pc) * e / n1
        else:
            m_eta = m_delta / C
            ee = dd / C**2
            de = dd / C
        d_rho2 = -2.0 * m_eta + ee[:, None]  # rho'^2 - rho^2 for j != c
        d_rho2[idx, r] = 2.0 * (m_delta[idx, r] - m_eta[idx, r]) + dd - 2.0 * de + ee
        rho2 = self.rho**2
        new_rho2 = rho2[None, :] + d_rho2
        degenerate = (new_rho2 < ZERO_NORM**2).any(axis=1)
        new_rho = np.sqrt(np.where(new_rho2 < ZERO_NORM**2, 1.0, new_rho2))
        v = 1.0 / new_rho
        dv = -d_rho2 / (self.rho[None, :] * new_rho * (self.rho[None, :] + new_rho))
        vsum = v.sum(axis=1)
        vc = v[idx, r]
        if self.mu_G == "sample_avg":
            cu = -e * vsum + vc / n1
            cm = -vc / n1
        else:
            cu = (vc - vsum / C) / n1
            cm = -cu
        # D = S' - S = X + cu u with X = x @ M, x = dv + cm e_c. Everything D needs is an inner
        # product of M's rows with u or each other, so |D|^2 + 2 D.S comes from P, K and M S:
        # O(C^2) more per candidate and no (b, d) temporaries.
        x = dv
        x[idx, r] += cm
        xx = np.einsum("ij,ij->i", x @ self.K, x)
        xu = np.einsum("ij,ij->i", x, P)
        xs = x @ self.MS
        us = P @ (1.0 / self.rho)
        val = (xx + 2.0 * cu * xu + cu * cu * uu + 2.0 * (xs + cu * us)) * self.norm
        return np.where(degenerate, 0.0, val), degenerate

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
