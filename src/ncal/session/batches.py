"""Building one session round's batch: relabel requests, then new pool items to label.

The new items come from the shared round step (:mod:`ncal.experiment.step`: a fresh model on the
aggregated labels, its signals, the strategy's selection) once at least two classes are labeled, and
from the cold-start rule (``random`` or ``kcenter``) before that. Session round ``n`` uses the run's
streams of round ``n - 1`` (the fit that chooses batch ``n``): initialisation
``derive_seed(seed, "init", n - 1)``, training ``derive_seed(seed, "train", n - 1)``, selection
``rng_for(seed, "select", n - 1, strategy)``. Sessions created before this scheme give other batches
for the same labels and seed than they did then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._utils.io import atomic_save_npz
from ..errors import NcalError
from ..signals import Signals
from .coldstart import kcenter_greedy
from .progress import SILENT, Progress


@dataclass
class BatchPlan:
    """One round's batch before it is stored.

    Attributes
    ----------
    items : list of dict
        ``item_row``, ``kind`` (``query``: a new item | ``relabel``) and, where known, ``score``,
        ``prediction``, ``confidence``; new items first, then relabel requests.
    selector : str
        The strategy that chose the new items (the cold-start rule when it did).
    fallback : str or None
        The cold-start rule, when it chose the new items.
    n_labeled : int
        Labeled pool items the round started from.
    heldout_accuracy : float or None
        Held-out accuracy of the round's model (None without a fit or a held-out set).
    info : dict
        JSON-safe record of how the batch came about.
    """

    items: list[dict[str, Any]]
    selector: str
    fallback: str | None
    n_labeled: int
    heldout_accuracy: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


def round_index(number: int) -> int:
    """The run's round index whose streams session round ``number`` (1-based) draws from."""
    return int(number) - 1


def relabel_requests(
    queue: list[dict[str, Any]], already: set[int], n: int, classes: list[str]
) -> list[dict[str, Any]]:
    """The first ``n`` items of the review ``queue`` not sent for relabeling before (``already``).

    ``queue`` holds the rows of :func:`ncal.session.review.review_queue`, most suspicious first.
    """
    out: list[dict[str, Any]] = []
    for r in queue:
        if len(out) == n:
            break
        if r["row"] in already:
            continue
        out.append(
            {
                "item_row": r["row"],
                "kind": "relabel",
                "score": r["score"],
                "prediction": classes.index(r["suggested"]),
                "confidence": r["suggested_confidence"],
            }
        )
    return out


def cold_start_items(
    rule: str,
    features: np.ndarray,
    candidate_rows: np.ndarray,
    labeled_rows: np.ndarray,
    k: int,
    *,
    seed: int,
    number: int,
) -> list[dict[str, Any]]:
    """``k`` new items chosen without a model: uniformly (``random``) or by k-center greedy."""
    from .. import strategies
    from ..experiment.step import select_batch

    if rule == "random":
        signals = Signals(features_pool=np.zeros((candidate_rows.size, 1)))
        picks = select_batch(
            strategies.get("random"), signals, k, seed=seed, round_index=round_index(number)
        ).indices
    else:
        picks = kcenter_greedy(
            np.asarray(features[candidate_rows]),
            k,
            labeled=np.asarray(features[labeled_rows]) if labeled_rows.size else None,
        )
    return [{"item_row": int(candidate_rows[i]), "kind": "query"} for i in picks]


def annotations_of(annotations: Any, rows: np.ndarray) -> np.ndarray:
    """(len(rows), M) labels of each annotator for the items ``rows`` (sorted), -1 where none.

    ``annotations`` holds the latest label per (item, annotator): ``items``, ``annotator_idx``,
    ``given`` and the ``annotators`` names (:class:`ncal.session.core.Aggregate`).
    """
    from ..consensus import annotation_matrix

    items = np.asarray(annotations.items, dtype=np.int64)
    pos = np.searchsorted(rows, items)
    inside = (pos < rows.size) & (rows[np.minimum(pos, rows.size - 1)] == items)
    return annotation_matrix(
        pos[inside],
        np.asarray(annotations.annotator_idx)[inside],
        np.asarray(annotations.given)[inside],
        n_items=rows.size,
        n_annotators=max(len(annotations.annotators), 1),
    )


