"""Linear probing of frozen features: multinomial logistic regression, C chosen on validation.

Spec: docs/algorithms.md §4.2. The regularisation strength is chosen on a seeded stratified
validation split of the target's *training* features only; the test split is touched once, at the end.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._utils.random import as_generator
from .._utils.validation import as_float_matrix, as_label_vector, check_same_rows

DEFAULT_C_GRID = tuple(10.0**e for e in range(-4, 5))  # 1e-4 … 1e4, step ×10
_C_LIMITS = (1e-8, 1e8)  # boundary extension never goes beyond these


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int | np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split into (fit indices, validation indices).

    Each class sends ``round(val_fraction · n_c)`` samples to validation but keeps at least one for
    fitting (a singleton class stays entirely in the fitting split).
    """
    y = as_label_vector(labels, "labels")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"`val_fraction` must be in (0, 1); got {val_fraction}")
    rng = as_generator(seed)
    fit, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = min(round(val_fraction * idx.size), idx.size - 1)
        val.append(idx[:n_val])
        fit.append(idx[n_val:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


def _fit(x: np.ndarray, y: np.ndarray, C: float, max_iter: int, seed: int, standardize: bool):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    if standardize:  # scaler statistics from the fitting rows only
        mu = x.mean(axis=0)
        sd = x.std(axis=0)
        sd[sd == 0] = 1.0
    else:
        mu, sd = np.zeros(x.shape[1]), np.ones(x.shape[1])
    clf = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        clf.fit((x - mu) / sd, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return clf, mu, sd, converged


def _score(clf, mu, sd, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean log-loss) of a fitted model on (x, y)."""
    proba = clf.predict_proba((x - mu) / sd)
    pred = clf.classes_[np.argmax(proba, axis=1)]
    col = np.minimum(np.searchsorted(clf.classes_, y), clf.classes_.size - 1)
    known = clf.classes_[col] == y  # a class unseen in fitting has probability 0
    p_true = np.where(known, proba[np.arange(y.size), col], 0.0)
    return float(np.mean(pred == y)), float(-np.mean(np.log(np.maximum(p_true, 1e-300))))


def linear_probe(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    *,
    val_fraction: float = 0.2,
    c_grid: Sequence[float] | None = None,
    standardize: bool = True,
    seed: int = 0,
    max_iter: int = 1000,
    max_extensions: int = 3,
) -> dict[str, Any]:
    """Top-1 accuracy of a multinomial logistic-regression probe on frozen features.

    1. Split the training features into fit / validation (stratified, seeded, ``val_fraction``).
    2. For every ``C`` in the grid: standardise with fit-split statistics, fit
       ``LogisticRegression(solver="lbfgs", max_iter=1000, C=C)``, score on validation.
       Best = highest validation accuracy, ties broken by lower validation log-loss, then smaller C.
       If the best C sits on a grid end, the grid is extended by two decades beyond it (at most
       ``max_extensions`` times, within 1e-8..1e8).
    3. Refit on the full training split (scaler refitted on it) with the best C; report test
       accuracy. Test data never influence C or the scaler.

    Parameters
    ----------
    train_features, train_labels : (N, d), (N,) the target's training split.
    test_features, test_labels : (M, d), (M,) its test split.
    val_fraction : float
        Validation share of the training split.
    c_grid : sequence of float, optional
        Inverse regularisation strengths; default ``10^-4 … 10^4`` (×10 steps).
    standardize : bool
        Per-dimension z-score with statistics of the rows being fitted (default; docs/algorithms.md §4.2).
    seed : int
        Seeds the split and the solver.
    max_iter : int
        L-BFGS iterations.
    max_extensions : int
        How often the grid may be extended when the best C is on its boundary.

    Returns
    -------
    dict: ``test_accuracy``, ``best_C``, ``val_accuracy`` (of the best C), ``c_grid`` (every C
    tried, sorted), ``val_accuracies`` (aligned with ``c_grid``), ``grid_extensions``,
    ``converged`` (final fit), ``n_train``, ``n_test``, ``n_classes``.

    References
    ----------
    Radford et al., "Learning Transferable Visual Models From Natural Language Supervision" (CLIP),
    ICML 2021, linear-probe protocol; Kornblith et al., "Do Better ImageNet Models Transfer
    Better?", CVPR 2019.
    """
    xtr = as_float_matrix(train_features, "train_features")
    ytr = as_label_vector(train_labels, "train_labels", length=xtr.shape[0])
    xte = as_float_matrix(test_features, "test_features")
    yte = as_label_vector(test_labels, "test_labels", length=xte.shape[0])
    check_same_rows(xte, yte, "test_features", "test_labels")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(
            f"`train_features` has {xtr.shape[1]} columns but `test_features` has {xte.shape[1]}"
        )
    if np.unique(ytr).size < 2:
        raise ValueError("`train_labels` must contain at least two classes")
    grid = sorted({float(c) for c in (DEFAULT_C_GRID if c_grid is None else c_grid)})
    if not grid or any(not (np.isfinite(c) and c > 0) for c in grid):
        raise ValueError(f"`c_grid` must hold finite positive values; got {c_grid!r}")

    fit_idx, val_idx = stratified_split(ytr, val_fraction, seed)
    if np.unique(ytr[fit_idx]).size < 2 or val_idx.size == 0:
        raise ValueError("the training split is too small for a validation split")
    xf, yf, xv, yv = xtr[fit_idx], ytr[fit_idx], xtr[val_idx], ytr[val_idx]

    results: dict[float, tuple[float, float]] = {}

    def evaluate(cs):
        for C in cs:
            if C not in results:
                clf, mu, sd, _ = _fit(xf, yf, C, max_iter, seed, standardize)
                results[C] = _score(clf, mu, sd, xv, yv)

    def best():
        # highest accuracy, then lowest log-loss, then smallest C
        return min(results, key=lambda c: (-results[c][0], results[c][1], c))

    evaluate(grid)
    extensions = 0
    while extensions < max_extensions:
        tried = sorted(results)
        b = best()
        if b == tried[0] and b / 10 >= _C_LIMITS[0]:
            new = [b / 100, b / 10]
        elif b == tried[-1] and b * 10 <= _C_LIMITS[1]:
            new = [b * 10, b * 100]
        else:
            break
        new = [c for c in new if _C_LIMITS[0] <= c <= _C_LIMITS[1]]
        evaluate(new)
        extensions += 1

    best_C = best()
    clf, mu, sd, converged = _fit(xtr, ytr, best_C, max_iter, seed, standardize)
    test_acc, _ = _score(clf, mu, sd, xte, yte)
    tried = sorted(results)
    return {
        "test_accuracy": test_acc,
        "best_C": float(best_C),
        "val_accuracy": results[best_C][0],
        "c_grid": [float(c) for c in tried],
        "val_accuracies": [results[c][0] for c in tried],
        "grid_extensions": extensions,
        "converged": bool(converged),
        "n_train": int(xtr.shape[0]),
        "n_test": int(xte.shape[0]),
        "n_classes": int(np.unique(ytr).size),
    }


def mean_over_targets(results: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]]):
    """Unweighted mean of ``test_accuracy`` and ``val_accuracy`` over probe targets.

    Parameters
    ----------
    results : ``{target_name: linear_probe(...)}`` or a list of such dicts.

    Returns
    -------
    dict: ``test_accuracy``, ``val_accuracy`` (means), ``n_targets``, and ``per_target``
    (``{name: test_accuracy}``; names are list positions for a list).
    """
    items = list(results.items()) if isinstance(results, Mapping) else list(enumerate(results))
    if not items:
        raise ValueError("`results` must hold at least one probe result")
    for name, r in items:
        if "test_accuracy" not in r:
            raise ValueError(f"probe result {name!r} has no 'test_accuracy'")
    return {
        "test_accuracy": float(np.mean([r["test_accuracy"] for _, r in items])),
        "val_accuracy": float(np.mean([r.get("val_accuracy", np.nan) for _, r in items]))
        if all("val_accuracy" in r for _, r in items)
        else None,
        "n_targets": len(items),
        "per_target": {str(n): float(r["test_accuracy"]) for n, r in items},
    }
