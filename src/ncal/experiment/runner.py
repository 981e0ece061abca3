"""The active-learning loop: train to the terminal phase, evaluate, select, annotate, persist, repeat.

Round ``r`` trains a freshly initialised network on the labels bought so far, evaluates it, and
(except in the last round) selects the batch for round ``r + 1`` and has it annotated. The fit and
the selection are the shared round step (:mod:`ncal.experiment.step`). Each finished round is
appended atomically to ``rounds.jsonl``; a rerun with the same settings resumes after the last one
and ends with the same results as an uninterrupted run.

The budget counts annotations: the schedule's numbers are cumulative annotations, the initial set
costing one per item, and round ``r`` buys exactly ``B_{r+1} - B_r`` of them: one per new pool item
(``Selection.indices``) and one per relabel of a labeled item (``Selection.relabel``, from
relabel-aware strategies only). Without ``annotators`` one annotation per item is all there is, so
annotations equal labeled items. A round trains on one label per labeled item
(:func:`ncal.experiment.annotations.round_labels`: the annotation itself, or the consensus of
several annotators); items labeled "not in the label set" are not trained on.

Round record fields beyond the training and evaluation ones: ``annotations`` (cumulative,
initial set included), ``relabels`` (relabel annotations in the batch this round bought),
``consensus_purity`` (share of in-distribution training items whose label is the true one),
``noise_rate_batch`` (share of the batch's ANNOTATIONS of in-distribution items that are wrong,
relabels included), ``query_ood`` (annotations of the batch spent on out-of-distribution items),
``selected``/``selected_labels`` (new pool items and their answers), ``selected_relabel`` (pool ids
relabeled), ``batch_annotations`` (the batch's ``item``/``annotator``/``label`` log; the initial
set's is ``initial_annotations`` in round 0), ``consensus_method`` / ``consensus_fallback`` (method
used and why ``auto`` fell back to the majority vote; None without annotators) and
``annotator_reliability``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .. import __version__
from .._utils.io import jsonable
from .._utils.random import derive_seed, rng_for
from ..consensus import consensus_purity
from ..errors import NcalError
from .annotations import (
    AnnotationLog,
    RoundLabels,
    annotator_source,
    batch_noise_rate,
    buy,
    labeled_annotations,
    log_record,
    round_labels,
)
from .budget import budget_schedule
from .config import ExperimentConfig
from .problem import Problem, build_problem
from .step import RELABEL_SIGNALS, RoundFit, fit_round, select_batch, with_relabel_signals
from .store import FINGERPRINT_KEY, RunStore, data_fingerprint


def resolve_model(config: ExperimentConfig, problem: Problem, needs_mc: bool) -> tuple[str, float]:
    """Backbone name (``auto``: :func:`ncal.models.resolve_model_name` by input kind and shape) and
    dropout rate for this run."""
    from ..models import MODEL_NAMES, resolve_model_name

    try:
        name = resolve_model_name(config.model, problem.input_shape, problem.kind)
    except ValueError:
        raise NcalError(
            f"`model` must be one of {['auto', *MODEL_NAMES]}; got {config.model!r}"
        ) from None
    dropout = config.dropout if config.dropout is not None else (0.3 if needs_mc else 0.0)
    if needs_mc and dropout == 0:
        raise NcalError(f"strategy `{config.strategy}` needs MC-dropout passes: set `dropout` > 0")
    return name, float(dropout)


def _train_config(config: ExperimentConfig, problem: Problem):
    from ..training import TrainConfig

    overrides = dict(config.train)
    if problem.kind == "features":
        overrides.setdefault("augment", False)
    overrides.setdefault("device", config.device)
    try:
        return TrainConfig(**overrides)
    except TypeError as exc:
        raise NcalError(f"bad `train` setting: {exc}") from exc


def _noise_rate(given: np.ndarray, clean: np.ndarray) -> float | None:
    keep = given >= 0
    return float(np.mean(given[keep] != clean[keep])) if keep.any() else None


@dataclass
class _Run:
    """Everything a run resolves once before its rounds (the schedule, model, recipe, strategy)."""

    config: ExperimentConfig
    problem: Problem
    strategy: Any
    schedule: list[int]
    model_name: str
    dropout: float
    train_cfg: Any
    store: RunStore

    @property
    def signals_needed(self) -> set[str]:
        return set(self.strategy.required_signals())

    @property
    def consensus_method(self) -> str | None:
        """The configured consensus method; None without annotators (one annotation per item)."""
        if self.config.annotators is None:
            return None
        return self.config.annotator_setting("consensus")


@dataclass
class _Bought:
    """What the run has bought: labeled pool items (order of first purchase) and every annotation."""

    labeled: np.ndarray
    log: AnnotationLog


def _prepare(config: ExperimentConfig, out_dir: str) -> tuple[_Run, dict[str, Any]]:
    """Build the problem and resolve every setting; return the run and its ``config.json``
    record."""
    import torch

    from .. import strategies

    strategy = strategies.get(config.strategy, **config.strategy_params)
    needs_mc = "mc_probs_pool" in strategy.required_signals()
    problem = build_problem(config)
    sched = budget_schedule(
        len(problem.y_pool),
        initial=config.initial,
        query=config.query,
        rounds=config.rounds,
        budgets=config.budgets,
    )
    model_name, dropout = resolve_model(config, problem, needs_mc)
    train_cfg = _train_config(config, problem)
    run = _Run(config, problem, strategy, sched, model_name, dropout, train_cfg, RunStore(out_dir))
    record = {
        "settings": config.settings(),
        "ncal_version": __version__,
        "torch_version": torch.__version__,
        "resolved": {
            "budgets": sched,
            "model": model_name,
            "dropout": dropout,
            "train": asdict(train_cfg),
            "strategy": {"name": strategy.name, "params": strategy.params()},
            "problem": problem.info,
            "annotators": _annotators_record(config, problem),
        },
    }
    return run, record


def _annotators_record(config: ExperimentConfig, problem: Problem) -> dict[str, Any] | None:
    """The annotator pool as resolved (specs, error mode, assignment, seed) and the consensus
    method; None for a run with the single ``noise`` oracle."""
    if problem.annotator_pool is None:
        return None
    return {**problem.annotator_pool.params(), "consensus": config.annotator_setting("consensus")}


def _fit(
    run: _Run, r: int, lab_idx: np.ndarray, lab_y: np.ndarray, unlabeled: np.ndarray, quiet: bool
) -> RoundFit:
    """Round ``r``'s fit on the labeled pool samples (the test set rides along as an extra set)."""
    p = run.problem
    return fit_round(
        p.x_pool[lab_idx],
        lab_y,
        p.x_pool[unlabeled],
        model=run.model_name,
        num_classes=p.num_classes,
        train_config=run.train_cfg,
        seed=run.config.seed,
        round_index=r,
        dropout=run.dropout,
        extra_sets={"test": p.x_test},
        # the last round selects nothing: no MC passes
        need_mc="mc_probs_pool" in run.signals_needed and r < len(run.schedule) - 1,
        need_ff=bool(run.signals_needed & {"ff_counts", "ff_margin_std"}),
        progress=not quiet,
    )


