"""Synthetic and human-statistics label-noise models (ALGORITHMS.md §2.1–2.4).

Spec strings (``parse_noise_spec``)::

    none
    sym:η | sym_exclusive:η    T = (1-η)I + η/(C-1)(11ᵀ-I), each label resampled from T[y]   (≈ η)
    sym_inclusive:η            first ⌊ηn⌋ of a permutation get a uniform label of all C (≈ η(C-1)/C)
    sym_exact:η                per class flip exactly ⌊η n_c⌋ members to a uniform other class
    asym:η | asym_T:η          CIFAR-10 map 9→1, 2→0, 4→7, 3→5, 5→3 with prob. η (Patrini 2017)
    asym_dividemix:η           ⌊ηn⌋ random samples of all classes mapped by the CIFAR-10 map (≈ η/2)
    asym_exact:η               per source class flip exactly ⌊η n_s⌋ members
    asym100_blocks:η           CIFAR-100: next class in blocks of 5 consecutive indices, cyclic
    asym100_superclass:η       CIFAR-100: next fine class inside its official super-class, cyclic
    pairflip:η                 c → (c+1) mod C with prob. η (Han et al. 2018)
    idn:τ                      instance-dependent (Xia et al. 2020); needs ``x``
    human:SET                  class-conditional draw from CIFAR-10N/100N human statistics
    oracle:ε                   difficulty-dependent oracle (:mod:`ncal.data.oracle`); needs x

References
----------
Patrini, G. et al. "Making Deep Neural Networks Robust to Label Noise: a Loss Correction
Approach", CVPR 2017.
Han, B. et al. "Co-teaching: Robust Training of Deep Neural Networks with Extremely Noisy
Labels", NeurIPS 2018.
Li, J. et al. "DivideMix: Learning with Noisy Labels as Semi-supervised Learning", ICLR 2020.
Xia, X. et al. "Part-dependent Label Noise: Towards Instance-dependent Label Noise", NeurIPS 2020.
Wei, J. et al. "Learning with Noisy Labels Revisited: A Study Using Real-World Human
Annotations", ICLR 2022.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import as_label_vector
from . import human_noise

#: CIFAR-10 asymmetric map (source → target); classes 0, 1, 6, 7, 8 never flip.
CIFAR10_ASYM_MAP = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

#: Official CIFAR-100 fine→coarse map (fine labels in the archive's alphabetical order).
# fmt: off
CIFAR100_FINE_TO_COARSE = np.array([
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
], dtype=np.int64)
# fmt: on

_ALIASES = {
    "sym": "sym_exclusive",
    "asym": "asym_T",
    "asym_t": "asym_T",
    "symmetric": "sym_exclusive",
    "sym_exact_per_class": "sym_exact",
    "pair": "pairflip",
    "pair_flip": "pairflip",
    "instance": "idn",
    "clean": "none",
}
_RATE_MODELS = (
    "sym_exclusive",
    "sym_inclusive",
    "sym_exact",
    "asym_T",
    "asym_dividemix",
    "asym_exact",
    "asym100_blocks",
    "asym100_superclass",
    "pairflip",
    "idn",
    "oracle",
)
_BELOW_HALF = (
    "asym_T",
    "asym_dividemix",
    "asym_exact",
    "asym100_blocks",
    "asym100_superclass",
    "pairflip",
)
ACCEPTED_FORMS = (
    "none, sym:η (=sym_exclusive), sym_inclusive:η, sym_exact:η, asym:η (=asym_T), "
    "asym_dividemix:η, asym_exact:η, asym100_blocks:η, asym100_superclass:η, pairflip:η, "
    "idn:τ, oracle:ε, "
    f"human:{{{'|'.join(human_noise.HUMAN_NOISE_SETS)}}} "
    "(η in [0,1]; η < 0.5 for asym*/pairflip; τ in [0,1); ε in [0,0.9))"
)


@dataclass(frozen=True)
class NoiseSpec:
    """A parsed noise spec: canonical ``model``, nominal ``rate`` and human ``source`` set."""

    model: str
    rate: float = 0.0
    source: str | None = None

    def __str__(self) -> str:
        if self.model == "none":
            return "none"
        if self.model == "human":
            return f"human:{self.source}"
        return f"{self.model}:{self.rate:g}"


def parse_noise_spec(spec: str | NoiseSpec) -> NoiseSpec:
    """Parse a spec string such as ``"sym:0.3"`` or ``"human:cifar10n-worst"``.

    Raises
    ------
    ValueError
        Unknown model, missing or malformed rate, or a rate out of its range; the message lists the
        accepted forms.
    """
    if isinstance(spec, NoiseSpec):
        return parse_noise_spec(str(spec))
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"noise spec must be a non-empty string; accepted forms: {ACCEPTED_FORMS}")
    head, sep, arg = spec.strip().partition(":")
    low = head.strip().lower()
    model = _ALIASES.get(low, low)
    if model == "none":
        if sep and arg.strip() not in ("", "0", "0.0"):
            raise ValueError(
                f"noise spec {spec!r}: 'none' takes no rate; accepted forms: {ACCEPTED_FORMS}"
            )
        return NoiseSpec("none")
    if model == "human":
        try:
            return NoiseSpec("human", 0.0, human_noise.canonical_name(arg))
        except ValueError as e:
            raise ValueError(
                f"noise spec {spec!r}: {e}; accepted forms: {ACCEPTED_FORMS}"
            ) from None
    if model not in _RATE_MODELS:
        raise ValueError(
            f"unknown noise model {head!r} in {spec!r}; accepted forms: {ACCEPTED_FORMS}"
        )
    try:
        rate = float(arg)
    except ValueError:
        raise ValueError(
            f"noise spec {spec!r} needs a numeric rate after ':'; accepted forms: {ACCEPTED_FORMS}"
        ) from None
    hi, closed = (0.5, False) if model in _BELOW_HALF else (1.0, model.startswith("sym"))
    if model == "oracle":
        hi = 0.9
    if not np.isfinite(rate) or rate < 0 or rate > hi or (rate == hi and not closed):
        rng_txt = f"[0, {hi}]" if closed else f"[0, {hi})"
        why = " (at 0.5 a flipped class outnumbers its source)" if model in _BELOW_HALF else ""
        raise ValueError(f"noise rate {arg.strip()} of {spec!r} must be in {rng_txt}{why}")
    return NoiseSpec(model, rate)


# ------------------------------------------------------------------------------------- helpers
def _rng(seed: Any) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def empirical_transition(y_clean: Any, y_noisy: Any, num_classes: int) -> np.ndarray:
    """``T_hat[i, j]`` = fraction of clean class ``i`` labelled ``j`` (absent classes: zero row)."""
    y = np.asarray(y_clean, dtype=np.int64)
    z = np.asarray(y_noisy, dtype=np.int64)
    C = int(num_classes)
    counts = np.bincount(y * C + z, minlength=C * C).reshape(C, C).astype(np.float64)
    tot = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, tot, out=np.zeros_like(counts), where=tot > 0)


def sample_class_conditional(y: np.ndarray, T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw ``ỹ_i ~ Cat(T[y_i])`` for each ``i`` by inverse CDF (zero-probability labels: never)."""
    u = rng.random(y.size)
    out = np.empty_like(y)
    for c in np.unique(y):
        m = y == c
        cum = np.cumsum(T[c])
        cum /= cum[-1]  # exact 1.0 at the last non-zero entry and beyond
        out[m] = np.minimum(np.searchsorted(cum, u[m], side="right"), T.shape[1] - 1)
    return out


