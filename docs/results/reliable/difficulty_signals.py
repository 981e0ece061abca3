"""Which pool signal predicts the annotations that come back wrong? A check on seeds outside the study.

NCAL-R+ loses purity to random with difficulty-dependent annotators because the items it ranks
first are the ones annotators get wrong. A difficulty filter can only help if some signal the
strategy sees tells those items apart. This script measures that directly, on the study's
difficulty setting (annotators ``oracle:0.15``, ``oracle:0.3``, ``oracle:0.45``, independent errors)
of Fashion-MNIST and MNIST-5k, on seeds 100 and 101 (the study uses 0-9), without any test data:

1. the problem (pool, annotators) is built exactly as a study cell of that seed builds it;
2. a random labeled set of ``n`` in-distribution items gets one annotation each, from an annotator
   drawn at random, and the study's recipe (``fast-mlp``) trains on it;
3. every signal is computed on the rest of the pool from that round's outputs, and compared with
   each item's *annotation error*: the mean over the three annotators of the probability that an
   annotation of it is wrong (the simulator's own value, known only because this is a simulation).

For each signal (oriented so that high = "buy first") it reports the Spearman correlation with
the annotation error, the AUROC for the items whose error exceeds 1/2 (more likely wrong than
right), and the mean annotation error of the 150 items the signal ranks first (the study's batch),
against the pool mean (what random buys). Also: the error of the 150 lowest-margin items after
skipping the lowest-margin share ``f`` of the pool, the simplest difficulty filter.

Usage (about 2 minutes on one core)::

    python docs/results/reliable/difficulty_signals.py          # writes difficulty_signals.{json,md}
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from ncal._utils.numeric import softmax
from ncal.experiment.config import ExperimentConfig
from ncal.experiment.problem import build_problem
from ncal.experiment.recipes import recipe
from ncal.geometry import cmap
from ncal.models import build_model
from ncal.strategies._ood_scores import nearest_labeled
from ncal.strategies.selection import zscore
from ncal.strategies.uncertainty import margin_scores
from ncal.training import TrainConfig, train_round

HERE = Path(__file__).resolve().parent
SEEDS = (100, 101)
LABELED = (300, 600, 1050)  # the study's initial set and its budget after rounds 2 and 5
BATCH = 150
SKIPS = (0.0, 0.1, 0.2, 0.3, 0.5)
DATASETS = ("fashion_mnist", "mnist5k")
KNN = 10


DIFFICULTY = ["oracle:0.15", "oracle:0.3", "oracle:0.45"]


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """AUROC of ``score`` for ``positive`` (NaN when one class is empty)."""
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, score))


def knn_disagreement(f_pool, f_lab, y_lab, pred, k: int = KNN) -> np.ndarray:
    """Share of an item's ``k`` nearest labeled items (cosine, penultimate features) whose given
    label differs from the item's predicted class: high in regions where labels conflict."""
    _, rows = nearest_labeled(f_pool, f_lab, k)
    return (y_lab[rows] != pred[:, None]).mean(axis=1)


@dataclass(frozen=True)
class RandomRound:
    """One round of the study's recipe on a random labeled set, seen from the rest of the pool."""

    problem: Any  # ncal.experiment.problem.Problem
    labeled: np.ndarray  # pool rows of the labeled set
    given: np.ndarray  # their one annotation each
    rest: np.ndarray  # the other pool rows, in the order of every array below
    out: Any  # ncal.training.RoundOutputs
    pred: np.ndarray
    low_margin: np.ndarray  # minus the top-1 minus top-2 probability
    cmap: np.ndarray


def random_round(dataset: str, annotators: list[str], seed: int, n_labeled: int) -> RandomRound:
    """Build the problem as a study cell of ``seed`` does, give a random labeled set of
    ``n_labeled`` in-distribution items one annotation each (annotator drawn at random), and
    train the study's recipe (``fast-mlp``) on it."""
    fields = recipe("fast-mlp")
    config = ExperimentConfig.from_dict(
        {
            "dataset": dataset,
            "noise": "none",
            "annotators": annotators,
            "annotator_errors": "independent",
            "pool_size": 3000,
            "test_size": 2000,
            "model": fields["model"],
            "train": fields["train"],
            "strategy": "random",
            "seed": seed,
        }
    )
    p = build_problem(config)
    pool = p.annotator_pool
    rng = np.random.default_rng(seed)
    lab = np.sort(rng.choice(np.flatnonzero(~p.is_ood), n_labeled, replace=False))
    who = rng.integers(0, pool.n_annotators, n_labeled)
    y_given = np.array([pool.answer(int(a), int(i), 0) for a, i in zip(who, lab)])
    rest = np.setdiff1d(np.arange(p.y_pool.size), lab)
    model = build_model(
        fields["model"], input_shape=p.input_shape, num_classes=p.num_classes, seed=seed
    )
    tc = TrainConfig(**{**fields["train"], "device": "cpu"})
    out = train_round(model, p.x_pool[lab], y_given, p.x_pool[rest], config=tc, seed=seed)
    probs = softmax(out.logits_pool)
    pred = probs.argmax(axis=1)
    c = cmap(out.features_labeled, y_given, out.features_pool, pred, num_classes=p.num_classes)
    return RandomRound(p, lab, y_given, rest, out, pred, margin_scores(probs), c)


