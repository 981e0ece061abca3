"""``ncal session``: init / next / import / review / status / export of a labeling session.

Each handler takes the parsed ``argparse.Namespace`` and returns the exit code; user errors raise
``NcalError`` (printed by :func:`ncal.cli.main` as ``error: ...``, exit 2).
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from typing import Any

from ..errors import NcalError
from .coldstart import COLD_START
from .core import AGGREGATIONS, MODEL_CHOICES, Session, parse_classes
from .exporters import check_output_path, write_review_csv
from .progress import Progress
from .store import session_files

# The library's errors name arguments; on the command line the same settings are flags.
_FLAGS = {
    "folds": "--folds",
    "k": "--k",
    "relabel_fraction": "--relabel-fraction",
    "cold_start": "--cold-start",
    "classes": "--classes",
    "classes_file": "--classes-file",
    "method": "--method",
    "aggregation": "--aggregation",
    "extractor": "--extractor",
    "id_column": "--id-column",
    "pca_dim": "--pca-dim",
    "image_size": "--image-size",
    "image_url_prefix": "--image-url-prefix",
    "annotator_map": "--annotator-map",
    "model": "--model",
    "replace": "--replace",
}


def flag_message(message: str) -> str:
    """``message`` with each quoted argument name (`` `k` ``) replaced by its flag (`` `--k` ``)."""
    for arg, flag in _FLAGS.items():
        message = message.replace(f"`{arg}`", f"`{flag}`")
    return message


def _speaks_flags(cmd: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Re-raise the library's errors from ``cmd`` worded with the command line's flags."""

    @functools.wraps(cmd)
    def run(args: argparse.Namespace) -> int:
        try:
            return cmd(args)
        except NcalError as exc:
            reworded = flag_message(str(exc))
            if reworded == str(exc):
                raise
            raise type(exc)(reworded) from exc

    return run


