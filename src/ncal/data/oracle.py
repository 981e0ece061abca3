"""Annotator (oracle) models for active learning (ALGORITHMS.md §2.5).

Every oracle answers ``query(idx, round) -> (labels, is_noisy)``. All randomness is drawn once from
the seed when the oracle is built, so a sample asked twice gets the same answer and every strategy
run with the same seed faces the same noise draws (paired design, §0.3). Clean labels are kept for
evaluation (``is_noisy``, :meth:`Oracle.realised_rate`) and never returned as answers.

- :class:`FixedNoisyOracle` — O1: a precomputed noisy label vector (any model of :mod:`.noise`).
- :class:`DifficultyOracle` — O3: error probability grows with the difficulty of the sample under a
  reference classifier that is not the AL model (cross-fitted logistic regression by default).
- :class:`OODAwareOracle` — wraps an oracle for an OOD-contaminated pool: OOD samples are
  answered with :data:`NOT_IN_LABEL_SET` (-1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import as_label_vector
from .builders import NOT_IN_LABEL_SET
from .noise import empirical_transition, make_noisy_labels, parse_noise_spec

__all__ = [
    "NOT_IN_LABEL_SET",
    "DifficultyOracle",
    "FixedNoisyOracle",
    "OODAwareOracle",
    "Oracle",
    "make_oracle",
]


def _rng(seed: Any) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class Oracle:
    """Base class: answers from a fixed ``noisy_labels`` vector; ``clean_labels`` for evaluation."""

    def __init__(
        self, noisy_labels: np.ndarray, clean_labels: np.ndarray | None, info: dict | None = None
    ):
        self.noisy_labels = np.asarray(noisy_labels, dtype=np.int64)
        self._clean = None if clean_labels is None else np.asarray(clean_labels, dtype=np.int64)
        if self._clean is not None and self._clean.shape != self.noisy_labels.shape:
            raise ValueError(
                f"`clean_labels` has {self._clean.size} entries but `noisy_labels` has "
                f"{self.noisy_labels.size}"
            )
        self.info: dict = dict(info or {})
        self.n_queries = 0

    @property
    def n(self) -> int:
        """Number of samples the oracle can label (indices ``0..n-1``)."""
        return int(self.noisy_labels.size)

    @property
    def knows_truth(self) -> bool:
        """Whether clean labels are available (needed for ``is_noisy`` and ``realised_rate``)."""
        return self._clean is not None

    def _index(self, idx: Any) -> np.ndarray:
        arr = np.atleast_1d(np.asarray(idx))
        if arr.ndim != 1:
            raise ValueError(f"`idx` must be a 1-D array of sample indices; got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"`idx` must hold integers; got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= self.n):
            raise IndexError(
                f"`idx` holds indices outside [0, {self.n}); got min {arr.min()}, max {arr.max()}"
            )
        return arr

    def query(self, idx: Any, round: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Labels for samples ``idx``.

        Parameters
        ----------
        idx
            Sample indices (pool/training-set positions).
        round
            AL round of the query (recorded for logging; answers do not depend on it).

        Returns
        -------
        labels : numpy.ndarray
            int64 answers.
        is_noisy : numpy.ndarray
            bool, answer differs from the clean label (all False when clean labels are unknown).
        """
        i = self._index(idx)
        self.n_queries += i.size
        labels = self.noisy_labels[i].copy()
        if self._clean is None:
            return labels, np.zeros(i.size, dtype=bool)
        return labels, labels != self._clean[i]

    def realised_rate(self, idx: Any = None) -> float:
        """Fraction of wrong answers among ``idx`` (all samples when None; 0.0 for an empty set)."""
        if self._clean is None:
            raise ValueError(
                "realised_rate needs clean labels; build the oracle with `clean_labels`"
            )
        i = np.arange(self.n) if idx is None else self._index(idx)
        if i.size == 0:
            return 0.0
        return float(np.mean(self.noisy_labels[i] != self._clean[i]))

    def transition(self, num_classes: int) -> np.ndarray:
        """Realised transition ``T_hat`` of the answers over all samples."""
        if self._clean is None:
            raise ValueError("transition needs clean labels")
        return empirical_transition(self._clean, self.noisy_labels, num_classes)


