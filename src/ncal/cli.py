"""The ``ncal`` command: one subcommand per area, each registered by its own ``cli`` module."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sqlite3
import sys

from . import __version__

_AREAS = ("ncal.experiment.cli", "ncal.bench.cli", "ncal.bench.demo", "ncal.session.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ncal",
        description="Reliable active learning from unreliable labels (NCAL-R and baselines).",
        epilog="Run `ncal COMMAND --help` for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"ncal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in _AREAS:
        try:
            area = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
            continue
        area.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(
            "interrupted: finished work is saved; rerun the same command to resume", file=sys.stderr
        )
        return 130
    except Exception as exc:  # every error becomes one message; NCAL_DEBUG=1 shows the traceback
        if os.environ.get("NCAL_DEBUG"):
            raise
        message, code = error_message(exc)
        print(f"error: {message}", file=sys.stderr)
        print("(set NCAL_DEBUG=1 for the full traceback)", file=sys.stderr)
        return code


# exit codes: 2 = bad input or environment (the message says what to change), 3 = a bug in ncal
_USER_ERRORS = (ValueError, TypeError, ImportError, LookupError)


def error_message(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code the command line reports for ``exc``.

    File-system errors name the file and the cause (permission denied, disk full, read-only,
    missing); SQLite errors name the session store; anything unexpected is reported as a bug.
    """
    if isinstance(exc, OSError):
        return _os_error_message(exc), 2
    if isinstance(exc, _USER_ERRORS):
        return str(exc) or type(exc).__name__, 2
    if isinstance(exc, sqlite3.Error):
        return f"the session store cannot be used ({exc}); is it a session.sqlite file?", 2
    if isinstance(exc, RecursionError):
        return "an input file nests data too deeply to be read", 2
    if isinstance(exc, MemoryError):
        return "out of memory; try a smaller input, batch or pool", 2
    return f"unexpected {type(exc).__name__}: {exc} (a bug in ncal; please report it)", 3


_OS_CAUSES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "it already exists (a dangling symbolic link?)",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EISDIR: "it is a directory",
}


def _os_error_message(exc: OSError) -> str:
    cause = _OS_CAUSES.get(exc.errno or -1, exc.strerror or str(exc))
    files = [f for f in (exc.filename, exc.filename2) if f is not None]
    if not files:
        return cause
    return f"cannot use {' -> '.join(repr(os.fsdecode(f)) for f in files)}: {cause}"


if __name__ == "__main__":
    sys.exit(main())
