"""The strategy registry: a static catalog, so that listing strategies imports no strategy module.

Each strategy lives in its own module, and some of those need torch at selection time. The catalog
below names, for every built-in strategy, the class that implements it, the signals it needs and the
one-line description ``ncal strategies`` shows, so :func:`available` and :func:`info` import nothing;
:func:`strategy_class` imports only the one module it is asked for. A test
(``tests/test_strategy_registry.py``) imports every module and checks that the catalog equals what
the modules register, so the catalog cannot go stale.

Subclasses of :class:`ncal.strategies.Strategy` defined elsewhere (a user's own strategy) register
themselves by ``name`` when their class is created and are then known as well.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

# Classes are typed as plain `type` here: importing `.base`, even for type checking only, would make
# the registry and the base class import each other.


@dataclass(frozen=True)
class StrategyInfo:
    """What is known about a strategy without importing it.

    Attributes
    ----------
    name : str
        Registry name (``get(name)``).
    target : str
        ``"module:Class"``, the module relative to :mod:`ncal.strategies`.
    needs : tuple of str
        Signal names the strategy needs with its default parameters.
    summary : str
        One-line description (the first line of the class docstring).
    """

    name: str
    target: str
    needs: tuple[str, ...]
    summary: str


_FEATURES = ("features_pool", "features_labeled")
_CMAP_NEEDS = ("probs_pool", "features_pool", "features_labeled", "labels_labeled")

_CATALOG: dict[str, StrategyInfo] = {
    info.name: info
    for info in (
        StrategyInfo(
            "activelab",
            "activelab:ActiveLab",
            ("probs_pool", "annotations_labeled", "probs_labeled_oof"),
            "ActiveLab: one annotation for each of the k lowest-scored items, labeled or new.",
        ),
        StrategyInfo(
            "badge",
            "badge:Badge",
            ("features_pool", "probs_pool"),
            "BADGE: uncertainty and diversity through k-means++ on gradient embeddings.",
        ),
        StrategyInfo(
            "bait",
            "bait:Bait",
            ("features_pool", "probs_pool", "features_labeled", "probs_labeled"),
            "BAIT with float64 Woodbury updates, PCA-reduced features and a candidate prefilter.",
        ),
        StrategyInfo(
            "bald",
            "bald:Bald",
            ("mc_probs_pool",),
            "Select the top-k pool samples by BALD (ties to the lower index).",
        ),
        StrategyInfo(
            "cdal",
            "cdal:ContextualDiversity",
            ("probs_pool", "probs_labeled"),
            "CDAL-CS: k-center greedy on softmax vectors under the symmetric KL divergence.",
        ),
        StrategyInfo(
            "cmap",
            "ncal_r:CMAPOnly",
            _CMAP_NEEDS,
            "Ablation: select by oriented CMAP alone.",
        ),
        StrategyInfo(
            "coreset",
            "coreset:CoreSet",
            _FEATURES,
            "k-center greedy selection on ``features_pool`` initialised from ``features_labeled``.",
        ),
        StrategyInfo(
            "diverse",
            "diversity:DiverseStrategy",
            ("features_pool",),
            "Top-m of a base strategy, reduced to k by k-center greedy or k-means++ on the features.",
        ),
        StrategyInfo(
            "eaoa",
            "eaoa:EAOA",
            ("logits_pool", "features_pool", "features_labeled", "labels_labeled"),
            "EAOA: low epistemic (energy + kNN-vote energy, via P(ID)), then high aleatoric "
            "uncertainty.",
        ),
        StrategyInfo(
            "entropy",
            "uncertainty:EntropySampling",
            ("probs_pool",),
            "Select the samples with the highest predictive entropy.",
        ),
        StrategyInfo(
            "ff",
            "ncal_r:FFOnly",
            ("ff_counts",),
            "Ablation: select by feature fluctuation alone (ties to the lower pool index).",
        ),
        StrategyInfo(
            "good_random",
            "good_random:GoodRandom",
            ("annotations_labeled",),
            "Uniformly random picks among the items with the fewest annotations, tier by tier.",
        ),
        StrategyInfo(
            "label_cleaning",
            "label_cleaning:LabelCleaning",
            ("annotations_labeled", "probs_labeled_oof"),
            "Relabel the labeled items with the highest ``H(q, p) - H(p)``.",
        ),
        StrategyInfo(
            "least_confidence",
            "uncertainty:LeastConfidence",
            ("probs_pool",),
            "Select the samples whose most likely class has the lowest probability.",
        ),
        StrategyInfo(
            "margin",
            "uncertainty:MarginSampling",
            ("probs_pool",),
            "Select the samples with the smallest gap between the top two class probabilities.",
        ),
        StrategyInfo(
            "ncal_r",
            "ncal_r:NCALR",
            (*_CMAP_NEEDS, "ff_counts"),
            "NCAL-R: average of the z-scored class-mean alignment perturbation and feature "
            "fluctuation.",
        ),
        StrategyInfo(
            "ncal_plus",
            "ncal_plus:NCALPlus",
            (*_CMAP_NEEDS, "ff_counts", "logits_pool", "annotations_labeled", "probs_labeled_oof"),
            "NCAL-R+: NCAL-R with an OOD gate, an annotator-reliability discount and relabel-or-new.",
        ),
        StrategyInfo(
            "ood_gate",
            "ood_gate:OODGate",
            ("features_pool", "features_labeled", "labels_labeled", "logits_pool"),
            "A base strategy restricted to (or weighted by) the pool items likely in distribution.",
        ),
        StrategyInfo(
            "probcover",
            "probcover:ProbCover",
            _FEATURES,
            "ProbCover with a blocked sparse δ-ball graph and incremental degree updates.",
        ),
        StrategyInfo(
            "random",
            "random:RandomSampling",
            (),
            "Draw ``k`` pool samples uniformly without replacement from the strategy's own ``rng``.",
        ),
        StrategyInfo(
            "relabel",
            "relabel:RelabelShare",
            ("annotations_labeled", "probs_labeled_oof"),
            "A new-item strategy with a share of its budget spent relabeling the weakest labels.",
        ),
        StrategyInfo(
            "sisom_proxy",
            "sisom_proxy:SisomProxy",
            ("features_pool", "probs_pool", "features_labeled", "labels_labeled"),
            "Stand-in for SISOM/SISOMe (see the module docstring for exactly what it computes).",
        ),
        StrategyInfo(
            "typiclust",
            "typiclust:TypiClust",
            _FEATURES,
            "TypiClust on the penultimate features of L ∪ U (fixed self-supervised features in the "
            "paper).",
        ),
    )
}

# Classes registered by `Strategy.__init_subclass__`: built-ins once their module is imported, and
# strategies defined outside this package.
_REGISTERED: dict[str, type] = {}


def register(cls: type) -> None:
    """Record ``cls`` under ``cls.name`` (called when a named Strategy subclass is created).

    Raises
    ------
    ValueError
        When ``cls.name`` is a built-in name that the catalog assigns to another class.
    """
    entry = _CATALOG.get(cls.name)
    if entry is not None:
        module, _, qualname = entry.target.partition(":")
        if (cls.__module__, cls.__qualname__) != (f"{__package__}.{module}", qualname):
            raise ValueError(
                f"strategy name {cls.name!r} belongs to the built-in {entry.target}; "
                f"choose another `name` for {cls.__module__}.{cls.__qualname__}"
            )
    _REGISTERED[cls.name] = cls


def available() -> list[str]:
    """Names of all known strategies, sorted (imports no strategy module)."""
    return sorted(set(_CATALOG) | set(_REGISTERED))


def _unknown(name: Any) -> ValueError:
    return ValueError(f"unknown strategy {name!r}; known strategies: {', '.join(available())}")


def info(name: str) -> StrategyInfo:
    """Name, class, needed signals and one-line description of a strategy, without importing it."""
    if name in _CATALOG:
        return _CATALOG[name]
    if name in _REGISTERED:
        cls = _REGISTERED[name]
        doc = (cls.__doc__ or "").strip().splitlines()
        return StrategyInfo(
            name, f"{cls.__module__}:{cls.__qualname__}", tuple(cls.needs), doc[0] if doc else ""
        )
    raise _unknown(name)


def strategy_class(name: str) -> type:
    """The class registered under ``name``; imports its module (only that one) when needed."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _CATALOG:
        raise _unknown(name)
    module, _, qualname = _CATALOG[name].target.partition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), qualname)


def get(name: str, **params: Any) -> Any:
    """Build a strategy (a :class:`ncal.strategies.Strategy`) by name.

    Example: ``get("ncal_r", direction="low")``.
    """
    return strategy_class(name)(**params)
