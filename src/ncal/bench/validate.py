"""Check a whole grid before any cell runs, and report every problem at once.

:func:`ncal.bench.grid.load_grid` checks the structure of a grid (keys, types, names); this module
adds the checks of the values that would otherwise only fail inside a cell, hours later:

* datasets: a known name, and an existing path for the forms that take one (``npz:PATH``, ...);
* noise specs and annotator specs: :func:`ncal.data.check_noise_spec`;
* strategies: every parameter name against the strategy's ``__init__``, then the strategy is built
  so that its own validation runs (:func:`ncal.strategies.params.check_strategy_params`);
* training overrides: names and values (:func:`ncal.training.validate.check_train_config`);
* budgets against an integer ``pool_size``;
* finally, when all of the above pass, every distinct cell as an ``ExperimentConfig``.

Every message names the file and the key, e.g.
``grid.yaml: strategies[2].params.directon: unknown parameter of `ncal_r` (did you mean
`direction`?); valid: direction, ...``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import NcalError
from .grid import Grid, GridProblems, parse_grid, read_grid_source

# dataset forms whose argument is a file or folder that must exist
_PATH_FORMS = ("cifar10", "cifar100", "npz", "features")


def check_grid(source: str | Path | Mapping[str, Any], *, out: str | Path | None = None) -> Grid:
    """Parse ``source`` and check its structure and values; raise listing every problem.

    Parameters
    ----------
    source : str, Path or mapping
        A YAML grid file or its mapping (see :mod:`ncal.bench.grid`).
    out : str or Path, optional
        Output directory overriding the grid's ``out``.

    Returns
    -------
    Grid
        The parsed grid, valid as far as can be known without running it.

    Raises
    ------
    NcalError
        One message listing every problem, each line ``<file>: <key>: <what is wrong>``.
    """
    grid, problems = grid_problems(source, out=out)
    problems.raise_if_any()
    return grid


def grid_problems(
    source: str | Path | Mapping[str, Any], *, out: str | Path | None = None
) -> tuple[Grid, GridProblems]:
    """The parsed grid and all problems of its structure and values (see :func:`check_grid`)."""
    raw, stem, where = read_grid_source(source)
    problems = GridProblems(where)
    grid = parse_grid(raw, problems, stem=stem, out=out)
    _check_datasets(grid.datasets, problems)
    for i, spec in enumerate(grid.noise):
        _check_spec(spec, f"noise[{i}]", problems)
    _check_strategies(raw.get("strategies"), problems)
    _check_train_values(grid.train, problems)
    _check_annotators(grid, problems)
    _check_budgets(grid, problems)
    if not problems:  # whole configurations last: their errors would repeat the ones above
        _check_cells(grid, problems)
    return grid, problems


def _check_datasets(names: list[str], problems: GridProblems) -> None:
    from ..data import known_datasets

    known = [u.partition(":")[0] for u in known_datasets()]
    for i, name in enumerate(names):
        key, _, arg = name.partition(":")
        key = key.strip().lower().replace("-", "_")
        if key in _PATH_FORMS and arg and not Path(arg).expanduser().exists():
            problems.add(f"datasets[{i}]", f"{name!r}: the path {arg!r} does not exist")
        elif key not in known:
            _check_dataset_by_loading(name, f"datasets[{i}]", problems)


def _check_dataset_by_loading(name: str, key: str, problems: GridProblems) -> None:
    """Names outside the registry's keys may still be aliases (``fashion``): ask the loader, which
    refuses an unknown name before it reads anything."""
    from ..data import load_dataset

    try:
        load_dataset(name)
    except (ValueError, OSError) as exc:
        problems.add(key, str(exc).splitlines()[0])


def _check_spec(spec: str, key: str, problems: GridProblems) -> None:
    from ..data import check_noise_spec

    try:
        check_noise_spec(spec)
    except ValueError as exc:
        problems.add(key, f"bad noise spec {spec!r}: {exc}")


def _check_strategies(value: Any, problems: GridProblems) -> None:
    """Parameter names and values of every well-formed strategy entry."""
    from ..strategies.params import (
        check_strategy_params,
        strategy_parameter_names,
        unknown_parameter_message,
    )

    items = value if isinstance(value, list) else [value] if value else []
    for i, item in enumerate(items):
        name = (
            item
            if isinstance(item, str)
            else item.get("name")
            if isinstance(item, Mapping)
            else None
        )
        params = item.get("params") if isinstance(item, Mapping) else {}
        if not isinstance(name, str) or not isinstance(params or {}, Mapping):
            continue  # structural problem, already reported
        try:
            valid = strategy_parameter_names(name)
        except NcalError:
            continue  # unknown name, already reported
        unknown = [k for k in (params or {}) if k not in valid]
        for k in unknown:
            problems.add(f"strategies[{i}].params.{k}", unknown_parameter_message(name, k, valid))
        if not unknown:
            problems.check(f"strategies[{i}].params", check_strategy_params, name, params or {})


def _check_train_values(train: dict[str, Any], problems: GridProblems) -> None:
    from ..training.validate import check_train_config, train_keys

    known = {k: v for k, v in train.items() if k in train_keys()}  # unknown keys: reported
    problems.check("train", check_train_config, known)


def _check_annotators(grid: Grid, problems: GridProblems) -> None:
    from ..experiment.config import ANNOTATOR_ERRORS

    for i, specs in enumerate(grid.annotators):
        for j, spec in enumerate(specs or []):
            _check_spec(spec, f"annotators[{i}][{j}]", problems)
    for i, mode in enumerate(grid.annotator_errors):
        if mode is not None and mode not in ANNOTATOR_ERRORS:
            problems.add(
                f"annotator_errors[{i}]", f"must be one of {list(ANNOTATOR_ERRORS)}; got {mode!r}"
            )
    has_errors = any(m is not None for m in grid.annotator_errors)
    if has_errors and all(a is None for a in grid.annotators):
        problems.add(
            "annotator_errors",
            "applies to several annotators: add an `annotators` axis (a list of annotator lists)",
        )


def _check_budgets(grid: Grid, problems: GridProblems) -> None:
    """Schedules against an integer pool size (a pool given as a fraction is checked per cell)."""
    from ..experiment.budget import budget_schedule

    size = grid.pool_size
    if not isinstance(size, int) or isinstance(size, bool):
        return
    for i, b in enumerate(grid.budgets):
        problems.check(f"budget[{i}]", lambda b=b: budget_schedule(size, **b))


def _check_cells(grid: Grid, problems: GridProblems) -> None:
    """Every distinct cell configuration (seeds aside) as an ``ExperimentConfig``."""
    from .executors import make_experiment_config

    seen: set[str] = set()
    for cell in grid.cells():
        config = {k: v for k, v in cell.config.items() if k != "seed"}
        key = json.dumps(config, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        try:
            make_experiment_config(cell.config)
        except (NcalError, TypeError, ValueError) as exc:
            problems.add(f"cell {cell.relpath.rsplit('/seed=', 1)[0]}", str(exc))