def _round_row(
    run: _Run,
    r: int,
    bought: _Bought,
    given: RoundLabels,
    lab_y: np.ndarray,
    fit: RoundFit,
    evaluation: dict[str, Any],
) -> dict[str, Any]:
    """The round's record before selection: test accuracy, label noise and consensus, training
    record and evaluations."""
    p, out, labeled = run.problem, fit.outputs, bought.labeled
    test_logits = out.extra["test"][0]
    purity = consensus_purity(given.labels, p.y_pool[labeled], mask=~p.is_ood[labeled])
    row = {
        "round": r,
        "strategy": run.config.strategy,
        "seed": run.config.seed,
        "n_labeled": len(labeled),
        "n_labeled_in_label_set": int((given.labels >= 0).sum()),
        "annotations": len(bought.log),
        "budget_fraction": len(labeled) / len(p.y_pool),
        "test_accuracy": float(np.mean(np.argmax(test_logits, axis=1) == p.y_test)),
        "noise_rate_labeled": _noise_rate(given.labels, p.y_pool[labeled]),
        "consensus_purity": None if np.isnan(purity) else purity,
        "consensus_method": given.method,
        "consensus_fallback": given.fallback_reason,
        "annotator_reliability": None if given.reliability is None else jsonable(given.reliability),
        "class_histogram": np.bincount(lab_y, minlength=p.num_classes).tolist(),
        "train_epochs": out.info.get("epochs"),
        "train_seconds": out.info.get("train_seconds"),
        "ff_seconds": out.info.get("ff_seconds"),
        "reached_terminal": out.info.get("reached_terminal"),
        "train_info": out.info,
        **evaluation,
    }
    if r == 0:
        n0 = run.schedule[0]
        log = bought.log
        row["initial_annotations"] = log_record(
            log.items[:n0], log.annotators[:n0], log.labels[:n0]
        )
    return row


