"""Difficulty-dependent noise (docs/algorithms.md §2.5, oracle O3): the error probability of an
answer grows with how hard the sample is for a reference classifier that is not the AL model.

Difficulty ``δ(x) = 1 - p_ref(y | x)`` (or ``H(p_ref)/log C``) comes, by default, from a multinomial
logistic regression on downscaled pixels or features, cross-fitted so each sample's probability
comes from a model that did not see it. Error probability ``ε(x) = clip(ε0 + (ε1-ε0) δ^γ, 0,
ε_max)``, with ``ε1`` found by bisection so the pool mean equals the target rate. A wrong answer is
drawn from ``p_ref`` restricted to ``j ≠ y`` (uniform over ``j ≠ y`` when that mass is 0). The
uniforms for the error and the wrong label are drawn for every sample once, so raising the target
rate only adds errors.

:class:`ncal.data.DifficultyOracle` wraps :func:`difficulty_noise` as an annotator; the ``oracle:ε``
noise spec uses it with the default settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..._utils.random import as_generator
from ..._utils.validation import as_label_vector
from ._base import NoiseModel, NoiseRequest


def reference_inputs(
    x: Any = None, features: Any = None, *, max_dim: int = 128, seed: int = 0
) -> tuple[np.ndarray, str]:
    """Inputs for the reference classifier: standardised features, or pixels scaled to [0, 1].

    Images larger than 16 px a side are average-pooled by an integer factor to at most 16 px; inputs
    with more than ``max_dim`` columns are reduced by (unsupervised) randomized PCA.
    """
    from sklearn.decomposition import PCA

    if features is not None:
        z = np.asarray(features, dtype=np.float64)
        if z.ndim != 2:
            raise ValueError(f"`features` must be 2-D (N, D); got shape {z.shape}")
        how = "features"
    elif x is not None:
        a = np.asarray(x)
        if a.ndim < 2:
            raise ValueError(f"`x` must have one row per sample; got shape {a.shape}")
        a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
        how = "pixels/255" if np.asarray(x).dtype == np.uint8 else "inputs"
        if a.ndim in (3, 4):  # (N,H,W[,C]) images: average-pool to <= 16 px a side
            f = int(np.ceil(max(a.shape[1], a.shape[2]) / 16))
            if f > 1:
                H, W = (a.shape[1] // f) * f, (a.shape[2] // f) * f
                a = (
                    a[:, :H, :W]
                    .reshape(a.shape[0], H // f, f, W // f, f, *a.shape[3:])
                    .mean(axis=(2, 4))
                )
                how += f", {f}x{f} average-pooled"
        z = a.reshape(a.shape[0], -1).astype(np.float64)
    else:
        raise ValueError("the difficulty oracle needs `x` or `features` (or a precomputed `p_ref`)")
    if not np.isfinite(z).all():
        raise ValueError("reference inputs contain NaN or inf")
    if z.shape[1] > max_dim:
        z = PCA(n_components=max_dim, svd_solver="randomized", random_state=seed).fit_transform(z)
        how += f", PCA to {max_dim}"
    sd = z.std(axis=0)
    z = (z - z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return z, how + ", standardised"


def cross_fitted_probs(
    z: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    *,
    n_folds: int = 5,
    seed: int = 0,
    C_reg: float = 1.0,
) -> np.ndarray:
    """Out-of-fold class probabilities of a multinomial logistic regression.

    Each sample is predicted by a model that did not see it, so its difficulty is not memorised.
    """
    from ..._crossfit import out_of_fold_probabilities

    return out_of_fold_probabilities(z, y, num_classes, folds=n_folds, seed=seed, C=C_reg, tol=1e-3)


def calibrate_eps1(delta_g: np.ndarray, target: float, eps0: float, eps_max: float) -> float:
    """Bisection for ε1 so that mean(clip(ε0 + (ε1-ε0) δ^γ, 0, ε_max)) = target."""

    def mean_eps(e1: float) -> float:
        return float(np.clip(eps0 + (e1 - eps0) * delta_g, 0.0, eps_max).mean())

    lo = eps0
    base = mean_eps(lo)
    if base > target + 1e-12:
        raise ValueError(f"target rate {target} is below the floor eps0={eps0}")
    if base >= target - 1e-12:
        return lo  # the floor alone gives the target (e.g. every difficulty is 0)
    # Supremum over ε1; attained at a finite ε1 because every positive δ^γ is bounded away from 0.
    cap = float(np.where(delta_g > 0, eps_max, np.clip(eps0, 0, eps_max)).mean())
    if target > cap + 1e-12:
        raise ValueError(
            f"target rate {target} is unreachable: with eps_max={eps_max} the mean error on this "
            f"pool is at most {cap:.4f}"
        )
    hi = max(1.0, eps0 + 1.0)
    for _ in range(2000):
        if mean_eps(hi) >= target:
            break
        hi *= 2.0
    else:  # pragma: no cover - only for δ^γ below float resolution
        raise ValueError(f"target rate {target} cannot be calibrated on this pool")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mean_eps(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class DifficultyNoise:
    """The outcome of :func:`difficulty_noise` (arrays over the pool, in pool order)."""

    noisy_labels: np.ndarray
    clean_labels: np.ndarray
    difficulty_scores: np.ndarray
    error_prob: np.ndarray
    p_ref: np.ndarray
    eps1: float
    info: dict = field(default_factory=dict)


def difficulty_noise(
    y_clean: Any,
    *,
    num_classes: int,
    target_rate: float,
    seed: Any = 0,
    x: Any = None,
    features: Any = None,
    p_ref: Any = None,
    eps0: float = 0.0,
    gamma: float = 1.0,
    eps_max: float = 0.9,
    difficulty: str = "1-p",
    n_folds: int = 5,
    max_dim: int = 128,
) -> DifficultyNoise:
    """Draw difficulty-dependent noisy labels (see the module docstring; parameters as
    :class:`ncal.data.DifficultyOracle`).

    Raises
    ------
    ValueError
        A target rate outside ``[0, eps_max)`` or unreachable on this pool, a bad curve parameter,
        missing reference inputs, or a malformed ``p_ref``.
    """
    C = int(num_classes)
    y = as_label_vector(y_clean, "y_clean", num_classes=C)
    if not (np.isfinite(target_rate) and 0 <= target_rate < eps_max):
        raise ValueError(f"`target_rate` must be in [0, eps_max={eps_max}); got {target_rate}")
    if not (0 <= eps0 <= eps_max <= 1) or gamma <= 0:
        raise ValueError("need 0 <= eps0 <= eps_max <= 1 and gamma > 0")
    if difficulty not in ("1-p", "entropy"):
        raise ValueError(f"`difficulty` must be '1-p' or 'entropy'; got {difficulty!r}")
    rng = as_generator(seed)
    fold_seed = int(rng.integers(2**31 - 1))  # drawn first, also when p_ref is given
    P, how = _reference_probabilities(y, C, p_ref, x, features, fold_seed, n_folds, max_dim)
    delta = _difficulty_scores(P, y, C, difficulty)
    dg = delta**gamma
    eps1 = calibrate_eps1(dg, float(target_rate), eps0, eps_max) if y.size else eps0
    eps = np.clip(eps0 + (eps1 - eps0) * dg, 0.0, eps_max)
    u_err, u_lab = rng.random(y.size), rng.random(y.size)
    noisy = np.where(u_err < eps, _wrong_labels(P, y, C, u_lab), y)
    info = {
        "model": "oracle",
        "rate_nominal": float(target_rate),
        "reference": how,
        "reference_accuracy_oof": float(np.mean(P.argmax(1) == y)) if y.size else 0.0,
        "eps0": eps0,
        "eps1": float(eps1),
        "gamma": gamma,
        "eps_max": eps_max,
        "difficulty": difficulty,
        "mean_error_prob": float(eps.mean()) if y.size else 0.0,
    }
    return DifficultyNoise(noisy, y, delta, eps, P, float(eps1), info)


def _reference_probabilities(
    y: np.ndarray,
    C: int,
    p_ref: Any,
    x: Any,
    features: Any,
    fold_seed: int,
    n_folds: int,
    max_dim: int,
) -> tuple[np.ndarray, str]:
    """``p_ref`` normalised per row, or the cross-fitted reference model's probabilities."""
    if p_ref is not None:
        P = np.asarray(p_ref, dtype=np.float64)
        if P.shape != (y.size, C) or not np.isfinite(P).all() or (P < 0).any():
            raise ValueError(f"`p_ref` must be a finite non-negative ({y.size}, {C}) array")
        P = P / np.where(P.sum(1, keepdims=True) > 0, P.sum(1, keepdims=True), 1.0)
        return P, "given p_ref"
    from threadpoolctl import threadpool_limits

    # Small dense problems: one BLAS thread avoids oversubscription (about 50x slower on 2 shared
    # cores in our measurements) and keeps the fit identical across machines.
    with threadpool_limits(limits=1):
        z, how = reference_inputs(x, features, max_dim=max_dim, seed=fold_seed)
        if z.shape[0] != y.size:
            raise ValueError(f"reference inputs have {z.shape[0]} rows but `y_clean` has {y.size}")
        P = cross_fitted_probs(z, y, C, n_folds=n_folds, seed=fold_seed)
    return P, f"{n_folds}-fold cross-fitted logistic regression on {how}"