def _cyclic_groups_T(groups: list[np.ndarray], C: int, eta: float) -> np.ndarray:
    T = np.eye(C)
    for g in groups:
        g = np.sort(g)
        for a, b in zip(g, np.roll(g, -1)):
            if a != b:
                T[a, a], T[a, b] = 1.0 - eta, eta
    return T


def _superclass_groups(
    num_classes: int, coarse_labels: Any, y: np.ndarray
) -> tuple[list[np.ndarray], str]:
    if coarse_labels is None:
        f2c, src = CIFAR100_FINE_TO_COARSE, "official CIFAR-100 fine->coarse map"
    else:
        coarse = as_label_vector(coarse_labels, "coarse_labels", length=y.size)
        f2c = np.full(num_classes, -1, dtype=np.int64)
        f2c[y] = coarse
        if not np.array_equal(f2c[y], coarse):
            raise ValueError("`coarse_labels` must give one super-class per fine class")
        src = "coarse_labels argument"
    groups = [np.flatnonzero(f2c == k) for k in np.unique(f2c[f2c >= 0])]
    return groups, src


def noise_transition_matrix(
    spec: str | NoiseSpec, num_classes: int, *, coarse_labels: Any = None, y_clean: Any = None
) -> np.ndarray:
    """Expected transition matrix ``T[i, j] = P(ỹ=j | y=i)`` of a class-conditional noise model.

    Defined for none, sym_exclusive, sym_inclusive, asym_T, asym100_blocks, asym100_superclass,
    pairflip and human; other models are instance-dependent or fixed-count and raise ValueError.
    ``coarse_labels``/``y_clean`` (aligned) define super-classes for asym100_superclass.
    """
    s = parse_noise_spec(spec)
    C = int(num_classes)
    eta = s.rate
    if C < 2:
        raise ValueError(f"`num_classes` must be >= 2; got {num_classes}")
    if s.model == "none":
        return np.eye(C)
    if s.model == "sym_exclusive":
        return (1 - eta) * np.eye(C) + eta / (C - 1) * (1 - np.eye(C))
    if s.model == "sym_inclusive":
        return (1 - eta) * np.eye(C) + eta / C
    if s.model == "asym_T":
        _need_classes(s, C, 10)
        T = np.eye(C)
        for a, b in CIFAR10_ASYM_MAP.items():
            T[a, a], T[a, b] = 1 - eta, eta
        return T
    if s.model == "asym100_blocks":
        _need_classes(s, C, 100)
        return _cyclic_groups_T([np.arange(i, i + 5) for i in range(0, 100, 5)], C, eta)
    if s.model == "asym100_superclass":
        _need_classes(s, C, 100)
        y = None if y_clean is None else as_label_vector(y_clean, "y_clean", num_classes=C)
        if coarse_labels is not None and y is None:
            raise ValueError(
                "asym100_superclass with `coarse_labels` also needs the aligned `y_clean`"
            )
        groups, _ = _superclass_groups(C, coarse_labels, y if y is not None else np.arange(C))
        return _cyclic_groups_T(groups, C, eta)
    if s.model == "pairflip":
        return (1 - eta) * np.eye(C) + eta * np.roll(np.eye(C), 1, axis=1)
    if s.model == "human":
        _need_classes(s, C, 100 if s.source == "cifar100n" else 10)
        return human_noise.human_noise_T(s.source)
    raise ValueError(f"noise model {s.model!r} has no fixed class-conditional transition matrix")


