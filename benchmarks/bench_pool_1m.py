"""Strategies on a memory-mapped pool of up to 1M items: does their memory grow with N?

The "fast where users wait" issue asks that, at N = 1M (memory-mapped), the strategies whose cost
allows it (uncertainty, CMAP, NCAL-R, NCAL-R+, k-center, BADGE) select with a peak memory that does
not grow with N beyond the inputs. This writes synthetic signals as ``.npy`` files block by block
(ReLU-like clustered float32 features, float32 logits of a linear head, flip counts, a labeled set
with three annotators), then, for each pool size and strategy, runs one ``select`` call in a fresh
subprocess that opens the pool files read-only with ``mmap_mode="r"``. It reports

* ``s``: the wall time of the call (one thread);
* ``anon MB``: the peak growth of the process's anonymous memory (``RssAnon``, sampled every 2 ms
  by a thread) during the call: what the strategy allocates (torch is imported before, so its
  fixed ~300 MB are not counted). Pages of the memory-mapped inputs
  are file-backed and are not counted here; they belong to the page cache, not to the process;
* ``HWM MB``: the growth of the peak resident set (``VmHWM``), which counts the mapped input pages
  the call touched as well;
* ``B/item``: ``anon MB`` per pool item, next to the feature matrix's own ``4 d`` bytes per item.

A strategy whose memory does not grow with N beyond the inputs keeps ``anon MB`` a small multiple
of the per-item scores it must return (a few float64 numbers per item: ``probs_pool`` is N × C) and
far below the feature matrix (2 GB at 1M × 512), at every N.

k-center and BADGE take one pass over the pool per pick, so ``--k`` defaults to 100 here (k = 1,000
at N = 1M would take minutes per strategy; the 50k benchmark times k = 1,000).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_pool_1m.py [--sizes 250000 1000000] [--k 100]

Prints a table, then ONE JSON line. Needs about 2.2 GB of disk per million items (``--tmp``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_selection import _reset_peak, _status_kb

STRATEGIES = ("margin", "entropy", "cmap", "ncal_r", "ncal_plus", "coreset", "badge")
POOL_FILES = ("features_pool", "logits_pool", "ff_counts")


def make_data(out: Path, n: int, d: int, c: int, n_labeled: int, seed: int) -> None:
    """Write the pool block by block (never whole in memory) and the small labeled-set arrays."""
    rng = np.random.default_rng(seed)
    centers = np.abs(rng.normal(0.0, 1.0, (c, d))).astype(np.float32)
    head = (centers / np.linalg.norm(centers, axis=1, keepdims=True) * 2.0).astype(np.float32)

    def block(m: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, c, m)
        x = centers[y] + rng.normal(0.0, 1.2, (m, d)).astype(np.float32)
        return np.maximum(x, 0.0, out=x), y

    open_memmap = np.lib.format.open_memmap
    feats = open_memmap(out / "features_pool.npy", mode="w+", dtype=np.float32, shape=(n, d))
    logits = open_memmap(out / "logits_pool.npy", mode="w+", dtype=np.float32, shape=(n, c))
    for s in range(0, n, 65536):
        x, _ = block(min(65536, n - s))
        feats[s : s + len(x)] = x
        logits[s : s + len(x)] = x @ head.T
    feats.flush()
    logits.flush()
    del feats, logits
    np.save(out / "ff_counts.npy", rng.integers(0, 8, n))
    x_l, y_l = block(n_labeled)
    z = x_l.astype(np.float64) @ head.T.astype(np.float64)
    p_l = np.exp(z - z.max(1, keepdims=True))
    p_l /= p_l.sum(1, keepdims=True)
    agree = rng.random((n_labeled, 3)) < 0.8
    np.save(out / "features_labeled.npy", x_l)
    np.save(out / "labels_labeled.npy", y_l)
    np.save(out / "probs_labeled_oof.npy", p_l)
    np.save(
        out / "annotations_labeled.npy",
        np.where(agree, y_l[:, None], rng.integers(0, c, (n_labeled, 3))),
    )


class _AnonPeak:
    """Peak ``RssAnon`` of this process while the context is open, sampled every 2 ms."""

    def __enter__(self) -> _AnonPeak:
        self.start = self.peak = _status_kb("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _status_kb("RssAnon"))

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status_kb("RssAnon"))


def worker(data: Path, name: str, k: int) -> dict:
    """One ``select`` call in this fresh process, on read-only memory-mapped pool arrays."""
    import torch  # noqa: F401  (imported first: its ~300 MB are a fixed cost, not the call's)

    import ncal.strategies as S

    arrays = {
        f.stem: np.load(f, mmap_mode="r" if f.stem in POOL_FILES else None)
        for f in data.glob("*.npy")
    }
    signals = S.Signals(num_classes=arrays["logits_pool"].shape[1], **arrays)
    strategy = S.get(name)
    _reset_peak()  # VmHWM restarts from the current RSS, so its growth belongs to the call
    hwm0 = _status_kb("VmRSS")
    with _AnonPeak() as anon:
        t0 = time.perf_counter()
        sel = strategy.select(signals, k, np.random.default_rng(0))
        seconds = time.perf_counter() - t0
    if sel.n_annotations != k or len(np.unique(sel.indices)) != len(sel.indices):
        raise RuntimeError(f"{name} bought {sel.n_annotations} annotations, not {k} distinct")
    return {
        "seconds": seconds,
        "anon_mb": (anon.peak - anon.start) / 1024.0,
        "hwm_mb": max(0, _status_kb("VmHWM") - hwm0) / 1024.0,
        "relabels": sel.n_annotations - len(sel.indices),
    }


def run_child(data: Path, name: str, k: int, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--_worker", str(data), name, str(k)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--_worker":
        print(json.dumps(worker(Path(argv[1]), argv[2], int(argv[3]))))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000])
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--labeled", type=int, default=1000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tmp", default=None, help="directory for the pool files")
    args = ap.parse_args(argv)
    if min(args.sizes) <= args.k or min(args.d, args.classes, args.labeled, args.k) < 2:
        ap.error("--sizes must exceed --k; --d, --classes, --labeled, --k at least 2")
    rows = []
    print(f"{'strategy':<12}{'N':>10}{'s':>9}{'anon MB':>10}{'HWM MB':>9}{'B/item':>8}")
    for n in args.sizes:
        tmp = Path(tempfile.mkdtemp(prefix="ncal_pool_", dir=args.tmp))
        try:
            t0 = time.perf_counter()
            make_data(tmp, n, args.d, args.classes, args.labeled, seed=0)
            print(f"# N = {n:,}: pool written in {time.perf_counter() - t0:.0f} s "
                  f"({n * args.d * 4 / 2**30:.2f} GB of features)")  # fmt: skip
            for name in args.strategies:
                r = {"strategy": name, "n": n, **run_child(tmp, name, args.k, args.threads)}
                r["bytes_per_item"] = r["anon_mb"] * 2**20 / n
                rows.append(r)
                print(
                    f"{name:<12}{n:>10}{r['seconds']:>9.2f}{r['anon_mb']:>10.1f}"
                    f"{r['hwm_mb']:>9.1f}{r['bytes_per_item']:>8.1f}"
                )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        json.dumps(
            {
                "d": args.d,
                "classes": args.classes,
                "k": args.k,
                "threads": args.threads,
                "feature_bytes_per_item": 4 * args.d,
                "rows": [
                    {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                    for r in rows
                ],
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
