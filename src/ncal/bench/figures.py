"""Report figures (PNG), drawn with matplotlib's object API on the Agg canvas.

No ``pyplot``: figures are built from :class:`matplotlib.figure.Figure` directly, so importing this
module never changes the global backend or opens a window, and it works on headless machines.
Every function takes tables from :mod:`ncal.bench.stats`, writes one PNG and returns its path
(or None when there is nothing to draw).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .stats import setting_cols
from .titles import metric_title

DPI = 110
_REFERENCE_COLOR = "#555555"


def strategy_colors(strategies: Sequence[str], reference: str = "random") -> dict[str, Any]:
    """Fixed colour per strategy (the reference in grey), identical across all figures."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors + colormaps["Dark2"].colors + colormaps["Set1"].colors
    colors, i = {}, 0
    for s in strategies:
        if s == reference:
            colors[s] = _REFERENCE_COLOR
        else:
            colors[s] = palette[i % len(palette)]
            i += 1
    return colors


def setting_title(setting: dict[str, Any], varying: Sequence[str] | None = None) -> str:
    """``"digits · sym:0.3"`` plus model / budget / annotators when those vary in the grid."""
    parts = [str(setting.get("dataset", "")), f"noise {setting.get('noise', '')}"]
    for k in ("model", "budget", "annotators"):
        if k in setting and (varying is None or k in varying):
            parts.append(f"{k} {setting[k]}")
    return " · ".join(p for p in parts if p)


def varying_settings(df: pd.DataFrame) -> list[str]:
    """Setting columns that take more than one value in ``df``."""
    return [c for c in setting_cols(df) if df[c].nunique(dropna=False) > 1]


def _grid(
    n: int, ncols_max: int = 3, w: float = 5.0, h: float = 3.6, dpi: int = DPI
) -> tuple[Figure, list[Any]]:
    ncols = min(ncols_max, max(n, 1))
    nrows = math.ceil(max(n, 1) / ncols)
    fig = Figure(figsize=(w * ncols, h * nrows + 0.6), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    return fig, axes


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.get_dpi(), bbox_inches="tight")
    return path


