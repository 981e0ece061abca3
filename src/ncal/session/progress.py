"""Signs of life for the session's slow steps: one line per phase on stderr, with elapsed time.

A labeling session runs on shared laptops and servers where a step that takes 3 s on an idle
machine can take minutes; a line per phase ("fitting model on 40 labels...") shows what is running
and for how long. Lines go to stderr so that ``--json`` output on stdout stays parseable; the
library is silent unless a caller asks for progress (the command line does, unless ``--quiet``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO


class Progress:
    """Phase lines ``[  12.3s] scoring 1,000,000 candidates...`` on ``stream`` (default stderr).

    Parameters
    ----------
    enabled : bool
        False: every method is a no-op (the library default).
    stream : text stream, optional
        Where lines go (default ``sys.stderr`` at the time of writing).
    """

    def __init__(self, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.enabled = bool(enabled)
        self._stream = stream
        self._t0 = time.perf_counter()

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def elapsed(self) -> float:
        """Seconds since this reporter was made (the command's start)."""
        return time.perf_counter() - self._t0

    def say(self, message: str) -> None:
        """One line: elapsed time, then ``message``."""
        if self.enabled:
            print(f"[{self.elapsed():7.1f}s] {message}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def phase(self, message: str) -> Iterator[None]:
        """``message...`` when the phase starts; ``message: done in X s`` when it took over 1 s."""
        self.say(f"{message}...")
        t0 = time.perf_counter()
        yield
        took = time.perf_counter() - t0
        if took >= 1.0:
            self.say(f"{message}: done in {took:.1f} s")

    @property
    def bars(self) -> bool:
        """Whether per-epoch bars are worth drawing (enabled and stderr is a terminal)."""
        return self.enabled and bool(getattr(self.stream, "isatty", lambda: False)())


#: A reporter that prints nothing (the library's default).
SILENT = Progress(enabled=False)


def count(n: int) -> str:
    """``1000000`` -> ``1,000,000`` (the size of a pool reads at a glance)."""
    return f"{int(n):,}"
