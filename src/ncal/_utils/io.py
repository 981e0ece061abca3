"""Files that are never half-written, and JSON / JSONL reading with one error policy.

Writes go to a temporary file in the target's folder, are flushed to disk, then renamed over the
target (atomic on POSIX): a reader, a crash or a Ctrl-C sees the old file or the new one, never a mix.

Reading policy, everywhere: a missing file gives ``default`` (``None`` unless told otherwise); a file
that exists but cannot be parsed raises :class:`ncal.errors.CorruptRunError` naming the file (and the
line, for JSONL).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import CorruptRunError


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars / arrays turned into Python values and non-finite floats into None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        obj = float(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """Canonical JSON text (sorted keys) of ``jsonable(obj)``."""
    return json.dumps(jsonable(obj), sort_keys=True, indent=indent)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a temporary binary file beside ``path``, fsync, then rename it over
    ``path``. The temporary file is removed on any error. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            exc.filename = str(path)  # a full disk is reported with the file it was writing
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as canonical JSON (sorted keys, numpy values converted) atomically."""
    return atomic_write_text(path, dumps(obj, indent=indent) + "\n")


def atomic_save_npy(path: str | os.PathLike, arr: np.ndarray) -> Path:
    """Save one array as ``.npy`` atomically (no pickles)."""
    return atomic_write(path, lambda fh: np.save(fh, np.asarray(arr), allow_pickle=False))


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Save named arrays as an uncompressed ``.npz`` atomically."""
    return atomic_write(path, lambda fh: np.savez(fh, **arrays))


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The parsed JSON in ``path``; ``default`` if there is no such file; CorruptRunError if it
    cannot be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptRunError(f"{path} cannot be read ({exc})") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CorruptRunError(f"{path} is not valid JSON ({exc})") from exc


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """The JSON values of the non-blank lines of ``path``; ``[]`` if there is no such file;
    CorruptRunError naming the line if one cannot be parsed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise CorruptRunError(f"{path} cannot be read ({exc})") from exc
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as exc:
            raise CorruptRunError(f"{path} line {lineno} is not valid JSON ({exc})") from exc
    return rows
