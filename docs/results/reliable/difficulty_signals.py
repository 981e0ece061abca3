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
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from ncal.experiment.config import ExperimentConfig
from ncal.experiment.problem import build_problem
from ncal.experiment.recipes import recipe
from ncal.geometry import cmap
from ncal.models import build_model
from ncal.strategies.selection import zscore
from ncal.training import TrainConfig, train_round

HERE = Path(__file__).resolve().parent
SEEDS = (100, 101)
LABELED = (300, 600, 1050)  # the study's initial set and its budget after rounds 2 and 5
BATCH = 150
SKIPS = (0.0, 0.1, 0.2, 0.3, 0.5)
DATASETS = ("fashion_mnist", "mnist5k")
KNN = 10


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive outranks a negative (ties count half)."""
    from scipy.stats import rankdata

    r = rankdata(score)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((r[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def knn_disagreement(f_pool, f_lab, y_lab, pred, k: int = KNN) -> np.ndarray:
    """Share of an item's ``k`` nearest labeled items (cosine, penultimate features) whose given
    label differs from the item's predicted class: high in regions where labels conflict."""
    a = f_pool / np.maximum(np.linalg.norm(f_pool, axis=1, keepdims=True), 1e-12)
    b = f_lab / np.maximum(np.linalg.norm(f_lab, axis=1, keepdims=True), 1e-12)
    out = np.empty(len(a))
    for s in range(0, len(a), 1024):
        sim = a[s : s + 1024] @ b.T
        nn = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        out[s : s + 1024] = (y_lab[nn] != pred[s : s + 1024, None]).mean(axis=1)
    return out


def one(dataset: str, seed: int, n_labeled: int) -> dict:
    fields = recipe("fast-mlp")
    config = ExperimentConfig.from_dict(
        {
            "dataset": dataset,
            "noise": "none",
            "annotators": ["oracle:0.15", "oracle:0.3", "oracle:0.45"],
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
    err = np.mean([m.error_prob for m in pool.models], axis=0)
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
    z = out.logits_pool.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=1, keepdims=True)
    top2 = np.sort(probs, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    pred = probs.argmax(axis=1)
    c = cmap(out.features_labeled, y_given, out.features_pool, pred, num_classes=p.num_classes)
    ff = out.ff_counts.astype(np.float64)
    signals = {
        "low margin": -margin,
        "NCAL-R (z(CMAP) + z(FF)) / 2": (zscore(c) + zscore(ff)) / 2,
        "CMAP": c,
        "FF (flip count)": ff,
        f"kNN label disagreement (k = {KNN})": knn_disagreement(
            out.features_pool, out.features_labeled, y_given, pred
        ),
    }
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
    order = np.argsort(margin, kind="stable")
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
