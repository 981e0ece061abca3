"""The active-learning loop: train to the terminal phase, evaluate, select, query, persist, repeat.

Round ``r`` trains a freshly initialised network on the labels bought so far, evaluates it, and (except
in the last round) selects the batch for round ``r + 1`` and asks the oracle. Each finished round is
appended atomically to ``rounds.jsonl``; a rerun with the same settings resumes after the last one and
ends with the same results as an uninterrupted run.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

import numpy as np

from .. import __version__
from ..errors import NcalError
from .budget import budget_schedule
from .config import ExperimentConfig
from .problem import Problem, build_problem, query
from .seeds import derive_seed, rng_for
from .store import RunStore


def resolve_model(config: ExperimentConfig, problem: Problem, needs_mc: bool) -> tuple[str, float]:
    """Backbone name and dropout rate for this run (``auto`` picks by input kind and shape)."""
    name = config.model
    if name == "auto":
        shape = problem.input_shape
        if problem.kind == "features" or len(shape) == 1:
            name = "mlp"
        elif len(shape) == 3 and shape[-1] == 3:
            name = "resnet18"
        else:
            name = "cnn"
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
    """
    import torch

    from .. import strategies
    from ..models import build_model
    from ..training import thread_limit, train_round
    from .evals import round_evaluations

    if not isinstance(config, ExperimentConfig):
        config = ExperimentConfig.from_dict(config)
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
    store = RunStore(out_dir)
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
    bar = None
    if not quiet:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(sched),
            initial=len(done),
            desc=f"{config.strategy} seed {config.seed}",
            unit="round",
        )
    rows = list(done)
    for r in range(len(done), len(sched)):
        if len(labeled) != sched[r]:
            raise NcalError(
                f"round {r}: {len(labeled)} labels but the schedule says {sched[r]} (corrupt run?)"
            )
        train_mask = given >= 0
        lab_idx, lab_y = labeled[train_mask], given[train_mask]
        unlabeled = np.setdiff1d(np.arange(n_pool), labeled, assume_unique=False)
        model = build_model(
            model_name,
            input_shape=problem.input_shape,
            num_classes=problem.num_classes,
            dropout=dropout,
            seed=derive_seed(config.seed, "init", r),
        )
        out = train_round(
            model,
            problem.x_pool[lab_idx],
            lab_y,
            problem.x_pool[unlabeled],
            config=train_cfg,
            seed=derive_seed(config.seed, "train", r),
            extra_sets={"test": problem.x_test},
            need_mc=needs_mc and r < len(sched) - 1,
            need_ff="ff_counts" in strategy.required_signals(),
            progress=not quiet,
        )
        test_logits = out.extra["test"][0]
        test_acc = float(np.mean(np.argmax(test_logits, axis=1) == problem.y_test))
        evaluation = round_evaluations(
            config,
            problem,
            model,
            out,
            lab_idx,
            lab_y,
            unlabeled,
            seed=derive_seed(config.seed, "eval", r),
        )

        row: dict[str, Any] = {
            "round": r,
            "strategy": config.strategy,
            "seed": config.seed,
            "n_labeled": len(labeled),
            "n_labeled_in_label_set": int(train_mask.sum()),
            "budget_fraction": len(labeled) / n_pool,
            "test_accuracy": test_acc,
            "noise_rate_labeled": _noise_rate(given, problem.y_pool[labeled]),
            "class_histogram": np.bincount(lab_y, minlength=problem.num_classes).tolist(),
            "train_epochs": out.info.get("epochs"),
            "train_seconds": out.info.get("train_seconds"),
            "ff_seconds": out.info.get("ff_seconds"),
            "reached_terminal": out.info.get("reached_terminal"),
            "train_info": out.info,
            **evaluation,
        }
        if r < len(sched) - 1:
            k = sched[r + 1] - sched[r]
            t0 = time.perf_counter()
            with thread_limit(train_cfg.num_threads):  # selection kernels run in torch too
                sel = strategy.select(
                    out.signals(lab_y, problem.num_classes),
                    k,
                    rng_for(config.seed, "select", r, strategy.name),
                )
            row["select_seconds"] = time.perf_counter() - t0
            new = unlabeled[sel.indices]
            new_given = query(problem, new, r + 1)
            row["selected"] = new.tolist()
            row["selected_scores"] = None if sel.scores is None else np.asarray(sel.scores).tolist()
            row["selected_labels"] = new_given.tolist()
            row["noise_rate_batch"] = _noise_rate(new_given, problem.y_pool[new])
            row["query_ood"] = int(problem.is_ood[new].sum())
            labeled = np.concatenate([labeled, new])
            given = np.concatenate([given, new_given])
        else:
            row.update(
                selected=[],
                selected_scores=[],
                selected_labels=[],
                select_seconds=0.0,
                noise_rate_batch=None,
                query_ood=0,
            )
        store.append_round(row)
        rows.append(row)
        if bar is not None:
            bar.set_postfix(acc=f"{test_acc:.3f}", labels=len(labeled))
            bar.update(1)
    if bar is not None:
        bar.close()
    store.write_summary(
        {
            "status": "complete",
            "rounds": len(rows),
            "final_test_accuracy": rows[-1]["test_accuracy"],
            "wall_seconds_last_session": time.perf_counter() - wall0,
            "train_seconds_total": float(sum(r.get("train_seconds") or 0 for r in rows)),
            "select_seconds_total": float(sum(r.get("select_seconds") or 0 for r in rows)),
        }
    )
    return rows