def _difficulty_scores(P: np.ndarray, y: np.ndarray, C: int, difficulty: str) -> np.ndarray:
    """``1 - p_ref(y|x)`` or the normalised entropy of ``p_ref``, clipped to [0, 1]."""
    if difficulty == "1-p":
        delta = 1.0 - P[np.arange(y.size), y]
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.where(P > 0, P * np.log(P), 0.0).sum(1)
        delta = ent / np.log(C)
    return np.clip(delta, 0.0, 1.0)


def _wrong_labels(P: np.ndarray, y: np.ndarray, C: int, u_lab: np.ndarray) -> np.ndarray:
    """For each sample, the label ``j ≠ y`` picked by inverse CDF of ``p_ref`` without ``y``."""
    wrong = P.copy()
    wrong[np.arange(y.size), y] = 0.0
    mass = wrong.sum(1, keepdims=True)
    uniform = (1.0 - np.eye(C)[y]) / (C - 1)
    wrong = np.where(mass > 1e-12, wrong / np.where(mass > 0, mass, 1.0), uniform)
    cum = np.cumsum(wrong, axis=1)
    cum /= cum[:, -1:]
    return np.minimum((u_lab[:, None] >= cum).sum(1), C - 1)


def draw_difficulty(request: NoiseRequest, info: dict) -> np.ndarray:
    """Difficulty-dependent labels at mean error rate ε (reference model on ``x``/``features``)."""
    result = difficulty_noise(
        request.y,
        num_classes=request.num_classes,
        target_rate=request.spec.rate,
        seed=request.rng,
        x=request.x,
        features=request.features,
    )
    info.update(result.info)
    return result.noisy_labels.copy()


ORACLE = NoiseModel(
    "oracle",
    "difficulty-dependent annotator: error probability grows with difficulty; needs x or features",
    draw_difficulty,
    parameter="ε",
    rate_max=0.9,
)
