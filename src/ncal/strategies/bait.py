"""BAIT: Fisher-information-based batch selection (docs/algorithms.md §1.7).

Per-sample last-layer Fisher ``I(x) = V_xᵀV_x`` with ``V_x`` (C × C·d) whose row c is
``√p_c (e_c - p) ⊗ h``. BAIT minimises ``tr((λI + N_L/(N_L+k)·F_L + k/(N_L+k)·Σ_{x∈S} I(x))⁻¹ F)``
(``F`` = mean Fisher over L ∪ U, ``F_L`` over L; the weight ``k/(N_L+k)`` on every selected term is
kept as in the reference code) by forward greedy over ``2k`` picks and backward pruning to ``k``,
with rank-C Woodbury updates of ``A⁻¹`` (float64).

Never materialised: ``V_x = B_x ⊗ h_xᵀ`` with ``B_x = diag(√p)(I - 1pᵀ)`` (C × C), so every
projection ``V_x M V_xᵀ`` of a (C·d)² matrix is ``B_x [(I⊗h_xᵀ) M (I⊗h_x)] B_xᵀ``. Every
candidate's bound ``tr K1`` (``K1 = V_x A⁻¹FA⁻¹ V_xᵀ``) follows the rank-C updates of ``A⁻¹`` and
``A⁻¹FA⁻¹`` (its change is the trace of a projected rank-C product, O(D·C) per candidate,
D = C·d'), exactly for the candidates near the best score and through a relaxed bound (the last
exact value plus a cheap bound on each change) for the others; a step forms ``K1`` and
``K2 = V_x A⁻¹ V_xᵀ`` (C × C) and scores exactly (one Cholesky) only the candidates whose bound
reaches the best score found, usually one, so the picks are those of scoring every candidate. A
step costs O(D²C) for the two rank-C updates (a syrk and a product), O(D·C) per tracked bound and
a few passes over the two D × D matrices.

Three documented approximations make it run at C = 100 (all recorded in ``params()``):

* ``pca_dim`` (default 32): features are projected on the top ``pca_dim`` eigenvectors of the
  uncentred second-moment matrix of L ∪ U (the directions that carry most of ``h hᵀ``);
  the objective is invariant to the basis chosen inside that subspace. ``None`` keeps all d.
* ``max_fisher_dim`` (default 1600): a cap on ``D = C·d'``; above it the features are projected on
  ``max_fisher_dim // C`` directions instead (16 at C = 100; no effect up to C = 50 with the
  default ``pca_dim``). ``None``: no cap.
* ``max_candidates`` (default 1000) with ``prefilter``: only M = max(max_candidates, 2k) pool
  samples are candidates, chosen by ``fisher_trace`` (``tr I(x) = (1 - ||p||²)·||h||²``,
  default), ``entropy``, ``margin`` or ``random`` (from ``rng``). ``None`` keeps the whole pool.

References
----------
Ash, Goel, Krishnamurthy & Kakade, "Gone fishing: neural active learning with Fisher embeddings",
NeurIPS 2021 (reference code: JordanAsh/badge ``query_strategies/bait_sampling.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._utils.validation import as_float_matrix, check_choice, check_same_rows
from ._checks import check_device, check_float, check_int
from .base import Selection, Signals, Strategy
from .selection import top_k

if TYPE_CHECKING:
    import torch

PREFILTERS = ("fisher_trace", "entropy", "margin", "random")


_ALGEBRA = ("BaitState", "mean_fisher", "pca_basis", "top_classes")


def __getattr__(name: str) -> Any:
    """The Fisher algebra lives in ``_fisher`` (torch); importing it only on use keeps this module,
    and building the strategy, torch-free."""
    if name in _ALGEBRA:
        from . import _fisher

        return getattr(_fisher, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        ``p``); a step's updates then cost O(D²r) instead of O(D²C), each tracked bound O(D·r).
    device : str
        ``"cpu"`` (default), ``"cuda"``, ``"cuda:i"`` or ``"auto"``.
    max_fisher_dim : int or None
        Cap on the Fisher dimension ``D = C·d'`` (default 1600): when ``C`` times the feature
        dimension (``pca_dim``, or all features) exceeds it, the features are projected on
        ``max(1, max_fisher_dim // C)`` principal directions instead (C = 100: 16; no effect up to
        C = 50 with ``pca_dim=32``). Every cost grows with ``D`` (setup ``O(N·D² + D³)``, a step
        ``O(D²C)``), so this bounds them at large C; an approximation like ``pca_dim``. None: no cap.

    Notes
    -----
    ``Selection.scores`` holds each kept pick's forward-greedy objective decrease
    ``tr(K1 (I + K2)⁻¹)`` at the time it was added. ``info`` records the effective feature
    dimension (after ``pca_dim`` and ``max_fisher_dim``), the number of candidates and the picks
    removed by pruning.
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
        max_fisher_dim: int | None = 1600,
    ) -> None:
        self.lamb = check_float(lamb, "lamb", low=0.0, low_open=True)
        self.pca_dim = check_int(pca_dim, "pca_dim", allow_none=True)
        self.max_candidates = check_int(max_candidates, "max_candidates", allow_none=True)
        self.prefilter = check_choice(prefilter, "prefilter", PREFILTERS)
        # only the random prefilter draws from `rng`; every other setting is deterministic
        self.stochastic = self.prefilter == "random"
        self.oversample = check_int(oversample, "oversample")
        self.fisher_rank = check_int(fisher_rank, "fisher_rank", allow_none=True)
        self.device = check_device(device)
        self.max_fisher_dim = check_int(max_fisher_dim, "max_fisher_dim", allow_none=True)

    def _feature_dim(self, d: int, c: int) -> int:
        """Feature dimension BAIT works in for ``d`` input features and ``c`` classes."""
        dim = d if self.pca_dim is None else min(self.pca_dim, d)
        if self.max_fisher_dim is not None and c * dim > self.max_fisher_dim:
            dim = max(1, self.max_fisher_dim // c)
        return dim

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
            from . import _kernels as K  # torch, only when selecting

            score = (1.0 - (pp * pp).sum(1)) * K.to_numpy((hp * hp).sum(1))
        elif self.prefilter == "entropy":
            from scipy.special import xlogy

            score = -xlogy(pp, pp).sum(1)
        else:
            top2 = np.partition(pp, pp.shape[1] - 2, axis=1)[:, -2:] if pp.shape[1] > 1 else pp
            score = -(top2[:, -1] - top2[:, 0]) if pp.shape[1] > 1 else np.zeros(n)
        return np.sort(top_k(score, m))

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        import torch

        from . import _kernels as K  # torch, only when selecting
        from ._fisher import BaitState, mean_fisher, pca_basis

        hp_np, pp_np, hl_np, pl_np = self._inputs(signals)
        dev = K.resolve_device(self.device)
        f64 = torch.float64
        hp = K.as_tensor(hp_np, dev, f64)
        hl = K.as_tensor(hl_np, dev, f64)
        dim = self._feature_dim(hp.shape[1], pp_np.shape[1])
        basis = pca_basis([hp, hl] if hl.shape[0] else [hp], dim)
        if basis is not None:
            hp = K.matmul(hp, basis)
            hl = K.matmul(hl, basis) if hl.shape[0] else hl.new_zeros(0, basis.shape[1])
        pp = K.as_tensor(pp_np, dev, f64)
        pl = K.as_tensor(pl_np, dev, f64)
        c, d = pp.shape[1], hp.shape[1]
        n_lab = hl.shape[0]

        # F over L ∪ U as the weighted mean of its two parts: the labeled rows are summed once
        fisher = mean_fisher(pp, hp)
        a = self.lamb * torch.eye(c * d, dtype=f64, device=dev)
        if n_lab:
            f_lab = mean_fisher(pl, hl)
            n_all = n_lab + pp.shape[0]
            fisher.mul_(pp.shape[0] / n_all).add_(f_lab, alpha=n_lab / n_all)
            a.add_(f_lab, alpha=n_lab / (n_lab + k))
            del f_lab
        # A is symmetric positive definite (λ > 0): a Cholesky inverse, half the work of LU
        a_inv = torch.cholesky_inverse(torch.linalg.cholesky(a))
        del a
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
            sc = state.scores(1.0, ~chosen)
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
            mask = torch.zeros(len(kept), dtype=torch.bool, device=dev)
            mask[alive] = True
            sc = state.scores(-1.0, mask)
            j = K.first_argmax(sc)
            state.update(j, -1.0)
            alive.remove(j)
            removed.append(int(cand[kept[j]]))
        final = {kept[j] for j in alive}
        order = [j for j in order if j in final]
        idx = cand[np.asarray(order, dtype=np.int64)]
        info = {"feature_dim": d, "candidates": m, "pruned": removed}
        return Selection(idx.astype(np.int64), np.array([gain[j] for j in order]), info)