def _need_classes(s: NoiseSpec, C: int, want: int) -> None:
    if C != want:
        raise ValueError(f"noise {s} is defined for {want} classes; got num_classes={C}")


# ----------------------------------------------------------------------------------------- IDN
class IdnInputs:
    """Rows of ``x`` flattened for IDN and scaled to [0, 1] (ALGORITHMS.md §2.3 canonical choice).

    uint8 images are divided by 255; float input already in [0, 1] is kept; other float input is
    min–max scaled globally. Channels-last images ``(N, H, W, C)`` are flattened in CHW order like
    ``ToTensor()``. Rows are converted on demand (:meth:`rows`), so a 50k×3072 pool never needs a
    full float copy; ``description`` records the scaling for metadata.
    """

    def __init__(self, x: Any):
        x = np.asarray(x)
        if x.ndim < 2:
            raise ValueError(
                f"`x` must have one row per sample (2-D or image batch); got shape {x.shape}"
            )
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise TypeError(f"`x` must hold real numbers; got {x.dtype}")
        self.x = x
        self.chw = x.ndim == 4 and x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4)
        self.n, self.dim = x.shape[0], int(np.prod(x.shape[1:]))
        layout = ", HWC transposed to CHW" if self.chw else ""
        if x.dtype == np.uint8:
            self.lo, self.span = 0.0, 255.0
            self.description = "uint8/255 in [0,1], flattened" + layout
            return
        lo = hi = None
        for s in range(0, self.n, 8192):  # finite check and range in blocks
            blk = x[s : s + 8192]
            if not np.isfinite(blk).all():
                raise ValueError("`x` contains NaN or inf")
            lo = min(float(blk.min()), lo) if lo is not None else float(blk.min())
            hi = max(float(blk.max()), hi) if hi is not None else float(blk.max())
        lo, hi = (0.0, 1.0) if lo is None else (lo, hi)
        if lo >= 0.0 and hi <= 1.0:
            self.lo, self.span = 0.0, 1.0
            self.description = "float already in [0,1], flattened" + layout
        else:
            self.lo, self.span = lo, (hi - lo if hi > lo else 1.0)
            self.description = f"min-max scaled from [{lo:g}, {hi:g}] to [0,1], flattened" + layout

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """Scaled float32 rows ``idx`` as a ``(len(idx), dim)`` matrix."""
        blk = self.x[idx]
        if self.chw:
            blk = blk.transpose(0, 3, 1, 2)
        blk = blk.reshape(len(idx), -1).astype(np.float32)
        if self.lo != 0.0:
            blk -= np.float32(self.lo)
        if self.span != 1.0:
            blk /= np.float32(self.span)
        return blk


