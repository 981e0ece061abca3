"""Choosing a session round's model and features on the labeled items by cross-validation.

A fixed MLP is a poor default for a few dozen labels: on scikit-learn digits with 40 labels it
scored 0.31 held out where a plain logistic regression on the same labels scored 0.68. So every
round compares a multinomial logistic regression (scikit-learn, ``C=1``, on the raw features: the
plain baseline itself) with the round recipe's MLP, on each feature set the session has (e.g. the
pretrained and the pixel features of an image pool), by k-fold cross-validated accuracy on the
labeled items, and keeps the best. Ties go to the simpler model, then to the session's primary
features, so the choice is never more complex than the evidence supports. (A linear layer trained
by the round recipe is no substitute: on digits with 40 labels it scored 0.65-0.77 where the
logistic regression scored 0.78-0.86.)

MLP folds are trained by the round step itself (:func:`ncal.experiment.step.fit_round`, no pool,
no FF), so the score is the one of the model that will be used. Folds are stratified when every
labeled class has at least ``folds`` items and split from ``derive_seed(seed, "cv", round)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._utils.memmap import read_rows
from .._utils.random import derive_seed
from .progress import SILENT, Progress, count

#: Candidate models, simplest first (the order breaks ties): name -> MLP hidden layer widths
#: (None: scikit-learn's logistic regression).
MODELS: dict[str, tuple[int, ...] | None] = {"logreg": None, "mlp": (256,)}
#: Logits given to classes a logistic regression never saw (probability ~0, but finite).
ABSENT_LOGIT = -1e4


class LogReg:
    """A multinomial logistic regression on raw features, with logits for all ``num_classes``."""

    def __init__(self, model: Any, classes: np.ndarray, num_classes: int) -> None:
        self.model, self.classes, self.num_classes = model, classes, int(num_classes)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, num_classes: int) -> LogReg:
        """Fit ``C=1`` L2 logistic regression (one class: a constant predictor)."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        classes = np.unique(y)
        if classes.size < 2:
            return cls(None, classes, num_classes)
        model = LogisticRegression(C=1.0, max_iter=1000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(np.asarray(x, dtype=np.float64), y)
        return cls(model, model.classes_, num_classes)

    def logits(self, x: np.ndarray, block: int = 16384) -> np.ndarray:
        """(N, num_classes) float32 logits (softmax = ``predict_proba``), in row blocks (a
        read-only memmap ``x`` is read block by block from its file)."""
        out = np.full((len(x), self.num_classes), ABSENT_LOGIT, dtype=np.float32)
        for s in range(0, len(x), block):
            xb = np.asarray(read_rows(x, s, s + block), dtype=np.float64)
            if self.model is None:
                out[s : s + len(xb), self.classes] = 0.0
                continue
            z = self.model.decision_function(xb)
            if z.ndim == 1:  # binary: one logit for classes_[1]; softmax([0, z]) = sigmoid(z)
                z = np.stack([np.zeros_like(z), z], axis=1)
            out[s : s + len(xb), self.classes] = z
        return out


#: Fewest labeled items for which a cross-validated choice is attempted.
MIN_CV_ITEMS = 6


@dataclass
class ModelChoice:
    """The model and features a round trains on, and why.

    Attributes
    ----------
    model : str
        A key of :data:`MODELS`.
    features : str
        A feature-set name (a key of the ``feature_sets`` it was chosen from).
    cv_accuracy : dict
        ``"model/features"`` -> mean cross-validated accuracy (empty when no CV ran).
    folds : int
        Folds used (0 when no CV ran).
    reason : str
        How the choice was made.
    """

    model: str
    features: str
    cv_accuracy: dict[str, float] = field(default_factory=dict)
    folds: int = 0
    reason: str = ""

    @property
    def hidden(self) -> tuple[int, ...] | None:
        """MLP hidden widths, or None for the logistic regression."""
        return MODELS[self.model]

    def record(self) -> dict[str, Any]:
        """JSON-safe record for the round's info."""
        return {
            "model": self.model,
            "features": self.features,
            "cv_accuracy": dict(self.cv_accuracy),
            "folds": self.folds,
            "reason": self.reason,
        }


def cv_splits(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs: stratified when every present class has ``folds`` items."""
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(labels, dtype=np.int64)
    k = int(min(folds, y.size))
    counts = np.bincount(y)
    rs = int(seed % 2**32)  # sklearn takes 32-bit seeds
    if counts[counts > 0].min() >= k:
        return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=rs).split(y, y))
    return list(KFold(n_splits=k, shuffle=True, random_state=rs).split(y))


def cv_accuracy(
    x: np.ndarray,
    y: np.ndarray,
    hidden: tuple[int, ...] | None,
    splits: list[tuple[np.ndarray, np.ndarray]],
    *,
    num_classes: int,
    train_config: Any,
    seed: int,
    round_index: int,
) -> float:
    """Mean held-out-fold accuracy of the logistic regression (``hidden=None``) or of the round
    recipe's model with ``hidden`` layers."""
    from ..experiment.step import fit_round

    accs = []
    for train, test in splits:
        if hidden is None:
            logits = LogReg.fit(x[train], y[train], num_classes).logits(x[test])
            accs.append(float(np.mean(logits.argmax(axis=1) == y[test])))
            continue
        fit = fit_round(
            x[train],
            y[train],
            x[:0],
            model="mlp",
            num_classes=num_classes,
            train_config=train_config,
            seed=seed,
            round_index=round_index,
            model_options={"hidden": hidden},
            extra_sets={"fold": x[test]},
            need_ff=False,
        )
        pred = fit.outputs.extra["fold"][0].argmax(axis=1)
        accs.append(float(np.mean(pred == y[test])))
    return float(np.mean(accs))


def choose_model(
    feature_sets: dict[str, np.ndarray],
    labeled_rows: np.ndarray,
    labels: np.ndarray,
    *,
    num_classes: int,
    seed: int,
    round_index: int,
    train_config: Any,
    model: str = "auto",
    folds: int = 3,
    progress: Progress = SILENT,
) -> ModelChoice:
    """The round's model and features (module docstring).

    Parameters
    ----------
    feature_sets : dict
        Name -> (N, D) features, the session's primary set first.
    labeled_rows, labels : rows of the labeled items and their aggregated labels.
    num_classes, seed, round_index : as for the round's fit.
    train_config : ncal.training.TrainConfig
        The round's recipe (each fold is trained with it).
    model : {"auto", "logreg", "mlp"}
        ``auto``: choose by CV; a model name fixes the model (features are still chosen by CV when
        there are several).
    folds : int
        CV folds.
    progress : Progress

    Returns
    -------
    ModelChoice
    """
    if model != "auto" and model not in MODELS:
        raise ValueError(f"`model` must be 'auto' or one of {list(MODELS)}; got {model!r}")
    primary = next(iter(feature_sets))
    models = list(MODELS) if model == "auto" else [model]
    y = np.asarray(labels, dtype=np.int64)
    if len(models) * len(feature_sets) == 1:
        return ModelChoice(models[0], primary, reason="only one candidate")
    if y.size < MIN_CV_ITEMS:
        return ModelChoice(models[0], primary, reason=f"{y.size} labels: too few to cross-validate")
    splits = cv_splits(y, folds, derive_seed(seed, "cv", round_index))
    scores: dict[str, float] = {}
    best: tuple[float, str, str] | None = None
    rows = np.asarray(labeled_rows)
    with progress.phase(
        f"choosing the model: {len(splits)}-fold CV of {len(models) * len(feature_sets)} "
        f"candidates on {count(y.size)} labels"
    ):
        xs = {f: np.asarray(v[rows], dtype=np.float32) for f, v in feature_sets.items()}
        for mname in models:
            for fname, x in xs.items():
                acc = cv_accuracy(
                    x, y, MODELS[mname], splits, num_classes=num_classes,
                    train_config=train_config, seed=seed, round_index=round_index,
                )  # fmt: skip
                scores[f"{mname}/{fname}"] = acc
                if best is None or acc > best[0]:  # strict: ties keep the earlier, simpler one
                    best = (acc, mname, fname)
    assert best is not None
    reason = f"best {len(splits)}-fold CV accuracy ({best[0]:.3f})"
    return ModelChoice(best[1], best[2], scores, len(splits), reason)