def _parse_params(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NcalError(f"`--strategy-params` must be a JSON object; got {text!r} ({exc})") from exc
    if not isinstance(params, dict):
        raise NcalError(f"`--strategy-params` must be a JSON object; got {text!r}")
    return params


def _progress(args: argparse.Namespace) -> Progress:
    """Phase lines on stderr unless ``--quiet``."""
    return Progress(enabled=not getattr(args, "quiet", False))


def _num(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{v:.3f}"


@_speaks_flags
def cmd_init(args: argparse.Namespace) -> int:
    classes = parse_classes(args.classes, args.classes_file)
    train = {"epochs_max": args.epochs} if args.epochs is not None else None
    with Session.create(
        args.dir,
        args.pool,
        classes=classes,
        id_column=args.id_column,
        extractor=args.extractor,
        pca_dim=args.pca_dim,
        image_size=args.image_size,
        image_url_prefix=args.image_url_prefix,
        seed=args.seed,
        train=train,
        aggregation=args.aggregation,
        cold_start=args.cold_start,
        progress=_progress(args),
    ) as s:
        pool, feats = s.meta["pool"], s.meta["features"]
        print(
            f"session created in {s.dir}: {pool['n_items'] - pool['n_heldout']} pool items, "
            f"{pool['n_heldout']} held-out, {s.num_classes} classes"
        )
        how = feats["name"]
        if feats.get("fallback_reason"):
            how += f" (pretrained extractor unavailable: {feats['fallback_reason']})"
        print(f"features: {feats['dim']}-d, {how}")
    return 0


@_speaks_flags
def cmd_next(args: argparse.Namespace) -> int:
    train = {"epochs_max": args.epochs} if args.epochs is not None else None
    with Session(args.dir, progress=_progress(args)) as s:
        res = s.next_batch(
            args.k,
            strategy=args.strategy,
            strategy_params=_parse_params(args.strategy_params),
            relabel_fraction=args.relabel_fraction,
            seed=args.seed,
            cold_start=args.cold_start,
            train=train,
            prefill=args.prefill,
            model=args.model,
            replace=args.replace,
        )
    if res.note:
        print(f"note: {flag_message(res.note)}")
    n_rel = sum(1 for b in res.items if b["kind"] == "relabel")
    state = f"same batch as before, {res.pending} still unlabeled" if res.reused else "new batch"
    how = f"{res.selector} (cold start)" if res.fallback else res.selector
    print(
        f"round {res.round}: {len(res.items) - n_rel} to label + {n_rel} to relabel "
        f"via {how} [{state}]"
    )
    choice = res.info.get("model_choice")
    if choice and not res.reused:
        cv = ", ".join(f"{k} {v:.3f}" for k, v in choice["cv_accuracy"].items())
        print(
            f"model: {choice['model']} on {choice['features']} features ({choice['reason']}"
            + (f"; CV accuracy: {cv})" if cv else ")")
        )
    if res.heldout_accuracy is not None:
        print(f"held-out accuracy of this round's model: {res.heldout_accuracy:.4f}")
    print(f"  {res.csv_path}\n  {res.labelstudio_path}")
    return 0


@_speaks_flags
def cmd_import(args: argparse.Namespace) -> int:
    with Session(args.dir, progress=_progress(args)) as s:
        rep = s.import_labels(args.file, annotator=args.annotator, annotator_map=args.annotator_map)
    if rep.unmapped:
        print(f"note: annotators not in --annotator-map keep their ids: {rep.unmapped[:20]}")
    if rep.already_imported:
        print(f"{rep.source_file} was already imported (same content); nothing changed")
    else:
        print(
            f"imported {rep.n_new} new label(s) from {rep.source_file} "
            f"({rep.format}; {rep.n_rows} rows, "
            f"{rep.n_skipped} blank/cancelled skipped)"
        )
    return 0


@_speaks_flags
def cmd_review(args: argparse.Namespace) -> int:
    with Session(args.dir, progress=_progress(args)) as s:
        if args.out:  # before the work: never replace the store or an input with a CSV
            check_output_path(args.out, protected=session_files(s.dir, s.store))
        rows = s.review(args.top, folds=args.folds, seed=args.seed)
    if args.out:
        write_review_csv(args.out, rows)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    if not rows:
        print("nothing to review yet (need at least 2 labeled items)")
        return 0
    print(
        f"{'rank':>4}  {'score':>5}  {'id':<24} {'label':<12} {'suggested':<12} dist  1-p  disagree"
    )
    for r in rows:
        print(
            f"{r['rank']:>4}  {r['score']:.3f}  {r['id'][:24]:<24} {r['label_name'][:12]:<12} "
            f"{r['suggested'][:12]:<12} {r['distance']:.2f}  {r['self_confidence']:.2f}  "
            f"{r['disagreement']:.2f}"
        )
    return 0


@_speaks_flags
def cmd_status(args: argparse.Namespace) -> int:
    with Session(args.dir, progress=_progress(args)) as s:
        st = s.status(plot=not args.no_plot)
    if args.json:
        print(json.dumps(st, indent=1, default=str))
        return 0
    print(
        f"pool {st['n_pool']} (labeled {st['n_labeled']}, unlabeled {st['n_unlabeled']}), "
        f"held-out {st['n_heldout']}; {st['n_annotations']} annotations by {st['n_annotators']} "
        f"annotator(s); aggregation {st['aggregation']}"
    )
    print("labels: " + ", ".join(f"{c}={n}" for c, n in st["label_distribution"].items()))
    ag = st["agreement"]
    print(
        f"agreement: pairwise {_num(ag['pairwise'])}, "
        f"Krippendorff's alpha {_num(ag['krippendorff_alpha'])}"
    )
    for a in st["annotators"]:
        rel = a["ds_reliability"]
        print(
            f"  {a['annotator']}: {a['n_labels']} labels, DS reliability "
            f"{'n/a' if rel is None else f'{rel:.3f}'}"
        )
    for r in st["rounds"]:
        acc = r["heldout_accuracy"]
        print(
            f"  round {r['round']}: {r['selector']}, labeled {r['n_labeled']}, batch "
            f"{r['n_query']}+{r['n_relabel']}, "
            f"held-out acc {'n/a' if acc is None else f'{acc:.4f}'}"
        )
    if st["learning_curve_png"]:
        print(f"learning curve: {st['learning_curve_png']}")
    return 0


@_speaks_flags
def cmd_export(args: argparse.Namespace) -> int:
    with Session(args.dir, progress=_progress(args)) as s:
        if args.out:  # never replace the store or an input with a CSV
            check_output_path(args.out, protected=session_files(s.dir, s.store))
        path, n = s.export_labels(args.out, method=args.method)
    print(f"wrote {n} labels to {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``session`` command and its subcommands to the ``ncal`` parser."""
    # Long on purpose: argparse declarations only, one per flag, so the whole command-line interface
    # of `ncal session` reads in one place (no logic here).
    p = subparsers.add_parser(
        "session",
        help="human-in-the-loop labeling session (init, next, import, review, status, export)",
        description="A resumable labeling loop for a pool and imperfect annotators.",
    )
    sub = p.add_subparsers(dest="session_command", metavar="SUBCOMMAND")
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("--quiet", action="store_true", help="no progress lines on stderr")

    q = sub.add_parser("init", help="create a session for a pool", parents=[quiet])
    q.add_argument("dir", help="session directory (created)")
    q.add_argument("--pool", required=True, help="image folder, .npz, .npy or .parquet")
    q.add_argument("--classes", help="comma-separated class names")
    q.add_argument("--classes-file", help="file with one class name per line")
    q.add_argument("--id-column", default="id", help="id column of a parquet pool (default: id)")
    q.add_argument("--extractor", default="auto", choices=("auto", "pretrained", "pixels"))
    q.add_argument("--pca-dim", type=int, default=64, help="PCA size of the pixel fallback")
    q.add_argument(
        "--image-size", type=int, default=16, help="downscale size of the pixel fallback"
    )
    q.add_argument("--image-url-prefix", help="Label Studio image URL = prefix + item id")
    q.add_argument("--aggregation", default="auto", choices=AGGREGATIONS)
    q.add_argument("--cold-start", default="random", choices=COLD_START)
    q.add_argument("--epochs", type=int, help="training epochs cap per round (epochs_max)")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_init)

    q = sub.add_parser(
        "next",
        help="the next batch to label (the same batch until all of it is labeled)",
        parents=[quiet],
    )
    q.add_argument("dir")
    q.add_argument("--k", type=int, default=100, help="batch size")
    q.add_argument("--strategy", default="ncal_r", help="acquisition strategy (`ncal strategies`)")
    q.add_argument("--strategy-params", help='JSON object, e.g. \'{"direction": "low"}\'')
    q.add_argument(
        "--relabel-fraction",
        type=float,
        default=0.0,
        help="share of the batch taken from the top of the review queue (kind relabel)",
    )
    q.add_argument("--cold-start", choices=COLD_START, help="override the session's cold start")
    q.add_argument("--epochs", type=int, help="override epochs_max for this fit")
    q.add_argument("--prefill", action="store_true", help="include model predictions in the files")
    q.add_argument("--seed", type=int, default=0, help="selection / training seed")
    q.add_argument(
        "--model",
        default="auto",
        choices=MODEL_CHOICES,
        help="auto: logistic regression or MLP, and the feature set, chosen by cross-validation",
    )
    q.add_argument(
        "--replace",
        action="store_true",
        help="supersede an unfinished last batch instead of handing it out again",
    )
    q.set_defaults(func=cmd_next)

    q = sub.add_parser(
        "import",
        help="import labels (CSV id,label[,annotator] or Label Studio JSON)",
        parents=[quiet],
    )
    q.add_argument("dir")
    q.add_argument("file")
    q.add_argument("--annotator", help="annotator name for CSV files without an annotator column")
    q.add_argument(
        "--annotator-map",
        help="JSON object or CSV (id,name) mapping Label Studio user ids/emails to names",
    )
    q.set_defaults(func=cmd_import)

    q = sub.add_parser("review", help="labeled items most likely mislabeled", parents=[quiet])
    q.add_argument("dir")
    q.add_argument("--top", type=int, default=50)
    q.add_argument("--folds", type=int, default=5)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", help="also write the queue as CSV")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_review)

    q = sub.add_parser(
        "status", help="counts, agreement, annotator reliability, learning curve", parents=[quiet]
    )
    q.add_argument("dir")
    q.add_argument("--json", action="store_true")
    q.add_argument("--no-plot", action="store_true")
    q.set_defaults(func=cmd_status)

    q = sub.add_parser("export", help="write the final labels CSV", parents=[quiet])
    q.add_argument("dir")
    q.add_argument("--method", default="ds", choices=("ds", "majority"))
    q.add_argument("--out", help="output CSV (default DIR/labels.csv)")
    q.set_defaults(func=cmd_export)

    def _help(_args: argparse.Namespace) -> int:
        p.print_help()
        return 1

    p.set_defaults(func=_help)
    return p
