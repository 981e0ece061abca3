"""The seam between training and selection: :class:`Signals` in, :class:`Selection` out.

A strategy never trains and never touches a model: it declares the signals it needs and receives them
as arrays in one :class:`Signals`. The training layer (or the user's own loop) fills them in. Both
layers import this module; it depends on numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ._utils.validation import as_float_matrix

SIGNAL_NAMES = (
    "probs_pool",
    "logits_pool",
    "features_pool",
    "features_labeled",
    "labels_labeled",
    "probs_labeled",
    "ff_counts",
    "mc_probs_pool",
    "num_classes",
    "annotations_labeled",
    "probs_labeled_oof",
)


@dataclass
class Signals:
    """Arrays a strategy may need; every ``*_pool`` array has one row per pool sample, in pool order.

    Attributes
    ----------
    probs_pool : (N, C) softmax probabilities of the round's final model.
    logits_pool : (N, C) logits of the same model.
    features_pool : (N, d) penultimate features of the pool.
    features_labeled : (N_L, d) penultimate features of the labeled set (same model).
    labels_labeled : (N_L,) the given (possibly noisy) labels of the labeled set.
    probs_labeled : (N_L, C) probabilities of the labeled set (CDAL, BAIT).
    ff_counts : (N,) feature-fluctuation flip counts over the terminal-phase window.
    mc_probs_pool : (T, N, C) MC-dropout probabilities (BALD).
    num_classes : number of classes C.
    annotations_labeled : (N_L, M) int labels of the labeled set per annotator, ``-1`` where
        annotator ``m`` gave no label (or answered "not in the label set"); rows in the order of
        ``labels_labeled``. The ``labels_multiannotator`` format of cleanlab's multi-annotator
        functions, read by relabel-aware strategies.
    probs_labeled_oof : (N_L, C) out-of-sample probabilities of the labeled set: each row from a
        model that did not train on that item (cross-validated), as ActiveLab requires.
    """

    probs_pool: np.ndarray | None = None
    logits_pool: np.ndarray | None = None
    features_pool: np.ndarray | None = None
    features_labeled: np.ndarray | None = None
    labels_labeled: np.ndarray | None = None
    probs_labeled: np.ndarray | None = None
    ff_counts: np.ndarray | None = None
    mc_probs_pool: np.ndarray | None = None
    num_classes: int | None = None
    annotations_labeled: np.ndarray | None = None
    probs_labeled_oof: np.ndarray | None = None

    @property
    def n_pool(self) -> int:
        """Number of pool samples, read from the first pool-aligned signal present."""
        for name in ("probs_pool", "logits_pool", "features_pool", "ff_counts"):
            arr = getattr(self, name)
            if arr is not None:
                return int(np.shape(arr)[0])
        if self.mc_probs_pool is not None:
            return int(np.shape(self.mc_probs_pool)[1])
        raise ValueError("`signals` holds no pool-aligned array; cannot tell the pool size")

    def probabilities(self) -> np.ndarray:
        """Pool probabilities in float64: from ``logits_pool`` via log-softmax when present."""
        if self.logits_pool is not None:
            z = as_float_matrix(self.logits_pool, "logits_pool")
            z = z - z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return np.exp(logp)
        return as_float_matrix(self.probs_pool, "probs_pool")

    def log_probabilities(self) -> np.ndarray:
        """Pool log-probabilities in float64 (from logits when present; never ``log`` of exact zeros)."""
        if self.logits_pool is not None:
            z = as_float_matrix(self.logits_pool, "logits_pool")
            z = z - z.max(axis=1, keepdims=True)
            return z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        p = as_float_matrix(self.probs_pool, "probs_pool")
        with np.errstate(divide="ignore"):
            return np.log(np.clip(p, 1e-300, None))

    def predictions(self, block: int = 65536) -> np.ndarray:
        """Predicted class of every pool sample (argmax of logits or probabilities), computed in row
        blocks so that a large pool is never copied to float64."""
        src = self.logits_pool if self.logits_pool is not None else self.probs_pool
        if src is None:
            raise ValueError("predictions need `logits_pool` or `probs_pool`")
        if np.ndim(src) != 2:
            raise ValueError(f"`probs_pool`/`logits_pool` must be 2-D; got shape {np.shape(src)}")
        out = np.empty(len(src), dtype=np.int64)
        for start in range(0, len(src), block):
            chunk = np.asarray(src[start : start + block])
            if not np.isfinite(chunk).all():
                raise ValueError("`probs_pool`/`logits_pool` contains NaN or inf values")
            out[start : start + block] = chunk.argmax(axis=1)
        return out

    @property
    def n_labeled(self) -> int:
        """Number of labeled items, read from the first labeled-set signal present (0 if none)."""
        for name in (
            "labels_labeled", "annotations_labeled", "probs_labeled_oof", "probs_labeled",
            "features_labeled",
        ):  # fmt: skip
            arr = getattr(self, name)
            if arr is not None:
                return int(np.shape(arr)[0])
        return 0

    def present(self) -> set[str]:
        return {f.name for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class Selection:
    """What to annotate next: new pool items and, for relabel-aware strategies, labeled items to
    annotate again.

    Attributes
    ----------
    indices : (k_new,) int64 indices into the pool, in pick order.
    scores : the score of every pick in ``indices`` where the strategy scores, else None.
    info : strategy-specific details (recorded).
    relabel : (k_relabel,) int64 indices into the LABELED set (rows of ``labels_labeled`` /
        ``annotations_labeled``), in pick order, or None. Each costs one annotation, like a new
        item: the round's budget ``k`` counts annotations, ``n_annotations == k``.
    """

    indices: np.ndarray
    scores: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    relabel: np.ndarray | None = None

    @property
    def n_annotations(self) -> int:
        """Annotations this selection buys: new items plus relabels."""
        n_relabel = 0 if self.relabel is None else int(np.size(self.relabel))
        return int(np.size(self.indices)) + n_relabel
