"""The active-learning loop: train to the terminal phase, evaluate, select, query, persist, repeat.

Round ``r`` trains a freshly initialised network on the labels bought so far, evaluates it, and
(except in the last round) selects the batch for round ``r + 1`` and asks the oracle. The fit and
the selection are the shared round step (:mod:`ncal.experiment.step`). Each finished round is
appended atomically to ``rounds.jsonl``; a rerun with the same settings resumes after the last one
and ends with the same results as an uninterrupted run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .. import __version__
from .._utils.random import derive_seed, rng_for
from ..errors import NcalError
from .budget import budget_schedule
from .config import ExperimentConfig
from .problem import Problem, build_problem, query
from .step import RoundFit, fit_round, select_batch
from .store import RunStore


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
        },
    }
    return run, record


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
        need_ff="ff_counts" in run.signals_needed,
        progress=not quiet,
    )


def _round_row(
    run: _Run,
    r: int,
    labeled: np.ndarray,
    given: np.ndarray,
    lab_y: np.ndarray,
    fit: RoundFit,
    evaluation: dict[str, Any],
) -> dict[str, Any]:
    """The round's record before selection: test accuracy, label noise, training record and
    evaluations."""
    p, out = run.problem, fit.outputs
    test_logits = out.extra["test"][0]
    return {
        "round": r,
        "strategy": run.config.strategy,
        "seed": run.config.seed,
        "n_labeled": len(labeled),
        "n_labeled_in_label_set": int((given >= 0).sum()),
        "budget_fraction": len(labeled) / len(p.y_pool),
        "test_accuracy": float(np.mean(np.argmax(test_logits, axis=1) == p.y_test)),
        "noise_rate_labeled": _noise_rate(given, p.y_pool[labeled]),
        "class_histogram": np.bincount(lab_y, minlength=p.num_classes).tolist(),
        "train_epochs": out.info.get("epochs"),
        "train_seconds": out.info.get("train_seconds"),
        "ff_seconds": out.info.get("ff_seconds"),
        "reached_terminal": out.info.get("reached_terminal"),
        "train_info": out.info,
        **evaluation,
    }


def _select_and_query(
    run: _Run, r: int, fit: RoundFit, unlabeled: np.ndarray
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Select round ``r + 1``'s batch among ``unlabeled`` and ask the oracle.

    Returns the row fields it adds, the new pool indices and the oracle's labels for them.
    """
    k = run.schedule[r + 1] - run.schedule[r]
    t0 = time.perf_counter()
    sel = select_batch(
        run.strategy,
        fit.signals,
        k,
        seed=run.config.seed,
        round_index=r,
        num_threads=run.train_cfg.num_threads,
    )
    select_seconds = time.perf_counter() - t0
    new = unlabeled[sel.indices]
    new_given = query(run.problem, new, r + 1)
    fields = {
        "select_seconds": select_seconds,
        "selected": new.tolist(),
        "selected_scores": None if sel.scores is None else np.asarray(sel.scores).tolist(),
        "selected_labels": new_given.tolist(),
        "noise_rate_batch": _noise_rate(new_given, run.problem.y_pool[new]),
        "query_ood": int(run.problem.is_ood[new].sum()),
    }
    return fields, new, new_given


def _no_selection() -> dict[str, Any]:
    """The selection fields of the last round, which buys nothing."""
    return {
        "selected": [],
        "selected_scores": [],
        "selected_labels": [],
        "select_seconds": 0.0,
        "noise_rate_batch": None,
        "query_ood": 0,
    }


def _progress_bar(config: ExperimentConfig, total: int, initial: int, quiet: bool):
    if quiet:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total, initial=initial, desc=f"{config.strategy} seed {config.seed}", unit="round"
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
    from .evals import round_evaluations

    if not isinstance(config, ExperimentConfig):
        config = ExperimentConfig.from_dict(config)
    run, record = _prepare(config, out_dir)
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
    labeled = rng_for(config.seed, "initial").choice(n_pool, size=sched[0], replace=False)
    for row in done:  # resume: the initial set plus every batch already bought
        labeled = np.concatenate([labeled, np.asarray(row["selected"], dtype=np.int64)])
    given = query(problem, labeled, 0)

    wall0 = time.perf_counter()
    bar = _progress_bar(config, len(sched), len(done), quiet)
    rows = list(done)
    for r in range(len(done), len(sched)):
        if len(labeled) != sched[r]:
            raise NcalError(
                f"round {r}: {len(labeled)} labels but the schedule says {sched[r]} (corrupt run?)"
            )
        train_mask = given >= 0  # OOD answers ("not in the label set") are not trained on
        lab_idx, lab_y = labeled[train_mask], given[train_mask]
        unlabeled = np.setdiff1d(np.arange(n_pool), labeled, assume_unique=False)
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
        row = _round_row(run, r, labeled, given, lab_y, fit, evaluation)
        if r < len(sched) - 1:
            fields, new, new_given = _select_and_query(run, r, fit, unlabeled)
            row.update(fields)
            labeled = np.concatenate([labeled, new])
            given = np.concatenate([given, new_given])
        else:
            row.update(_no_selection())
        store.append_round(row)
        rows.append(row)
        if bar is not None:
            bar.set_postfix(acc=f"{row['test_accuracy']:.3f}", labels=len(labeled))
            bar.update(1)
    if bar is not None:
        bar.close()
    store.write_summary(_summary(rows, wall0))
    return rows