def _select_and_buy(
    run: _Run,
    r: int,
    fit: RoundFit,
    bought: _Bought,
    lab_idx: np.ndarray,
    unlabeled: np.ndarray,
    source: Any,
) -> dict[str, Any]:
    """Select round ``r + 1``'s batch (new items among ``unlabeled``, relabels among the training
    items ``lab_idx``), have it annotated and add it to ``bought``; return the row fields it adds.
    ``select_seconds`` includes the relabel signals (out-of-fold probabilities)."""
    p = run.problem
    k = run.schedule[r + 1] - run.schedule[r]
    t0 = time.perf_counter()
    # items answered "not in the label set" are bought but not trained on (NCAL-R+'s OOD evidence)
    signals = replace(fit.signals, n_rejected_labeled=int(bought.labeled.size - lab_idx.size))
    if run.signals_needed & set(RELABEL_SIGNALS):  # only for strategies that declare them
        annotations = labeled_annotations(
            bought.log, lab_idx, n_pool=len(p.y_pool), n_annotators=source.n_annotators
        )
        signals = with_relabel_signals(signals, annotations, seed=run.config.seed, round_index=r)
    sel = select_batch(
        run.strategy,
        signals,
        k,
        seed=run.config.seed,
        round_index=r,
        num_threads=run.train_cfg.num_threads,
    )
    select_seconds = time.perf_counter() - t0
    if sel.n_annotations != k:
        raise NcalError(
            f"round {r}: strategy `{run.strategy.name}` bought {sel.n_annotations} annotations "
            f"instead of {k}"
        )
    new = unlabeled[sel.indices]
    relabel = lab_idx[np.asarray(sel.relabel, dtype=np.int64)] if sel.relabel is not None else []
    relabel = np.asarray(relabel, dtype=np.int64)
    items = np.concatenate([new, relabel])
    annotators, labels = buy(source, bought.log, items, r + 1)
    bought.labeled = np.concatenate([bought.labeled, new])
    return {
        "select_seconds": select_seconds,
        "selected": new.tolist(),
        "selected_scores": None if sel.scores is None else np.asarray(sel.scores).tolist(),
        "selected_labels": labels[: new.size].tolist(),
        "selected_relabel": relabel.tolist(),
        "relabels": int(relabel.size),
        "batch_annotations": log_record(items, annotators, labels),
        "noise_rate_batch": batch_noise_rate(items, labels, p.y_pool, p.is_ood),
        "query_ood": int(p.is_ood[items].sum()),
    }


def _no_selection() -> dict[str, Any]:
    """The selection fields of the last round, which buys nothing."""
    return {
        "selected": [],
        "selected_scores": [],
        "selected_labels": [],
        "selected_relabel": [],
        "relabels": 0,
        "batch_annotations": log_record([], [], []),
        "select_seconds": 0.0,
        "noise_rate_batch": None,
        "query_ood": 0,
    }


def _restore(run: _Run, source: Any, done: list[dict[str, Any]]) -> _Bought:
    """The initial set and every batch already bought, annotated again in purchase order (this
    rebuilds the annotators' request counts) and checked against the stored annotations."""
    n_pool = len(run.problem.y_pool)
    labeled = rng_for(run.config.seed, "initial").choice(
        n_pool, size=run.schedule[0], replace=False
    )
    bought = _Bought(labeled, AnnotationLog())
    buy(source, bought.log, labeled, 0, stored=done[0].get("initial_annotations") if done else None)
    for r, row in enumerate(done):
        new = np.asarray(row["selected"], dtype=np.int64)
        relabel = np.asarray(row.get("selected_relabel", []), dtype=np.int64)
        items = np.concatenate([new, relabel])
        if items.size:  # runs written before annotators existed have no stored log: not checked
            buy(source, bought.log, items, r + 1, stored=row.get("batch_annotations"))
        bought.labeled = np.concatenate([bought.labeled, new])
    return bought


def _progress_bar(config: ExperimentConfig, total: int, initial: int, quiet: bool):
    if quiet:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc=f"{config.strategy} seed {config.seed}", unit="round"
    )


def _print_estimate(sched: list[int], r: int, seconds: float) -> None:
    """After the first round of a session: what the rest will cost. Training time grows about in
    proportion to the number of annotations a round trains on, so the first round is scaled by it."""
    import sys

    from tqdm.auto import tqdm

    rest = seconds * sum(n / sched[r] for n in sched[r + 1 :])
    tqdm.write(  # above the progress bar, not through it
        f"round {r} took {seconds:.0f} s; the {len(sched) - r - 1} remaining round(s) train on up to "
        f"{sched[-1]} annotations: expect roughly {rest / 60:.1f} more minutes on this machine",
        file=sys.stderr,
    )


