"""Benchmark grids: a YAML file (or mapping) expanded into one experiment per cell.

A grid is the Cartesian product ``seeds × datasets × noise × models × budgets × strategies``; every
cell is one :func:`ncal.experiment.run_experiment` call with the keyword arguments in
:attr:`Cell.config`. Each cell gets a readable directory name plus a short hash of its full
configuration, e.g. ``dataset=mnist5k/noise=sym-0.3/strategy=ncal_r-high/seed=0_1a2b3c4d``, so a
rerun of the same grid finds the cells that are already finished and an edited grid never mixes
its results with those of the old settings.

Grid file keys (all but ``datasets``, ``strategies`` optional)::

    datasets: [digits]                      # dataset names of ncal.data.load_dataset
    noise: ["none", "sym:0.3"]              # noise spec strings
    strategies:                             # names, or {name, params, label}
      - random
      - {name: ncal_r, params: {direction: low}, label: low}
    seeds: 5                                # a count (0..4) or an explicit list
    budget: {initial: 100, query: 100, rounds: 5}   # ints (labels) or fractions of the pool;
                                            # a list of such mappings adds a budget axis
    model: auto                             # a name, or a list (adds a model axis)
    train: {epochs_max: 30}                 # TrainConfig overrides
    evals: []                               # evaluation names
    pool_size: null
    experiment: {}                          # any other ExperimentConfig fields, passed verbatim
    annotators:                             # an axis of annotator sets (each a list of noise
      - [oracle:0.15, oracle:0.3, oracle:0.45]  # specs, one per simulated annotator)
    annotator_errors: [independent, correlated]  # an axis; only with `annotators`
    out: runs/my-grid                       # output directory (relative to the working directory)

:func:`load_grid` checks the structure (keys, types, strategy and training names) and reports every
problem at once; :func:`ncal.bench.validate.check_grid` adds the checks of the values (datasets,
noise and annotator specs, strategy parameters by building each strategy, training values).

References
----------
docs/algorithms.md §5.1 (protocol: paired seeds, Random always included) and §5.3 (several budgets / query
sizes: Lüth et al., NeurIPS 2023).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import NcalError
from ..strategies.params import did_you_mean

GRID_KEYS = (
    "datasets",
    "noise",
    "strategies",
    "seeds",
    "budget",
    "model",
    "train",
    "evals",
    "pool_size",
    "experiment",
    "annotators",
    "annotator_errors",
    "out",
    "name",
    "description",
)
BUDGET_KEYS = ("initial", "query", "rounds")
DEFAULT_BUDGET = {"initial": 200, "query": 200, "rounds": 5}
HASH_LEN = 8


@dataclass(frozen=True)
class StrategyEntry:
    """One strategy of a grid: registry ``name``, constructor ``params`` and a display ``label``."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    label: str | None = None

    @property
    def key(self) -> str:
        """Display name used in tables and figures (unique within a grid)."""
        if self.label is not None:
            return self.label
        if not self.params:
            return self.name
        inner = ",".join(f"{k}={_short(v)}" for k, v in sorted(self.params.items()))
        return f"{self.name}({inner})"

    @property
    def dirname(self) -> str:
        """Directory component: ``name``, ``name-label``, or the label when it starts with the name.

        Parameters of unlabeled entries are spelled out; the cell hash covers them in any case.
        """
        if self.label is not None and not self.label.startswith(self.name):
            return slugify(f"{self.name}-{self.label}")
        return slugify(self.key)


