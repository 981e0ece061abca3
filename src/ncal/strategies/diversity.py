"""Optional diversity post-processing for score-based strategies (off unless asked for).

``diverse`` takes the top ``top_m`` (default ``10·k``) pool samples of a base strategy (its
canonical top-k order) and reduces them to ``k`` with

* ``method="kcenter"``: k-center greedy on ``features_pool`` among the candidates, initialised from
the
  labeled set's features when ``features_labeled`` is given (otherwise from the base's best-scored
  candidate); deterministic, ties to the better-ranked candidate;
* ``method="kmeanspp"``: k-means++ seeding on the candidates' features, first center the base's
  best-scored candidate, then ``D²`` sampling from ``rng``.

Usage: ``get("diverse", base="entropy", method="kcenter", top_m=2000)`` or
``with_diversity(get("margin"), method="kmeanspp")``. Every parameter (including the base's) is
recorded by ``params()``.

References
----------
Sener & Savarese, ICLR 2018 (k-center greedy); Arthur & Vassilvitskii, SODA 2007 (k-means++). The
"top-m by uncertainty, then diversify" scheme is the usual "ranked batch / filtered diversity"
recipe, e.g. Zhdanov, "Diverse mini-batch active learning", arXiv:1901.05954, 2019.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._utils.validation import as_float_matrix, check_choice
from ._checks import check_device, check_int
from ._wrap import WrapsBase, build_base
from .base import Selection, Signals, Strategy

METHODS = ("kcenter", "kmeanspp")


class DiverseStrategy(WrapsBase, Strategy):
    """Top-m of a base strategy, reduced to k by k-center greedy or k-means++ on the features.

    Parameters
    ----------
    base : str or Strategy
        Base strategy (its registered name, or an instance); it should rank by a score.
    method : {"kcenter", "kmeanspp"}
    top_m : int or None
        Number of base candidates (default ``10·k``; at least ``k`` are used).
    base_params : dict
        Parameters of the base when ``base`` is a name (recorded: all the base's parameters).
    device : str
        Where the distances are computed.
    """

    name = "diverse"
    needs = ("features_pool",)

    def __init__(
        self,
        base: str | Strategy = "entropy",
        method: str = "kcenter",
        top_m: int | None = None,
        base_params: dict[str, Any] | None = None,
        device: str = "cpu",
    ) -> None:
        self._base = build_base(base, base_params, self.name)
        self.method = check_choice(method, "method", METHODS)
        self.top_m = check_int(top_m, "top_m", allow_none=True)
        self.device = check_device(device)
        self.stochastic = self._base.stochastic or self.method == "kmeanspp"
        self._record_base()

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        import torch

        from .._utils.torch import resolve_device
        from . import _kernels as K  # torch, only when selecting

        n = signals.n_pool
        m = min(n, max(k, 10 * k if self.top_m is None else self.top_m))
        base_sel = self._base.select(signals, m, rng)
        cand = np.asarray(base_sel.indices, dtype=np.int64)
        fp = np.asarray(signals.features_pool)
        if fp.ndim != 2 or fp.shape[0] != n:
            raise ValueError(f"`features_pool` must be a 2-D array with {n} rows; got {fp.shape}")
        x = as_float_matrix(fp[cand], "features_pool")  # only the candidates' rows are needed
        dev = resolve_device(self.device)
        if self.method == "kcenter":
            space = K.PairSpace.euclidean(x, dev)
            fl = signals.features_labeled
            init = None
            if fl is not None and np.asarray(fl).shape[0]:
                init = K.PairSpace.euclidean(as_float_matrix(fl, "features_labeled"), dev)
            # without a labeled set, start from the best-ranked candidate rather than a random one
            local, d2 = K.kcenter_greedy(space, k, init=init, rng=rng, first=0)
            dist = np.sqrt(d2)
        else:
            ones = torch.ones(len(cand), 1, dtype=torch.float64, device=dev)
            local, dist = K.kmeanspp_kronecker(
                ones, K.as_tensor(x, dev, torch.float64), k, rng, first=0
            )
        info = {"base": self._base.name, "candidates": int(m), "method": self.method}
        return Selection(cand[local], dist, info)


def with_diversity(
    strategy: Strategy | str,
    method: str = "kcenter",
    top_m: int | None = None,
    **base_params: Any,
) -> DiverseStrategy:
    """Wrap a score-based strategy: its top ``top_m`` candidates, reduced to k by ``method``."""
    return DiverseStrategy(strategy, method=method, top_m=top_m, base_params=base_params or None)
