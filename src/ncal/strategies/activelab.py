"""ActiveLab (Goh & Mueller 2023): relabel or label new on one scale.

Scores come from cleanlab's own ``cleanlab.multiannotator.get_active_learning_scores``: for labeled
items a CROWDLAB-style quality of their consensus (annotations weighted by estimated annotator
quality, plus the out-of-sample model as one more voter), for pool items the model's confidence
weighted like a single annotator. Lower means less certain about the true label, so one more
annotation is worth more; the ``k`` lowest over both sets are bought.

cleanlab is optional (the extra ``annotators`` installs it: ``pip install 'ncal[annotators]'``) and
is imported only when selecting.
Labeled items without an in-set annotation (all ``-1``: the annotator said "not in the label
set") are left out, since the function needs at least one label per row.

References
----------
H. W. Goh and J. Mueller, "ActiveLab: Active Learning with Re-Labeling by Multiple Annotators",
ICLR 2023 Workshop on Trustworthy ML, arXiv:2301.11856.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Selection, Signals
from .relabel import RelabelAwareStrategy


def _cleanlab_multiannotator() -> Any:
    try:
        from cleanlab import multiannotator
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the `activelab` strategy needs the optional package `cleanlab`: "
            "pip install 'ncal[annotators]' (or pip install cleanlab)"
        ) from e
    return multiannotator


def activelab_scores(
    annotations_labeled: np.ndarray, probs_labeled_oof: np.ndarray, probs_pool: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's ActiveLab scores of the labeled items and the pool items (lower = ask first).

    Parameters
    ----------
    annotations_labeled : (N_L, M) int, ``-1`` where missing.
    probs_labeled_oof : (N_L, C) out-of-sample probabilities of the labeled items.
    probs_pool : (N, C) probabilities of the pool items.

    Returns
    -------
    labeled : (N_L,) scores, NaN for items without any in-set annotation.
    pool : (N,) scores.
    """
    ml = _cleanlab_multiannotator()
    ann = np.asarray(annotations_labeled)
    if ann.ndim != 2:
        raise ValueError(f"`annotations_labeled` must be 2-D (N_L, M); got shape {ann.shape}")
    has_label = (ann >= 0).any(axis=1)
    multi = np.where(ann >= 0, ann, np.nan).astype(np.float64)[has_label]
    p_lab = np.asarray(probs_labeled_oof, dtype=np.float64)[has_label]
    p_pool = np.asarray(probs_pool, dtype=np.float64)
    labeled = np.full(ann.shape[0], np.nan)
    if multi.shape[0]:
        sc_lab, sc_pool = ml.get_active_learning_scores(multi, p_lab, p_pool)
        labeled[has_label] = sc_lab
    else:
        _, sc_pool = ml.get_active_learning_scores(None, None, p_pool)
    return labeled, np.asarray(sc_pool, dtype=np.float64)


class ActiveLab(RelabelAwareStrategy):
    """ActiveLab: one annotation for each of the k lowest-scored items, labeled or new.

    Labeled items are relabeled, pool items labeled for the first time; ties go to the pool, then
    to the lower index.
    """

    name = "activelab"
    needs = ("probs_pool", "annotations_labeled", "probs_labeled_oof")

    def _select(self, signals: Signals, k: int, rng: np.random.Generator) -> Selection:
        lab, pool = activelab_scores(
            signals.annotations_labeled, signals.probs_labeled_oof, signals.probabilities()
        )
        n_pool = pool.size
        scores = np.concatenate([pool, np.where(np.isnan(lab), np.inf, lab)])
        order = np.lexsort((np.arange(scores.size), scores))[:k]
        new = order[order < n_pool]
        relabel = order[order >= n_pool] - n_pool
        info = {"n_new": int(new.size), "n_relabel": int(relabel.size)}
        return Selection(new, pool[new], info, relabel.astype(np.int64))