def model_items(
    strategy: Any,
    feature_sets: dict[str, np.ndarray],
    labeled_rows: np.ndarray,
    labels: np.ndarray,
    candidate_rows: np.ndarray,
    k: int,
    *,
    num_classes: int,
    seed: int,
    number: int,
    train: dict[str, Any],
    heldout_rows: np.ndarray,
    heldout_labels: np.ndarray,
    signals_path: Path,
    model: str = "auto",
    annotations: Any = None,
    progress: Progress = SILENT,
) -> tuple[list[dict[str, Any]], float | None, dict[str, Any]]:
    """``k`` annotations chosen by ``strategy`` from a model fitted on ``labels`` (the round step).

    The model and features are chosen by cross-validation (:mod:`ncal.session.model_choice`).
    For a relabel-aware strategy (e.g. ``activelab``) the labeled items' annotations
    (``annotations``, see :func:`annotations_of`) and their out-of-fold probabilities are added
    (:func:`ncal.experiment.step.with_relabel_signals`); its ``Selection.relabel`` rows become
    relabel requests. The round's per-candidate signals (rows, FF counts, predictions, selection)
    are saved to ``signals_path`` before the round is stored, so a crash after this only leaves a
    stale file.

    Returns
    -------
    items, heldout_accuracy, info
    """
    from ..experiment.step import RELABEL_SIGNALS, select_batch, with_relabel_signals
    from . import fit as session_fit
    from .model_choice import choose_model

    has_heldout = heldout_rows.size > 0
    cfg = session_fit.train_config(train)
    choice = choose_model(
        feature_sets, labeled_rows, labels, num_classes=num_classes, seed=seed,
        round_index=round_index(number), train_config=cfg, model=model, progress=progress,
    )  # fmt: skip
    fit = session_fit.fit_session_round(
        feature_sets[choice.features],
        labeled_rows,
        labels,
        candidate_rows,
        num_classes=num_classes,
        seed=seed,
        round_index=round_index(number),
        train=train,
        heldout_rows=heldout_rows if has_heldout else None,
        heldout_labels=heldout_labels if has_heldout else None,
        need_mc="mc_probs_pool" in strategy.required_signals(),
        hidden=choice.hidden,
        progress=progress,
    )
    signals = fit.signals
    relabel_aware = any(s in strategy.required_signals() for s in RELABEL_SIGNALS)
    if relabel_aware:
        if annotations is None:
            raise NcalError(f"strategy `{strategy.name}` needs the labeled items' annotations")
        signals = with_relabel_signals(
            signals, annotations_of(annotations, labeled_rows), seed=seed,
            round_index=round_index(number),
        )  # fmt: skip
    with progress.phase(f"selecting {k} with `{strategy.name}`"):
        sel = select_batch(
            strategy, signals, k, seed=seed, round_index=round_index(number),
            num_threads=cfg.num_threads,
        )  # fmt: skip
    ff = signals.ff_counts
    atomic_save_npz(
        signals_path,
        rows=candidate_rows,
        ff_counts=np.zeros(0, np.int64) if ff is None else np.asarray(ff),
        prediction=fit.pred_candidates,
        confidence=fit.conf_candidates,
        selected=np.asarray(sel.indices),
    )
    items = [
        {
            "item_row": int(candidate_rows[i]),
            "kind": "query",
            "score": None if sel.scores is None else float(sel.scores[j]),
            "prediction": int(fit.pred_candidates[i]),
            "confidence": float(fit.conf_candidates[i]),
        }
        for j, i in enumerate(sel.indices)
    ]
    if sel.relabel is not None and len(sel.relabel):
        oof = signals.probs_labeled_oof
        items += [
            {
                "item_row": int(labeled_rows[i]),
                "kind": "relabel",
                "score": None,
                "prediction": None if oof is None else int(oof[i].argmax()),
                "confidence": None if oof is None else float(oof[i].max()),
            }
            for i in np.asarray(sel.relabel, dtype=np.int64)
        ]
    info = {"train": fit.info, "model_choice": choice.record(), "selection": sel.info}
    return items, fit.heldout_accuracy, info


