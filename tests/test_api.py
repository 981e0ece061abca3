"""ncal.api: whole-array inputs with a missing-label mask give exactly the registered strategy's
picks, mapped back to rows; scores agree with select; bad inputs name the argument."""

from __future__ import annotations

import numpy as np
import pytest

import ncal.api
import ncal.strategies as S

N, C, D = 80, 4, 6


@pytest.fixture
def arrays():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(C), N)
    emb = rng.normal(size=(N, D))
    labels = np.full(N, -1)
    labeled_rows = rng.choice(N, 20, replace=False)
    labels[labeled_rows] = np.arange(20) % C
    ff = rng.integers(0, 5, N)
    mc = rng.dirichlet(np.ones(C), (5, N))
    return {"pred_probs": probs, "embeddings": emb, "labels": labels, "ff_counts": ff,
            "mc_pred_probs": mc}  # fmt: skip


def _pool_signals(a):
    pool = a["labels"] == -1
    lab = ~pool
    return np.flatnonzero(pool), S.Signals(
        probs_pool=a["pred_probs"][pool],
        features_pool=a["embeddings"][pool],
        features_labeled=a["embeddings"][lab],
        labels_labeled=a["labels"][lab],
        probs_labeled=a["pred_probs"][lab],
        ff_counts=a["ff_counts"][pool],
        mc_probs_pool=a["mc_pred_probs"][:, pool],
        num_classes=C,
    )


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("entropy", {}),
        ("ncal_r", {"direction": "low"}),
        ("coreset", {}),
        ("random", {}),
        ("bald", {}),
        ("cdal", {}),
    ],
)
def test_select_equals_the_strategy_on_the_pool(arrays, name, params):
    rows, sig = _pool_signals(arrays)
    want = S.get(name, **params).select(sig, 9, rng=np.random.default_rng(5))
    got, scores = ncal.api.select(name, 9, seed=5, return_scores=True, **arrays, **params)
    np.testing.assert_array_equal(got, rows[want.indices])
    assert np.all(arrays["labels"][got] == -1)  # only unlabeled rows are picked
    if want.scores is None:
        assert scores is None
    else:
        np.testing.assert_array_equal(scores, want.scores)


@pytest.mark.parametrize("name", ncal.api.SCORING_STRATEGIES)
def test_scores_rank_like_select(arrays, name):
    s = ncal.api.scores(name, **arrays)
    labeled = arrays["labels"] != -1
    assert s.shape == (N,)
    assert np.all(np.isnan(s[labeled])) and not np.any(np.isnan(s[~labeled]))
    picked = ncal.api.select(name, 10, **arrays)
    top = S.top_k(np.where(labeled, -np.inf, s), 10)
    np.testing.assert_array_equal(picked, top)


def test_entropy_scores_are_the_entropy(arrays):
    s = ncal.api.scores("entropy", pred_probs=arrays["pred_probs"], labels=arrays["labels"])
    p = arrays["pred_probs"]
    want = -(p * np.log(p)).sum(1)
    pool = arrays["labels"] == -1
    np.testing.assert_allclose(s[pool], want[pool], rtol=1e-12)


def test_nan_missing_label_and_no_labels(arrays):
    float_labels = np.where(arrays["labels"] == -1, np.nan, arrays["labels"]).astype(float)
    a = dict(arrays, labels=float_labels)
    np.testing.assert_array_equal(
        ncal.api.select("ncal_r", 5, missing_label=np.nan, **a),
        ncal.api.select("ncal_r", 5, **arrays),
    )
    # labels=None: every row is unlabeled
    got = ncal.api.select("margin", 3, pred_probs=arrays["pred_probs"])
    margin = np.sort(arrays["pred_probs"], 1)
    np.testing.assert_array_equal(got, S.top_k(-(margin[:, -1] - margin[:, -2]), 3))


def test_k_larger_than_the_pool_and_an_empty_pool(arrays):
    got = ncal.api.select("entropy", 500, **arrays)
    np.testing.assert_array_equal(np.sort(got), np.flatnonzero(arrays["labels"] == -1))
    all_labeled = np.arange(N) % C
    out = ncal.api.select("entropy", 5, pred_probs=arrays["pred_probs"], labels=all_labeled)
    assert out.shape == (0,) and out.dtype == np.int64


def test_a_built_strategy_instance_is_accepted(arrays):
    inst = S.get("ncal_r", direction="abs")
    np.testing.assert_array_equal(
        ncal.api.select(inst, 6, **arrays), ncal.api.select("ncal_r", 6, direction="abs", **arrays)
    )
    with pytest.raises(TypeError, match="already built"):
        ncal.api.select(inst, 6, direction="low", **arrays)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"pred_probs": np.ones((N, C))}, ValueError, "`pred_probs` rows must sum to 1"),
        ({"pred_probs": np.full((N, C), -0.25)}, ValueError, r"`pred_probs` must hold probab"),
        ({"embeddings": np.ones((N - 1, D))}, ValueError, "`embeddings` has 79 rows"),
        ({"labels": np.full(N - 2, -1)}, ValueError, r"`labels` must have shape \(80,\)"),
        ({"labels": np.r_[7, np.full(N - 1, -1)]}, ValueError, r"outside \[0, num_classes=4\)"),
        ({"labels": np.r_[0.5, np.full(N - 1, -1.0)]}, TypeError, "integer class labels"),
        ({"ff_counts": -np.ones(N)}, ValueError, "`ff_counts` must hold non-negative"),
        ({"ff_counts": None}, ValueError, "`ncal_r` needs `ff_counts`"),
        ({"embeddings": None, "ff_counts": None}, ValueError, "needs `embeddings`, `ff_counts`"),
        ({"mc_pred_probs": np.ones((2, N))}, ValueError, r"`mc_pred_probs` must have shape"),
        ({"num_classes": 3}, ValueError, "`num_classes` is 3 but `pred_probs` has 4"),
    ],
)
def test_bad_inputs_name_the_argument(arrays, change, error, match):
    with pytest.raises(error, match=match):
        ncal.api.select("ncal_r", 5, **dict(arrays, **change))


def test_unsupported_uses_are_refused(arrays):
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        ncal.api.select("nope", 5, **arrays)
    with pytest.raises(ValueError, match="`strategy` 'coreset' does not score"):
        ncal.api.scores("coreset", **arrays)
    with pytest.raises(ValueError, match="`activelab` needs `annotations_labeled`"):
        ncal.api.select("activelab", 5, **arrays)
    with pytest.raises(TypeError, match="`k` must be an integer"):
        ncal.api.select("entropy", 2.5, **arrays)
    with pytest.raises(ValueError, match="give at least one of"):
        ncal.api.select("random", 2)


def test_scoring_strategies_are_registered():
    assert set(ncal.api.SCORING_STRATEGIES) <= set(S.available())
