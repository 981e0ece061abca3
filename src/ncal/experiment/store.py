"""A run directory: ``config.json``, ``rounds.jsonl`` (one finished round per line), ``summary.json``.

Every write is atomic (temporary file, fsync, rename), so a crash or Ctrl-C never leaves a half-written
round: a run resumes after its last finished round.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptRunError, NcalError


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        obj = float(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either the old or the new file, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def dumps(obj: Any) -> str:
    return json.dumps(_jsonable(obj), sort_keys=True)


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, out_dir: str | os.PathLike) -> None:
        self.dir = Path(out_dir)
        self.config_path = self.dir / "config.json"
        self.rounds_path = self.dir / "rounds.jsonl"
        self.summary_path = self.dir / "summary.json"

    def read_config(self) -> dict | None:
        if not self.config_path.exists():
            return None
        try:
            return json.loads(self.config_path.read_text())
        except json.JSONDecodeError as exc:
            raise CorruptRunError(
                f"{self.config_path} is not valid JSON ({exc}); remove the run directory"
            ) from exc

    def write_config(self, config: dict) -> None:
        atomic_write_text(
            self.config_path, json.dumps(_jsonable(config), indent=2, sort_keys=True) + "\n"
        )

    def read_rounds(self) -> list[dict]:
        if not self.rounds_path.exists():
            return []
        rows = []
        for lineno, line in enumerate(self.rounds_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorruptRunError(
                    f"{self.rounds_path} line {lineno} is not valid JSON ({exc}); "
                    "the run directory is corrupt"
                ) from exc
            if not isinstance(row, dict) or row.get("round") != len(rows):
                raise CorruptRunError(
                    f"{self.rounds_path} line {lineno}: expected round {len(rows)}, got "
                    f"{row.get('round') if isinstance(row, dict) else row!r}"
                )
            rows.append(row)
        return rows

    def append_round(self, row: dict) -> None:
        old = self.rounds_path.read_text() if self.rounds_path.exists() else ""
        if old and not old.endswith("\n"):
            old += "\n"
        atomic_write_text(self.rounds_path, old + dumps(row) + "\n")

    def write_summary(self, summary: dict) -> None:
        atomic_write_text(
            self.summary_path, json.dumps(_jsonable(summary), indent=2, sort_keys=True) + "\n"
        )

    def read_summary(self) -> dict | None:
        if not self.summary_path.exists():
            return None
        try:
            return json.loads(self.summary_path.read_text())
        except json.JSONDecodeError as exc:
            raise CorruptRunError(f"{self.summary_path} is not valid JSON ({exc})") from exc

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
