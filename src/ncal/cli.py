"""The ``ncal`` command: one subcommand per area, each registered by its own ``cli`` module."""

from __future__ import annotations

import argparse
import importlib
import os
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
    except (ValueError, TypeError, FileNotFoundError, ImportError) as exc:
        if os.environ.get("NCAL_DEBUG"):
            raise
        print(f"error: {exc}", file=sys.stderr)
        print("(set NCAL_DEBUG=1 for the full traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
