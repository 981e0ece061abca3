"""Benchmark: NCAL-R+'s selection time against NCAL-R's on the same signals (goal: within 2x).

Synthetic signals with the shapes of a round: N pool items (a share of them from a far-away OOD
blob, with the same share of the bought items reported "not in the label set", so that the gate
acts and its mixture splits), class-clustered penultimate features, a linear head's logits,
margin-std FF, and a labeled set answered by three annotators with their out-of-fold probabilities. Each configuration is timed
``--repeat`` times, interleaved with NCAL-R so that machine noise hits both alike; the median is
reported, with the ratio to NCAL-R's median, and NCAL-R+ with each of its parts switched off shows
where its extra time goes.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_ncal_plus.py [--n 50000] [--d 512] [--classes 10]

Prints a table, then ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import ncal.strategies as S
from ncal._utils.numeric import softmax

CONFIGS = {
    "ncal_r": ("ncal_r", {"ff": "margin_std"}),
    "ncal_plus": ("ncal_plus", {}),
    "ncal_plus, no gate": ("ncal_plus", {"ood_gate": False}),
    "ncal_plus, no reliability": ("ncal_plus", {"reliability": False}),
    "ncal_plus, no relabel": ("ncal_plus", {"relabel": False}),
}


def make_signals(n: int, n_lab: int, d: int, c: int, ood: float, seed: int = 0) -> S.Signals:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, size=(c, d)).astype(np.float32)
    y = rng.integers(0, c, n)
    f = centers[y] + rng.normal(0, 0.8, (n, d)).astype(np.float32)
    n_ood = int(ood * n)
    f[:n_ood] = rng.normal(3, 1, (n_ood, d)).astype(np.float32)  # a far blob: the OOD items
    y_lab = rng.integers(0, c, n_lab)
    f_lab = centers[y_lab] + rng.normal(0, 0.8, (n_lab, d)).astype(np.float32)
    # a head aligned with the class centres: ID items get a clear top logit, the OOD blob small
    # ones (low energy), so the gate's mixture finds two populations and scores every item
    w = (0.01 * (centers - centers.mean(axis=0))).astype(np.float32)
    logits, logits_lab = f @ w.T, f_lab @ w.T
    ann = np.full((n_lab, 3), -1, dtype=np.int64)
    ann[:, 0] = y_lab
    wrong = rng.random((n_lab, 2)) < 0.3
    ann[:, 1:] = np.where(wrong, rng.integers(0, c, (n_lab, 2)), y_lab[:, None])
    return S.Signals(
        probs_pool=softmax(logits),
        logits_pool=logits,
        features_pool=np.maximum(f, 0),
        features_labeled=np.maximum(f_lab, 0),
        labels_labeled=y_lab,
        probs_labeled=softmax(logits_lab),
        ff_counts=rng.integers(0, 3, n),
        ff_margin_std=rng.gamma(2.0, 0.05, n),
        annotations_labeled=ann,
        probs_labeled_oof=softmax(logits_lab + rng.normal(0, 0.5, logits_lab.shape)),
        num_classes=c,
        # the OOD share of the pool, as if met among the bought items: NCAL-R+'s gate acts
        n_rejected_labeled=round(n_lab * ood / (1.0 - ood)),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--labeled", type=int, default=1_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--k", type=int, default=1_000)
    ap.add_argument("--ood", type=float, default=0.2, help="share of the pool from the OOD blob")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    signals = make_signals(a.n, a.labeled, a.d, a.classes, a.ood)
    strategies = {label: S.get(name, **params) for label, (name, params) in CONFIGS.items()}
    for strat in strategies.values():  # imports and first-call set-up outside the timings
        strat.select(make_signals(500, 50, 8, a.classes, a.ood, seed=1), 10)
    times: dict[str, list[float]] = {label: [] for label in strategies}
    for _ in range(a.repeat):
        for label, strat in strategies.items():
            t0 = time.perf_counter()
            strat.select(signals, a.k, np.random.default_rng(0))
            times[label].append(time.perf_counter() - t0)
    base = statistics.median(times["ncal_r"])
    print(
        f"N = {a.n:,}, d = {a.d}, C = {a.classes}, k = {a.k}, OOD {a.ood:.0%}; median of {a.repeat}"
    )
    print(f"{'strategy':<28} {'seconds':>8} {'x ncal_r':>9}")
    result = {"n": a.n, "d": a.d, "classes": a.classes, "k": a.k, "seconds": {}, "ratio": {}}
    for label, ts in times.items():
        med = statistics.median(ts)
        print(f"{label:<28} {med:>8.2f} {med / base:>9.2f}")
        result["seconds"][label] = round(med, 3)
        result["ratio"][label] = round(med / base, 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