def _idn(
    y: np.ndarray,
    tau: float,
    x: Any,
    C: int,
    rng: np.random.Generator,
    norm_std: float = 0.1,
    chunk: int = 8192,
) -> tuple[np.ndarray, dict]:
    from scipy.stats import truncnorm

    if x is None:
        raise ValueError("idn noise needs the inputs `x` (one row or image per label)")
    xin = IdnInputs(x)
    if xin.n != y.size:
        raise ValueError(f"`x` has {xin.n} rows but `y_clean` has {y.size}")
    n, S = xin.n, xin.dim
    q = truncnorm.rvs(
        (0 - tau) / norm_std,
        (1 - tau) / norm_std,
        loc=tau,
        scale=norm_std,
        size=n,
        random_state=rng,
    )
    u = rng.random(n)
    out = y.copy()
    for c in range(C):  # W_c drawn for every class in order (absent classes too: stable streams)
        Wc = rng.standard_normal((S, C)).astype(np.float32)
        rows = np.flatnonzero(y == c)
        for s in range(0, rows.size, chunk):
            r = rows[s : s + chunk]
            a = (xin.rows(r) @ Wc).astype(np.float64)
            a[:, c] = -np.inf
            a -= a.max(axis=1, keepdims=True)
            p = np.exp(a)
            p /= p.sum(axis=1, keepdims=True)
            p *= q[r, None]
            p[:, c] = 1.0 - q[r]
            cum = np.cumsum(p, axis=1)
            cum /= cum[:, -1:]
            out[r] = np.minimum((u[r, None] >= cum).sum(axis=1), C - 1)
    info = {
        "x_scaling": xin.description,
        "norm_std": norm_std,
        "input_dim": S,
        "flip_prob_mean": float(q.mean()),
    }
    return out, info