def plan_batch(
    number: int,
    settings: dict[str, Any],
    strategy: Any,
    *,
    labels: np.ndarray,
    heldout: np.ndarray,
    heldout_labels: np.ndarray,
    feature_sets: dict[str, np.ndarray],
    classes: list[str],
    review: Callable[[], list[dict[str, Any]]],
    relabeled: set[int],
    session_dir: Path,
    annotations: Any = None,
    progress: Progress = SILENT,
) -> BatchPlan:
    """Round ``number``'s batch: relabel requests, then new items (cold start or the round step).

    Parameters
    ----------
    number : int
        The session round (1-based).
    settings : dict
        The round's settings (``k``, ``strategy``, ``relabel_fraction``, ``seed``, ``cold_start``,
        ``train``), as :meth:`ncal.session.Session.next_batch` stores them.
    strategy : ncal.strategies.Strategy
    labels : (N,) int
        The label of every item the round trains on (the aggregate; -1 = none).
    heldout, heldout_labels : (N,) bool and (N,) int
        Held-out evaluation items (never in a batch) and their known labels.
    feature_sets : dict
        Name -> (N, D) features, the session's primary set first (cold start and review use it).
    classes : class names.
    review : callable
        The review queue (most suspicious first), asked for only when relabel requests are due.
    relabeled : set of int
        Rows already sent for relabeling (never sent twice).
    session_dir : Path
        Where ``rounds/round_XXX.npz`` (the fit's signals) goes.
    annotations : Aggregate, optional
        The latest label per (item, annotator); needed by relabel-aware strategies.
    progress : Progress

    Returns
    -------
    BatchPlan
    """
    labeled = (labels >= 0) & ~heldout
    lab_rows = np.flatnonzero(labeled)
    cand_rows = np.flatnonzero(~labeled & ~heldout)
    info: dict[str, Any] = {"n_candidates": int(cand_rows.size)}
    k, seed = settings["k"], settings["seed"]
    n_classes_labeled = int(np.unique(labels[lab_rows]).size)
    relabel: list[dict[str, Any]] = []
    n_rel = round(settings["relabel_fraction"] * k)
    if n_rel > 0 and lab_rows.size >= 2 and n_classes_labeled >= 2:
        relabel = relabel_requests(review(), relabeled, n_rel, classes)
    elif n_rel > 0:
        info["relabel_skipped"] = "fewer than 2 labeled items or classes"
    k_query = min(k - len(relabel), int(cand_rows.size))
    if k_query <= 0 and not relabel:
        raise NcalError("every pool item is labeled; there is nothing left to query")
    n_labeled = int(lab_rows.size)
    if k_query <= 0:
        return BatchPlan(relabel, settings["strategy"], None, n_labeled, None, info)
    signals_file = f"rounds/round_{number:03d}.npz"
    features = next(iter(feature_sets.values()))
    if n_classes_labeled < 2:
        cold = settings["cold_start"]
        query = cold_start_items(
            cold, features, cand_rows, lab_rows, k_query, seed=seed, number=number
        )
        # a replaced round may have left the signals of a fit behind
        (session_dir / signals_file).unlink(missing_ok=True)
        info["fallback_reason"] = f"{n_classes_labeled} labeled class(es); need 2 to fit a model"
        return BatchPlan(query + relabel, cold, cold, n_labeled, None, info)
    held_rows = np.flatnonzero(heldout)
    query, heldout_acc, fit_info = model_items(
        strategy,
        feature_sets,
        lab_rows,
        labels[lab_rows],
        cand_rows,
        k_query,
        num_classes=len(classes),
        seed=seed,
        number=number,
        train=settings["train"],
        heldout_rows=held_rows,
        heldout_labels=heldout_labels[held_rows],
        signals_path=session_dir / signals_file,
        model=settings.get("model", "auto"),
        annotations=annotations,
        progress=progress,
    )
    asked = {b["item_row"] for b in relabel}  # a review relabel is not asked for twice
    query = [b for b in query if b["kind"] == "query" or b["item_row"] not in asked]
    info.update(fit_info, signals_file=signals_file)
    return BatchPlan(query + relabel, settings["strategy"], None, n_labeled, heldout_acc, info)
