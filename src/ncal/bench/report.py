"""Markdown + self-contained HTML report of a run directory or a grid directory.

The report is rebuilt from the files on disk alone (``cells.json``, ``grid.json``,
``bench_runs.jsonl`` and each cell's ``config.json`` / ``rounds.jsonl`` / ``summary.json``), so it
can be regenerated at any time, also for a grid that is still running (unfinished cells are listed
and left out of the AUBC comparisons).
"""

from __future__ import annotations

import base64
import html
import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._utils.io import read_json, read_jsonl
from ..experiment.store import RunStore
from . import figures as F
from . import stats as S
from .caveats import report_warnings
from .executors import BENCH_RUNS_FILE, GRID_FILE
from .summary import SUMMARY_FILE, results_summary, write_results_summary

NC_GROUPS = (
    ("nc", "Collapse metrics of the labeled set (given, possibly noisy, labels)"),
    ("nc_clean", "Collapse metrics of the labeled set (clean labels)"),
    ("nc_test", "Collapse metrics of the test set"),
    ("geometry_test", "Inter-class geometry of the test set"),
)
MAX_PANELS = 12
# plotted first when present (docs/algorithms.md §3: NC1, NC2 ETF distances, NC3 self-duality, NC4)
NC_FIRST = (
    "nc1",
    "nc1_quotient",
    "etf_M",
    "etf_W",
    "nc2_equinorm_M",
    "nc2_equiangular_M",
    "nc3",
    "nc4_mismatch",
    "cdnv_mean",
    "separation_ratio",
)

HOW_TO_READ = (
    "Each *cell* is one active-learning run: a dataset, a label-noise model, an acquisition "
    "strategy and a seed. A seed fixes the initial labeled set, the network initialisation and "
    "the noisy oracle's draws identically for every strategy, so strategies are compared on "
    "matched seeds (paired design). **Learning curves** show test accuracy against the number of "
    "annotations bought (the initial set included; without several annotators one annotation per "
    "labeled item), mean ± one standard deviation (ddof = 1) over seeds. **AUBC** (area under the "
    "budget curve) summarises a curve in one number: the trapezoidal area over the budget axis "
    "rescaled to [0, 1], using the actual budget spacing; higher is better, computed per seed "
    "then averaged, with a 95 % Student-t interval. **Δ vs {ref}** is the paired AUBC difference "
    "per seed; p-values come from a one-sample t-test and a Wilcoxon signed-rank test of those "
    "differences (small p = the difference is unlikely to be seed noise; with few seeds the "
    "Wilcoxon test cannot go below 2/2^n). The **pooled** comparison averages each seed's "
    "accuracy differences over all settings and budgets first and then tests over seeds: the "
    "seed, not the (setting, budget) point, is the unit of replication. The "
    "**pairwise-penalty matrix** counts, for every "
    "budget after the initial one, whether the row strategy beat the column strategy "
    "significantly (paired t-test, p < 0.05) and adds 1/(number of budgets) per win, summed over "
    "settings; a low column mean means a strategy is rarely beaten. **Query purity** is the "
    "share of correctly labeled samples in the batches a strategy bought (1 − realised noise "
    "rate of the batch): under noise that does not depend on the sample (e.g. symmetric noise) "
    "no strategy can do better than 1 − η."
)


# ------------------------------------------------------------------------------ document model


@dataclass
class _Doc:
    blocks: list[tuple] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: Sequence[str]) -> None:
        self.blocks.append(("ul", list(items)))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", list(headers), [[str(c) for c in r] for r in rows]))

    def img(self, path: Path | None, alt: str) -> None:
        if path is not None:
            self.blocks.append(("img", Path(path), alt))


