"""Annotator (oracle) models for active learning (docs/algorithms.md §2.5).

Every oracle answers ``query(idx, round) -> (labels, is_noisy)``. All randomness is drawn once from
the seed when the oracle is built, so a sample asked twice gets the same answer and every strategy
run with the same seed faces the same noise draws (paired design, docs/algorithms.md §0.3). Clean
labels are kept for evaluation (``is_noisy``, :meth:`Oracle.realised_rate`) and never returned as
answers.

- :class:`FixedNoisyOracle` — O1: a precomputed noisy label vector (any model of :mod:`.noise`).
- :class:`DifficultyOracle` — O3: error probability grows with the difficulty of the sample under a
  reference classifier that is not the AL model (cross-fitted logistic regression by default).
- :class:`OODAwareOracle` — wraps an oracle for an OOD-contaminated pool: OOD samples are
  answered with :data:`NOT_IN_LABEL_SET` (-1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._utils.random import as_generator
from .._utils.validation import as_label_vector
from .builders import NOT_IN_LABEL_SET
from .noise import empirical_transition, make_noisy_labels, parse_noise_spec
from .noise.difficulty import difficulty_noise

__all__ = [
    "NOT_IN_LABEL_SET",
    "DifficultyOracle",
    "FixedNoisyOracle",
    "OODAwareOracle",
    "Oracle",
    "make_oracle",
]


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
class DifficultyOracle(Oracle):
    """O3: difficulty-dependent synthetic annotator (docs/algorithms.md §2.5).

    The answers come from :func:`ncal.data.noise.difficulty.difficulty_noise`: error probability
    ``ε(x) = clip(ε0 + (ε1-ε0) δ^γ, 0, ε_max)`` grows with the difficulty
    ``δ(x) = 1 - p_ref(y | x)`` (or ``H(p_ref)/log C``) under a cross-fitted reference model that is not the AL model, with
    ``ε1`` calibrated so the pool mean equals ``target_rate``. All uniforms are drawn once from
    ``seed``: answers are fixed, and raising ``target_rate`` only adds errors.

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
        result = difficulty_noise(
            y_clean,
            num_classes=num_classes,
            target_rate=target_rate,
            seed=seed,
            x=x,
            features=features,
            p_ref=p_ref,
            eps0=eps0,
            gamma=gamma,
            eps_max=eps_max,
            difficulty=difficulty,
            n_folds=n_folds,
            max_dim=max_dim,
        )
        self.difficulty_scores = result.difficulty_scores
        self.error_prob = result.error_prob
        self.p_ref = result.p_ref
        self.eps1 = result.eps1
        super().__init__(result.noisy_labels, result.clean_labels, result.info)
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
            labels[mask] = as_generator(seed).integers(0, int(num_classes), size=int(mask.sum()))
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
