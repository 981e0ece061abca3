"""Out-of-fold class probabilities: every sample is scored by a model that never saw it, so a
memorised (possibly wrong) label does not vouch for itself. Used by the difficulty oracle (how hard
is a sample) and by the session's review queue (how likely is a given label wrong)."""

from __future__ import annotations

import warnings

import numpy as np


def out_of_fold_probabilities(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> np.ndarray:
    """(N, num_classes) out-of-fold probabilities of a multinomial logistic regression.

    Folds are stratified when every present class has at least ``folds`` samples, else plain shuffled
    folds (seeded). A class absent from a training fold gets probability 0 on its held-out fold; a
    training fold with a single class predicts it with probability 1.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold, StratifiedKFold

    n = labels.shape[0]
    k = int(min(folds, n))
    if k < 2:
        raise ValueError(f"out-of-fold scoring needs at least 2 labeled samples; got {n}")
    counts = np.bincount(labels, minlength=num_classes)
    if counts[counts > 0].min() >= k:
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(
            features, labels
        )
    else:
        splits = KFold(n_splits=k, shuffle=True, random_state=seed).split(features)
    probs = np.zeros((n, num_classes))
    for train, test in splits:
        classes = np.unique(labels[train])
        if classes.size < 2:
            probs[test, classes[0]] = 1.0
            continue
        model = LogisticRegression(C=C, max_iter=max_iter, tol=tol)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(features[train], labels[train])
        probs[np.ix_(test, model.classes_)] = model.predict_proba(features[test])
    return probs
