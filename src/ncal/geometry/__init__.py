"""Class-mean geometry (numpy only, float64): CMA/CMAP, neural-collapse metrics, class distances.

>>> import numpy as np
>>> from ncal.geometry import cma
>>> h = np.array([[2.0, 0.0], [0.0, 2.0]])
>>> cma(h, [0, 1])                      # two orthogonal class means
0.0
>>> round(cma(h, [0, 1], centering="frozen"), 12)  # centred: antipodal, -1/(C-1)
-1.0
"""

from .cmap import cma, cmap, cmap_first_order
from .nc import etf_deviation, inter_class_distances, nc_metrics
from .stats import ClassStats

__all__ = [
    "ClassStats",
    "cma",
    "cmap",
    "cmap_first_order",
    "etf_deviation",
    "inter_class_distances",
    "nc_metrics",
]
