"""Files a session hands to people and tools: batch CSVs, Label Studio tasks, final label CSVs.

Every file is written atomically (:func:`ncal._utils.io.atomic_write_text`), so a crash never
leaves a half-written batch next to a complete store.

Label Studio
------------
A batch is exported as an import JSON: a list of tasks ``{"data": {"id", "image" | "features_ref",
"kind", "round"}, "predictions": [...]}``. ``labelstudio_config.xml`` (written at ``init``) is a
matching labeling interface with one ``Choices`` control named ``label``; its annotations come back
through :func:`ncal.session.importers.read_labelstudio`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from .._utils.io import atomic_write_text
from ..errors import NcalError

BATCH_COLUMNS = ("id", "kind", "round", "label", "annotator")
# A spreadsheet runs a cell whose text starts with one of these as a formula (CSV injection);
# such text cells are written with a leading apostrophe, which spreadsheets show as plain text.
# :func:`ncal.session.importers.validate` maps an escaped id or label back to the original.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
ESCAPE = "'"


def escape_cell(value: Any) -> Any:
    """``value`` with a leading apostrophe when it is text a spreadsheet would run as a formula;
    numbers and other text are returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return ESCAPE + value
    return value


def unescape_cell(text: str) -> str | None:
    """The original of a cell escaped by :func:`escape_cell`, or None when ``text`` is not one."""
    if text.startswith(ESCAPE) and text[1:].startswith(FORMULA_PREFIXES):
        return text[1:]
    return None


def check_output_path(path: str | Path, *, protected: Iterable[str | Path] = ()) -> Path:
    """``path`` as a Path, if writing a CSV there destroys nothing; else raise.

    Refused: an existing directory; a path equal to (or inside a folder) of ``protected`` (the
    session store, its features, the pool, imported files); an existing file that is not text
    (a SQLite store, an ``.npy`` / ``.npz``, an image), whatever its name.

    Raises
    ------
    NcalError
        Naming ``path`` and why it is refused.
    """
    out = Path(path)
    if out.is_dir():
        raise NcalError(f"output file {str(path)!r} is an existing directory; give a file name")
    real = out.resolve()
    for p in protected:
        q = Path(p).resolve()
        if real == q or (q.is_dir() and q in real.parents):
            raise NcalError(
                f"output file {str(path)!r} would overwrite {str(p)!r}, an input of the session; "
                "choose another file"
            )
    if out.is_file() and not _is_text_file(out):
        raise NcalError(
            f"output file {str(path)!r} is an existing non-text file (a store, array or image?); "
            "refusing to overwrite it with a CSV"
        )
    return out


def _is_text_file(path: Path, probe: int = 8192) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(probe)
    except OSError:
        return False
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut by the probe is still text
        return exc.start >= len(head) - 3
    return True


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([escape_cell(h) for h in header])
    w.writerows([escape_cell(v) for v in row] for row in rows)
    return buf.getvalue()


def write_batch_csv(
    path: str | Path,
    batch: Sequence[dict[str, Any]],
    *,
    round_number: int,
    classes: Sequence[str],
    prefill: bool = False,
) -> Path:
    """The batch as a CSV to fill in: ``id,kind,round,label,annotator`` (+ ``prediction``,
    ``prediction_confidence`` with ``prefill``).

    ``label`` and ``annotator`` are left empty; the filled file can be imported as it is (rows whose
    ``label`` is still empty are skipped). Predictions are opt-in because showing them anchors
    annotators.
    """
    header = list(BATCH_COLUMNS) + (["prediction", "prediction_confidence"] if prefill else [])
    rows = []
    for b in batch:
        row: list[Any] = [b["id"], b["kind"], round_number, "", ""]
        if prefill:
            pred = b.get("prediction")
            conf = b.get("confidence")
            row += [
                "" if pred is None else classes[int(pred)],
                "" if conf is None else f"{float(conf):.4f}",
            ]
        rows.append(row)
    return atomic_write_text(path, _csv_text(header, rows))