def _groups(df: pd.DataFrame) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    scols = setting_cols(df)
    out = []
    for key, g in df.groupby(scols, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        out.append((dict(zip(scols, key)), g))
    return out


def _legend(fig: Figure, axes: list[Any], title: str | None = None) -> None:
    """Shared legend (and optional title) above the panels, without overlapping them."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    height = fig.get_figheight()
    top_in = 0.0
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.05 / height, va="top")
        top_in += 0.35
    if handles:
        ncol = min(len(handles), 6)
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="upper center",
            ncol=ncol,
            bbox_to_anchor=(0.5, 1 - top_in / height),
            frameon=False,
            fontsize=9,
        )
        top_in += 0.3 * math.ceil(len(handles) / ncol) + 0.1
    fig.tight_layout(rect=(0, 0, 1, 1 - top_in / height))


def plot_learning_curves(
    curves: pd.DataFrame,
    path: str | Path,
    *,
    colors: dict[str, Any],
    ylabel: str = "test accuracy (%)",
    scale: float = 100.0,
    x: str = "n_labeled",
    xlabel: str = "labeled samples",
) -> Path | None:
    """Mean ± std (ddof=1, shaded) over seeds vs the budget column ``x``; one panel per setting.

    ``curves`` is :func:`ncal.bench.stats.curve_table` output (or any table with ``x``, ``mean``,
    ``std`` per strategy).
    """
    if curves.empty:
        return None
    groups = _groups(curves)
    varying = varying_settings(curves)
    fig, axes = _grid(len(groups))
    for ax, (setting, g) in zip(axes, groups):
        for strategy in [s for s in colors if s in set(g["strategy"])]:
            c = g[g["strategy"] == strategy].sort_values(x)
            xs = c[x].to_numpy(float)
            m = c["mean"].to_numpy(float) * scale
            sd = np.nan_to_num(c["std"].to_numpy(float) * scale)
            ax.plot(xs, m, marker="o", ms=3, lw=1.6, color=colors[strategy], label=strategy)
            ax.fill_between(xs, m - sd, m + sd, color=colors[strategy], alpha=0.15, lw=0)
        ax.set_title(setting_title(setting, varying), fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return _save(fig, path)


def plot_aubc(
    table: pd.DataFrame, path: str | Path, *, colors: dict[str, Any], scale: float = 100.0
) -> Path | None:
    """AUBC mean per strategy with its t-interval (no bar when n < 2); one panel per setting."""
    if table.empty:
        return None
    groups = _groups(table)
    varying = varying_settings(table)
    n_strat = table["strategy"].nunique()
    fig, axes = _grid(len(groups), ncols_max=2, w=5.5, h=0.9 + 0.38 * n_strat)
    for ax, (setting, g) in zip(axes, groups):
        order = [s for s in colors if s in set(g["strategy"])]
        for y, strategy in enumerate(order):
            r = g[g["strategy"] == strategy].iloc[0]
            m = r["mean"] * scale
            lo, hi = r["ci_low"] * scale, r["ci_high"] * scale
            err = None if np.isnan(lo) else [[m - lo], [hi - m]]
            ax.errorbar(m, y, xerr=err, fmt="o", color=colors[strategy], capsize=4, ms=6)
            ax.annotate(
                f"{m:.2f}",
                (m, y),
                textcoords="offset points",
                xytext=(0, 7),
                ha="center",
                fontsize=8,
            )
        ax.set_yticks(range(len(order)), order)
        ax.set_ylim(-0.7, len(order) - 0.3)
        ax.invert_yaxis()
        ax.set_xlabel("AUBC (%), mean and 95% CI over seeds")
        ax.set_title(setting_title(setting, varying), fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def plot_penalty_matrix(
    matrix: pd.DataFrame, column_means: pd.Series, path: str | Path
) -> Path | None:
    """Heatmap of the pairwise-penalty matrix (row = winner, column = loser) with column means."""
    if matrix.empty or len(matrix) < 2:
        return None
    names = list(matrix.index)
    n = len(names)
    data = np.vstack([matrix.to_numpy(float), column_means.reindex(names).to_numpy(float)[None, :]])
    side = 0.75 * n + 2.0
    fig = Figure(figsize=(side + 1.8, 0.6 * (n + 1) + 2.0), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    vmax = max(float(np.nanmax(data)), 1e-9)
    im = ax.imshow(data, cmap="viridis", vmin=0, vmax=vmax, aspect="auto")
    for i in range(n + 1):
        for j in range(n):
            v = data[i, j]
            colour = "white" if v < 0.6 * vmax else "black"
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=9, color=colour)
    ax.axhline(n - 0.5, color="white", lw=3)
    ax.set_xticks(range(n), names, rotation=35, ha="right")
    ax.set_yticks(range(n + 1), [*names, "column mean"])
    ax.set_xlabel("loser (beaten by the row strategy)")
    ax.set_ylabel("winner")
    ax.set_title("Pairwise-penalty matrix (lower column mean = better)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="penalty (sum over settings)")
    fig.tight_layout()
    return _save(fig, path)


def plot_query_purity(
    purity: pd.DataFrame, path: str | Path, *, colors: dict[str, Any]
) -> Path | None:
    """Share of correct labels in each queried batch (mean ± std over seeds) per query round."""
    if purity.empty:
        return None
    groups = _groups(purity)
    varying = varying_settings(purity)
    fig, axes = _grid(len(groups))
    for ax, (setting, g) in zip(axes, groups):
        present = [s for s in colors if s in set(g["strategy"])]
        for i, strategy in enumerate(present):
            c = g[g["strategy"] == strategy].sort_values("query")
            # dodge: strategies with equal purity (e.g. no noise) must not hide each other
            x = c["query"].to_numpy(float) + 0.06 * (i - (len(present) - 1) / 2)
            m = c["mean"].to_numpy(float) * 100
            sd = np.nan_to_num(c["std"].to_numpy(float) * 100)
            ax.errorbar(
                x,
                m,
                yerr=sd,
                marker="o",
                ms=3,
                lw=1.4,
                capsize=3,
                color=colors[strategy],
                label=strategy,
            )
        ax.set_title(setting_title(setting, varying), fontsize=10)
        ax.set_xlabel("query round (batch bought for round r)")
        ax.set_ylabel("correct labels in batch (%)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    _legend(fig, axes)
    return _save(fig, path)


def plot_metric_panels(
    df: pd.DataFrame,
    columns: Sequence[str],
    path: str | Path,
    *,
    colors: dict[str, Any],
    title: str,
    strip_prefix: str = "",
    x: str = "n_labeled",
    xlabel: str = "labeled samples",
) -> Path | None:
    """One panel per metric column: mean ± std over seeds vs ``x``, a line per strategy.

    Panels are titled by :func:`ncal.bench.titles.metric_title` (``nc2_equinorm_M`` → "NC2:
    equinorm of class means").
    """
    columns = list(columns)
    if df.empty or not columns:
        return None
    # a lone panel gets more width, so the shared legend and title fit above it
    w = 3.9 if len(columns) > 1 else 6.0
    fig, axes = _grid(len(columns), ncols_max=4, w=w, h=3.0, dpi=80)
    for ax, col in zip(axes, columns):
        sub = df[["strategy", x, col]].copy()
        sub[col] = pd.to_numeric(sub[col], errors="coerce")
        sub = sub.dropna()
        g = sub.groupby(["strategy", x])[col].agg(["mean", "std"]).reset_index()
        for strategy in [s for s in colors if s in set(g["strategy"])]:
            c = g[g["strategy"] == strategy].sort_values(x)
            xs = c[x].to_numpy(float)
            m = c["mean"].to_numpy(float)
            sd = np.nan_to_num(c["std"].to_numpy(float))
            ax.plot(xs, m, marker="o", ms=2.5, lw=1.3, color=colors[strategy], label=strategy)
            ax.fill_between(xs, m - sd, m + sd, color=colors[strategy], alpha=0.12, lw=0)
        name = col[len(strip_prefix) :] if strip_prefix and col.startswith(strip_prefix) else col
        ax.set_title(metric_title(name), fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    _legend(fig, axes, title)
    return _save(fig, path)