# ------------------------------------------------------------------------------------ main API
def make_noisy_labels(
    y_clean: Any,
    spec: str | NoiseSpec,
    *,
    num_classes: int,
    seed: Any,
    x: Any = None,
    coarse_labels: Any = None,
    features: Any = None,
    return_info: bool = False,
) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, dict]:
    """Corrupt clean labels with a named noise model (ALGORITHMS.md §2).

    Parameters
    ----------
    y_clean
        Clean labels in ``[0, num_classes)``.
    spec
        Spec string or :class:`NoiseSpec` (see module docstring; bad specs raise ValueError listing
        the accepted forms).
    num_classes
        Number of classes ``C``.
    seed
        Seed or ``numpy.random.Generator``; the same seed gives the same noisy labels.
    x
        Inputs, required by ``idn`` (scaled to [0, 1] and flattened; see :class:`IdnInputs`) and by
        ``oracle`` unless ``features`` are given.
    coarse_labels
        Per-sample super-class labels for ``asym100_superclass`` (default: the official CIFAR-100
        map).
    features
        Optional features for the ``oracle`` model's reference classifier.
    return_info
        Also return a metadata dict (model, nominal and realised rate, model-specific notes such as
        the IDN input scaling or the human-statistics source).

    Returns
    -------
    y_noisy : numpy.ndarray
        int64 noisy labels.
    T_hat : numpy.ndarray
        ``(C, C)`` realised transition: ``T_hat[i, j]`` = fraction of clean class ``i`` labelled
        ``j``.
    info : dict
        Only with ``return_info=True``.

    Notes
    -----
    ``human:*`` draws labels class-conditionally from the transition matrix of the CIFAR-10N/100N
    annotation files: human noise statistics applied to this dataset, not CIFAR-10N itself.
    """
    s = parse_noise_spec(spec)
    C = int(num_classes)
    if C < 2:
        raise ValueError(f"`num_classes` must be >= 2; got {num_classes}")
    y = as_label_vector(y_clean, "y_clean", num_classes=C)
    rng = _rng(seed)
    n = y.size
    eta = s.rate
    info: dict[str, Any] = {"spec": str(s), "model": s.model, "rate_nominal": eta}
    if s.model in ("none", "sym_exclusive", "asym_T", "asym100_blocks", "pairflip", "human"):
        T = noise_transition_matrix(s, C)
        yn = sample_class_conditional(y, T, rng) if s.model != "none" else y.copy()
        if s.model == "human":
            info["source"] = (
                f"human noise statistics of {s.source} (class-level transition matrix "
                "estimated from the CIFAR-N files), not CIFAR-N itself"
            )
            info["rate_nominal"] = human_noise.human_noise_rate(s.source)
    elif s.model == "asym100_superclass":
        _need_classes(s, C, 100)
        groups, src = _superclass_groups(C, coarse_labels, y)
        yn = sample_class_conditional(y, _cyclic_groups_T(groups, C, eta), rng)
        info["grouping"] = src
    elif s.model == "sym_inclusive":
        yn = y.copy()
        pick = rng.permutation(n)[: int(np.floor(eta * n))]
        yn[pick] = rng.integers(0, C, size=pick.size)
    elif s.model == "sym_exact":
        yn = y.copy()
        for c in range(C):
            members = np.flatnonzero(y == c)
            k = int(np.floor(eta * members.size))
            pick = rng.choice(members, size=k, replace=False)
            yn[pick] = (c + rng.integers(1, C, size=k)) % C
    elif s.model in ("asym_dividemix", "asym_exact"):
        _need_classes(s, C, 10)
        mapping = np.arange(C)
        for a, b in CIFAR10_ASYM_MAP.items():
            mapping[a] = b
        yn = y.copy()
        if s.model == "asym_dividemix":
            pick = rng.permutation(n)[: int(np.floor(eta * n))]
            yn[pick] = mapping[y[pick]]
        else:
            for a in sorted(CIFAR10_ASYM_MAP):
                members = np.flatnonzero(y == a)
                pick = rng.choice(members, size=int(np.floor(eta * members.size)), replace=False)
                yn[pick] = mapping[a]
    elif s.model == "idn":
        yn, extra = _idn(y, eta, x, C, rng)
        info.update(extra)
    elif s.model == "oracle":
        from .oracle import DifficultyOracle

        orc = DifficultyOracle(y, num_classes=C, target_rate=eta, seed=rng, x=x, features=features)
        yn = orc.noisy_labels.copy()
        info.update(orc.info)
    else:  # pragma: no cover - parse_noise_spec guards this
        raise AssertionError(s.model)
    T_hat = empirical_transition(y, yn, C)
    info["rate_realised"] = float(np.mean(yn != y)) if n else 0.0
    return (yn, T_hat, info) if return_info else (yn, T_hat)