def one(dataset: str, seed: int, n_labeled: int) -> dict:
    rr = random_round(dataset, DIFFICULTY, seed, n_labeled)
    p, out, c = rr.problem, rr.out, rr.cmap
    err = np.mean([m.error_prob for m in p.annotator_pool.models], axis=0)
    ff = out.ff_counts.astype(np.float64)
    signals = {
        "low margin": rr.low_margin,
        "NCAL-R (z(CMAP) + z(FF)) / 2": (zscore(c) + zscore(ff)) / 2,
        "CMAP": c,
        "FF (flip count)": ff,
        f"kNN label disagreement (k = {KNN})": knn_disagreement(
            out.features_pool, out.features_labeled, rr.given, rr.pred
        ),
    }
    rest, lab, y_given = rr.rest, rr.labeled, rr.given
    e = err[rest]
    hopeless = e > 0.5
    row: dict = {
        "dataset": dataset,
        "seed": seed,
        "labeled": n_labeled,
        "pool_error": float(e.mean()),
        "hopeless_share": float(hopeless.mean()),
        "labeled_wrong": float(np.mean(y_given != p.y_pool[lab])),
        "ff_zero_share": float(np.mean(ff == 0)),
        "signals": {},
    }
    for name, s in signals.items():
        first = np.argsort(-s, kind="stable")[:BATCH]
        row["signals"][name] = {
            "spearman": float(spearmanr(s, e).statistic),
            "auroc_hopeless": auroc(s, hopeless),
            "batch_error": float(e[first].mean()),
        }
    order = np.argsort(-rr.low_margin, kind="stable")
    row["skip_lowest_margin"] = {
        str(f): float(e[order[int(f * e.size) : int(f * e.size) + BATCH]].mean()) for f in SKIPS
    }
    return row


def mean(rows: list[dict], *keys: str) -> float:
    """Mean over ``rows`` of the value at ``row[keys[0]][keys[1]]...``."""
    values = []
    for r in rows:
        for k in keys:
            r = r[k]
        values.append(r)
    return float(np.mean(values))


def write(rows: list[dict]) -> None:
    (HERE / "difficulty_signals.json").write_text(json.dumps(rows, indent=1) + "\n")
    names = list(rows[0]["signals"])
    lines = [
        "# Which signal predicts a wrong annotation? (seeds 100-101, outside the study)",
        "",
        "Written by `python docs/results/reliable/difficulty_signals.py` (its docstring says how).",
        "Difficulty-dependent annotators 15/30/45%, independent errors; a random labeled set of n",
        "items with one annotation each; the study's recipe. Annotation error = the simulator's",
        "probability that one annotation of the item is wrong, averaged over the three annotators.",
        "Means over the two seeds. Batch error: mean annotation error of the 150 items the signal",
        "ranks first (random buys the pool mean).",
        "",
    ]
    for dataset in DATASETS:
        for n in LABELED:
            rs = [r for r in rows if r["dataset"] == dataset and r["labeled"] == n]
            if not rs:
                continue
            lines += [
                f"## {dataset}, {n} labeled items",
                "",
                f"Pool annotation error {mean(rs, 'pool_error'):.3f}; share of the pool "
                f"more likely wrong than right {mean(rs, 'hopeless_share'):.3f}; "
                f"FF = 0 on {mean(rs, 'ff_zero_share'):.1%} of the pool.",
                "",
                "| signal (high = buy first) | Spearman with the error | AUROC, error > 1/2 | batch error |",
                "|---|---|---|---|",
            ]
            for name in names:
                lines.append(
                    f"| {name} | {mean(rs, 'signals', name, 'spearman'):+.3f} "
                    f"| {mean(rs, 'signals', name, 'auroc_hopeless'):.3f} "
                    f"| {mean(rs, 'signals', name, 'batch_error'):.3f} |"
                )
            lines.append(f"| random (pool mean) | | | {mean(rs, 'pool_error'):.3f} |")
            skips = ", ".join(
                f"{float(f):.0%}: {mean(rs, 'skip_lowest_margin', str(f)):.3f}" for f in SKIPS
            )
            lines += [
                "",
                f"Lowest-margin batch after skipping the lowest-margin share: {skips}.",
                "",
            ]
    (HERE / "difficulty_signals.md").write_text("\n".join(lines))


def main() -> int:
    rows = []
    for dataset in DATASETS:
        for seed in SEEDS:
            for n in LABELED:
                rows.append(one(dataset, seed, n))
                print(
                    dataset,
                    seed,
                    n,
                    {k: round(v["batch_error"], 3) for k, v in rows[-1]["signals"].items()},
                    flush=True,
                )
                write(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
