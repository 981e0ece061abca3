"""The session store: one SQLite file per labeling session; every write is one transaction.

Tables
------
``meta``        key -> JSON value (classes, pool path + hash, feature extractor, settings, schema).
``items``       row (index into ``features.npy``), id (stable, unique), split
                (``pool`` | ``heldout``), heldout_label (known label of a held-out evaluation
                item, else NULL).
``imports``     one row per imported file, keyed by the SHA-256 of its bytes: importing the
                same content again is a no-op.
``annotations`` append-only (item_row, label, annotator, source_file, source_hash, imported_at);
                UNIQUE(item_row, annotator, label, source_hash). Nothing is ever updated or
                deleted, so several annotators per item are kept and a relabel adds a row instead of
                overwriting.
``rounds``      one row per batch handed out (settings, labels state it was computed from, fallback
                used, held-out accuracy of the round's model, training info).
``batches``     (round, position) -> item_row, kind (``query`` | ``relabel``), score, prediction.

A crash or Ctrl-C inside a transaction rolls it back (SQLite's journal), so a killed command leaves
the session as it was before the command.

One process at a time: opening a store takes an exclusive lock on ``.session.lock`` beside it
(:class:`ncal._utils.locks.ExclusiveLock`) until :meth:`SessionStore.close`, so a second command on
the same session fails at once with a message naming the first (a lock left by a killed process is
taken over). The store file is created user-only (0o600; SQLite gives its journal the same mode).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._utils.locks import ExclusiveLock
from ..errors import CorruptRunError, NcalError

SCHEMA_VERSION = 1
DB_NAME = "session.sqlite"
LOCK_NAME = ".session.lock"
STORE_MODE = 0o600  # the store holds every annotator's name and label: user-only

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE items (
    row           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    split         TEXT NOT NULL CHECK (split IN ('pool', 'heldout')),
    heldout_label INTEGER
);
CREATE TABLE imports (
    source_hash TEXT PRIMARY KEY,
    source_file TEXT NOT NULL,
    format      TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    n_rows      INTEGER NOT NULL,
    n_new       INTEGER NOT NULL
);
CREATE TABLE annotations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    item_row    INTEGER NOT NULL REFERENCES items(row),
    label       INTEGER NOT NULL,
    annotator   TEXT NOT NULL,
    source_file TEXT NOT NULL,
    source_hash TEXT NOT NULL REFERENCES imports(source_hash),
    imported_at TEXT NOT NULL,
    UNIQUE (item_row, annotator, label, source_hash)
);
CREATE INDEX annotations_item ON annotations(item_row);
CREATE TABLE rounds (
    round            INTEGER PRIMARY KEY,
    created_at       TEXT NOT NULL,
    labels_state     TEXT NOT NULL,
    settings         TEXT NOT NULL,
    selector         TEXT NOT NULL,
    fallback         TEXT,
    n_labeled        INTEGER NOT NULL,
    n_query          INTEGER NOT NULL,
    n_relabel        INTEGER NOT NULL,
    heldout_accuracy REAL,
    info             TEXT NOT NULL
);
CREATE TABLE batches (
    round      INTEGER NOT NULL REFERENCES rounds(round),
    position   INTEGER NOT NULL,
    item_row   INTEGER NOT NULL REFERENCES items(row),
    kind       TEXT NOT NULL CHECK (kind IN ('query', 'relabel')),
    score      REAL,
    prediction INTEGER,
    confidence REAL,
    PRIMARY KEY (round, position),
    UNIQUE (round, item_row)
);
"""

_TABLES = ("meta", "items", "imports", "annotations", "rounds", "batches")