@dataclass(frozen=True)
class Cell:
    """One experiment of a grid.

    Attributes
    ----------
    config : dict
        Keyword arguments of ``ExperimentConfig`` (JSON-serialisable); hashed into :attr:`hash`.
    strategy : str
        Display label of the strategy (see :attr:`StrategyEntry.key`).
    budget : str
        Display label of the budget schedule, ``"initial+query x rounds"``.
    relpath : str
        Directory of the cell relative to the grid's output directory.
    hash : str
        First 8 hex digits of the SHA-1 of the canonical JSON of ``config``.
    """

    config: dict[str, Any]
    strategy: str
    budget: str
    relpath: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as written to ``cell.json`` and ``cells.json``."""
        return dataclasses.asdict(self)


@dataclass
class Grid:
    """A parsed grid (see the module docstring for the file format)."""

    datasets: list[str]
    noise: list[str]
    strategies: list[StrategyEntry]
    seeds: list[int]
    budgets: list[dict[str, int | float]]
    models: list[str]
    train: dict[str, Any]
    evals: list[Any]
    pool_size: int | float | None
    experiment: dict[str, Any]
    out: Path
    name: str = "grid"
    description: str = ""
    # axes of the annotator settings; [None] = runs without annotators (nothing added to the cells)
    annotators: list[list[str] | None] = field(default_factory=lambda: [None])
    annotator_errors: list[str | None] = field(default_factory=lambda: [None])

    def cells(self) -> list[Cell]:
        """Expand into cells, ordered seed-major so paired comparisons fill in early."""
        axes = _Axes(
            multi_model=len(self.models) > 1,
            multi_budget=len(self.budgets) > 1,
            annotators=any(a is not None for a in self.annotators),
            errors=any(e is not None for e in self.annotator_errors),
        )
        cells = []
        for seed in self.seeds:
            for dataset in self.datasets:
                for noise in self.noise:
                    for model in self.models:
                        for budget in self.budgets:
                            for annotators in self.annotators:
                                for errors in self.annotator_errors:
                                    for strat in self.strategies:
                                        setting = _Setting(
                                            seed, dataset, noise, model, budget, annotators, errors
                                        )
                                        cells.append(self._cell(setting, strat, axes))
        return cells

    def _cell(self, s: _Setting, strat: StrategyEntry, axes: _Axes) -> Cell:
        config: dict[str, Any] = {
            "dataset": s.dataset,
            "noise": s.noise,
            "strategy": strat.name,
            "strategy_params": dict(strat.params),
            "initial": s.budget["initial"],
            "query": s.budget["query"],
            "rounds": s.budget["rounds"],
            "seed": s.seed,
            "model": s.model,
            "train": dict(self.train),
            "evals": list(self.evals),
            "pool_size": self.pool_size,
        }
        # only grids with annotators add the keys, so the hashes of older grids do not change
        if s.annotators is not None:
            config["annotators"] = list(s.annotators)
        if s.errors is not None:
            config["annotator_errors"] = s.errors
        config.update(self.experiment)
        digest = config_hash(config)
        blabel = budget_label(s.budget)
        parts = [f"dataset={slugify(s.dataset)}", f"noise={slugify(s.noise)}"]
        if axes.multi_model:
            parts.append(f"model={slugify(s.model)}")
        if axes.multi_budget:
            parts.append(f"budget={slugify(blabel)}")
        if axes.annotators:
            parts.append(f"annotators={slugify(annotators_label(s.annotators))}")
        if axes.errors:
            parts.append(f"errors={slugify(str(s.errors))}")
        parts += [f"strategy={strat.dirname}", f"seed={s.seed}_{digest}"]
        return Cell(config, strat.key, blabel, "/".join(parts), digest)

    def to_dict(self) -> dict[str, Any]:
        """Resolved grid as plain data (written to ``grid.json`` in the output directory)."""
        return {
            "name": self.name,
            "description": self.description,
            "datasets": self.datasets,
            "noise": self.noise,
            "strategies": [
                {"name": s.name, "params": s.params, "label": s.key} for s in self.strategies
            ],
            "seeds": self.seeds,
            "budget": self.budgets,
            "model": self.models,
            "train": self.train,
            "evals": self.evals,
            "pool_size": self.pool_size,
            "experiment": self.experiment,
            "annotators": self.annotators,
            "annotator_errors": self.annotator_errors,
            "out": str(self.out),
        }


@dataclass(frozen=True)
class _Axes:
    """Which optional axes a grid spans (each adds a directory level to the cell names)."""

    multi_model: bool
    multi_budget: bool
    annotators: bool
    errors: bool


@dataclass(frozen=True)
class _Setting:
    """One point of the grid's axes other than the strategy."""

    seed: int
    dataset: str
    noise: str
    model: str
    budget: dict[str, Any]
    annotators: list[str] | None
    errors: str | None


def annotators_label(specs: list[str] | None) -> str:
    """``["oracle:0.1", "oracle:0.3"]`` → ``"oracle:0.1+oracle:0.3"``; None → ``"single oracle"``."""
    return "single oracle" if specs is None else "+".join(specs)


