"""Benchmark grids of active-learning experiments: run them, summarise them, report them.

>>> from ncal.bench import load_grid, run_grid, write_report       # doctest: +SKIP
>>> result = run_grid("configs/examples/tiny.yaml", workers=2)       # doctest: +SKIP
>>> write_report(result.out_dir)["html"]                             # doctest: +SKIP

Statistics (:mod:`ncal.bench.stats`) follow docs/algorithms.md §5.2: AUBC with the actual budget
spacing, paired tests against Random, the pairwise-penalty matrix, labels to reach a target
accuracy and the realised purity of the queried labels.
"""

from importlib import import_module
from typing import Any

# Lazy exports (PEP 562): `ncal --help` imports this package, and pandas / scipy / matplotlib
# should only load when a grid is actually run or summarised.
_EXPORTS = {
    "executors": ("CellOutcome", "GridResult", "default_cell_runner", "is_complete", "run_grid"),
    "grid": ("Cell", "Grid", "StrategyEntry", "expand_grid", "load_grid"),
    "report": ("write_report",),
    "summary": ("results_summary", "write_results_summary"),
    "validate": ("check_grid", "grid_problems"),
    "stats": (
        "PairedTest",
        "aubc",
        "aubc_per_seed",
        "aubc_table",
        "curve_table",
        "labels_to_reach",
        "labels_to_reach_table",
        "load_cells",
        "load_results",
        "paired_test",
        "paired_vs_reference",
        "penalty_matrix",
        "pooled_vs_reference",
        "query_purity",
        "query_purity_table",
    ),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = sorted(_WHERE)