def utc_now() -> str:
    """Current UTC time as an ISO-8601 string (seconds resolution is enough for a human loop)."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


class SessionStore:
    """Typed access to one session's SQLite file.

    Parameters
    ----------
    path : str or Path
        The ``session.sqlite`` file.
    create : bool
        Create the file (mode 0o600) and its schema (the file must not exist yet).
    lock : bool
        Hold the session's exclusive lock (:data:`LOCK_NAME` beside ``path``) until
        :meth:`close`; off only for a store that nobody else can see yet (a temporary file).

    Raises
    ------
    ncal._utils.locks.LockedError
        Another process has the session open.
    """

    def __init__(self, path: str | Path, *, create: bool = False, lock: bool = True) -> None:
        self.path = Path(path)
        self._lock: ExclusiveLock | None = None
        if create:
            if self.path.exists() or self.path.is_symlink():
                raise NcalError(
                    f"`{self.path}` already exists; refusing to overwrite a session store"
                )
        elif not self.path.is_file():
            raise NcalError(f"no session store at `{self.path}` (run `ncal session init` first)")
        if lock:
            self._lock = session_lock(self.path.parent, self.path.name).acquire()
        if create:  # SQLite creates a missing file with the umask's mode (often world-readable)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, STORE_MODE))
        try:
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=30.0)
        except sqlite3.Error as exc:
            self._release_lock()
            raise CorruptRunError(f"`{self.path}` cannot be opened: {exc}") from exc
        try:
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise CorruptRunError(f"`{self.path}` is not a readable session store: {exc}") from exc
        try:
            if create:
                with self.transaction() as cur:
                    for stmt in _SCHEMA.strip().split(";"):
                        if stmt.strip():
                            cur.execute(stmt)
                    cur.execute(
                        "INSERT INTO meta(key, value) VALUES ('schema_version', ?)",
                        (json.dumps(SCHEMA_VERSION),),
                    )
            else:
                self._check_schema()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        """Close the connection and release the session lock (idempotent)."""
        self._conn.close()
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> SessionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction: committed on success, rolled back on any exception (incl.
        Ctrl-C)."""
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            self._conn.rollback()
            raise
        else:
            self._conn.commit()
        finally:
            cur.close()

    def _check_schema(self) -> None:
        try:
            names = {
                r[0]
                for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as exc:
            raise CorruptRunError(f"`{self.path}` is not a readable session store: {exc}") from exc
        missing = [t for t in _TABLES if t not in names]
        if missing:
            raise CorruptRunError(
                f"`{self.path}` is not a session store (missing tables {missing})"
            )
        version = self.get_meta("schema_version")
        if version != SCHEMA_VERSION:
            raise CorruptRunError(
                f"`{self.path}` has schema version {version!r}; "
                f"this ncal reads version {SCHEMA_VERSION}"
            )

    def dump(self) -> list[str]:
        """Every table's content as SQL statements (for byte-for-byte content comparisons)."""
        return list(self._conn.iterdump())

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str, default: Any = None) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def all_meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM meta")}

    @staticmethod
    def put_meta(cur: sqlite3.Cursor, key: str, value: Any) -> None:
        cur.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )

    # ------------------------------------------------------------------ items
    @staticmethod
    def insert_items(cur: sqlite3.Cursor, ids: Sequence[str], heldout_labels: np.ndarray) -> None:
        """Insert all items; row i is row i of ``features.npy``; ``heldout_labels[i] >= 0`` marks
        held-out."""
        rows = (
            (i, str(item_id), "heldout" if lab >= 0 else "pool", int(lab) if lab >= 0 else None)
            for i, (item_id, lab) in enumerate(zip(ids, np.asarray(heldout_labels).tolist()))
        )
        cur.executemany(
            "INSERT INTO items(row, id, split, heldout_label) VALUES (?, ?, ?, ?)", rows
        )

    def item_ids(self) -> list[str]:
        """Item ids in row order."""
        return [r[0] for r in self._conn.execute("SELECT id FROM items ORDER BY row")]

    def id_to_row(self) -> dict[str, int]:
        return {i: r for r, i in self._conn.execute("SELECT row, id FROM items")}

    def splits(self) -> tuple[np.ndarray, np.ndarray]:
        """``(is_heldout (N,) bool, heldout_label (N,) int64 with -1 where unknown)`` in row
        order."""
        rows = self._conn.execute("SELECT split, heldout_label FROM items ORDER BY row").fetchall()
        held = np.array([s == "heldout" for s, _ in rows], dtype=bool)
        lab = np.array([-1 if v is None else v for _, v in rows], dtype=np.int64)
        return held, lab

    def n_items(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    # ------------------------------------------------------------------ imports / annotations
    def has_import(self, source_hash: str) -> bool:
        q = "SELECT 1 FROM imports WHERE source_hash = ?"
        return self._conn.execute(q, (source_hash,)).fetchone() is not None

    def add_annotations(
        self,
        rows: Sequence[tuple[int, int, str]],
        *,
        source_file: str,
        source_hash: str,
        fmt: str,
    ) -> int:
        """Insert ``(item_row, label, annotator)`` rows of one file in one transaction; returns
        #new rows.

        A file already imported (same content hash) inserts nothing.
        """
        now = utc_now()
        with self.transaction() as cur:
            if cur.execute(
                "SELECT 1 FROM imports WHERE source_hash = ?", (source_hash,)
            ).fetchone():
                return 0
            cur.execute(
                "INSERT INTO imports(source_hash, source_file, format, imported_at, n_rows, n_new) "
                "VALUES (?, ?, ?, ?, ?, 0)",
                (source_hash, source_file, fmt, now, len(rows)),
            )
            before = cur.execute("SELECT COUNT(*) FROM annotations").fetchone()[0]
            cur.executemany(
                "INSERT OR IGNORE INTO annotations"
                "(item_row, label, annotator, source_file, source_hash, imported_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                ((int(r), int(lab), str(a), source_file, source_hash, now) for r, lab, a in rows),
            )
            n_new = cur.execute("SELECT COUNT(*) FROM annotations").fetchone()[0] - before
            cur.execute("UPDATE imports SET n_new = ? WHERE source_hash = ?", (n_new, source_hash))
        return int(n_new)

    def annotations(self) -> dict[str, np.ndarray]:
        """All annotations in import order: ``id``, ``item_row``, ``label`` (int64), ``annotator``
        (str)."""
        rows = self._conn.execute(
            "SELECT id, item_row, label, annotator FROM annotations ORDER BY id"
        ).fetchall()
        return {
            "id": np.array([r[0] for r in rows], dtype=np.int64),
            "item_row": np.array([r[1] for r in rows], dtype=np.int64),
            "label": np.array([r[2] for r in rows], dtype=np.int64),
            "annotator": np.array([r[3] for r in rows], dtype=object),
        }

    def labels_state(self) -> str:
        """A token that changes whenever an annotation is added (annotations are append-only)."""
        n, last = self._conn.execute(
            "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM annotations"
        ).fetchone()
        return f"{n}:{last}"

    def imports(self) -> list[dict[str, Any]]:
        cols = ("source_hash", "source_file", "format", "imported_at", "n_rows", "n_new")
        q = f"SELECT {', '.join(cols)} FROM imports ORDER BY imported_at, source_hash"
        return [dict(zip(cols, r)) for r in self._conn.execute(q)]

    # ------------------------------------------------------------------ rounds / batches
    def last_round(self) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT MAX(round) FROM rounds").fetchone()[0]
        return None if row is None else self.round(int(row))

    def round(self, number: int) -> dict[str, Any]:
        cols = (
            "round", "created_at", "labels_state", "settings", "selector", "fallback", "n_labeled",
            "n_query", "n_relabel", "heldout_accuracy", "info",
        )  # fmt: skip
        row = self._conn.execute(
            f"SELECT {', '.join(cols)} FROM rounds WHERE round = ?", (number,)
        ).fetchone()
        if row is None:
            raise NcalError(f"round {number} does not exist")
        out = dict(zip(cols, row))
        out["settings"] = json.loads(out["settings"])
        out["info"] = json.loads(out["info"])
        return out

    def rounds(self) -> list[dict[str, Any]]:
        nums = [r[0] for r in self._conn.execute("SELECT round FROM rounds ORDER BY round")]
        return [self.round(n) for n in nums]

    def batch(self, number: int) -> list[dict[str, Any]]:
        """The items of round ``number`` in batch order, with their ids."""
        cols = ("position", "item_row", "id", "kind", "score", "prediction", "confidence")
        q = (
            "SELECT b.position, b.item_row, i.id, b.kind, b.score, b.prediction, b.confidence "
            "FROM batches b JOIN items i ON i.row = b.item_row "
            "WHERE b.round = ? ORDER BY b.position"
        )
        return [dict(zip(cols, r)) for r in self._conn.execute(q, (number,))]

    def relabeled_rows(self) -> set[int]:
        """Items that were already handed out for relabeling in some round."""
        q = "SELECT DISTINCT item_row FROM batches WHERE kind = 'relabel'"
        return {r[0] for r in self._conn.execute(q)}

    def write_round(
        self,
        *,
        number: int,
        labels_state: str,
        settings: dict[str, Any],
        selector: str,
        fallback: str | None,
        n_labeled: int,
        heldout_accuracy: float | None,
        info: dict[str, Any],
        batch: Sequence[dict[str, Any]],
        replace: bool = False,
    ) -> None:
        """Write a round and its batch in one transaction (``replace``: overwrite that round
        first)."""
        n_rel = sum(1 for b in batch if b["kind"] == "relabel")
        with self.transaction() as cur:
            if replace:
                cur.execute("DELETE FROM batches WHERE round = ?", (number,))
                cur.execute("DELETE FROM rounds WHERE round = ?", (number,))
            cur.execute(
                "INSERT INTO rounds(round, created_at, labels_state, settings, selector, fallback, "
                "n_labeled, n_query, n_relabel, heldout_accuracy, info) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    number,
                    utc_now(),
                    labels_state,
                    json.dumps(settings, sort_keys=True),
                    selector,
                    fallback,
                    int(n_labeled),
                    len(batch) - n_rel,
                    n_rel,
                    None if heldout_accuracy is None else float(heldout_accuracy),
                    json.dumps(info, sort_keys=True, default=_json_default),
                ),
            )
            cur.executemany(
                "INSERT INTO batches"
                "(round, position, item_row, kind, score, prediction, confidence) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    (
                        number,
                        pos,
                        int(b["item_row"]),
                        b["kind"],
                        _opt_float(b.get("score")),
                        None if b.get("prediction") is None else int(b["prediction"]),
                        _opt_float(b.get("confidence")),
                    )
                    for pos, b in enumerate(batch)
                ),
            )


