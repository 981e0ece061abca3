"""``ncal bench`` (run a grid, then report) and ``ncal report`` (rebuild a report)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` and ``report`` subcommands to the ``ncal`` parser."""
    bench = sub.add_parser(
        "bench",
        help="run a grid of experiments (resumable) and write its report",
        description=(
            "Expand CONFIG.yaml (datasets × noise × strategies × seeds × budgets) into cells, "
            "run every unfinished cell, then write report.md / report.html into the grid's "
            "output directory. Rerunning the same command skips finished cells and resumes "
            "unfinished ones."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    bench.add_argument(
        "config", metavar="CONFIG.yaml", help="grid file (see configs/examples/tiny.yaml)"
    )
    bench.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local process pool, or Ray tasks (pip install 'ncal[ray]')",
    )
    bench.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel cells (default: CPU count; 1 = in this process)",
    )
    bench.add_argument(
        "--address",
        default=None,
        help="Ray cluster address, e.g. auto (default: start Ray locally)",
    )
    bench.add_argument(
        "--out", default=None, help="output directory (default: the grid's `out` key)"
    )
    bench.add_argument("--quiet", action="store_true", help="no progress output")
    bench.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write the report after the run",
    )
    bench.add_argument(
        "--check",
        action="store_true",
        help="only validate the grid (every problem at once) and print its cells; run nothing",
    )
    bench.set_defaults(func=_bench)

    rep = sub.add_parser(
        "report",
        help="write report.md / report.html (figures embedded) for a run or grid directory",
        description=(
            "Summarise a run directory (ncal run) or a grid directory (ncal bench): learning "
            "curves, AUBC with confidence intervals, paired tests vs random, pairwise-penalty "
            "matrix, labels to reach a target accuracy, query purity, collapse and evaluation "
            "metrics."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    rep.add_argument("path", metavar="RUN_OR_GRID_DIR")
    rep.add_argument("--out", default=None, help="output directory (default: RUN_OR_GRID_DIR)")
    rep.add_argument(
        "--reference", default="random", help="strategy the paired tests compare against"
    )
    rep.add_argument(
        "--reach",
        type=float,
        default=0.9,
        help="fraction of full-data accuracy for the labels-to-reach table",
    )
    rep.add_argument(
        "--full-accuracy",
        type=float,
        default=None,
        help="full-data test accuracy (default: best seed-mean accuracy in each setting)",
    )
    rep.set_defaults(func=_report)


def _bench(args: argparse.Namespace) -> int:
    from .executors import run_grid
    from .report import write_report
    from .validate import check_grid

    grid = check_grid(args.config, out=args.out)  # every problem of the grid, before any cell runs
    if args.check:
        cells = grid.cells()
        print(f"{args.config}: valid; {len(cells)} cell(s), output {grid.out}")
        return 0
    result = run_grid(
        args.config,
        executor=args.executor,
        workers=args.workers,
        address=args.address,
        quiet=args.quiet,
        out=args.out,
    )
    if args.report:
        paths = write_report(result.out_dir)
        print(f"report: {paths['markdown']}\n        {paths['html']}")
    return _explain_unfinished(result, quiet=args.quiet)


def _explain_unfinished(result: Any, *, quiet: bool) -> int:
    """Say why cells did not finish and what to do; 1 when some did not, else 0.

    Without ``--quiet`` the grid's own summary already listed each failure; with it, the reason
    (the last line of the error) is printed here, so a failure is never silent.
    """
    failed = [o for o in result.outcomes if o.status == "failed"]
    incomplete = [o for o in result.outcomes if o.status == "incomplete"]
    if quiet:
        for o in failed:
            print(f"failed: {o.relpath}: {last_line(o.error)}", file=sys.stderr)
    if failed:
        print(
            f"{len(failed)} cell(s) failed. Their error is the same on every rerun unless its "
            "cause is fixed: correct the grid (or the data) it names, then run the same command "
            "again; finished cells are skipped and half-finished ones resume. To see a full "
            "traceback, run one failing cell alone with `ncal run` and its settings from "
            "<cell>/cell.json.",
            file=sys.stderr,
        )
    if incomplete:
        print(
            f"{len(incomplete)} cell(s) stopped before their last round without an error "
            "(interrupted, or a cell runner that returned early): run the same command again "
            "to resume them.",
            file=sys.stderr,
        )
    return 1 if failed or incomplete else 0


def last_line(error: str | None) -> str:
    """The last non-empty line of an error text (the exception's own message)."""
    lines = [line for line in (error or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


def _report(args: argparse.Namespace) -> int:
    from ..errors import NcalError
    from ..experiment.store import find_runs
    from .report import write_report

    if not Path(args.path).is_dir():
        raise NcalError(
            f"`PATH` {args.path!r} is not a directory (expected a run or grid directory)"
        )
    if not find_runs(args.path)[1]:
        raise NcalError(
            f"no runs under {args.path!r}: expected a run directory (`ncal run --out`) or a grid "
            "directory (`ncal bench`) holding rounds.jsonl files"
        )
    paths = write_report(
        args.path,
        args.out,
        reference=args.reference,
        reach=args.reach,
        full_accuracy=args.full_accuracy,
    )
    print(
        f"report: {paths['markdown']}\n        {paths['html']}\n"
        f"        {len(paths['figures'])} figures"
    )
    return 0
