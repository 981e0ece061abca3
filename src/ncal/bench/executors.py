"""Run every cell of a grid: in-process, on a local process pool, or as Ray tasks.

All executors write the same files, so results do not depend on where a cell ran:

* ``<out>/grid.json`` — the resolved grid; ``<out>/grid.yaml`` — a copy of the source file;
* ``<out>/cells.json`` — the manifest of the grid's cells (read by :func:`ncal.bench.load_results`);
* ``<out>/bench_runs.jsonl`` — one line per invocation (machine, executor, wall clock, counts);
* ``<out>/<cell relpath>/cell.json`` — the cell (config, strategy label, hash), then whatever the
  cell runner writes (for the default runner: ``config.json``, ``rounds.jsonl``, ``summary.json``).

A cell whose directory holds ``summary.json`` with ``status == "complete"`` is skipped, so an
interrupted grid resumes by running the same command again; a half-finished cell is handed to the
runner again, which resumes it (``run_experiment`` continues after its last finished round).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .._utils.io import atomic_write_json, atomic_write_text
from ..errors import CorruptRunError, NcalError
from ..experiment.store import MANIFEST_FILE, RunStore
from .grid import Cell, Grid, load_grid

CellRunner = Callable[[dict[str, Any], Path], Any]
EXECUTORS = ("local", "ray")
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_IN_POOL_WORKER = False
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_RAY_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = "127.0.0.1"
GRID_FILE = "grid.json"  # the resolved grid, read by the report
BENCH_RUNS_FILE = "bench_runs.jsonl"  # one line per `run_grid` call, read by the report


@dataclass
class CellOutcome:
    """What happened to one cell in one :func:`run_grid` call."""

    relpath: str
    strategy: str
    status: str  # "complete" | "skipped" | "failed" | "incomplete"
    seconds: float = 0.0
    error: str | None = None
    final_accuracy: float | None = None
    summary: dict[str, Any] | None = None


@dataclass
class GridResult:
    """Outcome of :func:`run_grid`."""

    out_dir: Path
    outcomes: list[CellOutcome] = field(default_factory=list)
    wall_seconds: float = 0.0

    def count(self, status: str) -> int:
        """Number of cells with the given status."""
        return sum(o.status == status for o in self.outcomes)

    @property
    def ok(self) -> bool:
        """True when every cell of the grid is complete (run now or earlier)."""
        return all(o.status in ("complete", "skipped") for o in self.outcomes)


def run_grid(
    grid_or_path: Grid | str | Path | Mapping[str, Any],
    *,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    quiet: bool = False,
    cell_runner: CellRunner | None = None,
    out: str | Path | None = None,
) -> GridResult:
    """Run all unfinished cells of a grid and return their outcomes.

    Parameters
    ----------
    grid_or_path : Grid, str, Path or mapping
        A parsed grid, a YAML grid file, or its mapping (see :mod:`ncal.bench.grid`).
    executor : {"local", "ray"}
        ``"local"``: a process pool of ``workers`` processes (default ``os.cpu_count()``, each
        limited to one BLAS/torch thread); ``workers=1`` runs the cells in this process.
        ``"ray"``: one Ray task (1 CPU) per cell, on a local Ray instance started here
        (``workers`` CPUs) or on the cluster at ``address`` (e.g. ``"auto"``); the output
        directory must then be on a file system that all nodes share.
    workers : int, optional
        Parallel cells (local pool size, or CPUs of a locally started Ray instance).
    address : str, optional
        Ray cluster address; only with ``executor="ray"``.
    quiet : bool
        Suppress the progress bar and the per-cell lines.
    cell_runner : callable, optional
        ``cell_runner(config: dict, cell_dir: Path)`` runs one cell; it must leave
        ``summary.json`` with ``status: "complete"`` in ``cell_dir`` when the cell is finished.
        Default: :func:`default_cell_runner` (``ncal.experiment.run_experiment``). With a process
        pool or Ray it must be picklable (a module-level function).
    out : str or Path, optional
        Output directory overriding the grid's ``out``.

    Returns
    -------
    GridResult
        One :class:`CellOutcome` per cell (``skipped`` for cells finished earlier).

    Raises
    ------
    NcalError
        Bad executor / workers / address, or an invalid grid.
    """
    _check_executor_args(executor, workers, address)
    source = grid_or_path
    grid = source if isinstance(source, Grid) else load_grid(source, out=out)
    if out is not None:
        grid.out = Path(out)
    out_dir = Path(grid.out)
    cells = grid.cells()
    if cell_runner is None:  # fail before the first cell, not after hours of the others
        check_experiment_configs(cells)
    _write_grid_files(grid, cells, source)

    started = time.time()
    outcomes: dict[str, CellOutcome] = {}
    todo: list[Cell] = []
    for cell in cells:
        cell_dir = out_dir / cell.relpath
        if is_complete(cell_dir):
            outcomes[cell.relpath] = CellOutcome(cell.relpath, cell.strategy, "skipped")
        else:
            todo.append(cell)
    if not quiet:
        print(
            f"grid {grid.name!r}: {len(cells)} cells, {len(cells) - len(todo)} already complete, "
            f"{len(todo)} to run ({executor}) -> {out_dir}",
            file=sys.stderr,
        )
    for cell in todo:
        _write_cell_file(out_dir / cell.relpath, cell)

    progress = _Progress(len(todo), out_dir, quiet)
    try:
        if todo:
            _dispatch(
                todo, out_dir, cell_runner, executor, workers, address, quiet, progress, outcomes
            )
    finally:
        progress.close()
        wall = time.time() - started
        ordered = [outcomes[c.relpath] for c in cells if c.relpath in outcomes]
        result = GridResult(out_dir, ordered, wall)
        _append_run_record(out_dir, grid, executor, workers, address, started, result, len(cells))
    if not quiet:
        _print_result(grid.name, result)
    return result


def default_cell_runner(config: dict[str, Any], cell_dir: Path) -> Any:
    """Run one cell with :func:`ncal.experiment.run_experiment` (imported lazily).

    ``config`` holds ``ExperimentConfig`` keyword arguments; a ``train`` mapping is turned into
    the config's training settings by :func:`make_experiment_config`.
    """
    from ..experiment import run_experiment

    return run_experiment(make_experiment_config(config), Path(cell_dir), quiet=True)


def make_experiment_config(config: Mapping[str, Any]) -> Any:
    """Build an ``ncal.experiment.ExperimentConfig`` from a cell's plain-data config."""
    import dataclasses

    from ..experiment import ExperimentConfig

    data = dict(config)
    from_dict = getattr(ExperimentConfig, "from_dict", None)
    if callable(from_dict):
        return from_dict(data)
    train = data.get("train")
    if isinstance(train, Mapping):
        default = next((f for f in dataclasses.fields(ExperimentConfig) if f.name == "train"), None)
        proto = None
        if default is not None and default.default_factory is not dataclasses.MISSING:
            proto = default.default_factory()
        if proto is not None and dataclasses.is_dataclass(proto):
            data["train"] = dataclasses.replace(proto, **train)
    return ExperimentConfig(**data)


