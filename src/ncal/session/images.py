"""PNG files of an array-stored image pool, so Label Studio tasks can show the image.

Images stored in an ``.npz`` have no file a labeling tool could load; ``init`` writes each one to
``DIR/images/<row>.png`` (row = the item's row, zero-padded) and the tasks point at those files
(or at ``image_url_prefix`` + the file name, for a server that serves the folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._utils.io import atomic_write
from .progress import SILENT, Progress, count

IMAGE_DIR = "images"


def image_file_name(row: int) -> str:
    """File name of item ``row``'s PNG under ``DIR/images``."""
    return f"{int(row):07d}.png"


def write_pool_images(pool: Any, directory: Path, *, progress: Progress = SILENT) -> Path:
    """Write every image of an array image pool to ``directory/images`` as PNG; return the folder.

    Each file is written atomically, so a killed ``init`` leaves whole files only.
    """
    from PIL import Image

    from .pool import iter_images

    out = Path(directory) / IMAGE_DIR
    out.mkdir(parents=True, exist_ok=True)
    grayscale = pool.images.ndim == 3 or pool.images.shape[-1] == 1
    with progress.phase(f"writing {count(len(pool))} images as PNG to {out}"):
        row = 0
        for chunk in iter_images(pool, size=None):
            for img in chunk:
                im = Image.fromarray(img[..., 0] if grayscale else img)
                atomic_write(out / image_file_name(row), lambda fh, im=im: im.save(fh, "PNG"))
                row += 1
    return out
