"""``ncal demo``: the embedded default study, run as a grid and summarised in a report."""

from __future__ import annotations

import argparse
from typing import Any

from ..experiment.recipes import recipe

# The embedded default study, on the studies' fast MLP recipe (MLP on pixels): a few minutes on 2 CPU
# cores while still training into the terminal phase under 30% noise.
_RECIPE = recipe("fast-mlp")
DEMO_GRID: dict[str, Any] = {
    "name": "demo",
    "description": "MNIST-5k, 30% symmetric label noise, random vs entropy vs NCAL-R, 3 paired seeds",
    "datasets": ["mnist5k"],
    "noise": ["sym:0.3"],
    "strategies": ["random", "entropy", "ncal_r"],
    "seeds": 3,
    "budget": {"initial": 100, "query": 100, "rounds": 5},
    "model": _RECIPE["model"],
    "train": _RECIPE["train"],
}


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand to the ``ncal`` parser."""
    demo = sub.add_parser(
        "demo",
        help="the embedded default study: MNIST-5k, 30%% symmetric noise, random/entropy/ncal_r, 3 seeds",
        description="Runs the default grid with the local executor and writes report.md with learning curves.",
    )
    demo.add_argument("--out", default="runs/demo", help="output directory")
    demo.add_argument(
        "--workers", type=int, default=None, help="parallel runs (default: number of cores)"
    )
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Run :data:`DEMO_GRID` into ``args.out`` (resumable) and write its report there."""
    import time

    # imported here so that building the parser (`ncal --help`) does not load pandas / scipy
    from .executors import run_grid
    from .report import write_report

    grid = dict(DEMO_GRID, out=args.out)
    t0 = time.perf_counter()
    result = run_grid(grid, workers=args.workers, quiet=args.quiet)
    paths = write_report(args.out)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s ({result.count('complete')} runs)")
    print(f"report: {paths['markdown']}")
    return 0
