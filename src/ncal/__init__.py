"""ncal — reliable active learning from unreliable labels via neural-collapse geometry (NCAL-R).

The mathematical core is importable without torch:

>>> import numpy as np, ncal
>>> ncal.top_k(np.array([0.2, 0.9, 0.9, 0.1]), 2)
array([1, 2])
"""

from typing import Any

from .strategies.selection import ncal_r_scores, top_k, zscore

__all__ = ["__version__", "ncal_r_scores", "top_k", "zscore"]


def __getattr__(name: str) -> Any:
    # ``__version__`` is looked up on first use: importlib.metadata costs more than the rest of
    # ``import ncal`` together.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("ncal")
        except PackageNotFoundError:  # running from a source tree without installation
            return "0.0.0+local"
    raise AttributeError(f"module 'ncal' has no attribute {name!r}")
