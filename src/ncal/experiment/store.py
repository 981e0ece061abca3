"""The run store: the one module that reads and writes a run directory.

A run directory holds ``config.json`` (settings and resolved values), ``rounds.jsonl`` (one finished
round per line, canonical JSON with sorted keys), ``summary.json`` (written when the run ends) and,
for a cell of a benchmark grid, ``cell.json`` (the cell as the grid expanded it).

Every write is atomic (temporary file, fsync, rename), so a crash or Ctrl-C never leaves a
half-written round: a run resumes after its last finished round. Missing files read as ``None``
(``[]`` for the rounds); files that exist but cannot be parsed raise
:class:`ncal.errors.CorruptRunError` naming the file.

>>> root, run_dirs = find_runs("runs/demo")              # doctest: +SKIP
>>> load_run(run_dirs[0]).rounds[-1]["test_accuracy"]     # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._utils.io import atomic_write_json, atomic_write_text, dumps, read_json, read_jsonl
from ..errors import CorruptRunError, NcalError

CONFIG_FILE = "config.json"
ROUNDS_FILE = "rounds.jsonl"
SUMMARY_FILE = "summary.json"
CELL_FILE = "cell.json"
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

    # ------------------------------------------------------------------------------ config

    def read_config(self) -> dict | None:
        """``config.json``, or None when the run has not started."""
        return _read_with_hint(self.config_path, "remove the run directory")

    def write_config(self, config: dict) -> None:
        """Replace ``config.json`` (indented, sorted keys, numpy values converted)."""
        atomic_write_json(self.config_path, config)

    def check_compatible(self, config: dict) -> None:
        """Refuse to resume a directory that holds a run with other settings."""
        old = self.read_config()
        if old is None:
            return
        old_s, new_s = old.get("settings", old), config.get("settings", config)
        diff = sorted(k for k in set(old_s) | set(new_s) if old_s.get(k) != new_s.get(k))
        if diff:
            raise NcalError(
                f"{self.dir} already holds a run with different settings ({', '.join(diff)}); "
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
        """``summary.json``, or None while the run has not ended."""
        return read_json(self.summary_path)

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
        """``cell.json`` (the grid cell this run belongs to), or None outside a grid."""
        return read_json(self.cell_path)

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