class FixedNoisyOracle(Oracle):
    """O1: answers from a precomputed noisy label vector; re-queries return the same label.

    Parameters
    ----------
    noisy_labels
        One answer per sample (e.g. from :func:`ncal.data.make_noisy_labels`).
    clean_labels
        Ground truth for evaluation (``is_noisy``); optional.
    info
        Metadata to carry (spec, realised rate, ...).
    """

    def __init__(self, noisy_labels: Any, clean_labels: Any = None, *, info: dict | None = None):
        noisy = as_label_vector(noisy_labels, "noisy_labels")
        clean = (
            None
            if clean_labels is None
            else as_label_vector(clean_labels, "clean_labels", length=noisy.size)
        )
        super().__init__(noisy, clean, info)


# ------------------------------------------------------------------------------ difficulty oracle
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
    from .._crossfit import out_of_fold_probabilities

    return out_of_fold_probabilities(z, y, num_classes, folds=n_folds, seed=seed, C=C_reg, tol=1e-3)


def _calibrate_eps1(delta_g: np.ndarray, target: float, eps0: float, eps_max: float) -> float:
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


class DifficultyOracle(Oracle):
    """O3: difficulty-dependent synthetic annotator (ALGORITHMS.md §2.5).

    Difficulty ``δ(x) = 1 - p_ref(y | x)`` (or ``H(p_ref)/log C``) from a reference model that is
    not the AL model: by default a multinomial logistic regression on downscaled pixels or features,
    cross-fitted over ``n_folds`` folds so each sample's probability comes from a model that did not
    see it. Error probability ``ε(x) = clip(ε0 + (ε1-ε0) δ^γ, 0, ε_max)`` with ``ε1`` found by
    bisection so the pool mean equals ``target_rate``. A wrong answer is drawn from ``p_ref``
    restricted to ``j ≠ y`` (uniform over ``j ≠ y`` when that mass is 0). Uniforms for the error and
    the wrong label are drawn for every sample once from ``seed``: answers are fixed, and raising
    ``target_rate`` only adds errors.

    Parameters
    ----------
    y_clean
        Clean labels of the pool (the oracle's ground truth).
    num_classes
        Number of classes.
    target_rate
        Mean error probability over the pool, ``ε̄``.
    seed
        Seed or Generator for the draws and the fold split.
    x, features
        Inputs for the reference model (one of them unless ``p_ref`` is given).
    p_ref
        Precomputed reference probabilities ``(N, C)`` (e.g. from a separately trained network).
    eps0, gamma, eps_max
        Floor, exponent and cap of the error curve (defaults 0, 1, 0.9).
    difficulty
        ``"1-p"`` (default) or ``"entropy"``.
    n_folds, max_dim
        Cross-fitting folds and input dimension cap of the reference model.

    Attributes
    ----------
    difficulty_scores, error_prob, p_ref, eps1, noisy_labels, info
    """

    def __init__(
        self,
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
    ):
        C = int(num_classes)
        y = as_label_vector(y_clean, "y_clean", num_classes=C)
        if not (np.isfinite(target_rate) and 0 <= target_rate < eps_max):
            raise ValueError(f"`target_rate` must be in [0, eps_max={eps_max}); got {target_rate}")
        if not (0 <= eps0 <= eps_max <= 1) or gamma <= 0:
            raise ValueError("need 0 <= eps0 <= eps_max <= 1 and gamma > 0")
        if difficulty not in ("1-p", "entropy"):
            raise ValueError(f"`difficulty` must be '1-p' or 'entropy'; got {difficulty!r}")
        rng = _rng(seed)
        fold_seed = int(rng.integers(2**31 - 1))
        if p_ref is not None:
            P = np.asarray(p_ref, dtype=np.float64)
            if P.shape != (y.size, C) or not np.isfinite(P).all() or (P < 0).any():
                raise ValueError(f"`p_ref` must be a finite non-negative ({y.size}, {C}) array")
            P = P / np.where(P.sum(1, keepdims=True) > 0, P.sum(1, keepdims=True), 1.0)
            how = "given p_ref"
        else:
            from threadpoolctl import threadpool_limits

            # Small dense problems: one BLAS thread avoids oversubscription (about 50x slower on 2
            # shared cores in our measurements) and keeps the fit identical across machines.
            with threadpool_limits(limits=1):
                z, how = reference_inputs(x, features, max_dim=max_dim, seed=fold_seed)
                if z.shape[0] != y.size:
                    raise ValueError(
                        f"reference inputs have {z.shape[0]} rows but `y_clean` has {y.size}"
                    )
                P = cross_fitted_probs(z, y, C, n_folds=n_folds, seed=fold_seed)
            how = f"{n_folds}-fold cross-fitted logistic regression on {how}"
        if difficulty == "1-p":
            delta = 1.0 - P[np.arange(y.size), y]
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                ent = -np.where(P > 0, P * np.log(P), 0.0).sum(1)
            delta = ent / np.log(C)
        delta = np.clip(delta, 0.0, 1.0)
        dg = delta**gamma
        eps1 = _calibrate_eps1(dg, float(target_rate), eps0, eps_max) if y.size else eps0
        eps = np.clip(eps0 + (eps1 - eps0) * dg, 0.0, eps_max)
        u_err, u_lab = rng.random(y.size), rng.random(y.size)
        wrong = P.copy()
        wrong[np.arange(y.size), y] = 0.0
        mass = wrong.sum(1, keepdims=True)
        uniform = (1.0 - np.eye(C)[y]) / (C - 1)
        wrong = np.where(mass > 1e-12, wrong / np.where(mass > 0, mass, 1.0), uniform)
        cum = np.cumsum(wrong, axis=1)
        cum /= cum[:, -1:]
        alt = np.minimum((u_lab[:, None] >= cum).sum(1), C - 1)
        noisy = np.where(u_err < eps, alt, y)
        self.difficulty_scores = delta
        self.error_prob = eps
        self.p_ref = P
        self.eps1 = float(eps1)
        ref_acc = float(np.mean(P.argmax(1) == y)) if y.size else 0.0
        info = {
            "model": "oracle",
            "rate_nominal": float(target_rate),
            "reference": how,
            "reference_accuracy_oof": ref_acc,
            "eps0": eps0,
            "eps1": self.eps1,
            "gamma": gamma,
            "eps_max": eps_max,
            "difficulty": difficulty,
            "mean_error_prob": float(eps.mean()) if y.size else 0.0,
        }
        super().__init__(noisy, y, info)
        self.info["rate_realised"] = self.realised_rate()


