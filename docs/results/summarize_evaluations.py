"""Mean of each per-round evaluation over rounds 1..R (every round after the shared initial one) and
over seeds, per strategy, read from a grid's rounds.jsonl files. Prints a Markdown table.

    python docs/results/summarize_evaluations.py runs/evaluations-fashion-mnist
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

STRATEGIES = ("random", "entropy", "coreset", "badge", "ncal_r")


def metrics(row: dict) -> dict[str, float]:
    ev, out = row.get("eval", {}), {"test accuracy": row["test_accuracy"]}
    for s in ("msp", "energy", "mahalanobis", "knn"):
        if "ood" in ev:
            out[f"OOD {s} AUROC"] = ev["ood"][s]["auroc"]
            out[f"OOD {s} FPR95"] = ev["ood"][s]["fpr95"]
    if "shift" in ev:
        out["shift: mean accuracy"] = ev["shift"]["mean"]
    if "probe" in ev:
        out["linear probe accuracy"] = ev["probe"]["mean"]["test_accuracy"]
    for k in ("all", "old", "new"):
        if "gcd" in ev:
            out[f"GCD {k}"] = ev["gcd"][k]
    for k in ("many", "medium", "few"):
        if ev.get("longtail", {}).get(k) is not None:
            out[f"long tail {k}-shot"] = ev["longtail"][k]
    geo, nc = row.get("geometry_test", {}), row.get("nc_test", {})
    for key, val in (
        ("inter-class distance (raw, test)", geo.get("raw")),
        ("separation ratio (test)", geo.get("separation_ratio")),
        ("NC1 (test, clean labels)", nc.get("nc1")),
    ):
        if isinstance(val, (int, float)):
            out[key] = val
    return out


def main(grid: str) -> None:
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path in Path(grid).rglob("rounds.jsonl"):
        strategy = path.parent.parent.name.split("=", 1)[1]
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for row in rows[1:]:
            for key, val in metrics(row).items():
                values[strategy][key].append(val)
        if any(r.get("query_ood") for r in rows):  # OOD-contaminated pool: share of wasted queries
            bought = sum(len(r["selected"]) for r in rows)
            values[strategy]["share of queries that were OOD"].append(
                sum(r["query_ood"] for r in rows) / bought
            )
    keys = list(dict.fromkeys(k for s in STRATEGIES for k in values[s]))
    print("| metric | " + " | ".join(STRATEGIES) + " |")
    print("|---|" + "---|" * len(STRATEGIES))
    for key in keys:
        cells = [
            f"{statistics.mean(values[s][key]):.3f}" if values[s][key] else "—" for s in STRATEGIES
        ]
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
