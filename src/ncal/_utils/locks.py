"""One exclusive lock per run directory or session: a second writer fails at once, naming the holder.

The lock is ``fcntl.flock`` on a small file (``.lock``) beside the data it guards. The kernel
releases a ``flock`` when its holder exits in any way (return, exception, SIGKILL), so a lock left
by a killed process is never an obstacle: the next writer simply acquires it ("stale lock taken
over") and rewrites the holder record. The file's text (pid, host, start time, command) is only
there to name the holder in the error message.

The lock excludes other PROCESSES: within one process it is re-entrant (a second
``ExclusiveLock`` on the same file shares the first one's hold, counted), so a library caller that
keeps a session open while calling the command line in the same process does not lock itself
out. Threads of one process are not excluded from each other.

``flock`` is local to one machine: on a network file system shared by several hosts it may not
exclude writers on other hosts: run one writer per directory there.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import sys
import time
from pathlib import Path
from types import TracebackType

from ..errors import NcalError

LOCK_FILE_MODE = 0o600  # user-only: the holder record names the command line
# (pid, real path of the lock file) -> [descriptor, holders]; pid in the key: a forked child
# never believes it holds its parent's lock
_HELD: dict[tuple[int, str], list[int]] = {}


class LockedError(NcalError):
    """Another live process holds the lock; the message names it (pid, host, start, command)."""


class ExclusiveLock:
    """A non-blocking exclusive lock on ``path`` (created with mode 0o600 when missing).

    Parameters
    ----------
    path : str or PathLike
        The lock file, e.g. ``RUN_DIR/.lock``; its folder must exist.
    what : str
        What the lock guards, for the error message (e.g. ``"run directory runs/a"``).

    Examples
    --------
    >>> with ExclusiveLock("runs/a/.lock", what="run directory runs/a"):  # doctest: +SKIP
    ...     write_rounds()
    """

    def __init__(self, path: str | os.PathLike, *, what: str) -> None:
        self.path = Path(path)
        self.what = what
        self._key: tuple[int, str] | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._key is not None

    def acquire(self) -> ExclusiveLock:
        """Take the lock or raise :class:`LockedError` at once (never waits).

        Raises
        ------
        LockedError
            Another process holds it; the message names that process.
        NcalError
            The lock file cannot be created (e.g. a read-only folder), naming the file.
        """
        if self._key is not None:
            return self
        key = (os.getpid(), os.path.realpath(self.path))
        if key in _HELD:  # this process holds it already: share the hold
            _HELD[key][1] += 1
            self._key = key
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, LOCK_FILE_MODE)
        except OSError as exc:
            raise NcalError(
                f"cannot create the lock file {self.path} for the {self.what}: "
                f"{exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise LockedError(
                    f"the {self.what} is in use by another process ({holder}); wait for it to "
                    f"finish or stop it, then run again (lock file: {self.path})"
                ) from None
            raise NcalError(f"cannot lock {self.path}: {exc.strerror or exc}") from exc
        _HELD[key] = [fd, 1]
        self._key = key
        _write_holder(fd)
        return self

    def release(self) -> None:
        """Release the lock (idempotent). The file stays: removing it would race a new holder."""
        if self._key is None:
            return
        key, self._key = self._key, None
        entry = _HELD.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        fd = _HELD.pop(key)[0]
        try:
            os.ftruncate(fd, 0)
        except OSError:  # the record is informative only
            pass
        os.close(fd)  # closing the descriptor drops the flock

    def __enter__(self) -> ExclusiveLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __del__(self) -> None:  # a forgotten lock is still released when the object goes
        try:
            self.release()
        except Exception:  # interpreter shutdown: module globals may already be gone
            pass


def holder_record() -> dict[str, object]:
    """What the lock file says about its holder: pid, host, start time (UTC) and command."""
    return {
        "pid": os.getpid(),
        "host": platform.node(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(sys.argv)[:300],
    }


def _write_holder(fd: int) -> None:
    data = (json.dumps(holder_record(), sort_keys=True) + "\n").encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError:  # a full disk must not stop a writer that holds the lock
        pass


# The holder writes its record right after taking the lock, so a loser that finds the file still
# empty or half written re-reads it a few times before it reports the holder as unknown.
_HOLDER_READS, _HOLDER_READ_WAIT_S = 20, 0.01


def _read_holder(fd: int) -> str:
    """The holder as ``pid N on HOST since TIME (COMMAND)``, or a generic phrase."""
    for attempt in range(_HOLDER_READS):
        try:
            rec = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
        except (OSError, ValueError):
            rec = {}
        if isinstance(rec, dict) and "pid" in rec:
            break
        if attempt + 1 < _HOLDER_READS:
            time.sleep(_HOLDER_READ_WAIT_S)
    else:
        return "holder unknown"
    text = f"pid {rec.get('pid')} on {rec.get('host')} since {rec.get('started')}"
    return f"{text}: {rec['command']}" if rec.get("command") else text