def slugify(text: str) -> str:
    """Filesystem-safe readable form: ``"sym:0.3"`` → ``"sym-0.3"``; paths keep their last part."""
    text = str(text)
    if "/" in text or "\\" in text:  # "cifar10:/data/cifar" → "cifar10-cifar"
        head, _, rest = text.partition(":")
        tail = Path(rest or head).name or "path"
        text = f"{head}-{tail}" if rest else tail
    text = re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-.")
    return text or "x"


def config_hash(config: Mapping[str, Any]) -> str:
    """Short SHA-1 of the canonical JSON of ``config`` (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:HASH_LEN]


def budget_label(budget: Mapping[str, Any]) -> str:
    """``{"initial": 100, "query": 50, "rounds": 4}`` → ``"100+50x4"``."""
    return f"{_short(budget['initial'])}+{_short(budget['query'])}x{_short(budget['rounds'])}"


def load_grid(source: str | Path | Mapping[str, Any], *, out: str | Path | None = None) -> Grid:
    """Parse a grid from a YAML file path or a mapping, checking its structure.

    Parameters
    ----------
    source : str, Path or mapping
        Path of a YAML file, or the already-parsed mapping.
    out : str or Path, optional
        Output directory; overrides the grid's ``out`` key. Default: the ``out`` key, else
        ``runs/<file stem>``.

    Returns
    -------
    Grid

    Raises
    ------
    NcalError
        Every problem found (unknown keys, missing or malformed values, unknown strategy or
        training names), each line naming the file and the key. The values themselves (dataset
        files, noise specs, strategy parameters) are checked by :func:`ncal.bench.validate.check_grid`.
    """
    raw, stem, where = read_grid_source(source)
    problems = GridProblems(where)
    grid = parse_grid(raw, problems, stem=stem, out=out)
    problems.raise_if_any()
    return grid


def read_grid_source(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str, str]:
    """The raw mapping of a grid, its stem (default name) and how messages name it.

    Raises
    ------
    NcalError
        Missing file, invalid YAML, or a file that does not hold a mapping.
    """
    if isinstance(source, Mapping):
        return dict(source), "grid", "grid"
    path = Path(source)
    if not path.is_file():
        raise NcalError(f"grid file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise NcalError(f"grid file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise NcalError(f"grid file {str(path)!r} must hold a mapping of grid keys")
    return dict(raw), path.stem, path.name


class GridProblems:
    """Problems found in one grid, collected so that all of them are reported at once.

    Parameters
    ----------
    where : str
        How messages name the grid (its file name, or ``"grid"`` for a mapping).
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        """Record ``message`` about grid key ``key`` (e.g. ``strategies[2].params.directon``)."""
        self.items.append(f"{self.where}: {key}: {message}")

    def check(self, key: str, func: Any, *args: Any, default: Any = None) -> Any:
        """``func(*args)``, or ``default`` after recording its NcalError under ``key``."""
        try:
            return func(*args)
        except NcalError as exc:
            self.add(key, str(exc))
            return default

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        """Raise one NcalError listing every problem (nothing when there is none)."""
        if self.items:
            lines = "\n".join(f"  - {p}" for p in self.items)
            raise NcalError(f"{self.where}: {len(self.items)} problem(s) in the grid:\n{lines}")


