"""Machine-readable results per setting and strategy: ``results_summary.json`` beside report.md.

Layout::

    {"axis": "annotations" | "n_labeled",
     "reference": "random",
     "settings": [{"name", "dataset", "noise", "annotators", "noisy", "ood_fraction",
                   "strategies": {label: {"seeds", "aubc", "final_purity", "wrong_rate",
                                          "ood_share", "annotations_to_random_final"}}}]}

Fields of a strategy (``null`` where a run did not record what a field needs):

* ``seeds`` / ``aubc``: the seeds with a complete curve and the AUBC of each (same order), over
  the annotation axis (annotations bought, initial set included; labels for older runs);
* ``final_purity``: mean over seeds of ``consensus_purity`` (share of training items whose
  label is right) at each run's last round;
* ``wrong_rate``: per run, wrong annotations of in-distribution items divided by ALL annotations
  bought after the initial set, then the mean over seeds (``noise_rate_batch`` × in-distribution
  annotations of each batch);
* ``ood_share``: per run, annotations spent on out-of-distribution items (``query_ood``) divided
  by all annotations bought after the initial set, then the mean over seeds;
* ``annotations_to_random_final``: annotations the seed-mean curve needs to reach the reference's
  final seed-mean accuracy (linear interpolation), ``null`` if it never does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .._utils.io import atomic_write_json
from .figures import setting_title
from .stats import aubc_per_seed, budget_axis, curve_table, labels_to_reach, setting_cols

SUMMARY_FILE = "results_summary.json"


def results_summary(
    df: pd.DataFrame, cells: pd.DataFrame, reference: str = "random"
) -> dict[str, Any]:
    """The summary described in the module docstring, as plain data."""
    x = budget_axis(df)
    scols = setting_cols(df)
    per_seed = aubc_per_seed(df, x=x)
    curves = curve_table(df, x=x)
    settings = []
    for key, sdf in df.groupby(scols, sort=False, dropna=False):
        setting = dict(zip(scols, key if isinstance(key, tuple) else (key,)))
        config = _settings_of(cells, setting)
        target = _reference_final(curves, setting, reference, x)
        strategies = {}
        for strategy, g in sdf.groupby("strategy", sort=False):
            strategies[strategy] = _strategy_summary(
                g, _rows(per_seed, setting, strategy), _rows(curves, setting, strategy), x, target
            )
        settings.append(
            {
                "name": setting_title(setting),
                **{k: _plain(v) for k, v in setting.items()},
                "noisy": _noisy(config),
                "ood_fraction": float(config.get("pool_ood_fraction") or 0.0),
                "strategies": strategies,
            }
        )
    return {"axis": x, "reference": reference, "settings": settings}


def write_results_summary(
    df: pd.DataFrame, cells: pd.DataFrame, out_dir: str | Path, reference: str = "random"
) -> Path:
    """Write :func:`results_summary` to ``out_dir/results_summary.json``; return its path."""
    path = Path(out_dir) / SUMMARY_FILE
    atomic_write_json(path, results_summary(df, cells, reference))
    return path


def _strategy_summary(
    rows: pd.DataFrame, aubcs: pd.DataFrame, curve: pd.DataFrame, x: str, target: float | None
) -> dict[str, Any]:
    aubcs = aubcs.sort_values("seed")
    runs = [g.sort_values("round") for _, g in rows.groupby("cell", sort=False)]
    reach = None
    if target is not None and len(curve):
        c = curve.sort_values(x)
        reach = _plain(labels_to_reach(c[x].to_numpy(float), c["mean"].to_numpy(float), target))
    return {
        "seeds": [int(s) for s in aubcs["seed"]],
        "aubc": [float(a) for a in aubcs["aubc"]],
        "final_purity": _mean([_last(r, "consensus_purity") for r in runs]),
        "wrong_rate": _mean([_spent_share(r, x, "wrong") for r in runs]),
        "ood_share": _mean([_spent_share(r, x, "ood") for r in runs]),
        "annotations_to_random_final": reach,
    }


def _spent_share(run: pd.DataFrame, x: str, what: str) -> float | None:
    """Wrong (in-distribution) or OOD annotations over all annotations bought after the initial
    set, from the per-batch records: row ``r`` describes the batch that took ``x`` from row ``r``'s
    value to row ``r + 1``'s."""
    spent = np.diff(run[x].to_numpy(float))
    if spent.size == 0 or spent.sum() <= 0:
        return None
    batches = run.iloc[:-1]
    ood = _column(batches, "query_ood", 0.0)
    if what == "ood":
        if "query_ood" not in run.columns:
            return None
        return float(ood.sum() / spent.sum())
    if "noise_rate_batch" not in run.columns:
        return None
    rate = _column(batches, "noise_rate_batch", np.nan)
    known = ~np.isnan(rate)
    if not known.any():
        return None
    wrong = rate[known] * (spent[known] - ood[known])
    return float(wrong.sum() / spent[known].sum())


def _column(rows: pd.DataFrame, col: str, fill: float) -> np.ndarray:
    if col not in rows.columns:
        return np.full(len(rows), fill)
    return pd.to_numeric(rows[col], errors="coerce").fillna(fill).to_numpy(float)


def _last(run: pd.DataFrame, col: str) -> float | None:
    if col not in run.columns:
        return None
    return _plain(pd.to_numeric(run[col], errors="coerce").iloc[-1])


def _mean(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return float(np.mean(v)) if v else None


def _plain(v: Any) -> Any:
    """JSON-friendly scalar: numpy numbers to Python ones, NaN to None."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(float(v)) else float(v)
    return v


def _rows(
    table: pd.DataFrame, setting: Mapping[str, Any], strategy: str | None = None
) -> pd.DataFrame:
    """Rows of ``table`` in ``setting`` (and of ``strategy`` when given)."""
    mask = pd.Series(True, index=table.index)
    if strategy is not None:
        mask &= table["strategy"] == strategy
    for k, v in setting.items():
        if k in table.columns:
            mask &= table[k] == v
    return table[mask]


def _reference_final(
    curves: pd.DataFrame, setting: Mapping[str, Any], reference: str, x: str
) -> float | None:
    """The reference's seed-mean accuracy at its last budget, or None without a reference."""
    ref = _rows(curves, setting, reference)
    if ref.empty:
        return None
    return float(ref.sort_values(x)["mean"].iloc[-1])


def _settings_of(cells: pd.DataFrame, setting: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment settings of the first cell of ``setting`` (empty when unknown)."""
    rows = _rows(cells, setting) if len(cells) else cells
    return dict(rows.iloc[0]["settings"] or {}) if len(rows) else {}


def _noisy(config: Mapping[str, Any]) -> bool:
    """Whether any annotator of the setting can return a wrong label."""
    specs = config.get("annotators") or [config.get("noise", "none")]
    return any(str(s).strip().lower() not in ("none", "clean", "") for s in specs)
