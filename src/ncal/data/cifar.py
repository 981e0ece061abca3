"""Reader for the official CIFAR-10 / CIFAR-100 "python version" archives (Krizhevsky, 2009).

Accepts the extracted folder (``cifar-10-batches-py`` / ``cifar-100-python``), a folder that
contains it, or the ``.tar.gz`` itself. Files: CIFAR-10 ``data_batch_1..5``, ``test_batch``,
``batches.meta``; CIFAR-100 ``train``, ``test``, ``meta`` (fine and coarse labels). Rows are 3072
bytes in CHW order; images are returned as ``(N, 32, 32, 3)`` uint8 (HWC), the layout the rest of
ncal expects.

The pickles are read with :func:`ncal.data._pickle.safe_load` (arrays and containers only). The
download helper :func:`download_cifar` never runs unless called explicitly.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .._utils.io import atomic_write
from ..errors import NcalError
from ._errors import DataNotFoundError
from ._pickle import as_str, safe_load, str_keys

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR100_ARCHIVE = "cifar-100-python.tar.gz"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))

#: Official URLs and MD5 sums (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR_URLS = {
    "cifar10": (
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": (
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85",
    ),
}


@dataclass
class CifarArrays:
    """Raw arrays read from a CIFAR archive (coarse fields only for CIFAR-100)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    coarse_train: np.ndarray | None = None
    coarse_test: np.ndarray | None = None
    coarse_names: list[str] | None = None
    source: str = ""


def _how_to_get(which: str) -> str:
    url = CIFAR_URLS[which][0]
    folder = CIFAR10_FOLDER if which == "cifar10" else CIFAR100_FOLDER
    return (
        f"download the official python version ({url}) on a machine with internet, then pass "
        f"'{which}:PATH' where PATH is the .tar.gz, the extracted '{folder}' folder or its parent "
        "(or put it under $NCAL_DATA)"
    )


def find_cifar(which: str, path: str | os.PathLike) -> Path | None:
    """Return the archive or folder for ``which`` ('cifar10'/'cifar100') at or under ``path``."""
    p = Path(path).expanduser()
    if which == "cifar10":
        folder, archive, needed = CIFAR10_FOLDER, CIFAR10_ARCHIVE, ("data_batch_1", "test_batch")
    else:
        folder, archive, needed = CIFAR100_FOLDER, CIFAR100_ARCHIVE, ("train", "test")
    if p.is_file():
        return p if tarfile.is_tarfile(p) else None
    if not p.is_dir():
        return None
    for cand in (p, p / folder):
        if all((cand / name).is_file() for name in needed):
            return cand
    if (p / archive).is_file():
        return p / archive
    return None


def _reader(src: Path) -> tuple[Callable[[str], bytes], Callable[[], None]]:
    """Return ``read(name) -> bytes`` over a folder or a tar archive (members found by basename)."""
    if src.is_dir():

        def read_dir(name: str) -> bytes:
            f = src / name
            if not f.is_file():
                raise DataNotFoundError(f"{f} is missing from the CIFAR folder")
            return f.read_bytes()

        return read_dir, lambda: None
    try:
        tar = tarfile.open(src, "r:*")
        members = {os.path.basename(m.name): m for m in tar.getmembers() if m.isfile()}
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise NcalError(
            f"{src} is not a readable tar archive (truncated or corrupt?): {exc}"
        ) from None

    def read_tar(name: str) -> bytes:
        if name not in members:
            raise DataNotFoundError(f"{src} has no member named {name!r}")
        fh = tar.extractfile(members[name])
        assert fh is not None
        return fh.read()

    return read_tar, tar.close


def _images(data: np.ndarray, name: str) -> np.ndarray:
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"CIFAR file {name!r}: 'data' must be (N, 3072); got {data.shape}")
    return np.ascontiguousarray(
        data.astype(np.uint8, copy=False).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    )


