"""Every registered strategy on one large pool: seconds and peak memory added, against a baseline.

The budget of the "fast where users wait" issue: every strategy in ``ncal.strategies.available()``
selects k = 1,000 from N = 50,000 (d = 512, C = 10) on one thread in under 10 s (BAIT under 30 s)
and adds under 2 GB of memory. Each strategy runs in its own subprocess (``bench_selection``'s
worker: load the arrays, time one ``select`` call, report the peak resident memory it added), on the
synthetic signals of ``bench_selection.make_data``. Because the machine may be shared, every row
also gives the ratio to a baseline measured in the same run, in the same kind of subprocess: one
float32 GEMM pass over the pool (``features_pool @ W.T``, the linear head) and ``margin``, and
the CPU seconds of the call (``cpu s``): with one thread, close to the wall time on a free core;
on a shared machine it leaves out the time spent waiting for a core (memory-bandwidth contention
still inflates it).

Examples
--------
::

    OMP_NUM_THREADS=1 python benchmarks/bench_strategies_50k.py
    OMP_NUM_THREADS=1 python benchmarks/bench_strategies_50k.py --n 10000 --strategies probcover,bait

Output: a table, then ONE JSON line (a list of objects with keys ``strategy, n, d, classes, k,
seconds, cpu_seconds, peak_mb, status, budget_s, within_budget, x_gemm, x_margin, info``; ``info``: the
selection's scalar diagnostics, e.g. ProbCover's δ and coverage).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_selection as B

BUDGET_S = {"bait": 30.0}  # every other strategy: DEFAULT_BUDGET_S
DEFAULT_BUDGET_S = 10.0
BUDGET_MB = 2048.0


def gemm_worker(data: Path) -> dict[str, Any]:
    """Time one float32 pass ``features_pool @ W.T`` (the baseline every ratio is taken to)."""
    fp = np.load(data / "features_pool.npy")
    w = np.load(data / "head_w.npy").astype(np.float32)
    rss = B._status_kb("VmRSS")
    reset = B._reset_peak()
    t0 = time.perf_counter()
    fp @ w.T
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": B._peak_mb(rss, reset), "status": "ok"}


def strategy_names(requested: list[str] | None) -> list[str]:
    import ncal.strategies as S

    return requested or S.available()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    B.add_round_shape_args(p)
    p.add_argument("--strategies", type=lambda s: [v for v in s.split(",") if v], default=None)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before a strategy is cut")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--_gemm", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._gemm:
        print(json.dumps(gemm_worker(Path(a._gemm))), flush=True)
        return 0

    names = strategy_names(a.strategies)
    print(
        f"# bench_strategies_50k: N={a.n}, d={a.d}, C={a.classes}, k={a.k}, "
        f"labeled={a.labeled}, threads={a.threads}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="ncal-bench50k-"))
    rows: list[dict[str, Any]] = []
    try:
        B.make_data(tmp, a.n, a.labeled, a.d, a.classes, a.seed, "bald" in names)
        gemm = _gemm_baseline(tmp, a)
        margin = _run(tmp, "margin", a)
        print(f"baseline: float32 GEMM pass {gemm:.4f} s, margin {margin['seconds']:.3f} s")
        print(
            f"{'strategy':<14}{'seconds':>9}{'cpu s':>8}{'peak MB':>9}{'budget':>8}{'x GEMM':>9}"
            f"{'x margin':>10}  status"
        )
        for name in names:
            res = margin if name == "margin" else _run(tmp, name, a)
            rows.append(_row(a, name, res, gemm, margin["seconds"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(rows), flush=True)
    return 0


def _gemm_baseline(data: Path, a: argparse.Namespace) -> float:
    return float(_subprocess(["--_gemm", str(data)], a.timeout, a.threads)["seconds"])


def _subprocess(args: list[str], timeout: float, threads: int) -> dict[str, Any]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"baseline worker failed: {out.stderr.strip()[-300:]}")
    return json.loads(lines[-1])


def _run(data: Path, name: str, a: argparse.Namespace) -> dict[str, Any]:
    out = data / f"sel_{name}.npy"
    args = ["--_data", str(data), "--_spec", name, "--k", str(a.k), "--_out", str(out)]
    res = B.run_worker("ours", args, a.timeout, a.threads)
    out.unlink(missing_ok=True)
    return res


def _row(
    a: argparse.Namespace, name: str, res: dict[str, Any], gemm: float, margin: float
) -> dict[str, Any]:
    sec, mb = res["seconds"], res["peak_mb"]
    budget = BUDGET_S.get(name, DEFAULT_BUDGET_S)
    row = {
        "strategy": name,
        "n": a.n,
        "d": a.d,
        "classes": a.classes,
        "k": a.k,
        "seconds": sec,
        "cpu_seconds": res.get("cpu_seconds"),
        "peak_mb": mb,
        "status": res["status"],
        "budget_s": budget,
        "within_budget": None if sec is None else bool(sec < budget and mb < BUDGET_MB),
        "x_gemm": None if sec is None else sec / gemm,
        "x_margin": None if sec is None else sec / margin,
        "info": res.get("info"),
    }
    print(
        f"{name:<14}{B._fmt(sec, '9.2f')}{B._fmt(row['cpu_seconds'], '8.2f')}"
        f"{B._fmt(mb, '9.0f')}{budget:>8.0f}"
        f"{B._fmt(row['x_gemm'], '9.0f')}{B._fmt(row['x_margin'], '10.0f')}  {res['status']}"
        f"{'' if row['within_budget'] in (None, True) else '  OVER BUDGET'}",
        flush=True,
    )
    return row


if __name__ == "__main__":
    sys.exit(main())
