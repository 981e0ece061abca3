"""Statistics of ncal.bench.stats against hand-computed values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ncal.bench import stats as S


def long_df(
    curves: dict[tuple[str, int], list[float]], budgets: list[int], **setting
) -> pd.DataFrame:
    """Long results table from {(strategy, seed): accuracies at ``budgets``}."""
    base = {"dataset": "d", "noise": "none", "model": "auto", "budget": "b"}
    base.update(setting)
    rows = []
    for (strategy, seed), accs in curves.items():
        for r, (b, a) in enumerate(zip(budgets, accs)):
            rows.append(
                {
                    **base,
                    "cell": f"{base['noise']}/{strategy}/{seed}",
                    "strategy": strategy,
                    "seed": seed,
                    "round": r,
                    "n_labeled": b,
                    "test_accuracy": a,
                }
            )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ AUBC


def test_aubc_equal_spacing_matches_hand_value_and_realistic_al() -> None:
    budgets, accs = [100, 200, 300], [0.5, 0.7, 0.8]
    # 0.5 * (0.5 + 0.7) / 2 + 0.5 * (0.7 + 0.8) / 2
    assert S.aubc(budgets, accs) == pytest.approx(0.675, abs=1e-15)
    assert S.aubc(budgets, accs) == pytest.approx(np.trapezoid(accs, dx=1 / 2))


def test_aubc_unequal_spacing_uses_actual_budgets() -> None:
    budgets, accs = [100, 200, 500], [0.5, 0.7, 0.8]
    # weights 100/400 and 300/400: 0.25 * 0.6 + 0.75 * 0.75
    assert S.aubc(budgets, accs) == pytest.approx(0.7125, abs=1e-15)
    assert S.aubc(budgets, accs) != pytest.approx(
        np.trapezoid(accs, dx=1 / 2)
    )  # the spacing matters


def test_aubc_batched_rows_constant_curve_and_two_points() -> None:
    got = S.aubc([10, 20, 40], np.array([[0.3, 0.3, 0.3], [0.0, 1.0, 1.0]]))
    np.testing.assert_allclose(got, [0.3, (10 * 0.5 + 20 * 1.0) / 30])
    assert S.aubc([1, 5], [0.2, 0.6]) == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("budgets", "accs", "match"),
    [
        ([100], [0.5], "at least 2"),
        ([100, 100], [0.5, 0.6], "strictly increasing"),
        ([200, 100], [0.5, 0.6], "strictly increasing"),
        ([1, 2, 3], [0.5, 0.6], "3 values"),
    ],
)
def test_aubc_rejects_bad_input(budgets, accs, match) -> None:
    with pytest.raises(ValueError, match=match):
        S.aubc(budgets, accs)


# ---------------------------------------------------------------------------------- paired tests


def test_paired_test_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(0.8, 0.02, 9)
    b = a - rng.normal(0.01, 0.015, 9)
    res = S.paired_test(a - b)
    tt = sps.ttest_rel(a, b)
    w = sps.wilcoxon(a - b)
    assert res.n == 9
    assert res.mean == pytest.approx(np.mean(a - b))
    assert res.std == pytest.approx(np.std(a - b, ddof=1))
    assert res.t == pytest.approx(tt.statistic) and res.p_t == pytest.approx(tt.pvalue)
    assert res.w == pytest.approx(w.statistic) and res.p_w == pytest.approx(w.pvalue)
    assert res.p_t == pytest.approx(sps.ttest_1samp(a - b, 0).pvalue)


def test_paired_test_without_wilcoxon_keeps_the_t_test() -> None:
    d = np.array([0.01, 0.0, 0.02, 0.01, -0.01, 0.02, 0.0, 0.01, 0.03, 0.01])  # zeros and ties
    full, fast = S.paired_test(d), S.paired_test(d, wilcoxon=False)
    assert (fast.n, fast.mean, fast.std, fast.t, fast.p_t) == (
        full.n, full.mean, full.std, full.t, full.p_t,
    )  # fmt: skip
    assert math.isnan(fast.w) and math.isnan(fast.p_w) and not math.isnan(full.p_w)


def test_paired_test_drops_nan_and_handles_degenerate_cases() -> None:
    d = np.array([0.1, np.nan, -0.05, 0.2, 0.12])
    res = S.paired_test(d)
    assert res.n == 4 and res.p_t == pytest.approx(sps.ttest_1samp(d[~np.isnan(d)], 0).pvalue)

    zero = S.paired_test(np.zeros(5))  # no difference at all: no evidence, not NaN
    assert (zero.mean, zero.std, zero.t, zero.p_t, zero.w, zero.p_w) == (
        0.0,
        0.0,
        0.0,
        1.0,
        0.0,
        1.0,
    )

    const = S.paired_test(np.full(5, 0.3))  # zero variance, non-zero mean: the t limit
    assert const.t == math.inf and const.p_t == 0.0 and const.std == 0.0
    assert const.p_w == pytest.approx(2 / 2**5)
    assert S.paired_test(np.full(3, -0.2)).t == -math.inf

    one = S.paired_test([0.4])
    assert (
        one.n == 1
        and one.mean == 0.4
        and math.isnan(one.std)
        and math.isnan(one.p_t)
        and math.isnan(one.p_w)
    )
    empty = S.paired_test([])
    assert empty.n == 0 and math.isnan(empty.mean)

    with_zeros = S.paired_test(
        [0.0, 0.0, 0.1, 0.2, -0.05, 0.3]
    )  # zeros dropped by Wilcoxon ("wilcox")
    assert with_zeros.p_w == pytest.approx(sps.wilcoxon([0.0, 0.0, 0.1, 0.2, -0.05, 0.3]).pvalue)


def test_t_interval_matches_scipy() -> None:
    v = np.array([0.71, 0.74, 0.69, 0.75, 0.72])
    lo, hi = S.t_interval(v, 0.95)
    ref = sps.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=sps.sem(v))
    assert (lo, hi) == pytest.approx(ref)
    assert all(math.isnan(x) for x in S.t_interval([0.5]))


# --------------------------------------------------------------------------------- grid tables


def test_curve_table_uses_sample_std() -> None:
    df = long_df(
        {("random", 0): [0.5, 0.6], ("random", 1): [0.7, 0.9], ("random", 2): [0.6, 0.6]}, [10, 20]
    )
    t = S.curve_table(df)
    row = t[t["n_labeled"] == 20].iloc[0]
    assert row["mean"] == pytest.approx(0.7) and row["n"] == 3
    assert row["std"] == pytest.approx(np.std([0.6, 0.9, 0.6], ddof=1))


def test_aubc_per_seed_table_and_paired_vs_reference() -> None:
    budgets = [10, 20, 40]
    curves = {
        ("random", 0): [0.5, 0.6, 0.7],
        ("random", 1): [0.4, 0.6, 0.8],
        ("random", 2): [0.5, 0.5, 0.6],
        ("ncal_r", 0): [0.5, 0.7, 0.8],
        ("ncal_r", 1): [0.4, 0.6, 0.9],
        ("ncal_r", 2): [0.5, 0.6, 0.6],
    }
    df = long_df(curves, budgets)
    # an unfinished run (2 of 3 rounds) must not enter the comparison
    df = pd.concat([df, long_df({("ncal_r", 3): [0.9, 0.95]}, budgets[:2])], ignore_index=True)
    per_seed = S.aubc_per_seed(df)
    assert len(per_seed) == 6 and 3 not in set(per_seed["seed"])
    got = per_seed.set_index(["strategy", "seed"])["aubc"]
    for key, accs in curves.items():
        assert got[key] == pytest.approx(S.aubc(budgets, accs))
    table = S.aubc_table(per_seed).set_index("strategy")
    r = np.array([S.aubc(budgets, curves[("random", s)]) for s in range(3)])
    n = np.array([S.aubc(budgets, curves[("ncal_r", s)]) for s in range(3)])
    assert table.loc["random", "mean"] == pytest.approx(r.mean())
    assert table.loc["random", "std"] == pytest.approx(r.std(ddof=1))
    assert (table.loc["ncal_r", "ci_low"], table.loc["ncal_r", "ci_high"]) == pytest.approx(
        S.t_interval(n)
    )
    paired = S.paired_vs_reference(per_seed, "random")
    assert list(paired["strategy"]) == ["ncal_r"]
    row = paired.iloc[0]
    assert row["n"] == 3 and row["mean"] == pytest.approx((n - r).mean())
    assert row["p_t"] == pytest.approx(sps.ttest_rel(n, r).pvalue)
    assert row["p_w"] == pytest.approx(sps.wilcoxon(n - r).pvalue)
    assert S.paired_vs_reference(per_seed, "missing").empty


def test_pooled_vs_reference_tests_per_seed_means_over_settings_and_budgets() -> None:
    budgets = [10, 20, 30]
    frames = []
    for noise, shift in (("none", 0.0), ("sym:0.3", -0.1)):
        curves = {("random", s): [0.5, 0.6 + 0.01 * s + shift, 0.7 + shift] for s in range(4)}
        curves |= {
            ("entropy", s): [0.5, 0.62 + 0.017 * s + shift, 0.71 - 0.01 * s * s + shift]
            for s in range(4)
        }
        frames.append(long_df(curves, budgets, noise=noise))
    df = pd.concat(frames, ignore_index=True)
    res = S.pooled_vs_reference(df).set_index("strategy")
    # per seed: mean over both settings and the two budgets after the initial one
    ent = {s: np.mean([0.62 + 0.017 * s, 0.71 - 0.01 * s * s]) for s in range(4)}
    ran = {s: np.mean([0.6 + 0.01 * s, 0.7]) for s in range(4)}
    a, b = np.array(list(ent.values())), np.array(list(ran.values()))
    assert res.loc["entropy", "n"] == 4 and res.loc["entropy", "points"] == 16
    assert res.loc["entropy", "mean"] == pytest.approx((a - b).mean())
    assert res.loc["entropy", "p_t"] == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert res.loc["entropy", "p_w"] == pytest.approx(sps.wilcoxon(a - b).pvalue)


# ----------------------------------------------------------------------- pairwise-penalty matrix


def _ppm_case() -> pd.DataFrame:
    """A (=random), B, C over 4 seeds at budgets 10 (shared initial), 20, 30.

    At 20: B beats A and C clearly; C equals A up to symmetric noise (no winner).
    At 30: B beats A and C; A beats C.
    """
    b = np.array([0.60, 0.62, 0.58, 0.61])
    tiny = np.array([0.001, -0.001, 0.001, -0.001])
    a = {10: b, 20: b, 30: b + 0.1}
    bb = {
        10: b,
        20: b + 0.05 + np.array([0.001, -0.001, 0.002, 0.0]),
        30: a[30] + 0.04 + np.array([0.001, 0.0, -0.001, 0.002]),
    }
    c = {10: b, 20: b + tiny, 30: a[30] - 0.06 + np.array([0.002, -0.001, 0.0, 0.001])}
    curves = {}
    for name, acc in (("random", a), ("B", bb), ("C", c)):
        for s in range(4):
            curves[(name, s)] = [acc[k][s] for k in (10, 20, 30)]
    return long_df(curves, [10, 20, 30])


def test_penalty_matrix_constructed_case() -> None:
    mat, colmean = S.penalty_matrix(_ppm_case())
    assert list(mat.index) == ["random", "B", "C"] == list(mat.columns)
    expected = pd.DataFrame(
        [[0.0, 0.0, 0.5], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], index=mat.index, columns=mat.columns
    )  # row = winner, column = loser, 1/2 per checkpoint (20 and 30)
    pd.testing.assert_frame_equal(mat, expected)
    np.testing.assert_allclose(colmean.to_numpy(), [1 / 3, 0.0, 0.5])


def test_penalty_matrix_options() -> None:
    df = _ppm_case()
    mat, _ = S.penalty_matrix(df, skip_initial=False)  # three checkpoints: 1/3 each
    np.testing.assert_allclose(mat.to_numpy(), [[0, 0, 1 / 3], [2 / 3, 0, 2 / 3], [0, 0, 0]])
    mat, _ = S.penalty_matrix(df, max_seeds=1)  # one matched seed: no test possible
    assert (mat.to_numpy() == 0).all()
    # badge's saturation rule: random reaches 0.5 x its final accuracy at 20 -> only 20 counts
    mat, _ = S.penalty_matrix(df, saturation=0.5)
    np.testing.assert_allclose(mat.to_numpy(), [[0, 0, 0], [1, 0, 1], [0, 0, 0]])
    # two settings add up
    two = pd.concat([df, _ppm_case().assign(noise="sym:0.3")], ignore_index=True)
    mat, _ = S.penalty_matrix(two)
    assert mat.loc["B", "random"] == pytest.approx(2.0)


# ------------------------------------------------------------------ labels to reach, query purity


@pytest.mark.parametrize(
    ("target", "expected"), [(0.6, 150.0), (0.75, 250.0), (0.7, 200.0), (0.5, 100.0), (0.45, 100.0)]
)
def test_labels_to_reach_interpolates(target, expected) -> None:
    assert S.labels_to_reach([100, 200, 300], [0.5, 0.7, 0.8], target) == pytest.approx(expected)


def test_labels_to_reach_never_and_first_crossing() -> None:
    assert math.isnan(S.labels_to_reach([100, 200], [0.5, 0.7], 0.9))
    # a curve that dips: the first crossing counts
    assert S.labels_to_reach([10, 20, 30, 40], [0.5, 0.8, 0.6, 0.9], 0.7) == pytest.approx(
        10 + 10 * 0.2 / 0.3
    )


def test_labels_to_reach_table_given_and_grid_max() -> None:
    curves = {
        ("random", 0): [0.5, 0.6, 0.7],
        ("random", 1): [0.5, 0.6, 0.7],
        ("B", 0): [0.5, 0.8, 0.9],
        ("B", 1): [0.5, 0.8, 0.8],
    }
    df = long_df(curves, [10, 20, 30])
    t = S.labels_to_reach_table(df, 0.9).set_index(
        "strategy"
    )  # full = best seed-mean = 0.85 (B at 30)
    assert (t["source"] == "grid max").all() and t.loc["B", "full_accuracy"] == pytest.approx(0.85)
    target = 0.9 * 0.85
    assert t.loc["B", "labels"] == pytest.approx(
        10 + 10 * (target - 0.5) / (0.8 - 0.5)
    )  # crosses 10→20
    assert t.loc["B", "seeds_reached"] == 2 and t.loc["B", "n_seeds"] == 2
    assert (
        math.isnan(t.loc["random", "labels"]) and t.loc["random", "seeds_reached"] == 0
    )  # peaks at 0.7
    g = S.labels_to_reach_table(df, 0.5, full_accuracy={"d": 1.2}).set_index(
        "strategy"
    )  # target 0.6
    assert (g["source"] == "given").all() and g.loc["random", "labels"] == pytest.approx(20.0)
    f = S.labels_to_reach_table(df, 0.5, full_accuracy=1.3).set_index("strategy")  # target 0.65
    assert f.loc["random", "labels"] == pytest.approx(25.0)
    with pytest.raises(ValueError, match="fraction"):
        S.labels_to_reach_table(df, 1.5)


def test_query_purity_per_round_and_table() -> None:
    df = long_df({("random", 0): [0.5, 0.6, 0.7], ("random", 1): [0.5, 0.6, 0.7]}, [10, 20, 30])
    df["noise_rate_batch"] = [0.3, 0.2, None, 0.1, 0.4, None]
    p = S.query_purity(df)
    assert list(p["query"]) == [1, 2]
    np.testing.assert_allclose(p["mean"], [0.8, 0.7])
    np.testing.assert_allclose(p["std"], [np.std([0.7, 0.9], ddof=1), np.std([0.8, 0.6], ddof=1)])
    t = S.query_purity_table(df).iloc[0]
    assert t["n"] == 2 and t["mean"] == pytest.approx(0.75) and t["std"] == pytest.approx(0.0)
