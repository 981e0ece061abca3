"""ncal — reliable active learning from unreliable labels via neural-collapse geometry (NCAL-R).

The mathematical core is importable without torch:

>>> import numpy as np, ncal
>>> ncal.top_k(np.array([0.2, 0.9, 0.9, 0.1]), 2)
array([1, 2])
"""

from importlib.metadata import PackageNotFoundError, version

from .strategies.selection import ncal_r_scores, top_k, zscore

try:
    __version__ = version("ncal")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["__version__", "ncal_r_scores", "top_k", "zscore"]
