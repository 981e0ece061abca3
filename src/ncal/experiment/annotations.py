"""Annotations in the simulated loop: who answered what, and the labels a round trains on.

A run buys annotations, not items. Every annotation is one ``(item, annotator, label)`` entry of
the :class:`AnnotationLog`, in the order bought: first the initial set, then each round's batch
(new pool items, then relabels of labeled items). Two sources answer requests:

* :class:`OracleAnnotators` — a run without ``annotators``: the ``noise`` oracle is annotator 0 and
  its answers are fixed, so each item's label is its one annotation (as before annotators existed).
* :class:`PoolAnnotators` — the run's :class:`~ncal.data.annotators.AnnotatorPool`.

:func:`round_labels` turns the log into one label per labeled item: the single annotation (the
latest, should the oracle be asked again) without annotators, else the consensus of
:func:`ncal.consensus.consensus_labels` over the latest annotation of every (item, annotator)
pair. ``-1`` ("not in the label set": OOD items) is never trained on.

The log is stored in the round records (``initial_annotations`` in round 0, ``batch_annotations``
in every round that buys); a resume asks the source again in the same order, which rebuilds the
pool's per-item request counts, and checks the answers against the stored ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..consensus import annotation_matrix, consensus_labels, latest_per_pair
from ..errors import NcalError
from .problem import Problem, query


@dataclass
class AnnotationLog:
    """Every annotation bought so far, in purchase order (three aligned int64 vectors)."""

    items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    annotators: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.items.size)

    def extend(self, items: np.ndarray, annotators: np.ndarray, labels: np.ndarray) -> None:
        """Append annotations (aligned vectors)."""
        self.items = np.concatenate([self.items, np.asarray(items, dtype=np.int64)])
        self.annotators = np.concatenate([self.annotators, np.asarray(annotators, dtype=np.int64)])
        self.labels = np.concatenate([self.labels, np.asarray(labels, dtype=np.int64)])


def log_record(items: np.ndarray, annotators: np.ndarray, labels: np.ndarray) -> dict[str, list]:
    """The JSON form of some annotations: ``{"item": [...], "annotator": [...], "label": [...]}``."""
    return {
        "item": np.asarray(items).tolist(),
        "annotator": np.asarray(annotators).tolist(),
        "label": np.asarray(labels).tolist(),
    }


class OracleAnnotators:
    """The single ``noise`` oracle as annotator 0 (fixed answers; OOD items answer -1)."""

    n_annotators = 1

    def __init__(self, problem: Problem) -> None:
        self._problem = problem

    def annotate(self, items: np.ndarray, round_: int) -> tuple[np.ndarray, np.ndarray]:
        """``(annotator ids, labels)`` for ``items``, asked in round ``round_``."""
        labels = query(self._problem, items, round_)
        return np.zeros(labels.size, dtype=np.int64), labels


class PoolAnnotators:
    """The run's annotator pool; each request goes to the annotator its assignment rule names."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self.n_annotators = int(pool.n_annotators)

    def annotate(self, items: np.ndarray, round_: int) -> tuple[np.ndarray, np.ndarray]:
        """``(annotator ids, labels)`` for ``items`` (the pool's answers do not depend on the
        round, only on how often each item was asked before)."""
        return self._pool.annotate(np.asarray(items, dtype=np.int64))


def annotator_source(problem: Problem) -> OracleAnnotators | PoolAnnotators:
    """The pool of the problem when it has one, else its oracle."""
    if problem.annotator_pool is not None:
        return PoolAnnotators(problem.annotator_pool)
    return OracleAnnotators(problem)


