"""Reading annotation files (CSV, Label Studio export JSON) and validating them against a session.

Validation is all-or-nothing: every row is checked first, and a file with any unknown id, unknown
label or contradiction is rejected as a whole with the first ~20 problems listed; nothing is
imported from it.

Ids are kept exactly as written (no whitespace is stripped: an id with a leading space is its own
id); an id or label that the CSV exporters escaped against spreadsheet formulas (a leading
apostrophe before ``=``, ``+``, ``-``, ``@``) is mapped back to the original when the escaped text
is not itself a known id or label.

CSV: header with ``id`` and ``label`` (+ optional ``annotator``; other columns, e.g. those of an
exported batch, are ignored). ``label`` is a class name or a class index; a class name wins when a
name is itself a number. Rows with an empty ``label`` are skipped (a partially filled batch file can
be imported as it is). Without an ``annotator`` column every row gets the ``default_annotator``.

Label Studio export JSON (the "JSON" export): a list of tasks; the item id is ``data.id`` (as
exported by ``ncal session next``); every non-cancelled annotation whose result holds a ``choices``
value gives one label; annotator = ``completed_by`` (its email when it is an object, else the user
id).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import NcalError
from .exporters import unescape_cell

MAX_LISTED = 20


@dataclass(frozen=True)
class RawAnnotation:
    """One label as read from a file, before validation; ``where`` locates it for error messages."""

    item_id: str
    label: str
    annotator: str
    where: str


def read_annotations(
    path: str | Path, *, default_annotator: str = "default"
) -> tuple[str, list[RawAnnotation], int]:
    """Read ``path`` (``.csv`` or ``.json``) → ``(format, annotations, n_skipped_blank)``."""
    p = Path(path)
    if not p.is_file():
        raise NcalError(f"annotation file `{path}` does not exist")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        anns, skipped = read_csv(p, default_annotator=default_annotator)
        return "csv", anns, skipped
    if suffix == ".json":
        anns, skipped = read_labelstudio(p)
        return "labelstudio", anns, skipped
    raise NcalError(
        f"annotation file `{path}`: expected .csv or Label Studio .json; got {suffix!r}"
    )


def read_csv(path: Path, *, default_annotator: str = "default") -> tuple[list[RawAnnotation], int]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            reader.fieldnames = fields
            missing = [c for c in ("id", "label") if c not in fields]
            if missing:
                raise NcalError(
                    f"`{path.name}`: CSV needs columns 'id' and 'label' (optional 'annotator'); "
                    f"missing {missing}; header is {fields}"
                )
            has_annotator = "annotator" in fields
            out: list[RawAnnotation] = []
            skipped = 0
            for line, row in enumerate(reader, start=2):
                label = (row.get("label") or "").strip()
                item_id = row.get("id") or ""  # exactly as given: ids may hold spaces
                if not label:
                    skipped += 1
                    continue
                annotator = (row.get("annotator") or "").strip() if has_annotator else ""
                out.append(
                    RawAnnotation(item_id, label, annotator or default_annotator, f"line {line}")
                )
    except UnicodeDecodeError as exc:
        raise NcalError(f"`{path.name}` is not UTF-8 text: {exc}") from exc
    except csv.Error as exc:
        raise NcalError(f"`{path.name}` is not a readable CSV: {exc}") from exc
    return out, skipped


def _annotator_name(completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("id") or "unknown")
    return "unknown" if completed_by is None else str(completed_by)


def read_labelstudio(path: Path) -> tuple[list[RawAnnotation], int]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NcalError(f"`{path.name}` is not valid JSON: {exc}") from exc
    except RecursionError:
        raise NcalError(
            f"`{path.name}` nests JSON too deeply to be a Label Studio export (a list of tasks)"
        ) from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise NcalError(f"`{path.name}`: a Label Studio export is a JSON list of tasks")
    out: list[RawAnnotation] = []
    problems: list[str] = []
    skipped = 0
    for t_i, task in enumerate(tasks):
        where = f"task {t_i}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            problems.append(f"{where}: not a task object with 'data'")
            continue
        data = task["data"]
        item_id = data.get("id", data.get("ncal_id"))
        if item_id is None:
            problems.append(f"{where}: 'data' has no 'id'")
            continue
        for a_i, ann in enumerate(task.get("annotations") or []):
            w = f"{where} annotation {a_i}"
            if not isinstance(ann, dict):
                problems.append(f"{w}: not an object")
                continue
            if ann.get("was_cancelled"):
                skipped += 1
                continue
            choices = [
                c
                for r in ann.get("result") or []
                if isinstance(r, dict) and isinstance(r.get("value"), dict)
                for c in (r["value"].get("choices") or [])
            ]
            if not choices:
                skipped += 1
                continue
            if len(choices) > 1:
                problems.append(f"{w}: {len(choices)} choices {choices[:5]}; expected exactly one")
                continue
            annotator = _annotator_name(ann.get("completed_by"))
            out.append(RawAnnotation(str(item_id), str(choices[0]), annotator, w))
    if problems:
        raise NcalError(_problem_message(path.name, problems))
    return out, skipped


def _problem_message(name: str, problems: Sequence[str]) -> str:
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    listed = "\n  ".join(problems[:MAX_LISTED])
    head = f"`{name}` was not imported ({len(problems)} problem(s)); nothing was changed:"
    return f"{head}\n  {listed}{more}"


def resolve_label(raw: str, classes: Sequence[str], name_to_index: dict[str, int]) -> int | None:
    """Class index of ``raw`` (a class name, else an integer index); None when unknown."""
    if raw in name_to_index:
        return name_to_index[raw]
    try:
        idx = int(raw)
    except ValueError:
        return None
    return idx if 0 <= idx < len(classes) and str(idx) == raw.lstrip("+") else None


def _lookup(text: str, find: Callable[[str], int | None]) -> int | None:
    """``find(text)``, else ``find`` of the original of a formula-escaped ``text``."""
    found = find(text)
    if found is None and (original := unescape_cell(text)) is not None:
        found = find(original)
    return found


def validate(
    name: str,
    annotations: Sequence[RawAnnotation],
    *,
    id_to_row: dict[str, int],
    heldout_rows: set[int],
    classes: Sequence[str],
) -> list[tuple[int, int, str]]:
    """Resolve ids and labels; raise listing every problem, or return ``(item_row, label,
    annotator)``.

    Problems: unknown id, id of a held-out evaluation item, unknown label, and one annotator giving
    different labels to the same item within one file. Exact duplicate rows are merged.
    """
    name_to_index = {c: i for i, c in enumerate(classes)}
    problems: list[str] = []
    unknown_ids: list[str] = []
    seen: dict[tuple[int, str], tuple[int, str]] = {}
    out: list[tuple[int, int, str]] = []
    for a in annotations:
        row = _lookup(a.item_id, id_to_row.get)
        label = _lookup(a.label, lambda t: resolve_label(t, classes, name_to_index))
        if row is None:
            unknown_ids.append(a.item_id)
            problems.append(f"{a.where}: unknown id {a.item_id!r}")
        elif row in heldout_rows:
            problems.append(f"{a.where}: id {a.item_id!r} belongs to the held-out evaluation set")
        if label is None:
            problems.append(
                f"{a.where}: unknown label {a.label!r} "
                f"(classes: {list(classes)[:20]} or 0..{len(classes) - 1})"
            )
        if row is None or label is None or row in heldout_rows:
            continue
        key = (row, a.annotator)
        if key in seen:
            if seen[key][0] != label:
                problems.append(
                    f"{a.where}: annotator {a.annotator!r} labels id {a.item_id!r} as {a.label!r} "
                    f"but {seen[key][1]} gives another label"
                )
            continue
        seen[key] = (label, a.where)
        out.append((row, label, a.annotator))
    if problems:
        raise NcalError(_problem_message(name, problems))
    return out
