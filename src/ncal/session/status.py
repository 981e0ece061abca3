"""A session's status: counts, label distribution, rounds, annotator agreement and reliability, and
the held-out learning curve (``DIR/learning_curve.png``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._utils.io import atomic_write
from . import aggregate as agg
from .store import SessionStore


def annotator_table(a: Any, *, n_items: int, num_classes: int) -> list[dict[str, Any]]:
    """Per annotator: labels given, Dawid–Skene reliability and agreement with the aggregate.

    ``a`` is the session's :class:`ncal.session.core.Aggregate`; Dawid–Skene is fitted here when
    the aggregate came from the majority vote.
    """
    A = len(a.annotators)
    ds = a.ds
    if ds is None and A >= 1:
        ds = agg.dawid_skene(
            a.items, a.annotator_idx, a.given, n_items=n_items,
            n_annotators=A, num_classes=num_classes,
        )  # fmt: skip
    rows = []
    for i, name in enumerate(a.annotators):
        mine = a.annotator_idx == i
        agree = float(np.mean(a.given[mine] == a.labels[a.items[mine]])) if mine.any() else None
        rows.append(
            {
                "annotator": name,
                "n_labels": int(mine.sum()),
                "ds_reliability": float(ds.reliability[i]) if ds is not None else None,
                "agreement_with_aggregate": agree,
            }
        )
    return rows


def agreement_summary(a: Any, *, n_items: int, num_classes: int) -> dict[str, Any]:
    """Overall pairwise agreement, Krippendorff's alpha and agreement per annotator pair."""
    A = len(a.annotators)
    overall, pair_rate, overlap = agg.pairwise_agreement(
        a.items, a.annotator_idx, a.given, n_items=n_items, n_annotators=max(A, 1)
    )
    alpha = agg.krippendorff_alpha(a.items, a.given, n_items=n_items, num_classes=num_classes)
    pairs = [
        {
            "a": a.annotators[i],
            "b": a.annotators[j],
            "overlap": int(overlap[i, j]),
            "agreement": float(pair_rate[i, j]),
        }
        for i in range(A)
        for j in range(i + 1, A)
        if overlap[i, j] > 0
    ]
    return {"pairwise": overall, "krippendorff_alpha": alpha, "pairs": pairs}


def round_table(store: SessionStore) -> list[dict[str, Any]]:
    """One dict per stored round (number, time, selector, labeled, batch sizes, held-out acc)."""
    keys = (
        "round",
        "created_at",
        "selector",
        "n_labeled",
        "n_query",
        "n_relabel",
        "heldout_accuracy",
    )
    return [{k: r[k] for k in keys} for r in store.rounds()]


def session_status(
    store: SessionStore,
    a: Any,
    *,
    classes: list[str],
    features_meta: dict[str, Any],
    plot_path: Path | None,
) -> dict[str, Any]:
    """The status record of ``ncal session status`` (see :meth:`ncal.session.Session.status`).

    Parameters
    ----------
    store : SessionStore
    a : Aggregate
        The session's aggregated labels.
    classes : list of str
    features_meta : dict
        The session's ``features`` meta entry (reported as is).
    plot_path : Path or None
        Where to draw the learning curve (when some round has a held-out accuracy); None: no plot.
    """
    held, _ = store.splits()
    n_items = store.n_items()
    labeled = (a.labels >= 0) & ~held
    dist = np.bincount(a.labels[labeled], minlength=len(classes))
    rounds = round_table(store)
    drawn = None
    if plot_path is not None and any(r["heldout_accuracy"] is not None for r in rounds):
        drawn = str(plot_learning_curve(rounds, plot_path))
    return {
        "n_items": int(n_items),
        "n_pool": int((~held).sum()),
        "n_heldout": int(held.sum()),
        "n_labeled": int(labeled.sum()),
        "n_unlabeled": int((~held).sum() - labeled.sum()),
        "n_annotations": len(store.annotations()["id"]),
        "n_annotators": len(a.annotators),
        "aggregation": a.method,
        "label_distribution": {c: int(v) for c, v in zip(classes, dist)},
        "rounds": rounds,
        "agreement": agreement_summary(a, n_items=n_items, num_classes=len(classes)),
        "annotators": annotator_table(a, n_items=n_items, num_classes=len(classes)),
        "features": features_meta,
        "learning_curve_png": drawn,
    }


def plot_learning_curve(rounds: list[dict[str, Any]], path: Path) -> Path:
    """Held-out accuracy over labeled items, one point per round that has one (atomic write)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    pts = [(r["n_labeled"], r["heldout_accuracy"], r["round"]) for r in rounds]
    pts = [p for p in pts if p[1] is not None]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    try:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o")
        for x, y, rnd in pts:
            ax.annotate(str(rnd), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
        ax.set_xlabel("labeled items (aggregated labels)")
        ax.set_ylabel("held-out accuracy")
        ax.set_title("learning curve (label: round)")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return atomic_write(path, lambda fh: fig.savefig(fh, dpi=100, format="png"))
    finally:
        plt.close(fig)