def check_experiment_configs(cells: list[Cell]) -> None:
    """Validate every cell as an ``ExperimentConfig`` (and its training overrides) up front.

    Raises
    ------
    NcalError
        The first invalid cell, named by its directory. Skipped when ``ncal.experiment`` cannot
        be imported (the runner will then fail per cell).
    """
    try:
        from ..training import TrainConfig
    except ImportError:
        return
    checked_train: set[str] = set()
    for cell in cells:
        try:
            make_experiment_config(cell.config)
            key = json.dumps(cell.config.get("train") or {}, sort_keys=True, default=str)
            if key not in checked_train:
                TrainConfig(**(cell.config.get("train") or {}))
                checked_train.add(key)
        except ImportError:
            return
        except (TypeError, ValueError) as exc:
            raise NcalError(f"cell {cell.relpath}: {exc}") from None


def is_complete(cell_dir: str | Path) -> bool:
    """True when ``cell_dir/summary.json`` exists and says ``status: "complete"``."""
    return RunStore(cell_dir).is_complete()


def machine_info() -> dict[str, Any]:
    """Where the grid ran: host, OS, Python, CPU count, torch and GPU when importable."""
    from .. import __version__

    info: dict[str, Any] = {
        "ncal_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "hostname": platform.node(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:  # only report torch when already loaded (importing it costs seconds)
        info["torch"] = torch.__version__
        try:
            if torch.cuda.is_available():
                info["gpu"] = torch.cuda.get_device_name(0)
        except Exception:
            pass
    return info


# ----------------------------------------------------------------------------------- internals


def _check_executor_args(executor: str, workers: int | None, address: str | None) -> None:
    if executor not in EXECUTORS:
        raise NcalError(f"`executor` must be one of {list(EXECUTORS)}; got {executor!r}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise NcalError(f"`workers` must be a positive int or None; got {workers!r}")
    if address is not None and executor != "ray":
        raise NcalError("`address` is only meaningful with executor='ray'")


def _dispatch(
    todo: list[Cell],
    out_dir: Path,
    runner: CellRunner | None,
    executor: str,
    workers: int | None,
    address: str | None,
    quiet: bool,
    progress: _Progress,
    outcomes: dict[str, CellOutcome],
) -> None:
    """Run the unfinished cells on the chosen executor, filling ``outcomes`` as they finish."""
    if executor == "ray":
        _run_ray(todo, out_dir, runner, workers, address, quiet, progress, outcomes)
    elif (workers or os.cpu_count() or 1) == 1 or len(todo) == 1:
        for cell in todo:
            outcome = _execute_cell(cell.to_dict(), str(out_dir / cell.relpath), runner)
            outcomes[cell.relpath] = progress.done(outcome)
    else:
        _run_pool(todo, out_dir, runner, workers, progress, outcomes)


def _print_result(name: str, result: GridResult) -> None:
    print(
        f"grid {name!r}: {result.count('complete')} run, "
        f"{result.count('skipped')} skipped, "
        f"{result.count('failed')} failed, {result.count('incomplete')} incomplete "
        f"in {result.wall_seconds:.1f} s",
        file=sys.stderr,
    )
    for o in result.outcomes:
        if o.status == "failed":
            print(f"  failed: {o.relpath}: {o.error}", file=sys.stderr)


def _execute_cell(cell: dict[str, Any], cell_dir: str, runner: CellRunner | None) -> dict[str, Any]:
    """Run one cell and describe the outcome (exceptions become a "failed" outcome)."""
    if _IN_POOL_WORKER and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    start = time.perf_counter()
    outcome: dict[str, Any] = {"relpath": cell["relpath"], "strategy": cell["strategy"]}
    try:
        (runner or default_cell_runner)(dict(cell["config"]), Path(cell_dir))
    except Exception as exc:
        outcome.update(
            status="failed",
            seconds=time.perf_counter() - start,
            error="".join(traceback.format_exception_only(type(exc), exc)).strip(),
            traceback=traceback.format_exc(),
        )
        return outcome
    outcome["seconds"] = time.perf_counter() - start
    outcome["status"] = "complete" if is_complete(cell_dir) else "incomplete"
    store = RunStore(cell_dir)
    outcome["final_accuracy"] = store.last_accuracy()
    outcome["summary"] = _summary_or_none(store)
    return outcome


def _crash_outcome(cell: Cell, exc: BaseException) -> dict[str, Any]:
    """The "failed" outcome of a cell whose worker raised ``exc`` outside :func:`_execute_cell`."""
    return {
        "relpath": cell.relpath,
        "strategy": cell.strategy,
        "status": "failed",
        "error": f"{type(exc).__name__}: {exc}",
    }


def _pool_initializer(parent_pid: int | None = None) -> None:
    """Pool workers: one BLAS / torch thread each, so N workers use N cores, not N²; and they
    die with the process that started them (:func:`die_with_parent`)."""
    global _IN_POOL_WORKER
    _IN_POOL_WORKER = True
    for var in _THREAD_ENV:
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if parent_pid is not None:
        die_with_parent(parent_pid)


def die_with_parent(parent_pid: int, *, poll_seconds: float = 0.5) -> None:
    """End this process as soon as ``parent_pid`` is gone (even after a SIGKILL of the parent).

    A worker left running after its parent was killed keeps writing cells and races the rerun
    (two writers in one run directory). On Linux the kernel sends SIGKILL on the parent's death
    (``prctl(PR_SET_PDEATHSIG)``); everywhere, a daemon thread checks every ``poll_seconds``
    that the parent is still this process's parent and exits otherwise.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog below still works
            pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)  # no cleanup: a cell's files are written atomically, its lock is the kernel's

    threading.Thread(target=watch, name="ncal-parent-watch", daemon=True).start()


def _run_pool(
    todo: list[Cell],
    out_dir: Path,
    runner: CellRunner | None,
    workers: int | None,
    progress: _Progress,
    outcomes: dict[str, CellOutcome],
) -> None:
    import multiprocessing as mp

    n = min(workers or os.cpu_count() or 1, len(todo))
    # spawn, not fork: a forked copy of a process that already started torch/OpenMP threads can hang
    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=n, mp_context=ctx, initializer=_pool_initializer, initargs=(os.getpid(),)
    )
    try:
        pending = {
            pool.submit(_execute_cell, c.to_dict(), str((out_dir / c.relpath).resolve()), runner): c
            for c in todo
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                cell = pending.pop(fut)
                try:
                    outcome = fut.result()
                except Exception as exc:  # the worker died (e.g. out of memory) or pickling failed
                    outcome = _crash_outcome(cell, exc)
                outcomes[cell.relpath] = progress.done(outcome)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _run_ray(
    todo: list[Cell],
    out_dir: Path,
    runner: CellRunner | None,
    workers: int | None,
    address: str | None,
    quiet: bool,
    progress: _Progress,
    outcomes: dict[str, CellOutcome],
) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with _ray_loopback(address is None):
        try:
            import ray
        except ImportError:
            raise NcalError(
                "executor='ray' needs Ray: pip install 'ncal[ray]' (or pip install ray)"
            ) from None
        _run_ray_tasks(ray, todo, out_dir, runner, workers, address, quiet, progress, outcomes)


@contextlib.contextmanager
def _ray_loopback(enabled: bool) -> Iterator[None]:
    """While active (and ``enabled``), a Ray instance started here binds every server (GCS,
    raylet, object manager, workers, agents) to 127.0.0.1 only.

    Ray's ports are not authenticated in every version, so a local instance must not listen on
    the network; with a cluster ``address`` the user chose the network and nothing changes. Ray
    picks its node address through ``ray._private.ray_constants.ENABLE_RAY_CLUSTER`` (read from
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` at import): off, the node address is the loopback one.
    Both are restored afterwards.
    """
    if not enabled:
        yield
        return
    old_env = os.environ.get(_RAY_CLUSTER_ENV)
    os.environ[_RAY_CLUSTER_ENV] = "0"
    constants = sys.modules.get("ray._private.ray_constants")
    old_flag = getattr(constants, "ENABLE_RAY_CLUSTER", None)
    if constants is not None:  # Ray imported earlier: the constant was already read
        constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if old_env is None:
            os.environ.pop(_RAY_CLUSTER_ENV, None)
        else:
            os.environ[_RAY_CLUSTER_ENV] = old_env
        constants = sys.modules.get("ray._private.ray_constants")
        if constants is not None:
            constants.ENABLE_RAY_CLUSTER = True if old_flag is None else old_flag


def _run_ray_tasks(
    ray: Any,
    todo: list[Cell],
    out_dir: Path,
    runner: CellRunner | None,
    workers: int | None,
    address: str | None,
    quiet: bool,
    progress: _Progress,
    outcomes: dict[str, CellOutcome],
) -> None:
    """Start (or join) Ray, run one task per cell and record the outcomes."""
    started_here = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": not quiet,
            "logging_level": "WARNING",
        }
        # workers import the driver's modules (e.g. a cell runner defined next to the script);
        # JobConfig's driver path list is much cheaper than a runtime_env (no env agent start)
        paths = _driver_paths()
        try:
            kwargs["job_config"] = ray.job_config.JobConfig(_py_driver_sys_path=paths)
        except TypeError:  # private argument gone in a future Ray: fall back to a runtime_env
            kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}}
        if address is not None:
            ray.init(address=address, **kwargs)
        else:
            # keep Ray's session files (sockets, logs) in the temp dir, never in the repository
            temp = os.environ.get("RAY_TMPDIR") or str(Path(tempfile.gettempdir()) / "ray_ncal")
            ray.init(
                num_cpus=workers or os.cpu_count() or 1,
                _temp_dir=temp,
                _node_ip_address=LOOPBACK,  # with _ray_loopback: every server on 127.0.0.1
                **kwargs,
            )
        started_here = True
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_execute_cell)
        refs = {
            task.remote(c.to_dict(), str((out_dir / c.relpath).resolve()), runner): c for c in todo
        }
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            cell = refs[done[0]]
            try:
                outcome = ray.get(done[0])
            except Exception as exc:  # worker crash
                outcome = _crash_outcome(cell, exc)
            outcomes[cell.relpath] = progress.done(outcome)
    finally:
        if started_here:
            ray.shutdown()


def _driver_paths() -> list[str]:
    """The driver's import paths outside the Python installation (project dirs, test dirs).

    Ray workers start with the interpreter's own paths; adding the driver's extra ones lets them
    import a cell runner defined in the driver's project. Installation paths are left out so the
    workers' site handling (.pth files, editable installs) stays untouched.
    """
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    keep = []
    for p in sys.path:
        if not p or not os.path.isdir(p):
            continue
        real = os.path.realpath(p)
        if any(real == q or real.startswith(q + os.sep) for q in prefixes):
            continue
        keep.append(real)
    extra = os.environ.get("PYTHONPATH")
    return list(dict.fromkeys([*keep, *(p for p in (extra or "").split(os.pathsep) if p)]))


class _Progress:
    """Overall tqdm bar with ETA, plus one line per finished cell."""

    def __init__(self, total: int, out_dir: Path, quiet: bool):
        self.quiet = quiet
        self.total = total
        self.n = 0
        self.bar = None
        if not quiet and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="cells", unit="cell", dynamic_ncols=True)

    def done(self, outcome: dict[str, Any]) -> CellOutcome:
        self.n += 1
        result = CellOutcome(
            relpath=outcome["relpath"],
            strategy=outcome["strategy"],
            status=outcome["status"],
            seconds=float(outcome.get("seconds") or 0.0),
            error=outcome.get("error"),
            final_accuracy=outcome.get("final_accuracy"),
            summary=outcome.get("summary"),
        )
        if self.bar is not None:
            acc = (
                "" if result.final_accuracy is None else f", final acc {result.final_accuracy:.4f}"
            )
            err = f": {result.error}" if result.error else ""
            self.bar.write(
                f"[{self.n}/{self.total}] {result.status} {result.relpath} "
                f"({result.seconds:.1f} s{acc}){err}"
            )
            self.bar.update(1)
        return result

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _summary_or_none(store: RunStore) -> dict[str, Any] | None:
    """The cell's summary for its outcome; None when absent or unreadable (the runner's bug,
    already visible as an "incomplete" status)."""
    try:
        return store.read_summary()
    except CorruptRunError:
        return None


def _write_grid_files(grid: Grid, cells: list[Cell], source: Any) -> None:
    out_dir = Path(grid.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / GRID_FILE, grid.to_dict())
    if isinstance(source, (str, Path)) and Path(source).is_file():
        atomic_write_text(out_dir / "grid.yaml", Path(source).read_text())
    atomic_write_json(out_dir / MANIFEST_FILE, [c.to_dict() for c in cells])


def _write_cell_file(cell_dir: Path, cell: Cell) -> None:
    from .. import __version__

    RunStore(cell_dir).write_cell({**cell.to_dict(), "ncal_version": __version__})


def _append_run_record(
    out_dir: Path,
    grid: Grid,
    executor: str,
    workers: int | None,
    address: str | None,
    started: float,
    result: GridResult,
    n_cells: int,
) -> None:
    record = {
        "started": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(result.wall_seconds, 3),
        "executor": executor,
        "workers": workers,
        "address": address,
        "cells": n_cells,
        "ran": result.count("complete"),
        "skipped": result.count("skipped"),
        "failed": result.count("failed"),
        "incomplete": result.count("incomplete"),
        "machine": machine_info(),
    }
    # rewritten atomically (not appended) so a crash never leaves half a line for the report
    path = out_dir / BENCH_RUNS_FILE
    old = path.read_text() if path.exists() else ""
    atomic_write_text(path, old + json.dumps(record, default=str) + "\n")
