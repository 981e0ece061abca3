"""Per-round measurements beyond test accuracy: collapse geometry always; the paper's evaluations on
request (``evals``: ood, shift, probe, gcd, longtail). Each returns plain JSON-ready dicts.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from .config import ExperimentConfig
from .problem import Problem


def _head(model) -> tuple[np.ndarray, np.ndarray]:
    w = model.head.weight.detach().cpu().double().numpy()
    b = (
        model.head.bias.detach().cpu().double().numpy()
        if model.head.bias is not None
        else np.zeros(len(w))
    )
    return w, b


@lru_cache(maxsize=8)
def _dataset(name: str, data_seed: int):
    from ..data import load_dataset

    return load_dataset(name, seed=data_seed)


def round_evaluations(
    config: ExperimentConfig,
    problem: Problem,
    model,
    out,
    lab_idx: np.ndarray,
    lab_y: np.ndarray,
    unlabeled: np.ndarray,
    *,
    seed: int,
) -> dict[str, Any]:
    """Collapse metrics of the labeled set (given and clean labels) and of the test set, plus ``evals``."""
    from ..geometry import inter_class_distances, nc_metrics

    W, b = _head(model)
    C = problem.num_classes
    feats_l = np.asarray(out.features_labeled, dtype=np.float64)
    test_logits, test_feats = out.extra["test"]
    result: dict[str, Any] = {}
    result["nc"] = _safe(lambda: nc_metrics(feats_l, lab_y, W, b, num_classes=C))
    result["nc_clean"] = _safe(
        lambda: nc_metrics(feats_l, problem.y_pool[lab_idx], W, b, num_classes=C)
    )
    result["geometry_test"] = _safe(
        lambda: inter_class_distances(test_feats, problem.y_test, num_classes=C)
    )
    result["nc_test"] = _safe(lambda: nc_metrics(test_feats, problem.y_test, W, b, num_classes=C))
    ev: dict[str, Any] = {}
    if "ood" in config.evals:
        ev["ood"] = _ood(config, problem, model, out, feats_l, lab_y)
    if "shift" in config.evals:
        ev["shift"] = _shift(problem, model, out, seed)
    if "probe" in config.evals:
        ev["probe"] = _probe(config, model, out, seed)
    if "gcd" in config.evals:
        ev["gcd"] = _gcd(config, problem, out, unlabeled, lab_y, seed)
    if "longtail" in config.evals:
        from ..evaluation import shot_accuracy

        counts = np.bincount(problem.y_pool[~problem.is_ood], minlength=C)
        ev["longtail"] = shot_accuracy(problem.y_test, np.argmax(test_logits, axis=1), counts)
    if ev:
        result["eval"] = ev
    return result


def _safe(fn) -> dict[str, Any]:
    """Collapse metrics are undefined for degenerate labeled sets (e.g. one class): record why."""
    try:
        return fn()
    except ValueError as exc:
        return {"error": str(exc)}


def _ood(config, problem, model, out, feats_l, lab_y) -> dict[str, Any]:
    from ..evaluation import evaluate_ood

    ood = _dataset(config.ood_dataset, config.data_seed)
    x_out = ood.x_test
    if x_out.shape[1:] != problem.x_test.shape[1:]:
        return {"error": f"OOD set {config.ood_dataset} has input shape {x_out.shape[1:]}"}
    logits_out, feats_out = out.predict(model, x_out)
    test_logits, test_feats = out.extra["test"]
    res = evaluate_ood(test_logits, test_feats, logits_out, feats_out, feats_l, lab_y)
    res["ood_dataset"] = config.ood_dataset
    return res


def _shift(problem, model, out, seed) -> dict[str, Any]:
    from ..evaluation import shifted_test_sets

    if problem.kind != "image":
        return {"error": "covariate shift needs image inputs"}
    acc: dict[str, Any] = {}
    for kind, severity, x in shifted_test_sets(problem.x_test, seed=seed):
        logits, _ = out.predict(model, x)
        acc[f"{kind}_{severity}"] = float(np.mean(np.argmax(logits, axis=1) == problem.y_test))
    acc["mean"] = float(np.mean([v for v in acc.values()]))
    return acc


def _probe(config, model, out, seed) -> dict[str, Any]:
    from ..evaluation import linear_probe, mean_over_targets

    res: dict[str, Any] = {}
    for name in config.probe_datasets:
        ds = _dataset(name, config.data_seed)
        _, f_tr = out.predict(model, ds.x_train)
        _, f_te = out.predict(model, ds.x_test)
        res[name] = linear_probe(f_tr, ds.y_train, f_te, ds.y_test, seed=seed % (2**31))
    res["mean"] = mean_over_targets([res[n] for n in config.probe_datasets])
    return res


def _gcd(config, problem, out, unlabeled, lab_y, seed) -> dict[str, Any]:
    """Category discovery with the round's features: labeled = bought labels of the known classes;
    unlabeled = the rest of the in-distribution pool (all classes); clusters = number of classes
    (our reading of docs/algorithms.md §4.3, stated in the report)."""
    from ..evaluation import evaluate_gcd, split_known_novel

    old, _new = split_known_novel(
        problem.num_classes, config.gcd_known_fraction, seed=config.data_seed
    )
    keep = np.isin(lab_y, old)
    in_dist = ~problem.is_ood[unlabeled]  # rows of out.features_pool follow `unlabeled`
    res = evaluate_gcd(
        np.asarray(out.features_labeled)[keep],
        lab_y[keep],
        np.asarray(out.features_pool)[in_dist],
        problem.y_pool[unlabeled[in_dist]],
        old,
        problem.num_classes,
        seed % (2**31),
    )
    res["known_classes"] = old.tolist()
    return res
