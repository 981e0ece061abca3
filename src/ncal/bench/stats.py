"""Summary statistics of active-learning results (docs/algorithms.md §5.2): AUBC, paired tests, PPM, and more.

Everything here is a pure function of arrays or of the long table returned by :func:`load_results`
(one row per cell × round). A *setting* is one (dataset, noise, model, budget schedule) combination;
strategies are compared only within a setting, on matched seeds (paired design, docs/algorithms.md §5.1).

References
----------
Zhan et al., "A comparative survey: benchmarking for pool-based active learning", IJCAI 2021 (AUBC).
Ash et al., "Deep batch active learning by diverse, uncertain gradient lower bounds", ICLR 2020
(pairwise-penalty matrix). Lüth et al., "Navigating the pitfalls of active learning evaluation",
NeurIPS 2023 (AUBC + PPM reporting).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..experiment.store import StoredRun, find_runs, load_run

SETTING = ["dataset", "noise", "model", "budget", "annotators"]
META = [
    "cell",
    "dataset",
    "noise",
    "model",
    "budget",
    "annotators",
    "strategy",
    "strategy_name",
    "seed",
    "status",
]
METRIC = "test_accuracy"
# the budget axis: annotations bought (initial set included) when the runs record them, else labels;
# without several annotators the two are equal
ANNOTATIONS = "annotations"
LABELS = "n_labeled"
_LIST_KEYS_KEPT: tuple[str, ...] = ()
# per-sample payloads of a round record: never part of the summary table
_PAYLOAD_KEYS = ("selected", "selected_scores", "selected_labels", "class_histogram")


# ------------------------------------------------------------------------------------ AUBC


def aubc(budgets: Sequence[float], accs: Any) -> float | np.ndarray:
    """Area under the budget curve with the actual budget spacing, rescaled to ``[0, 1]``.

    ``AUBC = Σ_r (B_r − B_{r−1}) / (B_R − B_0) · (a_{r−1} + a_r) / 2`` (docs/algorithms.md §5.2). Equals
    ``np.trapz(acc, dx=1/R)`` of realistic-al only for equally spaced budgets.

    Parameters
    ----------
    budgets : sequence of float, shape (R+1,)
        Strictly increasing labeled-set sizes ``B_0 < … < B_R`` (R >= 1).
    accs : array_like, shape (..., R+1)
        Accuracies at those budgets (last axis); leading axes (e.g. seeds) are kept.

    Returns
    -------
    float or ndarray
        AUBC in the units of ``accs`` (a float for a 1-D curve).

    References
    ----------
    Zhan et al., IJCAI 2021; realistic-al ``get_aubc`` (Lüth et al., NeurIPS 2023).
    """
    b = np.asarray(budgets, dtype=np.float64)
    a = np.asarray(accs, dtype=np.float64)
    if b.ndim != 1 or b.size < 2:
        raise ValueError(
            f"`budgets` must be a 1-D sequence of at least 2 budgets; got shape {b.shape}"
        )
    if not np.all(np.diff(b) > 0):
        raise ValueError(f"`budgets` must be strictly increasing; got {b.tolist()}")
    if a.ndim == 0 or a.shape[-1] != b.size:
        raise ValueError(
            f"`accs` must have {b.size} values on its last axis (one per budget); "
            f"got shape {a.shape}"
        )
    w = np.diff(b) / (b[-1] - b[0])
    area = np.sum(w * (a[..., 1:] + a[..., :-1]) / 2.0, axis=-1)
    return float(area) if area.ndim == 0 else area


# ------------------------------------------------------------------------------ paired tests


@dataclass(frozen=True)
class PairedTest:
    """Summary of paired differences ``d`` (method − reference).

    Attributes: ``n``, ``mean``, ``std`` (ddof=1), one-sample t statistic ``t`` and two-sided
    ``p_t``, Wilcoxon signed-rank statistic ``w`` and two-sided ``p_w``. NaN where undefined.
    """

    n: int
    mean: float
    std: float
    t: float
    p_t: float
    w: float
    p_w: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def paired_test(differences: Any, *, wilcoxon: bool = True) -> PairedTest:
    """Paired t-test and Wilcoxon signed-rank test of differences against 0.

    Parameters
    ----------
    differences : array_like, shape (n,)
        Paired differences (NaN entries are dropped).
    wilcoxon : bool
        Also run the Wilcoxon test (default). False leaves ``w, p_w`` NaN: with ties or zeros among
        few differences scipy computes its null distribution by permutation, about a second per
        call, which callers that read only the t-test (the penalty matrix) need not pay.

    Returns
    -------
    PairedTest
        ``t, p_t`` from ``scipy.stats.ttest_1samp(d, 0)`` (same as ``ttest_rel``) and
        ``w, p_w`` from ``scipy.stats.wilcoxon(d)`` (zeros dropped, ``zero_method="wilcox"``).
        Degenerate cases are decided here instead of returning scipy's NaN / warnings: n < 2 →
        NaN tests; all differences zero → t = 0, p = 1 for both tests; all equal and non-zero →
        t = ±inf, p_t = 0 (the limit of vanishing variance), Wilcoxon from scipy (exact,
        p = 2 / 2^n).
    """
    d = np.asarray(differences, dtype=np.float64).ravel()
    d = d[~np.isnan(d)]
    n = int(d.size)
    nan = float("nan")
    if n == 0:
        return PairedTest(0, nan, nan, nan, nan, nan, nan)
    mean = float(d.mean())
    std = float(d.std(ddof=1)) if n > 1 else nan
    if n < 2:
        return PairedTest(n, mean, std, nan, nan, nan, nan)
    scale = max(1.0, float(np.max(np.abs(d))))
    if np.all(np.abs(d) <= 1e-12 * scale):
        return PairedTest(n, mean, 0.0, 0.0, 1.0, 0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if float(np.ptp(d)) <= 1e-12 * scale:  # constant non-zero difference: zero variance
            t, p_t, std = math.copysign(math.inf, mean), 0.0, 0.0
        else:
            res = sps.ttest_1samp(d, 0.0)
            t, p_t = float(res.statistic), float(res.pvalue)
        w, p_w = nan, nan
        if wilcoxon:
            try:
                wres = sps.wilcoxon(d)
                w, p_w = float(wres.statistic), float(wres.pvalue)
            except ValueError:
                pass
    return PairedTest(n, mean, std, t, p_t, w, p_w)


def t_interval(values: Any, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t confidence interval of the mean (NaN bounds when fewer than 2 values)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size < 2:
        return float("nan"), float("nan")
    m, se = float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size))
    half = float(sps.t.ppf(0.5 + confidence / 2.0, v.size - 1)) * se
    return m - half, m + half


# ----------------------------------------------------------------------- tables over a grid


def setting_cols(df: pd.DataFrame) -> list[str]:
    """Setting columns present in ``df`` (dataset, noise, model, budget, annotators)."""
    return [c for c in SETTING if c in df.columns]


def budget_axis(df: pd.DataFrame) -> str:
    """The column that measures what was spent: ``annotations`` when recorded, else ``n_labeled``.

    Runs written before annotations were counted have no ``annotations`` column;
    :func:`load_results` fills it from ``n_labeled`` for such runs in a mixed tree.
    """
    if ANNOTATIONS in df.columns and df[ANNOTATIONS].notna().any():
        return ANNOTATIONS
    return LABELS


def strategy_order(df: pd.DataFrame, reference: str | None = "random") -> list[str]:
    """Strategies in order of first appearance, the reference first."""
    names = list(dict.fromkeys(df["strategy"].tolist())) if len(df) else []
    if reference in names:
        names.remove(reference)
        names.insert(0, reference)
    return names


def curve_table(df: pd.DataFrame, metric: str = METRIC, x: str | None = None) -> pd.DataFrame:
    """Mean, sample std (ddof=1) and count over seeds at every budget of every (setting, strategy).

    ``x`` is the budget column (default :func:`budget_axis`). Returns columns ``setting…,
    strategy, <x>, mean, std, n``.
    """
    x = x or budget_axis(df)
    keys = [*setting_cols(df), "strategy", x]
    sub = df.dropna(subset=[metric]) if metric in df.columns else df.iloc[0:0]
    if sub.empty:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n"])
    g = sub.groupby(keys, sort=False, dropna=False)[metric]
    out = g.agg(mean="mean", std=lambda s: s.std(ddof=1), n="count").reset_index()
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def aubc_per_seed(df: pd.DataFrame, metric: str = METRIC, x: str | None = None) -> pd.DataFrame:
    """AUBC of every cell whose curve covers its setting's full budget schedule.

    The area is taken over ``x`` (default :func:`budget_axis`: annotations bought when recorded).
    A cell with fewer rounds than the longest curve of its setting (an unfinished run) is left out,
    so AUBCs are compared over the same budget range. Returns columns ``setting…, strategy, seed,
    aubc, n_points``.
    """
    x = x or budget_axis(df)
    scols = setting_cols(df)
    cols = [*scols, "strategy", "seed", "aubc", "n_points"]
    if df.empty or metric not in df.columns:
        return pd.DataFrame(columns=cols)
    sub = df.dropna(subset=[metric])
    records = []
    for _, sdf in sub.groupby(scols, sort=False, dropna=False):
        curves = {
            k: c.sort_values(x) for k, c in sdf.groupby(["strategy", "seed", "cell"], sort=False)
        }
        full = max(len(c) for c in curves.values())
        for (strategy, seed, _cell), c in curves.items():
            if len(c) < full or full < 2:
                continue
            row = {k: c.iloc[0][k] for k in scols}
            row.update(
                strategy=strategy,
                seed=seed,
                aubc=aubc(c[x].to_numpy(float), c[metric].to_numpy(float)),
                n_points=len(c),
            )
            records.append(row)
    return pd.DataFrame.from_records(records, columns=cols)


def aubc_table(per_seed: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """AUBC mean, std (ddof=1), count and t-interval per (setting, strategy).

    ``per_seed`` is the output of :func:`aubc_per_seed`.
    """
    keys = [*setting_cols(per_seed), "strategy"]
    cols = [*keys, "n", "mean", "std", "ci_low", "ci_high"]
    records = []
    for key, g in per_seed.groupby(keys, sort=False, dropna=False):
        v = g["aubc"].to_numpy(float)
        lo, hi = t_interval(v, confidence)
        records.append(
            dict(
                zip(keys, key),
                n=v.size,
                mean=v.mean(),
                std=v.std(ddof=1) if v.size > 1 else np.nan,
                ci_low=lo,
                ci_high=hi,
            )
        )
    return pd.DataFrame.from_records(records, columns=cols)


def paired_vs_reference(per_seed: pd.DataFrame, reference: str = "random") -> pd.DataFrame:
    """Paired AUBC differences (strategy − reference) over matched seeds, per setting.

    Returns columns ``setting…, strategy, n, mean, std, t, p_t, w, p_w`` (see :func:`paired_test`);
    empty when the reference strategy is absent.
    """
    scols = setting_cols(per_seed)
    cols = [*scols, "strategy", *PairedTest.__dataclass_fields__]
    records = []
    for skey, sdf in per_seed.groupby(scols, sort=False, dropna=False):
        skey = skey if isinstance(skey, tuple) else (skey,)
        ref = sdf[sdf["strategy"] == reference].set_index("seed")["aubc"]
        if ref.empty:
            continue
        for strategy in strategy_order(sdf, reference):
            if strategy == reference:
                continue
            other = sdf[sdf["strategy"] == strategy].set_index("seed")["aubc"]
            seeds = sorted(set(other.index) & set(ref.index))
            test = paired_test(other.loc[seeds].to_numpy(float) - ref.loc[seeds].to_numpy(float))
            records.append({**dict(zip(scols, skey)), "strategy": strategy, **test.to_dict()})
    return pd.DataFrame.from_records(records, columns=cols)


def pooled_vs_reference(
    df: pd.DataFrame,
    reference: str = "random",
    metric: str = METRIC,
    *,
    skip_initial: bool = True,
    x: str | None = None,
) -> pd.DataFrame:
    """Accuracy differences to the reference pooled over settings and budgets, tested over SEEDS.

    The seed is the unit of replication (it fixes the initial set, the initialisation and the
    oracle for every strategy and setting), so the (setting, budget) points of one seed are not
    independent pairs. For each seed, the accuracy of the strategy and of the reference are
    averaged over the (setting, budget) points both have; the paired test (:func:`paired_test`)
    then compares those per-seed means, so ``n`` is the number of seeds. ``skip_initial`` drops
    the first budget of each setting, where every strategy trained on the same initial set.

    Returns
    -------
    DataFrame
        ``strategy, points`` (matched (setting, budget) points averaged per seed, summed over
        seeds), then the fields of :class:`PairedTest` over the per-seed mean differences.
    """
    cols = ["strategy", "points", *PairedTest.__dataclass_fields__]
    if df.empty or metric not in df.columns:
        return pd.DataFrame(columns=cols)
    x = x or budget_axis(df)
    scols = setting_cols(df)
    sub = df.dropna(subset=[metric])
    if skip_initial:
        first = sub.groupby(scols, dropna=False)[x].transform("min")
        sub = sub[sub[x] > first]
    keys = [*scols, x, "seed"]
    ref = sub[sub["strategy"] == reference].groupby(keys, dropna=False)[metric].mean()
    if ref.empty:
        return pd.DataFrame(columns=cols)
    records = []
    for strategy in strategy_order(sub, reference):
        if strategy == reference:
            continue
        mine = sub[sub["strategy"] == strategy].groupby(keys, dropna=False)[metric].mean()
        joined = pd.concat([mine.rename("a"), ref.rename("b")], axis=1, join="inner")
        per_seed = joined.groupby(level="seed")[["a", "b"]].mean()
        test = paired_test((per_seed["a"] - per_seed["b"]).to_numpy(float))
        records.append({"strategy": strategy, "points": len(joined), **test.to_dict()})
    return pd.DataFrame.from_records(records, columns=cols)


def penalty_matrix(
    df: pd.DataFrame,
    *,
    metric: str = METRIC,
    alpha: float = 0.05,
    max_seeds: int | None = None,
    skip_initial: bool = True,
    saturation: float | None = None,
    reference: str = "random",
) -> tuple[pd.DataFrame, pd.Series]:
    """Pairwise-penalty matrix (BADGE, Ash et al. 2020; docs/algorithms.md §5.2), row = winner, column = loser.

    For every setting and checkpoint budget and every ordered pair (i, j) of strategies,
    ``Z = a_i − a_j`` over their matched seeds (the first ``max_seeds`` in seed order, if given);
    ``t, p = ttest_1samp(Z, 0)``; when ``mean(Z) < 0`` and ``p < alpha``, j beat i and
    ``1 / n_checkpoints`` of that setting is added to entry ``[j, i]``. Pairs with fewer than two
    matched seeds are not tested. Entries are summed over settings, so each setting contributes at
    most 1 per pair.

    Parameters
    ----------
    df : DataFrame
        Long results table (:func:`load_results`).
    skip_initial : bool
        Leave out the first budget of each setting (every strategy shares the initial set there;
        badge's checkpoints likewise start at ``B_0 + k``). realistic-al uses all budgets.
    saturation : float, optional
        badge's stopping rule: keep checkpoints only up to the first one where the reference's
        mean accuracy reaches ``saturation`` × its final mean accuracy (badge: 0.99). Default: all.

    Returns
    -------
    matrix : DataFrame
        Strategies × strategies (rows winners, columns losers).
    column_means : Series
        Mean of each column: the average penalty of each strategy (lower is better).
    """
    names = strategy_order(df, reference) if len(df) else []
    mat = pd.DataFrame(0.0, index=names, columns=names)
    if df.empty or metric not in df.columns:
        return mat, mat.mean(axis=0)
    sub = df.dropna(subset=[metric])
    scols = setting_cols(sub)
    x = budget_axis(sub)
    for _, sdf in sub.groupby(scols, sort=False, dropna=False):
        table = sdf.pivot_table(
            index=[x, "seed"], columns="strategy", values=metric, aggfunc="mean"
        )
        checkpoints = sorted(table.index.get_level_values(0).unique())
        if skip_initial:
            checkpoints = checkpoints[1:]
        if saturation is not None and reference in table.columns and checkpoints:
            ref_mean = table[reference].groupby(level=0).mean()
            final = ref_mean.loc[checkpoints[-1]]
            reached = [b for b in checkpoints if ref_mean.loc[b] >= saturation * final]
            if reached:
                checkpoints = [b for b in checkpoints if b <= reached[0]]
        if not checkpoints:
            continue
        weight = 1.0 / len(checkpoints)
        for b in checkpoints:
            at = table.xs(b, level=0)
            for i in at.columns:
                for j in at.columns:
                    if i == j:
                        continue
                    both = at[[i, j]].dropna().sort_index()
                    if max_seeds is not None:
                        both = both.iloc[:max_seeds]
                    if len(both) < 2:
                        continue
                    test = paired_test(
                        both[i].to_numpy(float) - both[j].to_numpy(float), wilcoxon=False
                    )
                    if test.mean < 0 and test.p_t < alpha:
                        mat.loc[j, i] += weight
    return mat, mat.mean(axis=0)


def labels_to_reach(budgets: Sequence[float], accs: Sequence[float], target: float) -> float:
    """Labels needed for the curve to first reach ``target``, linearly interpolated between budgets.

    Returns ``budgets[0]`` if the first point already reaches it, NaN if the curve never does.
    """
    b = np.asarray(budgets, dtype=np.float64)
    a = np.asarray(accs, dtype=np.float64)
    if b.ndim != 1 or a.shape != b.shape or b.size == 0:
        raise ValueError(
            f"`budgets` and `accs` must be 1-D of equal non-zero length; got {b.shape}, {a.shape}"
        )
    hit = np.flatnonzero(a >= target)
    if hit.size == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(b[0])
    return float(b[i - 1] + (target - a[i - 1]) * (b[i] - b[i - 1]) / (a[i] - a[i - 1]))


def labels_to_reach_table(
    df: pd.DataFrame,
    fraction: float = 0.9,
    full_accuracy: float | Mapping[str, float] | None = None,
    metric: str = METRIC,
) -> pd.DataFrame:
    """Labels each strategy needs to reach ``fraction`` × full-data accuracy, per setting.

    Parameters
    ----------
    fraction : float
        Share of the full-data accuracy to reach (0.9 = 90 %).
    full_accuracy : float or mapping dataset → float, optional
        Accuracy of a model trained on the whole (clean) training set. When not given (or the
        dataset is missing from the mapping), the best seed-mean accuracy anywhere in the setting
        (over all strategies and budgets) stands in for it (``source == "grid max"``), so the
        target is then "fraction of the best accuracy this grid reached".

    Returns
    -------
    DataFrame
        ``setting…, strategy, full_accuracy, source, target, labels`` (on the seed-mean curve; NaN:
        never reached), ``seeds_reached`` and ``n_seeds`` (per-seed curves reaching the target).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"`fraction` must lie in (0, 1]; got {fraction!r}")
    x = budget_axis(df)
    curves = curve_table(df, metric, x)
    scols = setting_cols(curves)
    cols = [
        *scols,
        "strategy",
        "full_accuracy",
        "source",
        "target",
        "labels",
        "seeds_reached",
        "n_seeds",
    ]
    records = []
    for skey, sdf in curves.groupby(scols, sort=False, dropna=False):
        skey = skey if isinstance(skey, tuple) else (skey,)
        setting = dict(zip(scols, skey))
        full, source = None, "grid max"
        if isinstance(full_accuracy, Mapping):
            full = full_accuracy.get(setting.get("dataset"))
        elif full_accuracy is not None:
            full = float(full_accuracy)
        if full is not None:
            source = "given"
        else:
            full = float(sdf["mean"].max())
        target = fraction * float(full)
        raw = df
        for k, v in setting.items():
            raw = raw[raw[k] == v]
        for strategy in strategy_order(sdf):
            c = sdf[sdf["strategy"] == strategy].sort_values(x)
            labels = labels_to_reach(c[x].to_numpy(float), c["mean"].to_numpy(float), target)
            per_seed = [
                labels_to_reach(g[x].to_numpy(float), g[metric].to_numpy(float), target)
                for _, g in raw[raw["strategy"] == strategy]
                .dropna(subset=[metric])
                .sort_values(x)
                .groupby("cell")
            ]
            records.append(
                {
                    **setting,
                    "strategy": strategy,
                    "full_accuracy": full,
                    "source": source,
                    "target": target,
                    "labels": labels,
                    "seeds_reached": int(np.sum(~np.isnan(per_seed))),
                    "n_seeds": len(per_seed),
                }
            )
    return pd.DataFrame.from_records(records, columns=cols)


