"""BAIT against an earlier revision of itself: the same inputs, one process, picks compared.

The previous ``bait.py`` and ``_fisher.py`` are read with ``git show REV:path`` and loaded as
separate modules (their strategy registered under another name), so that both run in the same
process on the same arrays, one after the other (alternating order over ``--repeat`` rounds), and
see the same machine load. Inputs are ``bench_selection.make_data``'s synthetic signals.

Examples
--------
::

    OMP_NUM_THREADS=1 python benchmarks/bench_bait.py --n 50000 --classes 10 --k 1000
    OMP_NUM_THREADS=1 python benchmarks/bench_bait.py --n 10000 --classes 100 --k 20 \\
        --new-params '{"max_fisher_dim": null}'

Output: one line per run (wall and CPU seconds), then whether the picks (indices, in order) and
the pruned picks are identical, and the old/new ratios of the medians.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_selection as B

ROOT = Path(__file__).resolve().parent.parent


def load_old(rev: str) -> type:
    """The ``Bait`` class of revision ``rev`` (with its own ``_fisher``), registered as
    ``bait_old``."""
    import ncal.strategies  # noqa: F401  (the package the old modules live in)

    def source(name: str) -> str:
        return subprocess.run(
            ["git", "show", f"{rev}:src/ncal/strategies/{name}.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    tmp = Path(tempfile.mkdtemp(prefix="ncal-bait-old-"))
    fisher = source("_fisher")
    bait = (
        source("bait")
        .replace("from ._fisher import", "from ._fisher_old import")
        .replace("from . import _fisher\n", "from . import _fisher_old as _fisher\n")
        .replace('    name = "bait"\n', '    name = "bait_old"\n')
    )
    for name, text in (("_fisher_old", fisher), ("bait_old", bait)):
        path = tmp / f"{name}.py"
        path.write_text(text)
        full = f"ncal.strategies.{name}"
        spec = importlib.util.spec_from_file_location(full, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[full] = mod
        spec.loader.exec_module(mod)
    shutil.rmtree(tmp, ignore_errors=True)
    return sys.modules["ncal.strategies.bait_old"].Bait


def signals(data: Path, c: int) -> Any:
    import ncal.strategies as S

    load = {f.stem: np.load(f) for f in data.glob("*.npy") if not f.stem.startswith("head")}
    return S.Signals(
        logits_pool=load["logits_pool"],
        features_pool=load["features_pool"],
        features_labeled=load["features_labeled"],
        labels_labeled=load["labels_labeled"],
        probs_labeled=load["probs_labeled"],
        num_classes=c,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    B.add_round_shape_args(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--against", default="62bb645", help="git revision of the previous code")
    p.add_argument("--new-params", type=json.loads, default={}, help="JSON, new code only")
    p.add_argument("--old-params", type=json.loads, default={}, help="JSON, previous code only")
    p.add_argument("--repeat", type=int, default=1)
    a = p.parse_args(argv)

    import torch

    from ncal.strategies.bait import Bait

    torch.set_num_threads(1)
    old_cls = load_old(a.against)
    tmp = Path(tempfile.mkdtemp(prefix="ncal-bench-bait-"))
    try:
        B.make_data(tmp, a.n, a.labeled, a.d, a.classes, a.seed, False)
        sig = signals(tmp, a.classes)
        print(f"# N={a.n}, d={a.d}, C={a.classes}, k={a.k}, against {a.against}", flush=True)
        runs: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
        sels: dict[str, Any] = {}
        for i in range(a.repeat):
            order = ("old", "new") if i % 2 == 0 else ("new", "old")
            for which in order:
                strat = old_cls(**a.old_params) if which == "old" else Bait(**a.new_params)
                t0, c0 = time.perf_counter(), time.process_time()
                sels[which] = strat.select(sig, a.k, np.random.default_rng(0))
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                runs[which].append((wall, cpu))
                print(f"{which}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    old, new = sels["old"], sels["new"]
    same = old.indices.tolist() == new.indices.tolist()
    overlap = len(set(old.indices.tolist()) & set(new.indices.tolist()))
    print(f"identical picks (same order): {same}; common picks: {overlap}/{len(old.indices)}")
    print(f"identical pruned picks: {old.info['pruned'] == new.info['pruned']}")
    for j, label in ((0, "wall"), (1, "CPU")):
        med = {w: statistics.median(r[j] for r in runs[w]) for w in runs}
        print(f"old/new ({label}, median): {med['old'] / med['new']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