def image_urls(
    pool_meta: dict[str, Any], ids: Sequence[str], session_dir: str | Path | None = None
) -> dict[str, str] | None:
    """Item id -> the ``image`` a Label Studio task shows, or None for tasks without images.

    ``pool_meta`` is the session's ``pool`` meta entry: image folders point at their files (or
    ``image_url_prefix`` + id); images stored in an array file were written as PNGs under
    ``session_dir/<image_dir>`` at ``init`` (:mod:`ncal.session.images`), and point at those
    files (or ``image_url_prefix`` + file name).
    """
    from .images import image_file_name

    if pool_meta.get("kind") != "images":
        return None
    prefix = pool_meta.get("image_url_prefix")
    if pool_meta.get("format") == "image_folder":
        root = Path(pool_meta["path"])
        return {i: (prefix + i) if prefix is not None else str(root / i) for i in ids}
    image_dir = pool_meta.get("image_dir")
    if image_dir is None or session_dir is None:  # sessions made before PNGs were written
        return None if prefix is None else {i: prefix + i for i in ids}
    folder = (Path(session_dir) / image_dir).resolve()
    return {
        i: (prefix + image_file_name(r)) if prefix is not None else str(folder / image_file_name(r))
        for r, i in enumerate(ids)
    }


def labelstudio_tasks(
    batch: Sequence[dict[str, Any]],
    *,
    round_number: int,
    classes: Sequence[str],
    image_urls: dict[str, str] | None = None,
    features_file: str = "features.npy",
    prefill: bool = False,
) -> list[dict[str, Any]]:
    """Label Studio import tasks for a batch (``image`` for image pools, else ``features_ref``)."""
    tasks = []
    for b in batch:
        data: dict[str, Any] = {"id": b["id"], "kind": b["kind"], "round": round_number}
        if image_urls is not None:
            data["image"] = image_urls[b["id"]]
        else:
            data["features_ref"] = f"{features_file}#row={int(b['item_row'])}"
        task: dict[str, Any] = {"data": data}
        if prefill and b.get("prediction") is not None:
            to_name = "image" if image_urls is not None else "item"
            task["predictions"] = [
                {
                    "model_version": f"ncal-round-{round_number:03d}",
                    "score": None if b.get("confidence") is None else float(b["confidence"]),
                    "result": [
                        {
                            "from_name": "label",
                            "to_name": to_name,
                            "type": "choices",
                            "value": {"choices": [classes[int(b["prediction"])]]},
                        }
                    ],
                }
            ]
        tasks.append(task)
    return tasks


def write_labelstudio_tasks(path: str | Path, tasks: list[dict[str, Any]]) -> Path:
    return atomic_write_text(path, json.dumps(tasks, indent=1) + "\n")


def labelstudio_config(classes: Sequence[str], *, images: bool) -> str:
    """A labeling interface matching the exported tasks: one single-choice ``label`` control."""
    obj = (
        '  <Image name="image" value="$image"/>' if images else '  <Text name="item" value="$id"/>'
    )
    to_name = "image" if images else "item"
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in classes)
    return (
        "<View>\n"
        f"{obj}\n"
        f'  <Choices name="label" toName="{to_name}" choice="single" showInLine="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def write_labels_csv(path: str | Path, rows: Sequence[Sequence[Any]]) -> Path:
    """Final labels: ``id,label,label_name,n_annotations,confidence`` (formula-like text escaped;
    ``path`` checked by :func:`check_output_path`)."""
    header = ("id", "label", "label_name", "n_annotations", "confidence")
    return atomic_write_text(check_output_path(path), _csv_text(header, rows))


def write_review_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    """The review queue, one row per item (formula-like text escaped; ``path`` checked by
    :func:`check_output_path`)."""
    header = list(rows[0]) if rows else ["id"]
    table = [[r[h] for h in header] for r in rows]
    return atomic_write_text(check_output_path(path), _csv_text(header, table))
