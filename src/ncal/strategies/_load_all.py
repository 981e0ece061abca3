"""Importing this module registers every strategy (each lives in its own module)."""

import importlib
import pkgutil

from . import __path__ as _path

for _info in pkgutil.iter_modules(_path):
    if not _info.name.startswith("_") and _info.name not in ("base", "selection"):
        importlib.import_module(f"{__package__}.{_info.name}")
