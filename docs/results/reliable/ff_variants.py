"""Does FF carry information on the study's recipe? The flip count against the margin spread.

NCAL-R's FF counts how often an item's predicted label flips over the FF window. On the study's
recipe (``fast-mlp``) it is zero for most of the pool, so NCAL-R ranks mostly by CMAP. NCAL-R and
NCAL-R+ also offer a continuous variant, ``ff="margin_std"``: the standard deviation of the item's
top-1 minus top-2 probability over the same window checkpoints. This script measures, on seeds
outside the study (100 and 101) and without test data, what each variant tells apart:

1. the problem is built as a study cell of that seed builds it (Fashion-MNIST and MNIST-5k, 3,000
   pool items; clean annotators, or the difficulty-dependent ones, independent errors);
2. a random labeled set of ``n`` items gets one annotation each and the study's recipe trains on it
   (the 8-epoch window records both variants);
3. on the rest of the pool each signal is compared with whether the final model's prediction of
   the item is wrong (the true labels are known in a simulation): AUROC, and the error rate of the
   150 items it ranks first. Low margin and CMAP are the references.

Usage (about 3 minutes on one core)::

    python docs/results/reliable/ff_variants.py          # writes ff_variants.{json,md}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from difficulty_signals import BATCH, DIFFICULTY, auroc, mean, random_round

HERE = Path(__file__).resolve().parent
SEEDS = (100, 101)
LABELED = (300, 1050)
DATASETS = ("fashion_mnist", "mnist5k")
ANNOTATORS = {
    "clean": ["none", "none", "none"],
    "difficulty": DIFFICULTY,
}


def one(dataset: str, annotators: str, seed: int, n_labeled: int) -> dict:
    rr = random_round(dataset, ANNOTATORS[annotators], seed, n_labeled)
    wrong = rr.pred != rr.problem.y_pool[rr.rest]
    flips = rr.out.ff_counts.astype(np.float64)
    spread = np.asarray(rr.out.ff_margin_std, dtype=np.float64)
    c = rr.cmap
    signals = {
        "FF flip count": flips,
        "FF margin std": spread,
        "low margin (reference)": rr.low_margin,
        "CMAP (reference)": c,
    }
    row: dict = {
        "dataset": dataset,
        "annotators": annotators,
        "seed": seed,
        "labeled": n_labeled,
        "model_error": float(wrong.mean()),
        "flips_zero_share": float(np.mean(flips == 0)),
        "spread_zero_share": float(np.mean(spread == 0)),
        "spearman_flips_spread": float(spearmanr(flips, spread).statistic),
        "spearman_spread_low_margin": float(spearmanr(spread, rr.low_margin).statistic),
        "spearman_spread_cmap": float(spearmanr(spread, c).statistic),
        "signals": {},
    }
    for name, s in signals.items():
        first = np.argsort(-s, kind="stable")[:BATCH]
        row["signals"][name] = {
            "auroc_wrong": auroc(s, wrong),
            "batch_wrong": float(wrong[first].mean()),
        }
    return row


def write(rows: list[dict]) -> None:
    (HERE / "ff_variants.json").write_text(json.dumps(rows, indent=1) + "\n")
    names = list(rows[0]["signals"])
    lines = [
        "# Does FF carry information? Flip count against margin spread (seeds 100-101)",
        "",
        "Written by `python docs/results/reliable/ff_variants.py` (its docstring says how). A random",
        "labeled set of n items with one annotation each, the study's recipe and its 8-epoch FF",
        "window; on the rest of the pool, each signal against whether the final model's prediction",
        "is wrong. Means over the two seeds. Batch: the 150 items a signal ranks first.",
        "",
    ]
    for dataset in DATASETS:
        for ann in ANNOTATORS:
            for n in LABELED:
                rs = [
                    r
                    for r in rows
                    if (r["dataset"], r["annotators"], r["labeled"]) == (dataset, ann, n)
                ]
                if not rs:
                    continue
                lines += [
                    f"## {dataset}, {ann} annotators, {n} labeled items",
                    "",
                    f"Model error on the pool {mean(rs, 'model_error'):.3f}. Zero on "
                    f"{mean(rs, 'flips_zero_share'):.1%} of the pool: flip count; "
                    f"{mean(rs, 'spread_zero_share'):.1%}: margin std. Spearman of the margin "
                    f"std with the flip count {mean(rs, 'spearman_flips_spread'):+.2f}, with low "
                    f"margin {mean(rs, 'spearman_spread_low_margin'):+.2f}, with CMAP "
                    f"{mean(rs, 'spearman_spread_cmap'):+.2f}.",
                    "",
                    "| signal (high = buy first) | AUROC, prediction wrong | batch error rate |",
                    "|---|---|---|",
                ]
                for name in names:
                    lines.append(
                        f"| {name} | {mean(rs, 'signals', name, 'auroc_wrong'):.3f} "
                        f"| {mean(rs, 'signals', name, 'batch_wrong'):.3f} |"
                    )
                lines.append(f"| random (pool) | 0.500 | {mean(rs, 'model_error'):.3f} |")
                lines.append("")
    (HERE / "ff_variants.md").write_text("\n".join(lines))


def main() -> int:
    rows = []
    for dataset in DATASETS:
        for ann in ANNOTATORS:
            for seed in SEEDS:
                for n in LABELED:
                    rows.append(one(dataset, ann, seed, n))
                    print(dataset, ann, seed, n, flush=True)
                    write(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
