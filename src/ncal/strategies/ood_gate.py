"""``ood_gate``: keep a base strategy away from likely out-of-distribution pool items.

P(in-distribution) of every pool item comes from :func:`._ood_scores.id_probability` (energy,
class-mean and kNN distance of the penultimate features, a seeded two-component Gaussian mixture;
no OOD labels). Then

* ``mode="drop"``: the base strategy picks among the items with P(ID) >= ``threshold`` only; when
  fewer than ``k`` pass, the rest of the batch is the remaining items with the highest P(ID);
* ``mode="weight"``: the base ranks the whole pool, and the batch is the top-k of
  ``(1 - rank / N) * P(ID)``. This asks the base for a full ranking, which is cheap for
  score-based strategies (margin, entropy, ncal_r) and expensive for greedy ones (coreset, badge).

Usage: ``get("ood_gate", base="margin", threshold=0.5)`` or ``with_ood_gate(get("badge"))``, in
the manner of the ``diverse`` wrapper (:mod:`ncal.strategies.diversity`).

References
----------
Liu et al., "Energy-based Out-of-distribution Detection", NeurIPS 2020; Sun et al., "Out-of-
Distribution Detection with Deep Nearest Neighbors", ICML 2022. Filtering the pool by P(known
class) before an informativeness criterion is the scheme of LfOSA (Ning et al., CVPR 2022) and EAOA
(Zong & Huang, CVPR 2025).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._utils.validation import check_choice
from ..signals import POOL_ROW_SIGNALS as _POOL_ROWS  # rows follow the pool (MC: axis 1)
from ._checks import check_float, check_int
from ._ood_scores import COMBINE, MIN_SEPARATION, IdEstimate, check_id_scores, id_probability
from ._wrap import WrapsBase, build_base
from .base import Selection, Signals, Strategy
from .relabel import RelabelAwareStrategy
from .selection import top_k

MODES = ("drop", "weight")


def subset_pool(signals: Signals, rows: np.ndarray) -> Signals:
    """A copy of ``signals`` whose pool holds only ``rows`` (labeled-set signals unchanged)."""
    kwargs = {name: getattr(signals, name) for name in signals.__dataclass_fields__}
    for name in _POOL_ROWS:
        if kwargs[name] is not None:
            kwargs[name] = np.asarray(kwargs[name])[rows]
    if kwargs["mc_probs_pool"] is not None:
        kwargs["mc_probs_pool"] = np.asarray(kwargs["mc_probs_pool"])[:, rows]
    return Signals(**kwargs)


def estimate_id(
    signals: Signals,
    scores: Sequence[str],
    combine: str,
    n_neighbors: int,
    energy: np.ndarray | None = None,
    evidence: dict[str, Any] | None = None,
) -> IdEstimate:
    """P(ID) of the pool of ``signals`` (see :func:`._ood_scores.id_probability`; ``energy``: the
    logits' ``logsumexp`` if already computed).

    ``evidence`` is :func:`ood_reported`'s info. When the annotators have reported OOD items the
    pool holds two populations by their word, so the mixture's split is taken however close its
    components lie: the separation test exists to keep one population from being split, and a
    skewed in-distribution score often fits as two overlapping components (measured 1.5-1.9
    pooled standard deviations apart on MNIST-5k with 20% Fashion-MNIST items, where the
    test had turned the gate off). Without reports the test stands.
    """
    reported = bool(evidence and evidence.get("ood_reports"))
    return id_probability(
        signals.features_pool,
        signals.features_labeled,
        signals.labels_labeled,
        signals.logits_pool,
        scores=scores,
        combine=combine,
        n_neighbors=n_neighbors,
        energy=energy,
        min_separation=0.0 if reported else MIN_SEPARATION,
    )


def ood_reported(signals: Signals, min_share: float) -> tuple[bool, dict[str, Any]]:
    """Whether the annotators' answers show OOD items in the pool, so that a gate is warranted.

    The gate's mixture splits the ID-ness scores of pools that hold no OOD items on some seeds
    (one population is rarely two clean Gaussians), and every item it then pushes back is an ID
    item lost. The bought items the annotators answered "not in the label set"
    (``signals.n_rejected_labeled``) are direct evidence: the gate is warranted when they are at
    least ``min_share`` of the items bought (``min_share = 0``: always). When the workflow cannot
    tell (``None``), the mixture alone decides, as it always did.

    Returns
    -------
    warranted : bool
    info : ``ood_reports`` (count or None), ``ood_report_share`` and ``min_ood_share``.
    """
    n_rej = signals.n_rejected_labeled
    if n_rej is None:
        return True, {"ood_reports": None, "min_ood_share": min_share}
    share = n_rej / max(n_rej + signals.n_labeled, 1)
    info = {"ood_reports": int(n_rej), "ood_report_share": share, "min_ood_share": min_share}
    return share >= min_share, info


def gate_id_needs(scores: Sequence[str]) -> tuple[str, ...]:
    """Signals the P(ID) estimate needs for the given ID-ness ``scores``."""
    needs = ("features_pool", "features_labeled", "labels_labeled")
    return (*needs, "logits_pool") if "energy" in scores else needs


class OODGate(WrapsBase, Strategy):
    """A base strategy restricted to (or weighted by) the pool items likely in distribution.

    Parameters
    ----------
    base : str or Strategy
        The new-item strategy (registered name or instance).
    threshold : float
        Items with P(ID) below it are dropped (``mode="drop"``), in [0, 1].
    mode : {"drop", "weight"}
    min_ood_share : float
        The gate acts only when at least this share of the bought items were answered "not in
        the label set" (:func:`ood_reported`), in [0, 1]; otherwise the base picks from the whole
        pool. 0: always; without the ``n_rejected_labeled`` signal the gate always acts.
    ood_scores : sequence of {"energy", "class_mean", "knn"}
        ID-ness scores combined into P(ID); ``energy`` needs ``logits_pool``.
    combine : {"rank", "z"}
        How the ID-ness scores are averaged.
    n_neighbors : int
        Neighbour whose distance the ``knn`` score measures.
    base_params : dict
        Parameters of the base when ``base`` is a name.
    """

    name = "ood_gate"
    needs = ("features_pool", "features_labeled", "labels_labeled", "logits_pool")

    def __init__(
        self,
        base: str | Strategy = "margin",
        threshold: float = 0.5,
        mode: str = "drop",
        min_ood_share: float = 0.01,
        ood_scores: Sequence[str] = ("energy", "class_mean", "knn"),
        combine: str = "z",
        n_neighbors: int = 10,
        base_params: dict[str, Any] | None = None,
    ) -> None:
        self._base = build_base(base, base_params, self.name)
        if isinstance(self._base, RelabelAwareStrategy):
            raise ValueError(f"`base` must pick new items only; {self._base.name!r} relabels")
        self.threshold = check_float(threshold, "threshold", low=0.0, high=1.0)
        self.mode = check_choice(mode, "mode", MODES)
        self.min_ood_share = check_float(min_ood_share, "min_ood_share", low=0.0, high=1.0)
        self.ood_scores = check_id_scores(ood_scores)
        self.combine = check_choice(combine, "combine", COMBINE)
        self.n_neighbors = check_int(n_neighbors, "n_neighbors")
        self.stochastic = self._base.stochastic
        self._record_base()

    def _own_needs(self) -> tuple[str, ...]:
        return gate_id_needs(self.ood_scores)

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        warranted, evidence = ood_reported(signals, self.min_ood_share)
        info: dict[str, Any] = {
            "base": self._base.name,
            "mode": self.mode,
            "ood_evidence": evidence,
        }
        if not warranted:
            sel = self._base.select(signals, k, rng)
            return Selection(sel.indices, sel.scores, {**info, "base_info": sel.info})
        est = estimate_id(
            signals, self.ood_scores, self.combine, self.n_neighbors, evidence=evidence
        )
        p_id = est.p_id
        info["id_mixture"] = est.info
        if self.mode == "weight":
            n = p_id.size
            order = self._base.select(signals, n, rng).indices
            rank_value = np.empty(n)
            rank_value[order] = 1.0 - np.arange(n) / n
            value = rank_value * p_id
            idx = top_k(value, k)
            return Selection(idx, value[idx], info)
        keep = np.flatnonzero(p_id >= self.threshold)
        n_base = min(k, keep.size)
        info.update(n_kept=int(keep.size), n_filled=int(k - n_base))
        picks = np.zeros(0, dtype=np.int64)
        scores = None
        if n_base:
            base_sel = self._base.select(subset_pool(signals, keep), n_base, rng)
            picks = keep[base_sel.indices]
            scores = base_sel.scores
        if n_base < k:  # too few likely-ID items: the most ID-like of the rest complete the batch
            rest = np.setdiff1d(np.arange(p_id.size), keep)
            picks = np.concatenate([picks, rest[top_k(p_id[rest], k - n_base)]])
            scores = None
        return Selection(picks, scores, info)


def with_ood_gate(
    strategy: Strategy | str, threshold: float = 0.5, mode: str = "drop", **base_params: Any
) -> OODGate:
    """Wrap a new-item strategy so that it picks only among the likely in-distribution items."""
    return OODGate(strategy, threshold=threshold, mode=mode, base_params=base_params or None)
