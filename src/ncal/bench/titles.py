"""Readable titles of the per-round metrics, for report panels (``nc2_equinorm_M`` → a sentence).

Names follow the round records (``rounds.jsonl``); the metrics are defined in docs/algorithms.md §3
(neural collapse) and §5 (evaluation). A name missing from :data:`METRIC_TITLES` is shown as
recorded.
"""

from __future__ import annotations

METRIC_TITLES: dict[str, str] = {
    # neural collapse (M = class means, W = classifier rows)
    "nc1": "NC1: within- vs between-class variability",
    "nc1_quotient": "NC1: within/between variance quotient",
    "etf_M": "NC2: class means' distance to a simplex ETF",
    "etf_W": "NC2: classifier's distance to a simplex ETF",
    "nc2_equinorm_M": "NC2: equinorm of class means",
    "nc2_equinorm_W": "NC2: equinorm of classifier rows",
    "nc2_equiangular_M": "NC2: equiangularity of class means",
    "nc2_equiangular_W": "NC2: equiangularity of classifier rows",
    "nc2_maxangle_M": "NC2: max-angle deviation of class means",
    "nc2_maxangle_W": "NC2: max-angle deviation of classifier rows",
    "nc3": "NC3: classifier vs class means (self-duality)",
    "nc3_structure": "NC3: classifier-means product vs ETF structure",
    "nc3_cos_mean": "NC3: mean cosine classifier row / class mean",
    "nc4_mismatch": "NC4: nearest-class-mean disagreement",
    "cdnv_mean": "class-distance normalised variance (mean)",
    "separation_ratio": "separation: mean class-mean distance / spread",
    "raw": "mean distance between class means",
    "normfeat": "mean class-mean distance, normalised features",
    "normmean": "mean distance between normalised class means",
    # label quality and spending
    "test_accuracy": "test accuracy",
    "consensus_purity": "consensus purity: training labels that are right",
    "noise_rate_batch": "wrong annotations in the bought batch",
    "noise_rate_labeled": "wrong labels in the labeled set",
    "query_ood": "annotations spent on out-of-distribution items",
    "relabels": "relabel annotations in the batch",
    # evaluations
    "auroc": "AUROC",
    "aupr": "AUPR",
    "fpr95": "FPR at 95 % TPR",
    "accuracy": "accuracy",
}


def metric_title(name: str) -> str:
    """Readable title of a metric given by its (possibly dotted) recorded name.

    ``"nc2_equinorm_M"`` → ``"NC2: equinorm of class means"``; ``"ood.msp.auroc"`` →
    ``"ood.msp: AUROC"``; unknown names are returned unchanged.
    """
    head, _, leaf = name.rpartition(".")
    title = METRIC_TITLES.get(leaf)
    if title is None:
        return name
    return f"{head}: {title}" if head else title
