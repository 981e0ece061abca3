"""A resumable human-in-the-loop labeling session (the library behind ``ncal session``).

Layout of a session directory::

    DIR/session.sqlite            the store (items, annotations, rounds, batches, meta)
    DIR/features.npy              (N, D) float32 features, row i = item row i
    DIR/labelstudio_config.xml    a Label Studio labeling interface for the exported tasks
    DIR/batches/round_XXX.csv     a batch to label (id, kind, round, label, annotator[, prediction])
    DIR/batches/round_XXX.labelstudio.json   the same batch as Label Studio import tasks
    DIR/rounds/round_XXX.npz      the round's candidate signals (rows, FF counts, predictions)
    DIR/labels.csv                final labels (``export``)
    DIR/learning_curve.png        held-out accuracy per round (``status``, with a held-out set)

Every write to the store is one transaction, and ``next`` writes its round only after the model is
fit and the batch selected, so Ctrl-C or a crash at any point leaves the session as it was. Files
under ``batches/`` are derived from the store and rewritten whenever the batch is asked for again.

Aggregation: ``auto`` uses Dawid–Skene when at least two annotators exist and some item has labels
from two of them, else the majority vote (ties to the lowest class index). Only the latest label of
each annotator for an item is used (a relabel by the same annotator replaces that annotator's vote;
every annotation stays in the store).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._utils.io import atomic_save_npy, atomic_write_text, dumps
from ..errors import CorruptRunError, NcalError
from . import aggregate as agg
from .batches import plan_batch
from .coldstart import COLD_START
from .exporters import (
    image_urls,
    labelstudio_config,
    labelstudio_tasks,
    write_batch_csv,
    write_labels_csv,
    write_labelstudio_tasks,
)
from .images import IMAGE_DIR, write_pool_images
from .importers import read_annotations, validate
from .pool import file_sha256, load_pool, pixel_pca_features, pool_features
from .progress import SILENT, Progress, count
from .review import review_queue
from .status import session_status
from .store import DB_NAME, SessionStore, create_store, utc_now

AGGREGATIONS = ("auto", "ds", "majority")
FEATURES_FILE = "features.npy"
PIXEL_FEATURES_FILE = "features_pixels.npy"
MODEL_CHOICES = ("auto", "logreg", "mlp")
NEW_KIND = "new"  # what a new item is called in batch files (the store calls it "query")


def parse_classes(
    classes: str | list[str] | None, classes_file: str | Path | None
) -> list[str] | None:
    """Class names from ``a,b,c`` or a list, or from a file with one name per line."""
    if classes is not None and classes_file is not None:
        raise NcalError("give `classes` or `classes_file`, not both")
    if classes_file is not None:
        p = Path(classes_file)
        if not p.is_file():
            raise NcalError(f"`classes_file` {str(classes_file)!r} does not exist")
        names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    elif classes is None:
        return None
    elif isinstance(classes, str):
        names = [c.strip() for c in classes.split(",")]
    else:
        names = [str(c).strip() for c in classes]
    if any(not n for n in names):
        raise NcalError(f"class names must be non-empty; got {names}")
    if len(set(names)) != len(names):
        raise NcalError(f"class names must be unique; got {names}")
    if len(names) < 2:
        raise NcalError(f"a session needs at least 2 classes; got {names}")
    return names


def _class_names(classes: list[str] | None, pool: Any) -> list[str]:
    """The session's class names: ``classes``, else the pool's; checked against held-out labels."""
    names = classes if classes is not None else pool.class_names
    if names is None:
        raise NcalError("no class names: the pool names none, so pass `classes`")
    names = parse_classes(list(names), None)
    if pool.heldout_labels.max() >= len(names):
        raise NcalError(
            f"held-out labels go up to {int(pool.heldout_labels.max())} but there are only "
            f"{len(names)} classes"
        )
    return names


def _save_features(
    directory: Path, feats: np.ndarray, info: dict[str, Any], name: str = FEATURES_FILE
) -> dict[str, Any]:
    """Write ``name`` atomically; return its meta entry (extractor info, file, hash)."""
    path = directory / name
    atomic_save_npy(path, np.ascontiguousarray(feats, dtype=np.float32))
    return {**info, "file": name, "sha256": file_sha256(path), "dim": int(feats.shape[1])}


def load_annotator_map(path: str | Path | dict[str, str] | None) -> dict[str, str]:
    """Annotator names by the id a file gives (e.g. Label Studio user ids): a JSON object
    ``{"17": "alice"}`` or a CSV with two columns (id, name; a header row is optional)."""
    import csv

    if path is None:
        return {}
    if isinstance(path, dict):
        return {str(k): str(v) for k, v in path.items()}
    p = Path(path)
    if not p.is_file():
        raise NcalError(f"`annotator_map` {str(path)!r} does not exist")
    text = p.read_text(encoding="utf-8-sig")
    if p.suffix.lower() == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise NcalError(f"`annotator_map` {p.name} is not valid JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise NcalError(f"`annotator_map` {p.name} must be a JSON object id -> name")
        return {str(k): str(v) for k, v in obj.items()}
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    if any(len(r) != 2 for r in rows):
        raise NcalError(f"`annotator_map` {p.name}: every CSV row must be `id,name`")
    if rows and [c.strip().lower() for c in rows[0]] in (["id", "name"], ["id", "annotator"]):
        rows = rows[1:]
    return {r[0].strip(): r[1].strip() for r in rows}


@dataclass
class Aggregate:
    """Aggregated labels of every item (row order).

    labels : (N,) int64, -1 where unannotated; confidence : (N,) posterior / vote share (NaN if
    none);
    n_labels : (N,) labels used (one per annotator); method : "ds" or "majority";
    annotators : annotator names (index = annotator id); ds : the fitted model when DS ran.
    """

    labels: np.ndarray
    confidence: np.ndarray
    n_labels: np.ndarray
    method: str
    annotators: list[str]
    items: np.ndarray
    annotator_idx: np.ndarray
    given: np.ndarray
    ds: agg.DawidSkeneResult | None = None
    fallback_reason: str | None = None


@dataclass
class BatchResult:
    """The batch of one round: ``items`` (dicts: id, item_row, kind (``new`` | ``relabel``), score,
    prediction, confidence).

    ``reused``: the stored batch was handed out again (no new batch was made); ``pending``: how
    many of its items still have no label since it was issued; ``note``: why it was re-issued.
    """

    round: int
    items: list[dict[str, Any]]
    reused: bool
    selector: str
    fallback: str | None
    csv_path: Path
    labelstudio_path: Path
    heldout_accuracy: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    pending: int = 0
    note: str | None = None


@dataclass
class ImportReport:
    """Result of importing one file."""

    source_file: str
    source_hash: str
    format: str
    n_rows: int
    n_new: int
    n_skipped: int
    already_imported: bool
    unmapped: list[str] = field(default_factory=list)


class Session:
    """An open labeling session (see the module docstring).

    Use :meth:`create` to start one and ``Session(DIR)`` to reopen it.
    """

    def __init__(self, directory: str | Path, *, progress: Progress | None = None) -> None:
        self.progress = progress if progress is not None else SILENT
        self.dir = Path(directory)
        self.store = SessionStore(self.dir / DB_NAME)
        self.meta = self.store.all_meta()
        for key in ("classes", "pool", "features", "settings"):
            if key not in self.meta:
                raise CorruptRunError(
                    f"`{self.dir / DB_NAME}` has no `{key}` in meta; not a session"
                )
        self.classes: list[str] = list(self.meta["classes"])
        self._features: np.ndarray | None = None

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ init
    @classmethod
    def create(
        cls,
        directory: str | Path,
        pool: str | Path,
        *,
        classes: list[str] | None = None,
        id_column: str = "id",
        extractor: str = "auto",
        pca_dim: int = 64,
        image_size: int = 16,
        image_url_prefix: str | None = None,
        seed: int = 0,
        train: dict[str, Any] | None = None,
        aggregation: str = "auto",
        cold_start: str = "random",
        progress: Progress | None = None,
    ) -> Session:
        """Create a session in ``directory`` for the pool at ``pool``.

        Parameters
        ----------
        directory : the session directory (created; must not hold a session yet).
        pool : image folder, ``.npz``, ``.npy`` or ``.parquet``
            (:func:`ncal.session.pool.load_pool`).
        classes : class names (default: the pool's ``class_names``).
        id_column : id column of a parquet pool.
        extractor : ``auto`` | ``pretrained`` | ``pixels`` (image pools only).
        pca_dim, image_size : settings of the pixel fallback.
        image_url_prefix : Label Studio ``image`` = prefix + item id (default: the absolute file
            path).
        seed : seed of feature extraction (PCA).
        train : TrainConfig overrides for every round's fit.
        aggregation : ``auto`` | ``ds`` | ``majority``.
        cold_start : ``random`` | ``kcenter`` — selection while fewer than 2 classes are labeled.
        progress : phase lines on stderr (default: silent).

        Notes
        -----
        An image pool stored in an ``.npz`` gets its images written as PNGs under ``DIR/images``
        for the Label Studio tasks. When the pretrained extractor made the features, the pixel
        features are kept too (``features_pixels.npy``): each round chooses between them by
        cross-validation (:mod:`ncal.session.model_choice`).
        """
        progress = progress if progress is not None else SILENT
        if aggregation not in AGGREGATIONS:
            raise NcalError(
                f"`aggregation` must be one of {list(AGGREGATIONS)}; got {aggregation!r}"
            )
        if cold_start not in COLD_START:
            raise NcalError(f"`cold_start` must be one of {list(COLD_START)}; got {cold_start!r}")
        d = Path(directory)
        if (d / DB_NAME).exists():
            raise NcalError(f"`{d}` already holds a session; choose a new directory")
        from .fit import train_config

        train_config(train)  # fail early on bad training settings
        with progress.phase(f"reading pool {pool}"):
            p = load_pool(pool, id_column=id_column)
        names = _class_names(classes, p)
        with progress.phase(f"features of {count(len(p))} items (extractor {extractor})"):
            feats, feat_info = pool_features(
                p, extractor=extractor, pca_dim=pca_dim, image_size=image_size, seed=seed
            )
        d.mkdir(parents=True, exist_ok=True)
        with progress.phase(f"writing {feats.shape[0]:,} x {feats.shape[1]} features"):
            feat_info = _save_features(d, feats, feat_info)
        del feats
        alt_features = []
        if p.kind == "images" and feat_info["name"] == "pretrained":
            with progress.phase("pixel features too (each round picks the better set by CV)"):
                px, px_info = pixel_pca_features(p, size=image_size, dim=pca_dim, seed=seed)
                alt_features.append(_save_features(d, px, px_info, PIXEL_FEATURES_FILE))
        image_dir = None
        if p.kind == "images" and p.images is not None:
            write_pool_images(p, d, progress=progress)
            image_dir = IMAGE_DIR
        pool_meta = {
            **p.source,
            "kind": p.kind,
            "n_items": len(p),
            "n_heldout": int((p.heldout_labels >= 0).sum()),
            "image_url_prefix": image_url_prefix,
            "image_dir": image_dir,
        }
        settings = {
            "train": dict(train or {}),
            "aggregation": aggregation,
            "cold_start": cold_start,
            "seed": int(seed),
        }
        meta = {
            "classes": names,
            "pool": pool_meta,
            "features": feat_info,
            "alt_features": alt_features,
            "settings": settings,
            "created_at": utc_now(),
            "ncal_version": __version__,
        }
        create_store(d / DB_NAME, ids=p.ids, heldout_labels=p.heldout_labels, meta=meta)
        atomic_write_text(
            d / "labelstudio_config.xml", labelstudio_config(names, images=p.kind == "images")
        )
        return cls(d, progress=progress)

    # ------------------------------------------------------------------------------------ data
    @property
    def features(self) -> np.ndarray:
        """(N, D) float32 features (memory-mapped)."""
        if self._features is None:
            path = self.dir / self.meta["features"]["file"]
            if not path.is_file():
                raise CorruptRunError(f"session features `{path}` are missing")
            self._features = np.load(path, mmap_mode="r")
            if self._features.shape[0] != self.store.n_items():
                raise CorruptRunError(
                    f"`{path}` has {self._features.shape[0]} rows but the store has "
                    f"{self.store.n_items()} items"
                )
        return self._features

    def feature_sets(self) -> dict[str, np.ndarray]:
        """Feature-set name -> (N, D) memory-mapped features, the primary set first."""
        sets = {self.meta["features"]["name"]: self.features}
        for entry in self.meta.get("alt_features", []):
            path = self.dir / entry["file"]
            if not path.is_file():
                raise CorruptRunError(f"session features `{path}` are missing")
            sets[entry["name"]] = np.load(path, mmap_mode="r")
        return sets

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _annotation_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """Latest label per (item, annotator): items, annotator indices, labels, annotator names."""
        a = self.store.annotations()
        names = sorted(set(a["annotator"].tolist()))
        index = {n: i for i, n in enumerate(names)}
        ann = np.array([index[n] for n in a["annotator"]], dtype=np.int64)
        keep = agg.latest_per_pair(a["item_row"], ann)
        return a["item_row"][keep], ann[keep], a["label"][keep], names

    def aggregate(self, method: str = "auto") -> Aggregate:
        """Aggregated labels of every item (see the module docstring for ``auto``)."""
        if method not in AGGREGATIONS:
            raise NcalError(f"`method` must be one of {list(AGGREGATIONS)}; got {method!r}")
        items, ann, labels, names = self._annotation_arrays()
        n = self.store.n_items()
        n_labels = np.bincount(items, minlength=n).astype(np.int64)
        reason = None
        if method == "auto":  # the rule of ncal.consensus.consensus_labels, so runs agree
            ok, reason = agg.ds_identifiable(items, ann)
            method = "ds" if ok else "majority"
        if method == "ds" and len(names) >= 1:
            ds = agg.dawid_skene(
                items, ann, labels, n_items=n, n_annotators=len(names), num_classes=self.num_classes
            )
            conf = np.where(ds.labels >= 0, ds.posteriors.max(axis=1), np.nan)
            return Aggregate(ds.labels, conf, n_labels, "ds", names, items, ann, labels, ds)
        mv = agg.majority_vote(items, ann, labels, n_items=n, num_classes=self.num_classes)
        return Aggregate(
            mv.labels, mv.confidence, n_labels, "majority", names, items, ann, labels,
            fallback_reason=reason,
        )  # fmt: skip

    # ------------------------------------------------------------------------------------ import
    def import_labels(
        self,
        path: str | Path,
        *,
        annotator: str | None = None,
        annotator_map: str | Path | dict[str, str] | None = None,
    ) -> ImportReport:
        """Import a CSV or Label Studio export; all-or-nothing, idempotent (by content hash).

        Parameters
        ----------
        path : ``.csv`` (``id,label[,annotator]``) or Label Studio export ``.json``.
        annotator : annotator name for CSV rows without an ``annotator`` column (default
        ``default``).
        annotator_map : JSON/CSV file or dict mapping the annotator a file gives (a Label Studio
            user id or email) to a name (:func:`load_annotator_map`). Annotators it does not
            name keep their id and are listed in ``ImportReport.unmapped``.
        """
        from dataclasses import replace

        p = Path(path)
        if not p.is_file():
            raise NcalError(f"annotation file `{path}` does not exist")
        names = load_annotator_map(annotator_map)
        digest = file_sha256(p)
        fmt, raw, skipped = read_annotations(p, default_annotator=annotator or "default")
        unmapped = sorted({r.annotator for r in raw if r.annotator not in names}) if names else []
        raw = [replace(r, annotator=names.get(r.annotator, r.annotator)) for r in raw]
        if self.store.has_import(digest):
            return ImportReport(str(p), digest, fmt, len(raw), 0, skipped, True, unmapped)
        held, _ = self.store.splits()
        rows = validate(
            p.name,
            raw,
            id_to_row=self.store.id_to_row(),
            heldout_rows=set(np.flatnonzero(held).tolist()),
            classes=self.classes,
        )
        if not rows:
            raise NcalError(f"`{p.name}` holds no labels (all {skipped} rows blank or cancelled)")
        n_new = self.store.add_annotations(
            rows, source_file=str(p.resolve()), source_hash=digest, fmt=fmt
        )
        return ImportReport(str(p), digest, fmt, len(rows), n_new, skipped, False, unmapped)

    # ------------------------------------------------------------------------------------ review
    def review(
        self, top: int | None = 50, *, folds: int = 5, seed: int = 0, method: str = "auto"
    ) -> list[dict[str, Any]]:
        """Labeled pool items ranked by mislabel suspicion
        (:func:`ncal.session.review.review_queue`).

        Returns up to ``top`` dicts (all when None) with id, row, label, label_name, score, the
        three signals, n_labels, suggested (out-of-fold prediction) and suggested_confidence.
        """
        held, _ = self.store.splits()
        a = self.aggregate(method)
        n_lab = int(((a.labels >= 0) & ~held).sum())
        with self.progress.phase(f"review: out-of-fold model on {count(n_lab)} labeled items"):
            return review_queue(
                a,
                self.features,
                held,
                ids=self.store.item_ids(),
                classes=self.classes,
                top=top,
                folds=folds,
                seed=seed,
            )

    # ------------------------------------------------------------------------------------ next
    def next_batch(
        self,
        k: int = 100,
        *,
        strategy: str = "ncal_r",
        strategy_params: dict[str, Any] | None = None,
        relabel_fraction: float = 0.0,
        seed: int = 0,
        cold_start: str | None = None,
        train: dict[str, Any] | None = None,
        prefill: bool = False,
        model: str = "auto",
        replace: bool = False,
    ) -> BatchResult:
        """The next batch to label; the unfinished last batch again while any of it is unlabeled.

        Parameters
        ----------
        k : batch size (annotations: new items + relabel requests).
        strategy, strategy_params : acquisition strategy (``ncal.strategies.get``). Relabel-aware
            strategies (``activelab``) also get the labeled items' annotations; their relabel
            picks become relabel requests.
        relabel_fraction : share of ``k`` taken from the top of the review queue (kind ``relabel``;
            an item is sent for relabeling this way at most once).
        seed : selection / training seed; round ``n`` draws from the streams ``ncal run`` uses for
            its round ``n - 1`` (:mod:`ncal.session.batches`).
        cold_start : ``random`` | ``kcenter`` while fewer than 2 classes are labeled (default: the
            session's setting).
        train : TrainConfig overrides for this call (on top of the session's).
        prefill : add the model's prediction to the exported files (``round_XXX.prefill.csv``).
        model : ``auto`` (logistic regression or MLP and the feature set, by cross-validation) |
            ``logreg`` | ``mlp``.
        replace : supersede an unfinished last batch: with no labels back for it, the round is
            recomputed (new files ``round_XXXb.csv``, ``round_XXXc.csv``, ...); with some back, a
            new round starts from the current labels.

        Notes
        -----
        While some item of the last batch has no label imported since that batch was issued, the
        same batch is handed out again (``reused=True``, ``pending`` > 0, ``note`` says why) —
        whatever the other arguments — unless ``replace``. Batch files are written once and never
        rewritten: a file a person is filling in stays as it is.
        """
        settings, strat = self._next_settings(
            k, strategy, strategy_params, relabel_fraction, seed, cold_start, train, model
        )
        last = self.store.last_round()
        number, issue, replace_round = 1, 0, False
        if last is not None:
            pending = self._pending(last)
            if pending and not replace:
                return self._export(
                    last, reused=True, prefill=prefill, pending=len(pending),
                    note=self._unfinished_note(last, pending, settings),
                )  # fmt: skip
            if self.store.labels_state() == last["labels_state"]:  # nothing came back: recompute
                number, issue, replace_round = last["round"], last["info"].get("issue", 0) + 1, True
            else:
                number = last["round"] + 1
        state = self.store.labels_state()  # before the fit: labels imported meanwhile are new
        plan, watermark = self._plan(number, settings, strat)
        plan.info = {
            "aggregation": plan.info.pop("aggregation"),
            "issue": issue,
            "last_annotation_id": watermark,
            **plan.info,
        }
        self.store.write_round(
            number=number,
            labels_state=state,
            settings=settings,
            selector=plan.selector,
            fallback=plan.fallback,
            n_labeled=plan.n_labeled,
            heldout_accuracy=plan.heldout_accuracy,
            info=plan.info,
            batch=plan.items,
            replace=replace_round,
        )
        return self._export(self.store.round(number), reused=False, prefill=prefill)

    def _plan(self, number: int, settings: dict[str, Any], strat: Any) -> tuple[Any, int]:
        """Round ``number``'s batch plan, and the last annotation id it saw."""
        watermark = int(self.store.annotations()["id"].max(initial=0))
        with self.progress.phase("aggregating labels"):
            a = self.aggregate(settings["aggregation"])
        held, held_labels = self.store.splits()
        plan = plan_batch(
            number,
            settings,
            strat,
            labels=a.labels,
            heldout=held,
            heldout_labels=held_labels,
            feature_sets=self.feature_sets(),
            classes=self.classes,
            review=lambda: self.review(None, seed=settings["seed"], method=settings["aggregation"]),
            relabeled=self.store.relabeled_rows(),
            session_dir=self.dir,
            annotations=a,
            progress=self.progress,
        )
        plan.info = {"aggregation": a.method, **plan.info}
        if a.fallback_reason:
            plan.info["aggregation_fallback_reason"] = a.fallback_reason
        return plan, watermark

    def _pending(self, rnd: dict[str, Any]) -> list[dict[str, Any]]:
        """Items of round ``rnd``'s batch with no annotation imported since it was issued."""
        seen = rnd["info"].get("last_annotation_id")
        if seen is None:  # rounds stored before the id was recorded: the store's state token
            seen = int(str(rnd["labels_state"]).split(":")[-1])
        a = self.store.annotations()
        answered = set(a["item_row"][a["id"] > seen].tolist())
        return [b for b in self.store.batch(int(rnd["round"])) if b["item_row"] not in answered]

    @staticmethod
    def _unfinished_note(
        rnd: dict[str, Any], pending: list[dict[str, Any]], settings: dict[str, Any]
    ) -> str:
        n = int(rnd["n_query"]) + int(rnd["n_relabel"])
        note = (
            f"round {rnd['round']} is unfinished: {len(pending)} of {n} item(s) have no label yet; "
            "the same batch is handed out again. Import their labels, or pass `replace` to "
            "supersede it"
        )
        if settings != rnd["settings"]:
            changed = sorted(k for k in settings if settings[k] != rnd["settings"].get(k))
            note += f" (the settings {changed} differ from that batch's and were not used)"
        return note

    def _next_settings(
        self,
        k: Any,
        strategy: str,
        strategy_params: dict[str, Any] | None,
        relabel_fraction: float,
        seed: int,
        cold_start: str | None,
        train: dict[str, Any] | None,
        model: str = "auto",
    ) -> tuple[dict[str, Any], Any]:
        """Check the arguments of :meth:`next_batch`; return the round's settings (as stored) and
        the strategy."""
        from .. import strategies

        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise NcalError(f"`k` must be a positive integer; got {k!r}")
        if not (0.0 <= float(relabel_fraction) <= 1.0):
            raise NcalError(f"`relabel_fraction` must be in [0, 1]; got {relabel_fraction!r}")
        cold = cold_start or self.meta["settings"].get("cold_start", "random")
        if cold not in COLD_START:
            raise NcalError(f"`cold_start` must be one of {list(COLD_START)}; got {cold!r}")
        if model not in MODEL_CHOICES:
            raise NcalError(f"`model` must be one of {list(MODEL_CHOICES)}; got {model!r}")
        strat = strategies.get(strategy, **(strategy_params or {}))  # validates name and params
        settings = {
            "k": int(k),
            "strategy": strategy,
            "strategy_params": strat.params(),
            "relabel_fraction": float(relabel_fraction),
            "seed": int(seed),
            "cold_start": cold,
            "train": {**self.meta["settings"].get("train", {}), **(train or {})},
            "aggregation": self.meta["settings"].get("aggregation", "auto"),
            "model": model,
        }
        # as the store will hand them back, so that a later call can compare them
        return json.loads(dumps(settings)), strat

    def batch_paths(
        self, number: int, *, issue: int = 0, prefill: bool = False
    ) -> tuple[Path, Path]:
        """The CSV and Label Studio files of round ``number``'s ``issue`` (0: ``round_003``,
        1: ``round_003b``, ...); ``prefill`` files carry ``.prefill`` in their name."""
        suffix = "" if issue == 0 else chr(ord("a") + issue)
        base = self.dir / "batches" / f"round_{number:03d}{suffix}"
        tag = ".prefill" if prefill else ""
        return Path(f"{base}{tag}.csv"), Path(f"{base}{tag}.labelstudio.json")

    def _export(
        self,
        rnd: dict[str, Any],
        *,
        reused: bool,
        prefill: bool,
        pending: int = 0,
        note: str | None = None,
    ) -> BatchResult:
        """The round's batch, its files written if they do not exist yet (never rewritten)."""
        number = int(rnd["round"])
        items = [
            {**b, "kind": NEW_KIND if b["kind"] == "query" else b["kind"]}
            for b in self.store.batch(number)
        ]
        csv_path, ls_path = self.batch_paths(
            number, issue=int(rnd["info"].get("issue", 0)), prefill=prefill
        )
        if not csv_path.exists():
            write_batch_csv(
                csv_path, items, round_number=number, classes=self.classes, prefill=prefill
            )
        if not ls_path.exists():
            tasks = labelstudio_tasks(
                items,
                round_number=number,
                classes=self.classes,
                image_urls=image_urls(self.meta["pool"], self.store.item_ids(), self.dir),
                features_file=self.meta["features"]["file"],
                prefill=prefill,
            )
            write_labelstudio_tasks(ls_path, tasks)
        return BatchResult(
            round=number,
            items=items,
            reused=reused,
            selector=rnd["selector"],
            fallback=rnd["fallback"],
            csv_path=csv_path,
            labelstudio_path=ls_path,
            heldout_accuracy=rnd["heldout_accuracy"],
            info=rnd["info"],
            pending=pending,
            note=note,
        )

    # ------------------------------------------------------------------------ status / export
    def status(self, *, plot: bool = True) -> dict[str, Any]:
        """Counts, label distribution, rounds, annotator agreement and reliability, learning
        curve (:func:`ncal.session.status.session_status`; the plot goes to
        ``DIR/learning_curve.png``)."""
        return session_status(
            self.store,
            self.aggregate(self.meta["settings"].get("aggregation", "auto")),
            classes=self.classes,
            features_meta=self.meta["features"],
            plot_path=self.dir / "learning_curve.png" if plot else None,
        )

    def export_labels(
        self, out: str | Path | None = None, *, method: str = "ds"
    ) -> tuple[Path, int]:
        """Write final labels (id, label, label_name, n_annotations, confidence) of labeled pool
        items.

        ``n_annotations`` counts the labels used (one per annotator); ``confidence`` is the
        Dawid–Skene posterior of the label (``ds``) or the winning vote share (``majority``).
        """
        if method not in ("ds", "majority"):
            raise NcalError(f"`method` must be 'ds' or 'majority'; got {method!r}")
        a = self.aggregate(method)
        held, _ = self.store.splits()
        rows = np.flatnonzero((a.labels >= 0) & ~held)
        ids = self.store.item_ids()
        table = [
            [
                ids[r],
                int(a.labels[r]),
                self.classes[int(a.labels[r])],
                int(a.n_labels[r]),
                f"{float(a.confidence[r]):.6f}",
            ]
            for r in rows
        ]
        path = Path(out) if out is not None else self.dir / "labels.csv"
        write_labels_csv(path, table)
        return path, len(table)
