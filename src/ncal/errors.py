"""Errors a user can cause; the CLI prints their message without a traceback."""


class NcalError(ValueError):
    """Bad input, configuration or run directory (message names the argument and what was expected)."""


class CorruptRunError(NcalError):
    """A run or session directory whose files cannot be read back."""