# -------------------------------------------------------------------------------------- OOD wrapper
class OODAwareOracle(Oracle):
    """Oracle for an OOD-contaminated pool: OOD samples get :data:`NOT_IN_LABEL_SET` (-1).

    Parameters
    ----------
    base
        Oracle over the in-distribution samples only, in pool order (its index ``k`` is the ``k``-th
        in-distribution pool entry).
    is_ood
        Boolean mask over the whole pool.
    policy
        ``"reject"`` (default): the annotator answers "not in the label set" (-1, ``is_noisy``
        False). ``"random"``: a forced annotator picks a uniformly random class (drawn once from
        ``seed``; ``is_noisy`` True).
    num_classes, seed
        Needed for ``policy="random"``.
    """

    def __init__(
        self,
        base: Oracle,
        is_ood: Any,
        *,
        policy: str = "reject",
        num_classes: int | None = None,
        seed: Any = 0,
    ):
        mask = np.asarray(is_ood, dtype=bool)
        if mask.ndim != 1:
            raise ValueError("`is_ood` must be a 1-D boolean mask over the pool")
        if int((~mask).sum()) != base.n:
            raise ValueError(
                f"`base` labels {base.n} samples but `is_ood` marks {(~mask).sum()} "
                "in-distribution ones"
            )
        if policy not in ("reject", "random"):
            raise ValueError(f"`policy` must be 'reject' or 'random'; got {policy!r}")
        self.base, self.is_ood, self.policy = base, mask, policy
        self._pos = np.cumsum(~mask) - 1  # pool index -> base index (valid where not OOD)
        labels = np.full(mask.size, NOT_IN_LABEL_SET, dtype=np.int64)
        if policy == "random":
            if num_classes is None:
                raise ValueError("policy='random' needs `num_classes`")
            labels[mask] = _rng(seed).integers(0, int(num_classes), size=int(mask.sum()))
        labels[~mask] = base.noisy_labels
        clean = None
        if base.knows_truth:
            clean = np.full(mask.size, NOT_IN_LABEL_SET, dtype=np.int64)
            clean[~mask] = base._clean
        super().__init__(
            labels, clean, {**base.info, "ood_policy": policy, "n_ood": int(mask.sum())}
        )

    def query(self, idx: Any, round: int = 0) -> tuple[np.ndarray, np.ndarray]:
        i = self._index(idx)
        self.n_queries += i.size
        labels = self.noisy_labels[i].copy()
        noisy = np.zeros(i.size, dtype=bool)
        ood = self.is_ood[i]
        if (~ood).any():
            _, noisy[~ood] = self.base.query(self._pos[i[~ood]], round)
        if self.policy == "random":
            noisy[ood] = True
        return labels, noisy

    def realised_rate(self, idx: Any = None) -> float:
        """Wrong-answer rate over the in-distribution samples among ``idx``."""
        i = np.arange(self.n) if idx is None else self._index(idx)
        i = i[~self.is_ood[i]]
        return self.base.realised_rate(self._pos[i])

    def ood_count(self, idx: Any) -> int:
        """Number of OOD samples among ``idx``."""
        return int(self.is_ood[self._index(idx)].sum())


