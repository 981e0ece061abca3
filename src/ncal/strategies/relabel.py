"""Relabel-aware selection: a budget of ``k`` annotations split between new pool items and labeled
items to annotate again.

* :class:`RelabelAwareStrategy` — base class of strategies whose :class:`~ncal.signals.Selection`
  holds ``relabel`` (rows of the labeled set) besides ``indices`` (pool items); it checks that the
  two parts are distinct, in range and add up to ``k`` annotations. A labeled item is relabeled at
  most once per round, so at most ``n_pool + n_labeled`` annotations are bought.
* ``relabel`` (:class:`RelabelShare`, or :func:`with_relabel`) — gives any new-item strategy a
  relabel share: ``round(share·k)`` annotations go to the labeled items whose consensus is weakest
  (:func:`consensus_weakness`), the rest to the base strategy's top picks. Usage:
  ``get("relabel", base="margin", share=0.3)`` or ``with_relabel(get("margin"), share=0.3)``, in the
  manner of the ``diverse`` wrapper (:mod:`ncal.strategies.diversity`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._wrap import WrapsBase, build_base
from .base import Selection, Signals, Strategy
from .selection import top_k


def vote_matrix(annotations: np.ndarray, num_classes: int) -> np.ndarray:
    """``(N_L, C)`` vote counts from an ``(N_L, M)`` annotation matrix (``-1`` = no label)."""
    a = np.asarray(annotations)
    if a.ndim != 2:
        raise ValueError(f"`annotations_labeled` must be 2-D (N_L, M); got shape {a.shape}")
    a = a.astype(np.int64)
    if a.size and a.max() >= num_classes:
        raise ValueError(
            f"`annotations_labeled` holds label {a.max()} outside [0, num_classes={num_classes})"
        )
    votes = np.zeros((a.shape[0], num_classes), dtype=np.float64)
    rows, cols = np.nonzero(a >= 0)
    np.add.at(votes, (rows, a[rows, cols]), 1.0)
    return votes


def consensus_weakness(annotations: np.ndarray, probs_oof: np.ndarray) -> np.ndarray:
    """How weak each labeled item's consensus is once the out-of-fold model joins as one voter.

    ``weakness_i = 1 - max_c (votes_ic + p_ic) / (n_i + 1)`` with ``votes`` the item's annotation
    counts, ``n_i`` their total and ``p`` the out-of-fold probabilities. One annotation the model
    contradicts (p = 0.9 elsewhere) scores 0.45; three agreeing annotations against the same model
    0.225; one annotation the model backs with 0.9 scores 0.05. Items without an in-set annotation
    score 0 (nothing to settle).
    """
    p = np.asarray(probs_oof, dtype=np.float64)
    votes = vote_matrix(annotations, p.shape[1])
    if p.ndim != 2 or p.shape[0] != votes.shape[0]:
        raise ValueError(f"`probs_labeled_oof` must be ({votes.shape[0]}, C); got shape {p.shape}")
    n = votes.sum(axis=1)
    strength = (votes + p).max(axis=1) / (n + 1.0)
    return np.where(n > 0, 1.0 - strength, 0.0)


def check_share(share: Any) -> float:
    """``share`` as a float in [0, 1], or raise naming it."""
    if isinstance(share, bool) or not isinstance(share, (int, float, np.integer, np.floating)):
        raise TypeError(f"`share` must be a number in [0, 1]; got {type(share).__name__}")
    if not (0.0 <= float(share) <= 1.0):
        raise ValueError(f"`share` must be in [0, 1]; got {share!r}")
    return float(share)


class RelabelAwareStrategy(Strategy):
    """Base class: ``_select`` returns new pool items in ``indices`` and labeled-set rows in
    ``relabel``; together exactly ``min(k, n_pool + n_labeled)`` annotations."""

    def select(self, signals: Signals, k: int, rng: np.random.Generator | None = None) -> Selection:
        """Spend ``k`` annotations on new pool items and relabels of labeled items."""
        k, rng = self._check_call(signals, k, rng)
        n_pool, n_lab = signals.n_pool, signals.n_labeled
        k = min(k, n_pool + n_lab)
        if k == 0:
            empty = np.zeros(0, dtype=np.int64)
            return Selection(empty, np.zeros(0), relabel=empty)
        sel = self._select(signals, k, rng)
        new = np.asarray(sel.indices, dtype=np.int64)
        rel = np.asarray(sel.relabel if sel.relabel is not None else [], dtype=np.int64)
        for arr, n, what in ((new, n_pool, "indices"), (rel, n_lab, "relabel")):
            if (
                arr.ndim != 1
                or len(np.unique(arr)) != arr.size
                or (arr.size and (arr.min() < 0 or arr.max() >= n))
            ):
                raise RuntimeError(f"`{self.name}` returned invalid `{what}` (bug): {arr[:10]}")
        if new.size + rel.size != k:
            raise RuntimeError(
                f"`{self.name}` bought {new.size + rel.size} annotations instead of {k} (bug)"
            )
        return Selection(new, sel.scores, sel.info, rel)


def split_budget(k: int, n_relabel_wanted: int, n_pool: int, n_labeled: int) -> tuple[int, int]:
    """``(new, relabel)`` counts summing to ``k`` (``k <= n_pool + n_labeled``): the wanted
    relabel count capped by the labeled set, any shortfall of either side moved to the other."""
    relabel = min(n_relabel_wanted, n_labeled)
    new = min(k - relabel, n_pool)
    return new, k - new


class RelabelShare(WrapsBase, RelabelAwareStrategy):
    """A new-item strategy with a share of its budget spent relabeling the weakest labels.

    ``round(share·k)`` annotations relabel the labeled items with the largest
    :func:`consensus_weakness` (ties to the lower row); the remaining ones are the base strategy's
    picks from the pool. When one side runs out of items the other takes the rest.

    Parameters
    ----------
    base : str or Strategy
        The new-item strategy (registered name or instance).
    share : float
        Fraction of the annotations spent on relabels, in [0, 1].
    base_params : dict
        Parameters of the base when ``base`` is a name.
    """

    name = "relabel"
    needs = ("annotations_labeled", "probs_labeled_oof")

    def __init__(
        self,
        base: str | Strategy = "margin",
        share: float = 0.3,
        base_params: dict[str, Any] | None = None,
    ) -> None:
        self._base = build_base(base, base_params, self.name)
        if isinstance(self._base, RelabelAwareStrategy):
            raise ValueError(f"`base` must pick new items only; {self._base.name!r} relabels")
        self.share = check_share(share)
        self.stochastic = self._base.stochastic
        self._record_base()

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        n_new, n_rel = split_budget(k, round(self.share * k), signals.n_pool, signals.n_labeled)
        weakness = consensus_weakness(signals.annotations_labeled, signals.probs_labeled_oof)
        relabel = top_k(weakness, n_rel) if n_rel else np.zeros(0, dtype=np.int64)
        base_sel = self._base.select(signals, n_new, rng)
        info = {
            "base": self._base.name,
            "n_new": int(n_new),
            "n_relabel": int(n_rel),
            "relabel_weakness": weakness[relabel].tolist(),
        }
        return Selection(base_sel.indices, base_sel.scores, info, relabel)


def with_relabel(strategy: Strategy | str, share: float = 0.3, **base_params: Any) -> RelabelShare:
    """Wrap a new-item strategy so that ``share`` of every batch relabels weak labels."""
    return RelabelShare(strategy, share=share, base_params=base_params or None)
