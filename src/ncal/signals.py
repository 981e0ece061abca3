"""The seam between training and selection: :class:`Signals` in, :class:`Selection` out.

A strategy never trains and never touches a model: it declares the signals it needs and receives them
as arrays in one :class:`Signals`. The training layer (or the user's own loop) fills them in. Both
layers import this module; it depends on numpy only.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ._utils.numeric import by_row_blocks, log_softmax
from ._utils.validation import as_float_matrix

# |row sum - 1| allowed in `probs_pool`, `probs_labeled`, `probs_labeled_oof` and `mc_probs_pool`
# (float16 softmax outputs sum to 1 within ~1e-3); entries may be as low as -PROB_TOLERANCE.
PROB_TOLERANCE = 1e-3
_BLOCK = 1 << 16  # rows checked per block, so a large pool is never copied whole to float64
# Signals with one row per pool sample (``mc_probs_pool`` follows the pool on its axis 1): whoever
# takes a subset of the pool takes these rows.
POOL_ROW_SIGNALS = ("probs_pool", "logits_pool", "features_pool", "ff_counts", "ff_margin_std")
_POOL_ROWS = POOL_ROW_SIGNALS
_LABELED_ROWS = (
    "labels_labeled", "annotations_labeled", "probs_labeled_oof", "probs_labeled",
    "features_labeled",
)  # fmt: skip
_PROBS = ("probs_pool", "probs_labeled", "probs_labeled_oof")

SIGNAL_NAMES = (
    "probs_pool",
    "logits_pool",
    "features_pool",
    "features_labeled",
    "labels_labeled",
    "probs_labeled",
    "ff_counts",
    "mc_probs_pool",
    "num_classes",
    "annotations_labeled",
    "probs_labeled_oof",
    "ff_margin_std",
    "n_rejected_labeled",
)


def _pool_log_softmax(logits: Any, *, log: bool) -> np.ndarray:
    """Row-wise log-softmax (``log``) or softmax of ``logits_pool`` in float64, a block of rows at
    a time, so that the float64 output is the only (N, C) array allocated."""
    raw = np.asarray(logits)
    z = as_float_matrix(
        raw, "logits_pool", dtype=raw.dtype if raw.dtype.kind == "f" else np.float64
    )
    per_block = log_softmax if log else (lambda b: np.exp(log_softmax(b)))
    return by_row_blocks(per_block, z, np.empty(z.shape, dtype=np.float64))


@dataclass
class Signals:
    """Arrays a strategy may need; every ``*_pool`` array has one row per pool sample, in pool order.

    Attributes
    ----------
    probs_pool : (N, C) softmax probabilities of the round's final model.
    logits_pool : (N, C) logits of the same model.
    features_pool : (N, d) penultimate features of the pool.
    features_labeled : (N_L, d) penultimate features of the labeled set (same model).
    labels_labeled : (N_L,) the given (possibly noisy) labels of the labeled set.
    probs_labeled : (N_L, C) probabilities of the labeled set (CDAL, BAIT).
    ff_counts : (N,) feature-fluctuation flip counts over the terminal-phase window.
    ff_margin_std : (N,) continuous feature fluctuation: the population std of the top-1 minus
        top-2 probability margin over the same window's checkpoints
        (:class:`ncal.dynamics.MarginFluctuationRecorder`); nonzero where a flip count is 0.
    mc_probs_pool : (T, N, C) MC-dropout probabilities (BALD).
    num_classes : number of classes C.
    annotations_labeled : (N_L, M) int labels of the labeled set per annotator, ``-1`` where
        annotator ``m`` gave no label (or answered "not in the label set"); rows in the order of
        ``labels_labeled``. The ``labels_multiannotator`` format of cleanlab's multi-annotator
        functions, read by relabel-aware strategies.
    probs_labeled_oof : (N_L, C) out-of-sample probabilities of the labeled set: each row from a
        model that did not train on that item (cross-validated), as ActiveLab requires.
    n_rejected_labeled : number of bought items that the annotators answered "not in the label
        set" (out of distribution; they are not in the labeled set above), or None when the
        workflow cannot tell. Evidence that the pool holds OOD items at all (NCAL-R+'s gate).
    """

    probs_pool: np.ndarray | None = None
    logits_pool: np.ndarray | None = None
    features_pool: np.ndarray | None = None
    features_labeled: np.ndarray | None = None
    labels_labeled: np.ndarray | None = None
    probs_labeled: np.ndarray | None = None
    ff_counts: np.ndarray | None = None
    mc_probs_pool: np.ndarray | None = None
    num_classes: int | None = None
    annotations_labeled: np.ndarray | None = None
    probs_labeled_oof: np.ndarray | None = None
    ff_margin_std: np.ndarray | None = None
    n_rejected_labeled: int | None = None

    @property
    def n_pool(self) -> int:
        """Number of pool samples, read from the first pool-aligned signal present."""
        for name in _POOL_ROWS:
            arr = getattr(self, name)
            if arr is not None:
                return int(np.shape(arr)[0])
        if self.mc_probs_pool is not None:
            return int(np.shape(self.mc_probs_pool)[1])
        raise ValueError("`signals` holds no pool-aligned array; cannot tell the pool size")

    def probabilities(self) -> np.ndarray:
        """Pool probabilities in float64: from ``logits_pool`` via log-softmax when present."""
        if self.logits_pool is not None:
            return _pool_log_softmax(self.logits_pool, log=False)
        return as_float_matrix(self.probs_pool, "probs_pool")

    def log_probabilities(self) -> np.ndarray:
        """Pool log-probabilities in float64 (from logits when present; never ``log`` of exact zeros)."""
        if self.logits_pool is not None:
            return _pool_log_softmax(self.logits_pool, log=True)
        p = as_float_matrix(self.probs_pool, "probs_pool")
        with np.errstate(divide="ignore"):
            return np.log(np.clip(p, 1e-300, None))

    def predictions(self, block: int = 65536) -> np.ndarray:
        """Predicted class of every pool sample (argmax of logits or probabilities), computed in row
        blocks so that a large pool is never copied to float64."""
        src = self.logits_pool if self.logits_pool is not None else self.probs_pool
        if src is None:
            raise ValueError("predictions need `logits_pool` or `probs_pool`")
        if np.ndim(src) != 2:
            raise ValueError(f"`probs_pool`/`logits_pool` must be 2-D; got shape {np.shape(src)}")
        out = np.empty(len(src), dtype=np.int64)
        for start in range(0, len(src), block):
            chunk = np.asarray(src[start : start + block])
            if not np.isfinite(chunk).all():
                raise ValueError("`probs_pool`/`logits_pool` contains NaN or inf values")
            out[start : start + block] = chunk.argmax(axis=1)
        return out

    @property
    def n_labeled(self) -> int:
        """Number of labeled items, read from the first labeled-set signal present (0 if none)."""
        for name in (
            "labels_labeled", "annotations_labeled", "probs_labeled_oof", "probs_labeled",
            "features_labeled",
        ):  # fmt: skip
            arr = getattr(self, name)
            if arr is not None:
                return int(np.shape(arr)[0])
        return 0

    def present(self) -> set[str]:
        return {f.name for f in fields(self) if getattr(self, f.name) is not None}

    def validate(
        self, *, num_classes: int | None = None, names: Collection[str] | None = None
    ) -> None:
        """Check that the signals present agree with each other; raise naming the first that does
        not.

        Checked: pool-aligned arrays (``*_pool``, ``ff_*``, axis 1 of ``mc_probs_pool``) have
        the same number of rows, and so do the labeled-set arrays; probabilities are finite, at
        least ``-PROB_TOLERANCE`` and their rows sum to 1 within ``PROB_TOLERANCE``; the class
        axis of every probability / logit array equals the number of classes (``num_classes``,
        ``self.num_classes`` or, when neither is given, the first such array's width);
        ``ff_counts`` and ``ff_margin_std`` are 1-D, finite and non-negative; ``labels_labeled`` lies in
        ``[0, num_classes)``, ``annotations_labeled`` in ``[-1, num_classes)`` and
        ``n_rejected_labeled`` is a non-negative integer.

        Parameters
        ----------
        num_classes : int, optional
            The number of classes the caller expects; must equal ``self.num_classes`` when both
            are given.
        names : collection of str, optional
            Check only these signals (e.g. those a strategy uses; ``probs_pool`` includes
            ``logits_pool``); default: every signal present.

        Raises
        ------
        ValueError
            The first inconsistency found, naming the signal and what was expected.
        """
        if names is not None:
            # the pool size (`n_pool`) is read from any pool array: those must agree in any case
            _check_pool_rows_of(self)
            keep = set(names) | ({"logits_pool"} if "probs_pool" in names else set())
            view = Signals(
                **{f.name: getattr(self, f.name) for f in fields(self) if f.name in keep}
            )
            return view.validate(num_classes=num_classes or self.num_classes)
        n_cls = _agreed_num_classes(num_classes, self.num_classes)
        _check_pool_rows_of(self)
        _check_rows(self, _LABELED_ROWS, "labeled-set")
        for name in (*_PROBS, "logits_pool", "mc_probs_pool"):
            arr = getattr(self, name)
            if arr is None:
                continue
            width = int(np.shape(arr)[-1]) if np.ndim(arr) >= 2 else None
            if np.ndim(arr) != (3 if name == "mc_probs_pool" else 2):
                raise ValueError(f"`{name}` must be 2-D (rows, classes); got shape {np.shape(arr)}")
            if n_cls is None:
                n_cls = width
            elif width != n_cls:
                raise ValueError(f"`{name}` has {width} class columns but `num_classes` is {n_cls}")
            if name != "logits_pool":
                _check_probabilities(arr, name)
        if self.ff_counts is not None:
            _check_counts(self.ff_counts, "ff_counts")
        if self.ff_margin_std is not None:
            _check_counts(self.ff_margin_std, "ff_margin_std")
        if self.labels_labeled is not None and n_cls is not None:
            _check_range(self.labels_labeled, "labels_labeled", 0, n_cls)
        if self.annotations_labeled is not None and n_cls is not None:
            _check_range(self.annotations_labeled, "annotations_labeled", -1, n_cls)
        v = self.n_rejected_labeled
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0):
            raise ValueError(f"`n_rejected_labeled` must be a non-negative integer; got {v!r}")


def _agreed_num_classes(given: int | None, stored: int | None) -> int | None:
    for name, v in (("num_classes", given), ("signals.num_classes", stored)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"`{name}` must be a positive integer; got {v!r}")
    if given is not None and stored is not None and int(given) != int(stored):
        raise ValueError(f"`num_classes` is {given} but `signals.num_classes` is {stored}")
    v = given if given is not None else stored
    return None if v is None else int(v)


def _check_rows(
    signals: Signals,
    names: tuple[str, ...],
    what: str,
    extra: tuple[str, int] | None = None,
) -> None:
    """Raise unless the present arrays among ``names`` (and ``extra``) have one row count."""
    counts = [
        (n, int(np.shape(getattr(signals, n))[0])) for n in names if getattr(signals, n) is not None
    ]
    if extra is not None:
        counts.append(extra)
    if len({c for _, c in counts}) > 1:
        listed = ", ".join(f"`{n}` {c}" for n, c in counts)
        raise ValueError(f"{what} signals must have the same number of rows; got {listed}")


def _check_probabilities(arr: np.ndarray, name: str) -> None:
    """Finite, >= -PROB_TOLERANCE, rows summing to 1 within PROB_TOLERANCE (block-wise)."""
    a = np.asarray(arr)
    rows = a.reshape(-1, a.shape[-1]) if a.ndim == 3 else a
    for start in range(0, rows.shape[0], _BLOCK):
        chunk = np.asarray(rows[start : start + _BLOCK], dtype=np.float64)
        if not np.isfinite(chunk).all():
            raise ValueError(f"`{name}` contains NaN or inf values")
        if chunk.size and chunk.min() < -PROB_TOLERANCE:
            raise ValueError(f"`{name}` holds negative probabilities (min {chunk.min():.4g})")
        sums = chunk.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > PROB_TOLERANCE)
        if bad.size:
            raise ValueError(
                f"`{name}` rows must sum to 1 (within {PROB_TOLERANCE}); row {start + bad[0]} "
                f"sums to {sums[bad[0]]:.6g}. Pass logits as `logits_pool` or apply a softmax"
            )


def _check_counts(counts: np.ndarray, name: str) -> None:
    """A feature-fluctuation signal: 1-D, finite, non-negative."""
    c = np.asarray(counts)
    if c.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D (one value per pool sample); got shape {c.shape}")
    if not np.issubdtype(c.dtype, np.number) or not np.isfinite(c).all():
        raise ValueError(f"`{name}` must hold finite numbers")
    if c.size and c.min() < 0:
        raise ValueError(f"`{name}` must be non-negative; got minimum {c.min()}")


def _check_range(values: np.ndarray, name: str, low: int, num_classes: int) -> None:
    v = np.asarray(values)
    if v.size and (v.min() < low or v.max() >= num_classes):
        raise ValueError(
            f"`{name}` must lie in [{low}, {num_classes - 1}] for {num_classes} classes; got "
            f"values from {v.min()} to {v.max()}"
        )


def _check_pool_rows_of(signals: Signals) -> None:
    """Every pool-aligned array present (``mc_probs_pool`` by its axis 1) has one row count."""
    mc = signals.mc_probs_pool
    if mc is None:
        _check_rows(signals, _POOL_ROWS, "pool")
        return
    if np.ndim(mc) != 3:
        raise ValueError(f"`mc_probs_pool` must be (T, N, C); got shape {np.shape(mc)}")
    _check_rows(signals, _POOL_ROWS, "pool", extra=("mc_probs_pool (axis 1)", np.shape(mc)[1]))


@dataclass(frozen=True)
class Selection:
    """What to annotate next: new pool items and, for relabel-aware strategies, labeled items to
    annotate again.

    Attributes
    ----------
    indices : (k_new,) int64 indices into the pool, in pick order.
    scores : the score of every pick in ``indices`` where the strategy scores, else None.
    info : strategy-specific details (recorded).
    relabel : (k_relabel,) int64 indices into the LABELED set (rows of ``labels_labeled`` /
        ``annotations_labeled``), in pick order, or None. Each costs one annotation, like a new
        item: the round's budget ``k`` counts annotations, ``n_annotations == k``.
    """

    indices: np.ndarray
    scores: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    relabel: np.ndarray | None = None

    @property
    def n_annotations(self) -> int:
        """Annotations this selection buys: new items plus relabels."""
        n_relabel = 0 if self.relabel is None else int(np.size(self.relabel))
        return int(np.size(self.indices)) + n_relabel
