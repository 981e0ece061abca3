"""Named, independent random streams derived from one seed.

Every stochastic piece draws from its own stream keyed by what it is for, so a change in one piece
(say, the training code) never shifts the draws of another (say, the initial set or the oracle).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed determined by ``seed`` and the ``keys`` (strings, ints), stable across runs,
    platforms and Python versions (BLAKE2b of the joined keys)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"`seed` must be an integer; got {type(seed).__name__}")
    text = "/".join([str(int(seed)), *(str(k) for k in keys)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A numpy Generator on the stream named by ``keys``."""
    return np.random.default_rng(derive_seed(seed, *keys))


def as_generator(seed: Any) -> np.random.Generator:
    """``seed`` itself when it is a Generator, else ``numpy.random.default_rng(seed)``."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
