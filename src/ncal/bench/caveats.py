"""Plain-language warnings for a report: when a result should not be read at face value.

Three conditions, each checked per (setting, strategy) on the long results table
(:func:`ncal.bench.stats.load_results`):

* **degenerate FF**: the round's feature fluctuation was 0 for more than
  :data:`FF_ZERO_THRESHOLD` of the pool in more than :data:`FF_ROUND_SHARE` of the rounds
  (``train_info.ff_zero_fraction``), so FF hardly ranks the pool;
* **terminal phase not reached**: ``reached_terminal`` was false in at least one round;
* **dirtier labels than the reference**: the share of wrong annotations in the bought batches
  (``noise_rate_batch``, averaged per seed over rounds) is higher than the reference's, paired
  over seeds, with a paired t-test p below :data:`ALPHA`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .figures import setting_title, varying_settings
from .stats import paired_test, setting_cols, strategy_order

FF_ZERO_THRESHOLD = 0.8
FF_ROUND_SHARE = 0.5
ALPHA = 0.05
FF_COLUMN = "train_info.ff_zero_fraction"


def report_warnings(df: pd.DataFrame, reference: str = "random") -> list[str]:
    """Every warning that applies to ``df``, as plain sentences (empty when none applies)."""
    if df.empty:
        return []
    return [
        *ff_degenerate_warnings(df),
        *terminal_phase_warnings(df),
        *dirty_label_warnings(df, reference),
    ]


def _groups(df: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """``(setting title, strategy, rows)`` per (setting, strategy)."""
    scols = setting_cols(df)
    varying = varying_settings(df)
    out = []
    for key, g in df.groupby([*scols, "strategy"], sort=False, dropna=False):
        setting = dict(zip(scols, key[:-1]))
        out.append((setting_title(setting, varying), key[-1], g))
    return out


def ff_degenerate_warnings(df: pd.DataFrame) -> list[str]:
    """Warnings for (setting, strategy) pairs whose FF was mostly zero (module docstring)."""
    if FF_COLUMN not in df.columns:
        return []
    out = []
    for where, strategy, g in _groups(df):
        v = pd.to_numeric(g[FF_COLUMN], errors="coerce").dropna()
        degenerate = int((v > FF_ZERO_THRESHOLD).sum())
        if len(v) and degenerate > FF_ROUND_SHARE * len(v):
            out.append(
                f"{where}, {strategy}: feature fluctuation (FF) is degenerate: FF = 0 for more "
                f"than {FF_ZERO_THRESHOLD:.0%} of the pool in {degenerate} of {len(v)} rounds, so "
                "it barely ranks the pool and FF-based scores are close to a tie-break. A longer "
                "window (`ff_window`) or training that still moves in it is needed."
            )
    return out


def terminal_phase_warnings(df: pd.DataFrame) -> list[str]:
    """Warnings for (setting, strategy) pairs with rounds that ended before the terminal phase."""
    if "reached_terminal" not in df.columns:
        return []
    out = []
    for where, strategy, g in _groups(df):
        v = g["reached_terminal"].dropna()
        missed = int(sum(not bool(x) for x in v))
        if missed:
            out.append(
                f"{where}, {strategy}: training did not reach the terminal phase (training "
                f"accuracy >= tau) in {missed} of {len(v)} rounds. Collapse metrics and FF "
                "assume it did; raise `epochs_max` or lower `tau` before reading them."
            )
    return out


def dirty_label_warnings(df: pd.DataFrame, reference: str = "random") -> list[str]:
    """Warnings for strategies whose bought annotations were wrong more often than the
    reference's, paired over seeds (module docstring)."""
    if "noise_rate_batch" not in df.columns:
        return []
    sub = df.dropna(subset=["noise_rate_batch"]).copy()
    if sub.empty:
        return []
    sub["noise_rate_batch"] = sub["noise_rate_batch"].astype(float)
    scols = setting_cols(sub)
    varying = varying_settings(df)
    out = []
    for key, sdf in sub.groupby(scols, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        per_seed = sdf.groupby(["strategy", "seed"])["noise_rate_batch"].mean()
        if reference not in per_seed.index.get_level_values(0):
            continue
        ref = per_seed.loc[reference]
        for strategy in strategy_order(sdf, reference):
            if strategy == reference:
                continue
            mine = per_seed.loc[strategy]
            seeds = sorted(set(mine.index) & set(ref.index))
            test = paired_test(mine.loc[seeds].to_numpy(float) - ref.loc[seeds].to_numpy(float))
            if test.n >= 2 and test.mean > 0 and test.p_t < ALPHA:
                where = setting_title(dict(zip(scols, key)), varying)
                out.append(
                    f"{where}, {strategy}: bought dirtier labels than {reference}: "
                    f"{np.mean(mine.loc[seeds]):.1%} of its batch annotations were wrong vs "
                    f"{np.mean(ref.loc[seeds]):.1%} (paired over {test.n} seeds, "
                    f"p = {test.p_t:.3g})."
                )
    return out