def query_purity(df: pd.DataFrame) -> pd.DataFrame:
    """Share of correctly labeled samples in each queried batch, ``1 − noise_rate_batch``.

    Row ``r`` of a run holds the batch selected after round ``r``'s training (bought for round
    ``r + 1``), so the result is indexed by ``query = round + 1``. Returns ``setting…, strategy,
    query, mean, std, n`` over seeds.
    """
    keys = [*setting_cols(df), "strategy", "query"]
    if df.empty or "noise_rate_batch" not in df.columns:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n"])
    sub = df.dropna(subset=["noise_rate_batch"]).copy()
    sub["purity"] = 1.0 - sub["noise_rate_batch"].astype(float)
    sub["query"] = sub["round"].astype(int) + 1
    if sub.empty:
        return pd.DataFrame(columns=[*keys, "mean", "std", "n"])
    g = sub.groupby(keys, sort=False, dropna=False)["purity"]
    out = g.agg(mean="mean", std=lambda s: s.std(ddof=1), n="count").reset_index()
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def query_purity_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean purity of all queried batches of a run, then mean ± std (ddof=1) over seeds.

    Returns ``setting…, strategy, n, mean, std``; the initial labeled set is not a query and is
    not counted.
    """
    keys = [*setting_cols(df), "strategy"]
    cols = [*keys, "n", "mean", "std"]
    if df.empty or "noise_rate_batch" not in df.columns:
        return pd.DataFrame(columns=cols)
    sub = df.dropna(subset=["noise_rate_batch"]).copy()
    if sub.empty:
        return pd.DataFrame(columns=cols)
    sub["purity"] = 1.0 - sub["noise_rate_batch"].astype(float)
    per_run = sub.groupby([*keys, "cell"], sort=False, dropna=False)["purity"].mean().reset_index()
    g = per_run.groupby(keys, sort=False, dropna=False)["purity"]
    return g.agg(n="count", mean="mean", std=lambda s: s.std(ddof=1)).reset_index()[cols]


def numeric_metric_columns(
    df: pd.DataFrame, prefix: str, *, skip_counts: bool = False, first: Sequence[str] = ()
) -> list[str]:
    """Columns named ``prefix.…`` holding at least one finite, non-boolean number.

    Parameters
    ----------
    skip_counts : bool
        Leave out bookkeeping counts (leaf names ``n_…`` / ``num_…``).
    first : sequence of str
        Leaf names to list first, in this order; the rest follow alphabetically.
    """
    out = []
    for c in df.columns:
        if not c.startswith(prefix + "."):
            continue
        leaf = c.rsplit(".", 1)[-1]
        if skip_counts and (leaf.startswith(("n_", "num_")) or leaf == "n"):
            continue
        col = df[c]
        if col.map(lambda v: isinstance(v, (bool, np.bool_))).any():
            continue
        s = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        if np.isfinite(s).any():
            out.append(c)
    rank = {name: i for i, name in enumerate(first)}
    return sorted(out, key=lambda c: (rank.get(c[len(prefix) + 1 :], len(rank)), c))


# ---------------------------------------------------------------------------- loading results


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, (list, tuple)):
        if prefix in _LIST_KEYS_KEPT:
            out[prefix] = value
    else:
        out[prefix] = value


def _budget_label(settings: Mapping[str, Any]) -> str:
    from .grid import budget_label

    if settings.get("budgets"):
        return "[" + ",".join(str(b) for b in settings["budgets"]) + "]"
    if all(k in settings for k in ("initial", "query", "rounds")):
        return budget_label(settings)
    return "?"


def _annotators_label(settings: Mapping[str, Any]) -> str:
    """``"oracle:0.1+oracle:0.3"`` (plus the error mode when set); ``"single oracle"`` without."""
    from .grid import annotators_label

    label = annotators_label(settings.get("annotators"))
    errors = settings.get("annotator_errors")
    return f"{label} ({errors})" if errors and settings.get("annotators") else label


def _cell_meta(root: Path, run: StoredRun) -> dict[str, Any]:
    cell = run.cell or {}
    config = run.config or {}
    summary = run.summary or {}
    settings = dict(config.get("settings", config)) if config else dict(cell.get("config", {}))
    if not settings and cell.get("config"):
        settings = dict(cell["config"])
    name = settings.get("strategy", "?")
    params = settings.get("strategy_params") or {}
    label = cell.get("strategy") or settings.get("label")
    if not label:
        from .grid import StrategyEntry

        label = StrategyEntry(name, dict(params)).key
    resolved = config.get("resolved", {}) if isinstance(config, Mapping) else {}
    rel = run.dir.relative_to(root).as_posix() if run.dir != root else "."
    return {
        "cell": rel,
        "dataset": settings.get("dataset", "?"),
        "noise": settings.get("noise", "?"),
        "model": settings.get("model", "?"),
        "budget": cell.get("budget") or _budget_label(settings),
        "annotators": _annotators_label(settings),
        "strategy": label,
        "strategy_name": name,
        "seed": settings.get("seed", 0),
        "status": summary.get("status", "incomplete"),
        "_summary": summary,
        "_settings": settings,
        "_resolved": resolved,
    }


def load_cells(path: str | Path) -> pd.DataFrame:
    """One row per run/cell: setting, strategy, seed, status, rounds done and timing totals.

    Timing columns: ``train_seconds`` and ``select_seconds`` (sums over the rounds in
    ``rounds.jsonl``) and ``wall_seconds`` (``summary.json``'s wall clock, when recorded).
    """
    root, dirs = find_runs(path)
    records = []
    for d in dirs:
        run = load_run(d)
        meta = _cell_meta(root, run)
        rows = run.rounds
        summary = meta.pop("_summary")
        settings = meta.pop("_settings")
        resolved = meta.pop("_resolved")
        wall = next(
            (
                summary[k]
                for k in ("wall_seconds", "wall_seconds_total", "wall_seconds_last_session")
                if isinstance(summary.get(k), (int, float))
            ),
            None,
        )
        records.append(
            {
                **meta,
                "rounds_done": len(rows),
                "rounds_planned": (
                    len(resolved["budgets"])
                    if resolved.get("budgets")
                    else (settings.get("rounds", -1) + 1 if "rounds" in settings else None)
                ),
                "train_seconds": float(sum(r.get("train_seconds") or 0 for r in rows)),
                "select_seconds": float(sum(r.get("select_seconds") or 0 for r in rows)),
                "wall_seconds": wall,
                "settings": settings,
            }
        )
    cols = [
        *META,
        "rounds_done",
        "rounds_planned",
        "train_seconds",
        "select_seconds",
        "wall_seconds",
        "settings",
    ]
    return pd.DataFrame.from_records(records, columns=cols)


def load_results(path: str | Path) -> pd.DataFrame:
    """Long table of a run or grid directory: one row per cell × finished round.

    Columns: ``cell`` (directory relative to ``path``), ``dataset``, ``noise``, ``model``,
    ``budget`` (schedule label), ``strategy`` (display label), ``strategy_name``, ``seed``,
    ``status``, then every scalar of the round records (``round``, ``n_labeled``, ``test_accuracy``,
    ``noise_rate_batch``, ...), with nested dicts flattened to dotted names (``nc.nc1``,
    ``eval.ood.msp.auroc``); list values (selected indices, histograms) are left out.

    Parameters
    ----------
    path : str or Path
        A run directory (``config.json`` + ``rounds.jsonl``) or a grid directory (``cells.json``,
        or any tree of run directories).

    Raises
    ------
    NcalError
        The directory does not exist; ``CorruptRunError`` for unreadable JSON.
    """
    root, dirs = find_runs(path)
    records = []
    for d in dirs:
        run = load_run(d)
        meta = _cell_meta(root, run)
        for k in ("_summary", "_settings", "_resolved"):
            meta.pop(k)
        for row in run.rounds:
            flat: dict[str, Any] = {}
            _flatten("", row, flat)
            for k in (*META, *_PAYLOAD_KEYS):
                flat.pop(k, None)
            records.append({**meta, **flat})
    if not records:
        return pd.DataFrame(columns=[*META, "round", "n_labeled", METRIC])
    df = pd.DataFrame.from_records(records)
    if ANNOTATIONS in df.columns and LABELS in df.columns:  # runs from before annotations counted
        df[ANNOTATIONS] = df[ANNOTATIONS].fillna(df[LABELS])
    first = [c for c in META if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]