def buy(
    source: OracleAnnotators | PoolAnnotators,
    log: AnnotationLog,
    items: np.ndarray,
    round_: int,
    stored: dict[str, list] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One annotation per entry of ``items``, appended to ``log``.

    ``stored`` (a resume): the record of the same purchase from ``rounds.jsonl``; the answers must
    equal it, else the run directory does not belong to these settings.
    """
    items = np.asarray(items, dtype=np.int64)
    annotators, labels = source.annotate(items, round_)
    if stored is not None and stored != log_record(items, annotators, labels):
        raise NcalError(
            f"round {round_}: the annotations stored in rounds.jsonl differ from the annotators' "
            "answers now (a run of other settings or code?); use another output directory"
        )
    log.extend(items, annotators, labels)
    return annotators, labels


@dataclass(frozen=True)
class RoundLabels:
    """One label per labeled item, and how it was reached.

    Attributes
    ----------
    labels : (N_L,) int64 label per labeled item (order of ``labeled``); -1 = not trained on.
    method : ``"majority"`` or ``"ds"``; None without annotators (each item's one annotation).
    fallback_reason : why ``consensus: auto`` used the majority vote (None otherwise).
    reliability : per-annotator reliability estimate, or None without annotators.
    """

    labels: np.ndarray
    method: str | None = None
    fallback_reason: str | None = None
    reliability: np.ndarray | None = None


def _rows(labeled: np.ndarray, items: np.ndarray, n_pool: int) -> np.ndarray:
    """Position of each of ``items`` in ``labeled``."""
    row_of = np.full(n_pool, -1, dtype=np.int64)
    row_of[labeled] = np.arange(labeled.size)
    rows = row_of[items]
    if (rows < 0).any():
        raise NcalError("the annotation log holds an item outside the labeled set (corrupt run?)")
    return rows


def round_labels(
    log: AnnotationLog,
    labeled: np.ndarray,
    *,
    n_pool: int,
    num_classes: int,
    n_annotators: int,
    method: str | None,
) -> RoundLabels:
    """The labels round ``r`` trains on (module docstring), one per entry of ``labeled``.

    Parameters
    ----------
    log : AnnotationLog
    labeled : (N_L,) pool indices of the items with at least one annotation.
    n_pool, num_classes, n_annotators : int
    method : {"majority", "ds", "auto"} or None
        None: no annotators; each item's (latest) annotation is its label.
    """
    rows = _rows(labeled, log.items, n_pool)
    keep = latest_per_pair(rows, log.annotators)
    if method is None:
        out = np.full(labeled.size, -1, dtype=np.int64)
        out[rows[keep]] = log.labels[keep]
        return RoundLabels(out)
    result = consensus_labels(
        rows[keep],
        log.annotators[keep],
        log.labels[keep],
        n_items=int(labeled.size),
        num_classes=int(num_classes),
        method=method,
        n_annotators=int(n_annotators),
    )
    return RoundLabels(
        result.labels.astype(np.int64),
        result.method_used,
        result.fallback_reason,
        result.reliability,
    )


def labeled_annotations(
    log: AnnotationLog, items: np.ndarray, *, n_pool: int, n_annotators: int
) -> np.ndarray:
    """``(len(items), n_annotators)`` matrix of the latest label each annotator gave each of
    ``items`` (-1: none, or "not in the label set") — the ``annotations_labeled`` signal."""
    in_set = np.zeros(n_pool, dtype=bool)
    in_set[items] = True
    sel = in_set[log.items]
    return annotation_matrix(
        _rows(np.asarray(items), log.items[sel], n_pool),
        log.annotators[sel],
        log.labels[sel],
        n_items=int(np.size(items)),
        n_annotators=int(n_annotators),
    )


def batch_noise_rate(
    items: np.ndarray, labels: np.ndarray, y_true: np.ndarray, is_ood: np.ndarray
) -> float | None:
    """Share of a batch's annotations of in-distribution items whose label is wrong (None when the
    batch annotated no in-distribution item). Annotations, not items: a relabel counts too."""
    ind = ~is_ood[items]
    if not ind.any():
        return None
    return float(np.mean(labels[ind] != y_true[items][ind]))
