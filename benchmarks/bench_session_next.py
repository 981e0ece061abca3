"""Benchmark: ``ncal session init`` + ``import`` + ``next`` on a large memory-mapped feature pool.

Builds an (N, D) float32 pool as a ``.npy`` memmap in a temporary folder (Gaussian classes, written
in row blocks so the benchmark itself never holds the pool), a labels CSV for ``--labels`` pool
items, and runs each command in a fresh child process. Reported per step: wall time and the
child's peak RSS (``ru_maxrss`` from ``os.wait4``, the child alone). The baseline, measured in the
same run and the same way, is one float32 GEMM pass over the memmapped pool (``X @ W`` with a
(D, 256) ``W``, in row blocks): reading every feature once is the least a ``next`` can cost.

Usage::

    python benchmarks/bench_session_next.py [--n 1000000] [--d 512] [--labels 300] [--classes 10]

Targets (2 cores): ``next`` under 60 s and under 4 GB peak RSS at N = 1,000,000, D = 512.
Prints a table, then ONE JSON line with the measurements.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_CLI = "import sys; from ncal.cli import main; sys.exit(main(sys.argv[1:]))"
_GEMM = """
import sys, numpy as np
x = np.load(sys.argv[1], mmap_mode="r")
w = np.random.default_rng(0).standard_normal((x.shape[1], 256)).astype(np.float32)
acc = 0.0
for s in range(0, x.shape[0], 65536):
    acc += float((x[s:s + 65536] @ w).sum())
print(acc)
"""


def write_pool(path: Path, n: int, d: int, classes: int, seed: int = 0) -> np.ndarray:
    """Write the pool memmap block by block; return the true class of every row."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, d)).astype(np.float32) * 0.6
    y = rng.integers(0, classes, n)
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for s in range(0, n, 65536):
        e = min(n, s + 65536)
        x[s:e] = centers[y[s:e]] + rng.standard_normal((e - s, d), dtype=np.float32)
    x.flush()
    del x
    return y


def run_child(args: list[str], env: dict[str, str], log: Path) -> tuple[float, float, int, str]:
    """Run ``args``; return (seconds, peak RSS in MB of that child alone, exit code, output tail).

    The child is reaped with ``os.wait4``, whose ``ru_maxrss`` belongs to that child only.
    """
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        p = subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
    return seconds, usage.ru_maxrss / 1024.0, p.returncode, log.read_text()[-2000:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--labels", type=int, default=300)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
    tmp = Path(tempfile.mkdtemp(prefix="bench_session_next_"))
    try:
        pool = tmp / "pool.npy"
        y = write_pool(pool, a.n, a.d, a.classes)
        rows = np.random.default_rng(1).choice(a.n, a.labels, replace=False)
        with open(tmp / "labels.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "label"])
            w.writerows([[str(r), str(int(y[r]))] for r in rows])
        classes = ",".join(f"c{i}" for i in range(a.classes))
        sdir = str(tmp / "session")
        py = [sys.executable, "-c", _CLI, "session"]
        steps = [
            ("baseline_gemm", [sys.executable, "-c", _GEMM, str(pool)]),
            ("init", [*py, "init", sdir, "--pool", str(pool), "--classes", classes, "--quiet"]),
            ("import", [*py, "import", sdir, str(tmp / "labels.csv"), "--quiet"]),
            ("next", [*py, "next", sdir, "--k", str(a.k)]),
        ]
        result: dict[str, float | int] = {"n": a.n, "d": a.d, "labels": a.labels}
        print(f"{'step':<14} {'seconds':>8} {'peak RSS MB':>12}")
        for name, cmd in steps:
            sec, rss, rc, tail = run_child(cmd, env, tmp / f"{name}.log")
            if rc != 0:
                print(f"{name} failed (exit {rc}):\n{tail}", file=sys.stderr)
                return 1
            if name == "next":
                print(tail.strip(), file=sys.stderr)
            print(f"{name:<14} {sec:>8.1f} {rss:>12.0f}")
            result[f"{name}_s"] = round(sec, 2)
            result[f"{name}_peak_rss_mb"] = round(rss, 1)
        result["next_over_baseline_s"] = round(result["next_s"] / result["baseline_gemm_s"], 2)
        print(json.dumps(result))
    finally:
        if a.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
