"""Evaluation protocols (docs/algorithms.md §3–§4): pure functions of arrays → JSON-serialisable
dicts.

- :mod:`.ood` — OOD scores (MSP, energy, Mahalanobis, kNN; higher = ID) and ID-positive metrics.
- :mod:`.shift` — seeded covariate corruptions of uint8 images at severities 1..5.
- :mod:`.probe` — linear probe on frozen features (C chosen on a validation split of the train set).
- :mod:`.gcd` — semi-supervised k-means and GCD accuracy (v2; v1 legacy).
- :mod:`.longtail` — long-tail counts / subsets and many/medium/few-shot accuracy.
- :mod:`.collapse` — NC metrics with given and clean labels (via :mod:`ncal.geometry`).
"""

from .collapse import collapse_report
from .gcd import (
    cluster_accuracy,
    cluster_accuracy_v1,
    cluster_accuracy_v2,
    evaluate_gcd,
    remap_old_first,
    semi_supervised_kmeans,
    split_known_novel,
)
from .longtail import long_tail_counts, long_tail_indices, shot_accuracy
from .ood import (
    energy_score,
    evaluate_ood,
    knn_k_eff,
    knn_score,
    mahalanobis_score,
    msp_score,
    ood_metrics,
)
from .probe import linear_probe, mean_over_targets, stratified_split
from .shift import CORRUPTIONS, corrupt, shifted_test_sets

__all__ = [
    "CORRUPTIONS",
    "cluster_accuracy",
    "cluster_accuracy_v1",
    "cluster_accuracy_v2",
    "collapse_report",
    "corrupt",
    "energy_score",
    "evaluate_gcd",
    "evaluate_ood",
    "knn_k_eff",
    "knn_score",
    "linear_probe",
    "long_tail_counts",
    "long_tail_indices",
    "mahalanobis_score",
    "mean_over_targets",
    "msp_score",
    "ood_metrics",
    "remap_old_first",
    "semi_supervised_kmeans",
    "shifted_test_sets",
    "shot_accuracy",
    "split_known_novel",
    "stratified_split",
]