def _md_inline(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(doc: _Doc, base: Path) -> str:
    """Markdown text; images linked relative to ``base``."""
    out = []
    for b in doc.blocks:
        if b[0] == "h":
            out.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "ul":
            out.append("\n".join(f"- {item}" for item in b[1]))
        elif b[0] == "table":
            head = "| " + " | ".join(_md_inline(h) for h in b[1]) + " |"
            sep = "|" + "|".join("---" for _ in b[1]) + "|"
            rows = ["| " + " | ".join(_md_inline(c) for c in r) + " |" for r in b[2]]
            out.append("\n".join([head, sep, *rows]))
        elif b[0] == "img":
            out.append(f"![{b[2]}]({b[1].relative_to(base).as_posix()})")
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    """Escape, then the two Markdown marks the report uses: **bold** and *italic*, `code`."""
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<i>\1</i>", t)
    t = re.sub(r"`(.+?)`", r"<code>\1</code>", t)
    return t


def render_html(doc: _Doc, title: str) -> str:
    """One self-contained HTML page (figures embedded as base64 PNG data URIs)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;"
        "padding:0 1em;line-height:1.45;color:#222}"
        "table{border-collapse:collapse;margin:0.8em 0;font-size:0.92em}"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee;"
        "margin:0.5em 0}code{background:#f4f4f4;padding:0 3px}h1{border-bottom:2px solid #444}"
        "h2{border-bottom:1px solid #bbb;margin-top:1.6em}</style></head><body>",
    ]
    for b in doc.blocks:
        if b[0] == "h":
            parts.append(f"<h{b[1]}>{_inline_html(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            parts.append(f"<p>{_inline_html(b[1])}</p>")
        elif b[0] == "ul":
            parts.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b[1]) + "</ul>")
        elif b[0] == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in b[1])
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in r) + "</tr>" for r in b[2]
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b[0] == "img":
            data = base64.b64encode(b[1].read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img alt="{html.escape(b[2])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{_inline_html(b[2])}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------ formatting


def fmt_num(x: Any, digits: int = 2) -> str:
    """Number with ``digits`` decimals, or an em dash for missing values."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "—"
    if np.isnan(v):
        return "—"
    if np.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:.{digits}f}"


def fmt_pm(mean: Any, std: Any, digits: int = 2) -> str:
    """``"74.61 ± 2.57"``; only the mean when the std is undefined (one seed)."""
    m, s = fmt_num(mean, digits), fmt_num(std, digits)
    return m if s == "—" else f"{m} ± {s}"


def fmt_p(p: Any) -> str:
    """p-value: 3 significant decimals, ``<0.001`` below that, em dash when undefined."""
    try:
        v = float(p)
    except (TypeError, ValueError):
        return "—"
    if np.isnan(v):
        return "—"
    return "<0.001" if v < 0.001 else f"{v:.3f}"


def _fmt_ci(lo: float, hi: float) -> str:
    return "—" if np.isnan(lo) else f"[{fmt_num(lo)}, {fmt_num(hi)}]"


def _fmt_seconds(s: float | None) -> str:
    if s is None or (isinstance(s, float) and np.isnan(s)):
        return "—"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


# ---------------------------------------------------------------------------------------- report


@dataclass
class _Context:
    """What every section of one report needs: the data, where figures go, how values are shown."""

    df: pd.DataFrame  # one row per cell × finished round (stats.load_results)
    cells: pd.DataFrame  # one row per cell (stats.load_cells)
    fig_dir: Path
    reference: str
    scale: float  # 100 when accuracies are fractions (shown in %), else 1
    unit: str
    colors: dict[str, Any]
    varying: list[str]  # setting columns that vary across the grid
    shown: list[str]  # setting columns shown in tables
    axis: str = S.LABELS  # budget column: annotations bought when recorded, else labels
    figs: list[Path] = field(default_factory=list)

    @property
    def axis_name(self) -> str:
        """How the budget axis is named in tables and figures."""
        return "annotations" if self.axis == S.ANNOTATIONS else "labels"

    def add_figure(self, doc: _Doc, path: Path | None, caption: str) -> None:
        self.figs += _add(doc, path, caption)