# ------------------------------------------------------------------------------------------ factory
def make_oracle(
    spec: str,
    y_clean: Any,
    *,
    num_classes: int,
    seed: Any,
    x: Any = None,
    features: Any = None,
    coarse_labels: Any = None,
    is_ood: Any = None,
    ood_policy: str = "reject",
    **oracle_kw: Any,
) -> Oracle:
    """Build an oracle from a noise spec string.

    Synthetic and human specs give a :class:`FixedNoisyOracle` over
    :func:`~ncal.data.make_noisy_labels`; ``"oracle:ε"`` gives a :class:`DifficultyOracle`
    (``oracle_kw`` go to it). With ``is_ood`` (a pool mask; ``y_clean`` may hold -1 there) the
    oracle is built on the in-distribution samples and wrapped in :class:`OODAwareOracle`.
    """
    s = parse_noise_spec(spec)
    if is_ood is not None:
        mask = np.asarray(is_ood, dtype=bool)
        y_all = np.asarray(y_clean)
        if mask.shape != y_all.shape:
            raise ValueError(f"`is_ood` has shape {mask.shape} but `y_clean` has {y_all.shape}")
        keep = ~mask

        def pick(a: Any) -> Any:
            return None if a is None else np.asarray(a)[keep]

        base = make_oracle(
            s.__str__(),
            y_all[keep],
            num_classes=num_classes,
            seed=seed,
            x=pick(x),
            features=pick(features),
            coarse_labels=pick(coarse_labels),
            **oracle_kw,
        )
        return OODAwareOracle(base, mask, policy=ood_policy, num_classes=num_classes, seed=seed)
    if s.model == "oracle":
        return DifficultyOracle(
            y_clean,
            num_classes=num_classes,
            target_rate=s.rate,
            seed=seed,
            x=x,
            features=features,
            **oracle_kw,
        )
    if oracle_kw:
        raise TypeError(f"unexpected arguments for a fixed-label oracle: {sorted(oracle_kw)}")
    y_noisy, _, info = make_noisy_labels(
        y_clean,
        s,
        num_classes=num_classes,
        seed=seed,
        x=x,
        coarse_labels=coarse_labels,
        return_info=True,
    )
    return FixedNoisyOracle(y_noisy, y_clean, info=info)