def _batch(read: Callable[[str], bytes], name: str, keys: tuple[str, ...], src: Path) -> dict:
    """Member ``name`` of the CIFAR source ``src`` as a dict holding ``keys``.

    Raises
    ------
    NcalError
        The member cannot be read or unpickled (truncated, or a pickle naming anything but NumPy
        arrays and plain containers: refused, never run), or lacks one of ``keys``.
    """
    where = f"CIFAR file {name!r} in {src}"
    try:
        data = read(name)
    except DataNotFoundError:
        raise
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise NcalError(f"{where} cannot be read (truncated or corrupt?): {exc}") from None
    try:
        obj = safe_load(data)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise NcalError(f"{where} is not a CIFAR data pickle: {exc}") from None
    if not isinstance(obj, dict):
        raise NcalError(f"{where} does not hold a dict")
    obj = str_keys(obj)
    missing = [k for k in keys if k not in obj]
    if missing:
        raise NcalError(f"{where} lacks {missing}; it has {sorted(map(str, obj))[:10]}")
    return obj


def read_cifar10(path: str | os.PathLike) -> CifarArrays:
    """Read CIFAR-10 from a folder or ``.tar.gz`` (see module docstring)."""
    src = find_cifar("cifar10", path)
    if src is None:
        raise DataNotFoundError(
            f"no CIFAR-10 python archive found at {path}: {_how_to_get('cifar10')}"
        )
    read, close = _reader(src)
    try:
        xs, ys = [], []
        for name in CIFAR10_TRAIN_FILES:
            b = _batch(read, name, ("data", "labels"), src)
            xs.append(_images(b["data"], name))
            ys.append(np.asarray(b["labels"], dtype=np.int64))
        t = _batch(read, "test_batch", ("data", "labels"), src)
        meta = _batch(read, "batches.meta", ("label_names",), src)
    finally:
        close()
    names = [as_str(s) for s in meta["label_names"]]
    return CifarArrays(
        np.concatenate(xs),
        np.concatenate(ys),
        _images(t["data"], "test_batch"),
        np.asarray(t["labels"], dtype=np.int64),
        names,
        source=str(src),
    )


def read_cifar100(path: str | os.PathLike) -> CifarArrays:
    """Read CIFAR-100 (fine labels as ``y``, coarse labels kept) from a folder or ``.tar.gz``."""
    src = find_cifar("cifar100", path)
    if src is None:
        raise DataNotFoundError(
            f"no CIFAR-100 python archive found at {path}: {_how_to_get('cifar100')}"
        )
    read, close = _reader(src)
    try:
        keys = ("data", "fine_labels", "coarse_labels")
        tr, te = _batch(read, "train", keys, src), _batch(read, "test", keys, src)
        meta = _batch(read, "meta", ("fine_label_names", "coarse_label_names"), src)
    finally:
        close()
    return CifarArrays(
        _images(tr["data"], "train"),
        np.asarray(tr["fine_labels"], dtype=np.int64),
        _images(te["data"], "test"),
        np.asarray(te["fine_labels"], dtype=np.int64),
        [as_str(s) for s in meta["fine_label_names"]],
        coarse_train=np.asarray(tr["coarse_labels"], dtype=np.int64),
        coarse_test=np.asarray(te["coarse_labels"], dtype=np.int64),
        coarse_names=[as_str(s) for s in meta["coarse_label_names"]],
        source=str(src),
    )


def download_cifar(which: str, dest: str | os.PathLike) -> Path:
    """Download the official archive for ``which`` into ``dest`` and check its MD5.

    Needs internet access; nothing in ncal calls it implicitly (tests and the default CLI never do).
    Returns the path of the ``.tar.gz``, which :func:`read_cifar10` / :func:`read_cifar100` accept.
    """
    if which not in CIFAR_URLS:
        raise ValueError(f"`which` must be one of {sorted(CIFAR_URLS)}; got {which!r}")
    url, md5 = CIFAR_URLS[which]
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / url.rsplit("/", 1)[1]
    if not out.is_file() or _md5(out) != md5:
        atomic_write(out, lambda fh: _download_checked(url, md5, fh))
    return out


def _download_checked(url: str, md5: str, fh: BinaryIO) -> None:
    """Stream ``url`` into ``fh``; OSError if the MD5 differs (the partial file is then removed by
    :func:`~ncal._utils.io.atomic_write`, so a corrupt archive never takes the final name)."""
    h = hashlib.md5()
    with urllib.request.urlopen(url) as response:
        for chunk in iter(lambda: response.read(1 << 20), b""):
            h.update(chunk)
            fh.write(chunk)
    if h.hexdigest() != md5:
        raise OSError(f"MD5 mismatch for {url}; the download is corrupt")


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