def _summary(rows: list[dict[str, Any]], wall0: float) -> dict[str, Any]:
    return {
        "status": "complete",
        "rounds": len(rows),
        "final_test_accuracy": rows[-1]["test_accuracy"],
        "wall_seconds_last_session": time.perf_counter() - wall0,
        "train_seconds_total": float(sum(r.get("train_seconds") or 0 for r in rows)),
        "select_seconds_total": float(sum(r.get("select_seconds") or 0 for r in rows)),
    }


def run_experiment(
    config: ExperimentConfig | dict[str, Any], out_dir: str, *, quiet: bool = False
) -> list[dict[str, Any]]:
    """Run (or resume) one active-learning experiment and return its per-round records.

    Parameters
    ----------
    config : ExperimentConfig or mapping
        All settings; recorded in ``out_dir/config.json`` with the package version.
    out_dir : path
        Run directory. If it already holds finished rounds of the same settings, the run resumes.
    quiet : bool
        Suppress progress bars.

    Returns
    -------
    list of dict
        One record per round (``rounds.jsonl``), the resumed ones included.
    """
    if not isinstance(config, ExperimentConfig):
        config = ExperimentConfig.from_dict(config)
    run, record = _prepare(config, out_dir)
    problem = run.problem
    record[FINGERPRINT_KEY] = data_fingerprint(
        {
            "x_pool": problem.x_pool,
            "y_pool": problem.y_pool,
            "is_ood": problem.is_ood,
            "x_test": problem.x_test,
            "y_test": problem.y_test,
        }
    )
    with run.store.lock():  # a second writer of this directory fails at once, naming the holder
        return _run_rounds(run, record, config, quiet)


def _run_rounds(
    run: _Run, record: dict[str, Any], config: ExperimentConfig, quiet: bool
) -> list[dict[str, Any]]:
    """The rounds of :func:`run_experiment`, under the run directory's lock."""
    from .evals import round_evaluations

    sched, store, problem = run.schedule, run.store, run.problem
    store.check_compatible(record)
    done = store.read_rounds()
    summary = store.read_summary()
    if summary and summary.get("status") == "complete" and len(done) == len(sched):
        return done
    if len(done) > len(sched):
        raise NcalError(f"{store.rounds_path} holds more rounds than the schedule {sched}")
    store.write_config(record)

    n_pool = len(problem.y_pool)
    source = annotator_source(problem)
    bought = _restore(run, source, done)

    wall0 = time.perf_counter()
    bar = _progress_bar(config, len(sched), len(done), quiet)
    rows = list(done)
    for r in range(len(done), len(sched)):
        if len(bought.log) != sched[r]:
            raise NcalError(
                f"round {r}: {len(bought.log)} annotations but the schedule says {sched[r]} "
                "(corrupt run?)"
            )
        given = round_labels(
            bought.log,
            bought.labeled,
            n_pool=n_pool,
            num_classes=problem.num_classes,
            n_annotators=source.n_annotators,
            method=run.consensus_method,
        )
        train_mask = given.labels >= 0  # "not in the label set" (OOD) items are not trained on
        lab_idx, lab_y = bought.labeled[train_mask], given.labels[train_mask]
        unlabeled = np.setdiff1d(np.arange(n_pool), bought.labeled, assume_unique=False)
        fit = _fit(run, r, lab_idx, lab_y, unlabeled, quiet)
        evaluation = round_evaluations(
            config,
            problem,
            fit.model,
            fit.outputs,
            lab_idx,
            lab_y,
            unlabeled,
            seed=derive_seed(config.seed, "eval", r),
        )
        row = _round_row(run, r, bought, given, lab_y, fit, evaluation)
        if r < len(sched) - 1:
            row.update(_select_and_buy(run, r, fit, bought, lab_idx, unlabeled, source))
        else:
            row.update(_no_selection())
        store.append_round(row)
        rows.append(row)
        if r == len(done) and not quiet and r < len(sched) - 1:
            _print_estimate(sched, r, time.perf_counter() - wall0)
        if bar is not None:
            bar.set_postfix(acc=f"{row['test_accuracy']:.3f}", labels=len(bought.labeled))
            bar.update(1)
    if bar is not None:
        bar.close()
    store.write_summary(_summary(rows, wall0))
    return rows
