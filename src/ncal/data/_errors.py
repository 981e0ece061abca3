"""Errors of the data layer."""

from __future__ import annotations

from ..errors import NcalError


class DataNotFoundError(NcalError, FileNotFoundError):
    """Data files are not on this machine; the message says how to get them.

    A :class:`~ncal.errors.NcalError` (so the CLI prints it without a traceback) and a
    :class:`FileNotFoundError` (so ``except OSError`` code keeps working).
    """
