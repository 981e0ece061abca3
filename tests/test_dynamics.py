"""Feature fluctuation (docs/algorithms.md §1.10): flip counts and the continuous margin variant,
streaming recorders against direct computation, and the FF variant of ``ncal_r`` / ``ncal_plus``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import softmax

import ncal.strategies as S
from ncal.dynamics import (
    MarginFluctuationRecorder,
    margin_fluctuation,
    probability_margin,
)
from ncal.strategies.selection import ncal_r_scores
from strategy_contract import make_signals


def _logit_history(t: int = 7, n: int = 40, c: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 3, (n, c))
    return (base[None] + rng.normal(0, 0.5, (t, n, c))).astype(np.float32)


# ---- probability margin ---------------------------------------------------------------------------


def test_probability_margin_equals_top1_minus_top2_softmax():
    z = _logit_history()[0]
    p = np.sort(softmax(z.astype(np.float64), axis=1), axis=1)
    np.testing.assert_allclose(probability_margin(z), p[:, -1] - p[:, -2], rtol=1e-12, atol=1e-15)


def test_probability_margin_hand_values_and_edge_cases():
    z = np.array([[0.0, 0.0, 0.0], [np.log(3.0), 0.0, 0.0], [1000.0, 0.0, -5.0]])
    # equal logits: 0; probabilities (3/5, 1/5, 1/5): 2/5; a huge gap: 1 without overflow
    np.testing.assert_allclose(probability_margin(z), [0.0, 0.4, 1.0], atol=1e-15)
    np.testing.assert_array_equal(probability_margin(np.zeros((3, 1))), [1.0, 1.0, 1.0])
    assert probability_margin(np.zeros((0, 4))).shape == (0,)
    with pytest.raises(ValueError, match="NaN or inf"):
        probability_margin(np.array([[0.0, np.inf]]))
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        probability_margin(np.zeros(4))


# ---- margin fluctuation: recorder == direct computation -------------------------------------------


def test_recorder_equals_direct_computation_from_stored_checkpoints():
    hist = _logit_history(t=8)
    rec = MarginFluctuationRecorder(hist.shape[1])
    for t, z in enumerate(hist, start=1):
        rec.update(z)
        margins = np.stack([probability_margin(h) for h in hist[:t]])
        for stat in ("margin_std", "margin_change"):
            np.testing.assert_allclose(
                rec.stat(stat), margin_fluctuation(margins, stat), rtol=1e-10, atol=1e-14
            )
    margins = np.stack([probability_margin(h) for h in hist])
    # the definitions, spelled out: population std and mean |m_t - m_{t-1}| over 8 checkpoints
    np.testing.assert_allclose(
        rec.stat("margin_std"),
        np.sqrt(((margins - margins.mean(0)) ** 2).sum(0) / 8),
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        rec.stat("margin_change"), np.abs(margins[1:] - margins[:-1]).sum(0) / 7, rtol=1e-12
    )
    assert rec.n_updates == 8 and (rec.stat() > 0).all()


def test_margin_fluctuation_hand_values_and_constant_margin():
    h = np.array([[0.2, 0.5], [0.4, 0.5], [0.6, 0.5]])
    np.testing.assert_allclose(margin_fluctuation(h, "margin_std"), [np.sqrt(8 / 300), 0.0])
    np.testing.assert_allclose(margin_fluctuation(h, "margin_change"), [0.2, 0.0])
    rec = MarginFluctuationRecorder(2)
    for row in h:
        rec.update_margins(row)
    np.testing.assert_allclose(rec.stat("margin_std"), [np.sqrt(8 / 300), 0.0], rtol=1e-12)
    assert rec.stat("margin_std")[1] == 0.0  # a constant margin is exactly 0, never a tiny residue


def test_recorder_before_enough_updates_and_errors():
    rec = MarginFluctuationRecorder(3)
    np.testing.assert_array_equal(rec.stat("margin_std"), np.zeros(3))
    rec.update_margins(np.array([0.1, 0.2, 0.3]))
    np.testing.assert_array_equal(rec.stat("margin_std"), np.zeros(3))
    np.testing.assert_array_equal(rec.stat("margin_change"), np.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(3, C\)"):
        rec.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        rec.update_margins(np.array([0.1, np.nan, 0.3]))
    with pytest.raises(ValueError, match="`name` must be one of"):
        rec.stat("flips")
    with pytest.raises(ValueError, match="`stat` must be one of"):
        margin_fluctuation(np.zeros((2, 3)), "std")
    with pytest.raises(ValueError, match="n_samples"):
        MarginFluctuationRecorder(-1)


# ---- the FF variant of ncal_r / ncal_plus ----------------------------------------------------------


def _signals_with_margin_std(seed: int = 3):
    sig = make_signals(seed=seed)
    sig.ff_margin_std = np.random.default_rng(seed).gamma(2.0, 0.05, sig.n_pool)
    return sig


def test_ncal_r_default_is_the_flip_count_composite():
    sig = _signals_with_margin_std()
    default = S.get("ncal_r").select(sig, 25)
    flips = S.get("ncal_r", ff="flips").select(sig, 25)
    np.testing.assert_array_equal(default.indices, flips.indices)
    np.testing.assert_array_equal(default.scores, flips.scores)
    c = default.info["cmap"]
    want = ncal_r_scores(c, sig.ff_counts)
    np.testing.assert_array_equal(default.scores, want[default.indices])
    assert S.get("ncal_r").required_signals()[-1] == "ff_counts"


def test_ncal_r_margin_std_z_scores_the_margin_signal():
    sig = _signals_with_margin_std()
    sel = S.get("ncal_r", ff="margin_std").select(sig, 25)
    want = ncal_r_scores(sel.info["cmap"], sig.ff_margin_std)
    order = np.lexsort((np.arange(want.size), -want))[:25]  # top-k, ties to the lower index
    np.testing.assert_array_equal(sel.indices, order)
    np.testing.assert_allclose(sel.scores, want[order], rtol=1e-15)
    assert sel.info["ff"] == "margin_std" and sel.info["ff_zero_share"] == 0.0
    assert not sel.info["ff_degenerate"]
    strat = S.get("ncal_r", ff="margin_std")
    assert "ff_margin_std" in strat.required_signals()
    assert "ff_counts" not in strat.required_signals()
    sig.ff_margin_std = None
    with pytest.raises(ValueError, match="missing: `ff_margin_std`"):
        strat.select(sig, 5)
    with pytest.raises(ValueError, match="`ff` must be one of"):
        S.get("ncal_r", ff="entropy")


def test_ncal_r_warns_on_degenerate_ff_keeps_it_and_records_the_share():
    sig = make_signals(seed=4)
    ff = np.zeros(sig.n_pool, dtype=np.int64)
    ff[[3, 50]] = 2  # 98.3 % zeros
    sig.ff_counts = ff
    with pytest.warns(RuntimeWarning, match=r"FF is 0 for 98\.3% of the pool") as rec:
        sel = S.get("ncal_r").select(sig, 20)
    assert "ff='margin_std'" in str(rec[0].message)
    assert sel.info["ff_zero_share"] == pytest.approx(118 / 120)
    assert sel.info["ff_degenerate"] and not sel.info["ff_constant"]
    # kept, not dropped: the scores are the paper's composite with the sparse FF
    np.testing.assert_array_equal(sel.scores, ncal_r_scores(sel.info["cmap"], ff)[sel.indices])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # at the threshold 1.0: no warning
        quiet = S.get("ncal_r", ff_zero_share=1.0).select(sig, 20)
    assert quiet.info["ff_zero_share"] == sel.info["ff_zero_share"]
    assert not quiet.info["ff_degenerate"]
    np.testing.assert_array_equal(quiet.indices, sel.indices)


def test_ncal_r_warns_on_constant_ff():
    sig = make_signals(seed=5)
    sig.ff_counts = np.ones(sig.n_pool, dtype=np.int64)
    with pytest.warns(RuntimeWarning, match=r"0\.0% of the pool \(constant: True"):
        sel = S.get("ncal_r").select(sig, 10)
    assert sel.info["ff_constant"] and sel.info["ff_degenerate"]


def test_ncal_plus_margin_std_all_parts_off_equals_ncal_r():
    sig = _signals_with_margin_std(seed=6)
    off = {"ood_gate": False, "reliability": False, "relabel": False}
    got = S.get("ncal_plus", ff="margin_std", **off).select(sig, 25)
    want = S.get("ncal_r", ff="margin_std").select(sig, 25)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.scores, want.scores)
    assert not got.info["ff_degenerate"] and got.info["ff"] == "margin_std"
    assert "ff_margin_std" in S.get("ncal_plus", ff="margin_std").required_signals()