def write_report(
    path: str | Path,
    out: str | Path | None = None,
    *,
    reference: str = "random",
    reach: float = 0.9,
    full_accuracy: float | Mapping[str, float] | None = None,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` for a run or grid directory.

    Parameters
    ----------
    path : str or Path
        A run directory (``ncal run --out``) or a grid directory (``ncal bench``).
    out : str or Path, optional
        Where to write; default ``path`` itself.
    reference : str
        Strategy label the paired differences are taken against (docs/algorithms.md §5.1: Random).
    reach : float
        Fraction of the full-data accuracy for the labels-to-reach table.
    full_accuracy : float or mapping dataset → float, optional
        Full-data accuracy; default the best seed-mean accuracy in each setting (see
        :func:`ncal.bench.stats.labels_to_reach_table`).
    confidence : float
        Level of the AUBC t-intervals.

    Returns
    -------
    dict
        ``{"markdown": Path, "html": Path, "figures": [Path, ...]}``, plus ``"summary"``: the
        machine-readable ``results_summary.json`` (:mod:`ncal.bench.summary`) when there are
        finished rounds.
    """
    root = Path(path)
    out_dir = Path(out) if out is not None else root
    ctx = _context(root, out_dir, reference)
    grid = read_json(root / GRID_FILE)
    title_name = (grid or {}).get("name") or root.resolve().name
    title = f"ncal benchmark report — {title_name}"

    doc = _Doc()
    doc.h(1, title)
    _header(doc, root, grid, ctx.cells, ctx.df)
    doc.h(2, "How to read this")
    doc.p(HOW_TO_READ.format(ref=reference))
    if ctx.df.empty:
        doc.p("No finished rounds yet: nothing to summarise.")
        return _finish(doc, out_dir, title, ctx.figs)

    _warnings_section(doc, ctx)
    _learning_curves_section(doc, ctx)
    per_seed = S.aubc_per_seed(ctx.df, x=ctx.axis)
    _aubc_section(doc, ctx, per_seed, confidence)
    _paired_section(doc, ctx, per_seed)
    _penalty_section(doc, ctx)
    _reach_section(doc, ctx, reach, full_accuracy)
    _purity_section(doc, ctx)
    summary = results_summary(ctx.df, ctx.cells, reference)
    _label_quality_section(doc, ctx, summary)
    _training_section(doc, ctx.df, ctx.shown)
    # collapse and evaluation metrics, generically: any numeric leaf
    ctx.figs += _metric_sections(doc, ctx)
    _cells_section(doc, ctx.cells)
    result = _finish(doc, out_dir, title, ctx.figs)
    result["summary"] = write_results_summary(ctx.df, ctx.cells, out_dir, reference)
    return result


def _context(root: Path, out_dir: Path, reference: str) -> _Context:
    """Load the results and prepare an empty ``figures/`` folder."""
    df = S.load_results(root)
    cells = S.load_cells(root)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in fig_dir.glob("*.png"):  # a rebuilt report must not keep figures of a previous one
        old.unlink()
    scale = 100.0 if (S.METRIC in df and df[S.METRIC].dropna().le(1.0).all()) else 1.0
    varying = F.varying_settings(df) if len(df) else []
    return _Context(
        df=df,
        cells=cells,
        fig_dir=fig_dir,
        reference=reference,
        scale=scale,
        unit="%" if scale == 100.0 else "",
        colors=F.strategy_colors(S.strategy_order(df, reference), reference),
        varying=varying,
        shown=[c for c in ("dataset", "noise") if c in df.columns]
        + [c for c in ("model", "budget", "annotators") if c in varying],
        axis=S.budget_axis(df),
    )


def _learning_curves_section(doc: _Doc, ctx: _Context) -> None:
    doc.h(2, "Learning curves")
    curves = S.curve_table(ctx.df, x=ctx.axis)
    p = F.plot_learning_curves(
        curves,
        ctx.fig_dir / "learning_curves.png",
        colors=ctx.colors,
        ylabel=f"test accuracy ({ctx.unit or 'raw'})",
        scale=ctx.scale,
        x=ctx.axis,
        xlabel=_xlabel(ctx),
    )
    ctx.add_figure(doc, p, f"Test accuracy vs {ctx.axis_name} (mean ± std over seeds)")
    _curve_tables(doc, curves, ctx)


def _xlabel(ctx: _Context) -> str:
    return "annotations bought" if ctx.axis == S.ANNOTATIONS else "labeled samples"


def _warnings_section(doc: _Doc, ctx: _Context) -> None:
    items = report_warnings(ctx.df, ctx.reference)
    if items:
        doc.h(2, "Warnings")
        doc.p("Read the results below with these in mind:")
        doc.ul(items)


def _aubc_section(doc: _Doc, ctx: _Context, per_seed: pd.DataFrame, confidence: float) -> None:
    scale, shown = ctx.scale, ctx.shown
    aubc_tab = S.aubc_table(per_seed, confidence)
    doc.h(2, "Area under the budget curve (AUBC)")
    if aubc_tab.empty:
        doc.p("AUBC needs at least two finished rounds per run; none yet.")
        return
    doc.p(f"Areas over the {ctx.axis_name} axis ({_xlabel(ctx)}), per seed, then averaged.")
    doc.table(
        [
            *shown,
            "strategy",
            "seeds",
            f"AUBC ({ctx.unit or 'raw'}) mean ± std",
            f"{confidence:.0%} CI",
        ],
        [
            [
                *(r[c] for c in shown),
                r["strategy"],
                int(r["n"]),
                fmt_pm(r["mean"] * scale, r["std"] * scale),
                _fmt_ci(r["ci_low"] * scale, r["ci_high"] * scale),
            ]
            for _, r in aubc_tab.iterrows()
        ],
    )
    p = F.plot_aubc(aubc_tab, ctx.fig_dir / "aubc.png", colors=ctx.colors, scale=scale)
    ctx.add_figure(doc, p, f"AUBC per strategy with {confidence:.0%} t-intervals")
    dropped = len(ctx.cells[ctx.cells["rounds_done"] > 0]) - len(per_seed)
    if dropped > 0:
        doc.p(
            f"{dropped} run(s) with fewer rounds than the others of their setting (unfinished) "
            "are left out of AUBC, the paired tests and the penalty matrix."
        )


def _paired_section(doc: _Doc, ctx: _Context, per_seed: pd.DataFrame) -> None:
    reference, scale, shown = ctx.reference, ctx.scale, ctx.shown
    doc.h(2, f"Paired differences vs {reference}")
    paired = S.paired_vs_reference(per_seed, reference)
    if paired.empty:
        doc.p(
            f"No paired comparison: strategy `{reference}` is not in these results "
            "(or has no finished runs)."
        )
        return
    doc.p(
        "Δ AUBC = AUBC(strategy) − AUBC(reference) on the same seed, in points; p-values two-sided."
    )
    doc.table(
        [*shown, "strategy", "pairs", "Δ AUBC mean ± std", "t", "p (t-test)", "p (Wilcoxon)"],
        [
            [
                *(r[c] for c in shown),
                r["strategy"],
                int(r["n"]),
                fmt_pm(r["mean"] * scale, r["std"] * scale),
                fmt_num(r["t"]),
                fmt_p(r["p_t"]),
                fmt_p(r["p_w"]),
            ]
            for _, r in paired.iterrows()
        ],
    )
    pooled = S.pooled_vs_reference(ctx.df, reference, x=ctx.axis)
    if pooled.empty:
        return
    doc.p(
        "Pooled over settings and budgets, tested over seeds: for each seed, Δ accuracy (points) "
        f"is averaged over every (setting, budget after the initial one) that the strategy and "
        f"{reference} share; the tests compare those per-seed means, so n = seeds (the budgets of "
        "one seed are not independent pairs)."
    )
    doc.table(
        [
            "strategy",
            "seeds",
            "points averaged",
            "Δ accuracy mean ± std",
            "p (t-test)",
            "p (Wilcoxon)",
        ],
        [
            [
                r["strategy"],
                int(r["n"]),
                int(r["points"]),
                fmt_pm(r["mean"] * scale, r["std"] * scale),
                fmt_p(r["p_t"]),
                fmt_p(r["p_w"]),
            ]
            for _, r in pooled.iterrows()
        ],
    )


def _penalty_section(doc: _Doc, ctx: _Context) -> None:
    if len(S.strategy_order(ctx.df, ctx.reference)) < 2:
        return
    doc.h(2, "Pairwise-penalty matrix")
    mat, colmean = S.penalty_matrix(ctx.df, reference=ctx.reference)
    p = F.plot_penalty_matrix(mat, colmean, ctx.fig_dir / "penalty_matrix.png")
    ctx.add_figure(
        doc,
        p,
        "Row = winner, column = loser; entry = share of budgets with a significant win, "
        "summed over settings",
    )
    doc.table(
        ["winner \\ loser", *mat.columns],
        [[i, *(fmt_num(v) for v in mat.loc[i])] for i in mat.index]
        + [["**column mean**", *(f"**{fmt_num(v)}**" for v in colmean)]],
    )


def _reach_section(
    doc: _Doc,
    ctx: _Context,
    reach: float,
    full_accuracy: float | Mapping[str, float] | None,
) -> None:
    reach_tab = S.labels_to_reach_table(ctx.df, reach, full_accuracy)
    if reach_tab.empty:
        return
    doc.h(2, f"{ctx.axis_name.capitalize()} to reach {reach:.0%} of full-data accuracy")
    if "grid max" in set(reach_tab["source"]):
        doc.p(
            "Full-data accuracy was not given; it is replaced by the best seed-mean accuracy "
            f"any strategy reached in the setting (so this is the {ctx.axis_name} needed for "
            f"{reach:.0%} of the best accuracy in the grid). Linear interpolation between "
            "budgets; — = never reached."
        )
    doc.table(
        [
            *ctx.shown,
            "strategy",
            f"target ({ctx.unit or 'raw'})",
            f"{ctx.axis_name} (seed-mean curve)",
            "seeds reaching",
        ],
        [
            [
                *(r[c] for c in ctx.shown),
                r["strategy"],
                fmt_num(r["target"] * ctx.scale),
                fmt_num(r["labels"], 0),
                f"{r['seeds_reached']}/{r['n_seeds']}",
            ]
            for _, r in reach_tab.iterrows()
        ],
    )


def _purity_section(doc: _Doc, ctx: _Context) -> None:
    purity = S.query_purity(ctx.df)
    if purity.empty:
        return
    doc.h(2, "Query purity (correct labels in the bought batches)")
    ptab = S.query_purity_table(ctx.df)
    doc.table(
        [*ctx.shown, "strategy", "seeds", "purity (%) mean ± std"],
        [
            [
                *(r[c] for c in ctx.shown),
                r["strategy"],
                int(r["n"]),
                fmt_pm(r["mean"] * 100, r["std"] * 100),
            ]
            for _, r in ptab.iterrows()
        ],
    )
    p = F.plot_query_purity(purity, ctx.fig_dir / "query_purity.png", colors=ctx.colors)
    ctx.add_figure(doc, p, "Share of correct labels in each queried batch (mean ± std over seeds)")


def _label_quality_section(doc: _Doc, ctx: _Context, summary: dict[str, Any]) -> None:
    """Consensus purity and wrong annotations per strategy, and the annotations each strategy
    needs to reach the reference's final accuracy (from ``results_summary.json``)."""
    cols = [c for c in ("consensus_purity", "noise_rate_batch") if c in ctx.df.columns]
    cols = [c for c in cols if pd.to_numeric(ctx.df[c], errors="coerce").notna().any()]
    doc.h(2, "Label quality and spending")
    doc.p(
        f"Per strategy (seed means): **final purity** = share of training labels that are right "
        f"at the last round (consensus of an item's annotations); **wrong rate** = wrong "
        f"annotations / all annotations bought after the initial set; **OOD share** = annotations "
        f"spent on out-of-distribution items / the same; **to reach {ctx.reference}'s final** = "
        f"{ctx.axis_name} the seed-mean curve needs to reach {ctx.reference}'s final seed-mean "
        f"accuracy (— = never). Also in `{SUMMARY_FILE}`."
    )
    rows = []
    for setting in summary["settings"]:
        for strategy, v in setting["strategies"].items():
            rows.append(
                [
                    setting["name"],
                    strategy,
                    _pct(v["final_purity"]),
                    _pct(v["wrong_rate"]),
                    _pct(v["ood_share"]),
                    fmt_num(v["annotations_to_random_final"], 0),
                ]
            )
    doc.table(
        [
            "setting",
            "strategy",
            "final purity (%)",
            "wrong rate (%)",
            "OOD share (%)",
            f"to reach {ctx.reference}'s final",
        ],
        rows,
    )
    if cols:
        ctx.figs += _panels(doc, ctx, cols, "quality", "label quality")


def _pct(v: float | None) -> str:
    return fmt_num(None if v is None else 100.0 * v, 1)


# ----------------------------------------------------------------------------------- sections


def _add(doc: _Doc, path: Path | None, caption: str) -> list[Path]:
    if path is None:
        return []
    doc.img(path, caption)
    return [path]


def _header(
    doc: _Doc, root: Path, grid: dict | None, cells: pd.DataFrame, df: pd.DataFrame
) -> None:
    from .. import __version__

    doc.p(
        f"Generated {datetime.now().astimezone().isoformat(timespec='seconds')} "
        f"by ncal {__version__} from `{root}`."
    )
    doc.h(2, "Setup")
    items = _grid_items(grid) if grid else _cells_items(cells)
    statuses = cells["status"].value_counts().to_dict() if len(cells) else {}
    items.append(
        f"cells: {len(cells)} ({statuses.get('complete', 0)} complete, "
        f"{len(cells) - statuses.get('complete', 0)} unfinished), {len(df)} finished rounds"
    )
    versions = sorted({str(v) for v in _versions(root, cells)})
    items.append(f"ncal version(s) that produced the results: {', '.join(versions) or 'unknown'}")
    doc.ul(items)
    doc.h(3, "Machine and time")
    doc.ul(_machine_items(root, cells))


def _grid_items(grid: dict) -> list[str]:
    """Setup lines from the resolved grid (``grid.json``)."""
    strategies = []
    for s in grid.get("strategies", []):
        params = ", ".join(f"{k}={v}" for k, v in (s.get("params") or {}).items())
        strategies.append(f"{s['label']}" + (f" ({s['name']}: {params})" if params else ""))
    budgets = "; ".join(
        f"initial {b['initial']}, query {b['query']} × {b['rounds']} rounds"
        for b in grid.get("budget", [])
    )
    items = [
        f"datasets: {', '.join(grid.get('datasets', []))}",
        f"noise: {', '.join(grid.get('noise', []))}",
        f"strategies: {'; '.join(strategies)}",
        f"seeds: {', '.join(str(s) for s in grid.get('seeds', []))}",
        f"budget: {budgets} (counts, or fractions of the pool)",
        f"model: {', '.join(grid.get('model', []))}",
        f"training overrides: {json.dumps(grid.get('train') or {})}",
        f"evaluations: {', '.join(grid.get('evals') or []) or 'none'}",
        f"pool size: {grid.get('pool_size') or 'full'}",
    ]
    if grid.get("experiment"):
        items.append(f"other experiment settings: {json.dumps(grid['experiment'])}")
    if grid.get("description"):
        items.insert(0, f"description: {grid['description']}")
    return items


def _cells_items(cells: pd.DataFrame) -> list[str]:
    """Setup lines gathered from the cells themselves (a single run, or no ``grid.json``)."""
    items: list[str] = []
    if not len(cells):
        return items
    for col in ("dataset", "noise", "strategy", "seed", "model", "budget"):
        vals = list(dict.fromkeys(str(v) for v in cells[col]))
        items.append(f"{col}: {', '.join(vals)}")
    settings = cells.iloc[0]["settings"] or {}
    if settings.get("train"):
        items.append(f"training overrides: {json.dumps(settings['train'])}")
    return items


def _machine_items(root: Path, cells: pd.DataFrame) -> list[str]:
    """Where and how long: the last ``ncal bench`` machine, invocations, summed compute."""
    runs = read_jsonl(root / BENCH_RUNS_FILE)
    m_items = []
    if runs:
        m = runs[-1].get("machine", {})
        gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
        m_items.append(
            f"machine (last `ncal bench` run): {m.get('hostname', '?')}, {m.get('platform', '?')}, "
            f"{m.get('cpu_count', '?')} CPU cores, Python {m.get('python', '?')}"
            + (f", torch {m['torch']}" if m.get("torch") else "")
            + gpu
        )
        execs = ", ".join(
            f"{r.get('executor')} ({r.get('workers') or 'auto'} workers)" for r in runs
        )
        m_items.append(
            f"`ncal bench` invocations: {len(runs)} [{execs}], wall clock "
            f"{_fmt_seconds(sum(r.get('wall_seconds') or 0 for r in runs))} in total"
        )
    else:
        m_items.append(
            f"machine: not recorded by the run (this report was generated on {platform.node()}, "
            f"{platform.platform()})"
        )
    if len(cells):
        wall = pd.to_numeric(cells["wall_seconds"], errors="coerce")
        m_items.append(
            f"compute summed over cells: training {_fmt_seconds(cells['train_seconds'].sum())}, "
            f"selection {_fmt_seconds(cells['select_seconds'].sum())}"
            + (
                f"; run wall clock (last session of each cell) {_fmt_seconds(wall.sum())}"
                if wall.notna().any()
                else ""
            )
        )
    return m_items


def _versions(root: Path, cells: pd.DataFrame) -> list[str]:
    out = []
    for rel in cells["cell"] if len(cells) else []:
        store = RunStore(root / rel)
        cfg = store.read_config() or store.read_cell() or {}
        if cfg.get("ncal_version"):
            out.append(cfg["ncal_version"])
    return out


def _curve_tables(doc: _Doc, curves: pd.DataFrame, ctx: _Context) -> None:
    """Accuracy at every budget, one column per budget (compact for few budgets)."""
    x, shown, scale = ctx.axis, ctx.shown, ctx.scale
    budgets = sorted(curves[x].unique())
    if len(budgets) > 12:
        return
    rows = []
    keys = [*S.setting_cols(curves), "strategy"]
    for key, g in curves.groupby(keys, sort=False, dropna=False):
        rec = dict(zip(keys, key))
        by_b = {int(r[x]): fmt_pm(r["mean"] * scale, r["std"] * scale) for _, r in g.iterrows()}
        rows.append(
            [*(rec[c] for c in shown), rec["strategy"], *(by_b.get(int(b), "—") for b in budgets)]
        )
    doc.table([*shown, "strategy", *(f"{int(b)} {ctx.axis_name}" for b in budgets)], rows)


def _metric_sections(doc: _Doc, ctx: _Context) -> list[Path]:
    df = ctx.df
    figs: list[Path] = []

    def nc_cols(prefix: str) -> list[str]:
        return S.numeric_metric_columns(df, prefix, skip_counts=True, first=NC_FIRST)

    groups = [(p, t) for p, t in NC_GROUPS if nc_cols(p)]
    eval_cols = S.numeric_metric_columns(df, "eval")
    if groups:
        doc.h(2, "Neural-collapse metrics per round")
        doc.p(
            f"Mean ± std over seeds against the number of {ctx.axis_name} (NC1: within-class variability "
            "relative to between-class; ETF / equinorm terms: distance to a simplex ETF; lower = "
            "more collapsed). Panel titles say what each metric measures; the names recorded in "
            "`rounds.jsonl` are in the table of `ncal.bench.titles`."
        )
        for prefix, title in groups:
            figs += _panels(doc, ctx, nc_cols(prefix), prefix, title)
    if eval_cols:
        doc.h(2, "Evaluation metrics per round")
        doc.p(
            "Every numeric value recorded under `eval` (OOD detection, covariate shift, linear "
            "probe, category discovery, long-tail), mean ± std over seeds."
        )
        by_kind: dict[str, list[str]] = {}
        for c in eval_cols:
            by_kind.setdefault(c.split(".")[1], []).append(c)
        for kind, cols in by_kind.items():
            figs += _panels(doc, ctx, cols, f"eval.{kind}", f"eval: {kind}")
    return figs


def _panels(doc: _Doc, ctx: _Context, cols: list[str], prefix: str, title: str) -> list[Path]:
    df, fig_dir, colors, varying = ctx.df, ctx.fig_dir, ctx.colors, ctx.varying
    figs: list[Path] = []
    scols = S.setting_cols(df)
    omitted = max(0, len(cols) - MAX_PANELS)
    cols = cols[:MAX_PANELS]
    for i, (key, g) in enumerate(df.groupby(scols, sort=False, dropna=False)):
        setting = dict(zip(scols, key if isinstance(key, tuple) else (key,)))
        stitle = F.setting_title(setting, varying)
        name = f"{prefix.replace('.', '_')}_{i}.png"
        p = F.plot_metric_panels(
            g,
            cols,
            fig_dir / name,
            colors=colors,
            title=f"{title} — {stitle}",
            strip_prefix=prefix + ".",
            x=ctx.axis,
            xlabel=_xlabel(ctx),
        )
        figs += _add(doc, p, f"{title} — {stitle}")
    if omitted:
        doc.p(f"({omitted} further `{prefix}` metric(s) are in `rounds.jsonl` but not plotted.)")
    return figs


def _training_section(doc: _Doc, df: pd.DataFrame, shown: list[str]) -> None:
    """Did training reach the terminal phase, and did FF move? (docs/findings.md §1–2)."""
    specs = [
        ("reached_terminal", "rounds reaching terminal phase (%)", 100.0),
        ("train_epochs", "epochs", 1.0),
        ("train_info.final_train_acc", "final train acc (%)", 100.0),
        ("train_info.ff_zero_fraction", "pool with FF = 0 (%)", 100.0),
        ("train_seconds", "train s / round", 1.0),
        ("select_seconds", "select s / round", 1.0),
    ]
    present = [(c, h, k) for c, h, k in specs if c in df.columns and df[c].notna().any()]
    if not present:
        return
    doc.h(2, "Training diagnostics")
    doc.p(
        "Per (setting, strategy), averaged over all finished rounds and seeds. The FF signal needs "
        "training that reaches the terminal phase and a window in which predictions still move."
    )
    keys = [*S.setting_cols(df), "strategy"]
    rows = []
    for key, g in df.groupby(keys, sort=False, dropna=False):
        rec = dict(zip(keys, key))
        vals = []
        for c, _, k in present:
            v = pd.to_numeric(
                g[c].map(lambda x: float(x) if isinstance(x, (bool, np.bool_)) else x),
                errors="coerce",
            )
            vals.append(fmt_num(v.mean() * k, 1 if k == 100.0 or c == "train_epochs" else 3))
        rows.append([*(rec[c] for c in shown), rec["strategy"], *vals])
    doc.table([*shown, "strategy", *(h for _, h, _ in present)], rows)


def _cells_section(doc: _Doc, cells: pd.DataFrame) -> None:
    unfinished = cells[cells["status"] != "complete"] if len(cells) else cells
    if len(unfinished):
        doc.h(2, "Unfinished cells")
        doc.p("Rerun the same `ncal bench` command to finish them (finished cells are skipped).")
        doc.table(
            ["cell", "strategy", "seed", "rounds done"],
            [
                [
                    r["cell"],
                    r["strategy"],
                    r["seed"],
                    f"{r['rounds_done']}/{_planned(r['rounds_planned'])}",
                ]
                for _, r in unfinished.iterrows()
            ],
        )


def _planned(value: Any) -> str:
    return "?" if pd.isna(value) else str(int(value))


def _finish(doc: _Doc, out_dir: Path, title: str, figs: list[Path]) -> dict[str, Any]:
    md = out_dir / "report.md"
    page = out_dir / "report.html"
    md.write_text(render_markdown(doc, out_dir))
    page.write_text(render_html(doc, title))
    return {"markdown": md, "html": page, "figures": figs}