def session_lock(directory: str | Path, db_name: str = DB_NAME) -> ExclusiveLock:
    """The (not yet acquired) exclusive lock of the session whose store is ``directory/db_name``."""
    name = LOCK_NAME if db_name == DB_NAME else f".{db_name}.lock"
    return ExclusiveLock(Path(directory) / name, what=f"session {directory}")


def session_files(directory: str | Path, store: SessionStore) -> list[Path]:
    """Files an output path must never replace: the store, its lock and journal, the features and
    Label Studio config (named in meta), the batches folder, the pool and every imported file."""
    d = Path(directory)
    out = [store.path, d / LOCK_NAME, Path(f"{store.path}-journal"), d / "batches", d / "rounds"]
    out.append(d / "labelstudio_config.xml")
    features = store.get_meta("features") or {}
    if isinstance(features, dict) and features.get("file"):
        out.append(d / str(features["file"]))
    pool = store.get_meta("pool") or {}
    if isinstance(pool, dict) and pool.get("path"):
        out.append(Path(str(pool["path"])))
    out += [Path(i["source_file"]) for i in store.imports()]
    return out


def create_store(
    path: str | Path, *, ids: Sequence[str], heldout_labels: np.ndarray, meta: dict[str, Any]
) -> None:
    """Create the store ``path`` holding the items and ``meta`` entries, all or nothing.

    The file is built under a temporary name beside ``path`` (mode 0o600) and linked into place
    last, under the session lock and never over an existing file, so a killed ``init`` leaves no
    half-built session behind and two concurrent ``init`` calls cannot replace each other's store.

    Raises
    ------
    NcalError
        ``path`` exists already; ``LockedError`` when another process holds the session.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".session.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # SessionStore(create=True) refuses an existing file
    try:
        with session_lock(path.parent, path.name):
            store = SessionStore(tmp, create=True, lock=False)
            try:
                with store.transaction() as cur:
                    store.insert_items(cur, ids, heldout_labels)
                    for key, value in meta.items():
                        store.put_meta(cur, key, value)
            finally:
                store.close()
            try:
                os.link(tmp, path)  # unlike a rename, fails when `path` exists
            except FileExistsError:
                raise NcalError(
                    f"`{path}` already exists; refusing to overwrite a session store"
                ) from None
            except OSError:  # no hard links on this file system: the lock still excludes
                if path.exists():  # other writers, so check-then-rename is safe here
                    raise NcalError(
                        f"`{path}` already exists; refusing to overwrite a session store"
                    ) from None
                os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _opt_float(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if np.isfinite(f) else None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