def parse_grid(
    raw: Mapping[str, Any],
    problems: GridProblems,
    *,
    stem: str = "grid",
    out: str | Path | None = None,
) -> Grid:
    """The :class:`Grid` of ``raw``; every structural problem goes to ``problems``.

    A key with a problem takes a neutral value (an empty list, no overrides), so the rest of the
    grid is still checked; the Grid returned is only meaningful when ``problems`` stays empty.
    """
    unknown = sorted(set(raw) - set(GRID_KEYS))
    for key in unknown:
        problems.add(
            key, f"unknown grid key{did_you_mean(key, GRID_KEYS)}; known keys: {list(GRID_KEYS)}"
        )
    check = problems.check
    datasets = check("datasets", _str_list, raw.get("datasets"), "datasets", True, default=[])
    noise = check("noise", _str_list, raw.get("noise", ["none"]), "noise", True, default=[])
    strategies = _strategies(raw.get("strategies"), problems)
    seeds = check("seeds", _seeds, raw.get("seeds", 3), default=[])
    budgets = check("budget", _budgets, raw.get("budget", DEFAULT_BUDGET), default=[])
    models = check("model", _str_list, raw.get("model", "auto"), "model", True, default=[])
    train = check("train", _mapping, raw.get("train"), "train", default={})
    for key in train:
        check(f"train.{key}", _check_train_key, key)
    experiment = check("experiment", _experiment, raw.get("experiment"), default={})
    evals = raw.get("evals") or []
    if not isinstance(evals, list):
        problems.add("evals", f"grid key `evals` must be a list; got {type(evals).__name__}")
        evals = []
    pool_size = raw.get("pool_size")
    if pool_size is not None and (
        isinstance(pool_size, bool) or not isinstance(pool_size, (int, float))
    ):
        problems.add(
            "pool_size", f"grid key `pool_size` must be a number or null; got {pool_size!r}"
        )
    annotators = check("annotators", _annotator_axis, raw.get("annotators"), default=[None])
    errors = check(
        "annotator_errors",
        _str_axis,
        raw.get("annotator_errors"),
        "annotator_errors",
        default=[None],
    )
    out_dir = Path(out if out is not None else raw.get("out") or Path("runs") / stem)
    return Grid(
        datasets=datasets,
        noise=noise,
        strategies=strategies,
        seeds=seeds,
        budgets=budgets,
        models=models,
        train=train,
        evals=evals,
        pool_size=pool_size,
        experiment=experiment,
        out=out_dir,
        name=str(raw.get("name") or stem),
        description=str(raw.get("description") or ""),
        annotators=annotators,
        annotator_errors=errors,
    )


def expand_grid(source: str | Path | Mapping[str, Any] | Grid) -> list[Cell]:
    """Cells of a grid given as a :class:`Grid`, a YAML path or a mapping."""
    grid = source if isinstance(source, Grid) else load_grid(source)
    return grid.cells()


# ----------------------------------------------------------------------------- validation helpers


