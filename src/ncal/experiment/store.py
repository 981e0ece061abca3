"""The run store: the one module that reads and writes a run directory.

A run directory holds ``config.json`` (settings and resolved values), ``rounds.jsonl`` (one finished
round per line, canonical JSON with sorted keys), ``summary.json`` (written when the run ends) and,
for a cell of a benchmark grid, ``cell.json`` (the cell as the grid expanded it).

Every write is atomic (temporary file, fsync, rename), so a crash or Ctrl-C never leaves a
half-written round: a run resumes after its last finished round. A writer holds
:meth:`RunStore.lock` (an exclusive lock on ``.lock``) for the whole run, so a second writer on the
same directory fails at once with a message naming the first; a lock left by a killed process is
taken over. ``config.json`` records :func:`data_fingerprint` of the arrays the run used, and
:meth:`RunStore.check_compatible` refuses to resume on other data, or without ``config.json``
when rounds exist. Missing files read as ``None``
(``[]`` for the rounds); files that exist but cannot be parsed raise
:class:`ncal.errors.CorruptRunError` naming the file.

>>> root, run_dirs = find_runs("runs/demo")              # doctest: +SKIP
>>> load_run(run_dirs[0]).rounds[-1]["test_accuracy"]     # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._utils.io import atomic_write_json, atomic_write_text, dumps, read_json, read_jsonl
from .._utils.locks import ExclusiveLock
from ..errors import CorruptRunError, NcalError

CONFIG_FILE = "config.json"
ROUNDS_FILE = "rounds.jsonl"
SUMMARY_FILE = "summary.json"
CELL_FILE = "cell.json"
LOCK_FILE = ".lock"
FINGERPRINT_KEY = "data_fingerprint"  # top-level key of config.json
_HASH_BLOCK = 1 << 24  # bytes hashed per update: flat memory for any array size
# written by ncal.bench.run_grid in a grid directory: a list of cells, each with a ``relpath``
MANIFEST_FILE = "cells.json"


@dataclass(frozen=True)
class StoredRun:
    """Everything a run directory holds, as read by :func:`load_run`.

    Attributes
    ----------
    dir : Path
        The run directory.
    config, summary, cell : dict or None
        Contents of ``config.json``, ``summary.json`` and ``cell.json``; None when absent.
    rounds : list of dict
        The records of ``rounds.jsonl`` in file order (``[]`` when absent).
    """

    dir: Path
    config: dict[str, Any] | None
    rounds: list[dict[str, Any]]
    summary: dict[str, Any] | None
    cell: dict[str, Any] | None


class RunStore:
    """Reads and writes one run directory.

    Parameters
    ----------
    out_dir : str or PathLike
        The run directory; created on the first write.
    """

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.dir = Path(out_dir)
        self.config_path = self.dir / CONFIG_FILE
        self.rounds_path = self.dir / ROUNDS_FILE
        self.summary_path = self.dir / SUMMARY_FILE
        self.cell_path = self.dir / CELL_FILE
        self.lock_path = self.dir / LOCK_FILE

    # -------------------------------------------------------------------------------- lock

    def lock(self) -> ExclusiveLock:
        """The directory's exclusive writer lock, taken at once (use it as a context manager).

        Creates the directory (mode 0o700) when missing.

        Raises
        ------
        ncal._utils.locks.LockedError
            Another live process writes this directory (the message names its pid, host, start
            time and command).
        NcalError
            ``out_dir`` is an existing file, or the directory cannot be created.
        """
        if self.dir.exists() and not self.dir.is_dir():
            raise NcalError(f"output directory {str(self.dir)!r} is an existing file, not a folder")
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise NcalError(
                f"cannot create the output directory {str(self.dir)!r}: {exc.strerror or exc}"
            ) from exc
        return ExclusiveLock(self.lock_path, what=f"run directory {self.dir}").acquire()

    # ------------------------------------------------------------------------------ config

    def read_config(self) -> dict | None:
        """``config.json``, or None when the run has not started.

        Raises
        ------
        CorruptRunError
            The file is not valid JSON or not a JSON object.
        """
        config = _read_with_hint(self.config_path, "remove the run directory")
        if config is not None and not isinstance(config, dict):
            raise CorruptRunError(
                f"{self.config_path} must hold a JSON object; got {type(config).__name__}; "
                "remove the run directory"
            )
        return config

    def write_config(self, config: dict) -> None:
        """Replace ``config.json`` (indented, sorted keys, numpy values converted)."""
        atomic_write_json(self.config_path, config)

    def check_compatible(self, config: dict) -> None:
        """Refuse to resume a directory that holds a run with other settings or other data.

        Raises
        ------
        NcalError
            ``rounds.jsonl`` exists without ``config.json`` (the rounds' settings are unknown);
            the stored settings differ; or both configs carry a ``data_fingerprint`` and they
            differ (the data changed since the run started).
        """
        old = self.read_config()
        if old is None:
            if self.rounds_path.exists():
                raise NcalError(
                    f"{self.dir} holds {ROUNDS_FILE} but no {CONFIG_FILE}: the settings of its "
                    "rounds are unknown, so it cannot be resumed; use another output directory "
                    "or remove it"
                )
            return
        old_s, new_s = old.get("settings", old), config.get("settings", config)
        if not isinstance(old_s, dict):
            raise CorruptRunError(f"{self.config_path}: `settings` must be a JSON object")
        diff = sorted(k for k in set(old_s) | set(new_s) if old_s.get(k) != new_s.get(k))
        if diff:
            raise NcalError(
                f"{self.dir} already holds a run with different settings ({', '.join(diff)}); "
                "use another output directory or remove it"
            )
        old_fp, new_fp = old.get(FINGERPRINT_KEY), config.get(FINGERPRINT_KEY)
        if old_fp is not None and new_fp is not None and old_fp != new_fp:
            raise NcalError(
                f"{self.dir} was run on other data (data fingerprint {old_fp} in "
                f"{CONFIG_FILE}, now {new_fp}): the dataset changed since the run started; "
                "use another output directory or remove it"
            )

    # ------------------------------------------------------------------------------ rounds

    def read_rounds(self, *, strict: bool = True) -> list[dict]:
        """The finished rounds, in file order.

        Parameters
        ----------
        strict : bool
            Also require record ``i`` to be a mapping with ``round == i`` (what a resume relies
            on). Reports read with ``strict=False`` so that directories written by other cell
            runners still load.

        Raises
        ------
        CorruptRunError
            A line is not valid JSON, or (``strict``) the rounds are not numbered 0, 1, 2, ...
        """
        try:
            rows = read_jsonl(self.rounds_path)
        except CorruptRunError as exc:
            raise CorruptRunError(f"{exc}; the run directory is corrupt") from exc
        if strict:
            for i, row in enumerate(rows):
                if not isinstance(row, dict) or row.get("round") != i:
                    got = row.get("round") if isinstance(row, dict) else row
                    raise CorruptRunError(
                        f"{self.rounds_path} line {i + 1}: expected round {i}, got {got!r}"
                    )
        return rows

    def append_round(self, row: dict) -> None:
        """Append one round as a canonical JSON line; the file is replaced atomically."""
        old = self.rounds_path.read_text() if self.rounds_path.exists() else ""
        if old and not old.endswith("\n"):
            old += "\n"
        atomic_write_text(self.rounds_path, old + dumps(row) + "\n")

    def last_accuracy(self) -> float | None:
        """``test_accuracy`` of the last parseable round, or None (no rounds, or no accuracy).

        Lenient on purpose: it reports progress while another process may be appending.
        """
        try:
            lines = self.rounds_path.read_text().splitlines()
        except OSError:
            return None
        for line in reversed(lines):
            try:
                acc = json.loads(line).get("test_accuracy")
            except ValueError:
                continue
            return None if acc is None else float(acc)
        return None

    # ----------------------------------------------------------------------------- summary

    def read_summary(self) -> dict | None:
        """``summary.json``, or None while the run has not ended; CorruptRunError unless it is
        a JSON object."""
        return _read_object(self.summary_path)

    def write_summary(self, summary: dict) -> None:
        """Replace ``summary.json`` (indented, sorted keys, numpy values converted)."""
        atomic_write_json(self.summary_path, summary)

    def is_complete(self) -> bool:
        """True when ``summary.json`` says ``status: "complete"``; an unreadable one counts as not."""
        try:
            summary = self.read_summary()
        except CorruptRunError:
            return False
        return isinstance(summary, dict) and summary.get("status") == "complete"

    # -------------------------------------------------------------------------------- cell

    def read_cell(self) -> dict | None:
        """``cell.json`` (the grid cell this run belongs to), or None outside a grid;
        CorruptRunError unless it is a JSON object."""
        return _read_object(self.cell_path)

    def write_cell(self, cell: dict) -> None:
        """Replace ``cell.json``."""
        atomic_write_json(self.cell_path, cell)

    # -------------------------------------------------------------------------------- all

    def load(self, *, strict: bool = False) -> StoredRun:
        """All files of the directory (see :class:`StoredRun`); ``strict`` as in
        :meth:`read_rounds`."""
        return StoredRun(
            dir=self.dir,
            config=self.read_config(),
            rounds=self.read_rounds(strict=strict),
            summary=self.read_summary(),
            cell=self.read_cell(),
        )


def data_fingerprint(arrays: dict[str, Any]) -> str:
    """BLAKE2b-128 hex digest of named arrays: name, dtype, shape and bytes, in name order.

    Hashing the arrays a run actually uses (not the dataset file) catches any change that matters,
    whatever the source: an edited file, another subsample, another preprocessing. Arrays are
    hashed in blocks of 16 MiB, so memory stays flat for any size.

    Parameters
    ----------
    arrays : dict of str to array_like
        E.g. ``{"x_pool": ..., "y_pool": ..., "x_test": ..., "y_test": ...}``.
    """
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        flat = arr.reshape(-1).view(np.uint8) if arr.size else np.zeros(0, np.uint8)
        for start in range(0, flat.size, _HASH_BLOCK):
            h.update(flat[start : start + _HASH_BLOCK].data)
    return h.hexdigest()


def load_run(run_dir: str | os.PathLike, *, strict: bool = False) -> StoredRun:
    """Read a run directory: config, rounds, summary and cell (see :class:`StoredRun`)."""
    return RunStore(run_dir).load(strict=strict)


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` holds a run (``config.json`` or ``rounds.jsonl``)."""
    path = Path(path)
    return (path / CONFIG_FILE).exists() or (path / ROUNDS_FILE).exists()


def find_runs(path: str | os.PathLike) -> tuple[Path, list[Path]]:
    """Root and run directories of a run directory or a grid directory.

    A directory with ``config.json`` or ``rounds.jsonl`` is a single run; otherwise the runs are
    those listed in ``cells.json`` (written by :func:`ncal.bench.run_grid`) that exist, else every
    sub-directory holding ``rounds.jsonl`` or ``cell.json``.

    Raises
    ------
    NcalError
        ``path`` is not a directory; ``CorruptRunError`` when ``cells.json`` is not valid JSON.
    """
    root = Path(path)
    if not root.is_dir():
        raise NcalError(f"results directory {str(root)!r} does not exist")
    if is_run_dir(root):
        return root, [root]
    manifest = read_json(root / MANIFEST_FILE)
    if manifest is not None:
        return root, [root / c["relpath"] for c in manifest if (root / c["relpath"]).is_dir()]
    found = {p.parent for p in root.rglob(ROUNDS_FILE)} | {p.parent for p in root.rglob(CELL_FILE)}
    return root, sorted(found)


def _read_with_hint(path: Path, hint: str) -> Any:
    """:func:`read_json` whose corruption error also says what to do."""
    try:
        return read_json(path)
    except CorruptRunError as exc:
        raise CorruptRunError(f"{exc}; {hint}") from exc


def _read_object(path: Path) -> dict | None:
    """:func:`read_json` of a file that must hold a JSON object (None when missing)."""
    obj = read_json(path)
    if obj is not None and not isinstance(obj, dict):
        raise CorruptRunError(f"{path} must hold a JSON object; got {type(obj).__name__}")
    return obj