def _short(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return str(int(value))
    return str(value)


def _str_list(value: Any, key: str, required: bool) -> list[str]:
    if value is None:
        if required:
            raise NcalError(f"grid key `{key}` is required (a name or a list of names)")
        return []
    items = value if isinstance(value, list) else [value]
    if required and not items:
        raise NcalError(f"grid key `{key}` must not be empty")
    for item in items:
        if not isinstance(item, str) or not item:
            raise NcalError(f"grid key `{key}` must hold non-empty strings; got {item!r}")
    if len(set(items)) != len(items):
        raise NcalError(f"grid key `{key}` lists a value twice: {items}")
    return list(items)


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise NcalError(f"grid key `{key}` must be a mapping; got {type(value).__name__}")
    return dict(value)


def _experiment(value: Any) -> dict[str, Any]:
    """The ``experiment`` mapping: other ExperimentConfig fields, none that a grid key sets."""
    experiment = _mapping(value, "experiment")
    reserved = {"dataset", "noise", "strategy", "strategy_params", "seed", "model", "train"}
    reserved |= set(BUDGET_KEYS) | {"evals", "pool_size", "annotators", "annotator_errors"}
    clash = sorted(reserved & set(experiment))
    if clash:
        raise NcalError(f"grid key `experiment` must not set {clash}; use the top-level grid keys")
    from ..experiment import ExperimentConfig

    names = [f.name for f in dataclasses.fields(ExperimentConfig)]
    unknown = [k for k in experiment if k not in names]
    if unknown:
        raise NcalError(
            f"grid key `experiment` has unknown ExperimentConfig field(s) {unknown}"
            f"{did_you_mean(unknown[0], names)}; known: {sorted(names)}"
        )
    return experiment


def _check_train_key(key: str) -> None:
    from ..training.validate import train_keys, unknown_train_key_message

    if key not in train_keys():
        raise NcalError(unknown_train_key_message(str(key)))


def _annotator_axis(value: Any) -> list[list[str] | None]:
    """``annotators``: a list of annotator sets, each a non-empty list of noise-spec strings."""
    if value is None:
        return [None]
    if not isinstance(value, list) or not value:
        raise NcalError(
            "grid key `annotators` must be a non-empty list of annotator lists, e.g. "
            f"[[oracle:0.15, oracle:0.3, oracle:0.45]]; got {value!r}"
        )
    if all(isinstance(v, str) for v in value):
        raise NcalError(
            "grid key `annotators` is an axis: a list of annotator LISTS; wrap the specs in "
            f"another list ([{value!r}]) for one set of annotators"
        )
    out: list[list[str] | None] = []
    for i, item in enumerate(value):
        if (
            not isinstance(item, list)
            or not item
            or not all(isinstance(s, str) and s for s in item)
        ):
            raise NcalError(f"entry {i} must be a non-empty list of noise specs; got {item!r}")
        out.append(list(item))
    labels = [annotators_label(a) for a in out]
    if len(set(labels)) != len(labels):
        raise NcalError(f"grid key `annotators` lists a set twice: {labels}")
    return out


def _str_axis(value: Any, key: str) -> list[str | None]:
    """An optional axis of strings (``[None]`` when the key is absent)."""
    if value is None:
        return [None]
    return list(_str_list(value, key, True))


def _strategies(value: Any, problems: GridProblems) -> list[StrategyEntry]:
    if not value:
        problems.add(
            "strategies",
            "grid key `strategies` is required (a list of names or {name, params, label})",
        )
        return []
    items = value if isinstance(value, list) else [value]
    entries = []
    for i, item in enumerate(items):
        entry = problems.check(f"strategies[{i}]", _strategy_entry, item)
        if entry is not None:
            entries.append(entry)
    keys = [e.key for e in entries]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        problems.add(
            "strategies",
            f"strategy labels must be unique within a grid; repeated: {dup} (add `label:`)",
        )
    dirs = [e.dirname for e in entries]
    if not dup and len(set(dirs)) != len(dirs):
        problems.add(
            "strategies",
            f"strategy labels map to the same directory name: {dirs}; choose other labels",
        )
    return entries


def _strategy_entry(item: Any) -> StrategyEntry:
    """One entry of ``strategies``: a registry name or ``{name, params, label}``."""
    from ..strategies.params import strategy_parameter_names

    if isinstance(item, str):
        strategy_parameter_names(item)  # raises for an unknown name, listing the known ones
        return StrategyEntry(item)
    if not isinstance(item, Mapping):
        raise NcalError(f"each entry of `strategies` must be a name or a mapping; got {item!r}")
    bad = sorted(set(item) - {"name", "params", "label"})
    if bad or not isinstance(item.get("name"), str):
        raise NcalError(
            f"each entry of `strategies` must be a name or a mapping with keys name "
            f"(required), params, label; got {dict(item)!r}"
        )
    params = _mapping(item.get("params"), "strategies[].params")
    label = item.get("label")
    if label is not None and (not isinstance(label, str) or not label):
        raise NcalError(f"strategy label must be a non-empty string; got {label!r}")
    strategy_parameter_names(item["name"])
    return StrategyEntry(item["name"], params, label)


def _seeds(value: Any) -> list[int]:
    if isinstance(value, bool):
        raise NcalError(f"grid key `seeds` must be a count or a list of ints; got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise NcalError(f"grid key `seeds` must be >= 1 when given as a count; got {value}")
        return list(range(value))
    if (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)
    ):
        if len(set(value)) != len(value):
            raise NcalError(f"grid key `seeds` lists a seed twice: {value}")
        return list(value)
    raise NcalError(
        f"grid key `seeds` must be a count or a non-empty list of ints >= 0; got {value!r}"
    )


def _budgets(value: Any) -> list[dict[str, int | float]]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise NcalError("grid key `budget` must not be empty")
    out = []
    for item in items:
        if not isinstance(item, Mapping):
            raise NcalError(
                f"grid key `budget` must be a mapping {{initial, query, rounds}}; got {item!r}"
            )
        bad = sorted(set(item) - set(BUDGET_KEYS))
        if bad:
            raise NcalError(
                f"grid key `budget` has unknown key(s) {bad}; known: {list(BUDGET_KEYS)}"
            )
        b = {**DEFAULT_BUDGET, **item}
        for k in ("initial", "query"):
            v = b[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise NcalError(
                    f"budget `{k}` must be a positive int (labels) or fraction; got {v!r}"
                )
            if isinstance(v, float) and v >= 1 and not v.is_integer():
                raise NcalError(f"budget `{k}` must be an int count or a fraction < 1; got {v!r}")
        r = b["rounds"]
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise NcalError(f"budget `rounds` must be an int >= 1; got {r!r}")
        out.append(dict(b))
    labels = [budget_label(b) for b in out]
    if len(set(labels)) != len(labels):
        raise NcalError(f"grid key `budget` lists a schedule twice: {labels}")
    return out
