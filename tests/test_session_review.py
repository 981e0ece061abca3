"""Mislabel review: each signal against a brute-force reference, and the ranking on real data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from ncal.session.coldstart import kcenter_greedy
from ncal.session.review import (
    annotator_disagreement,
    class_mean_distance_ratio,
    mislabel_scores,
    out_of_fold_probabilities,
    rank_normalise,
    standardise,
)


def test_distance_ratio_matches_loop_with_leave_one_out_means():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(40, 3))
    y = rng.integers(0, 4, 40)
    y[:2] = 3  # make sure class 3 has >= 2 items
    y[2] = 5  # a singleton class
    got = class_mean_distance_ratio(f, y, num_classes=7, block_size=7)
    for i in range(40):
        own = (y == y[i]) & (np.arange(40) != i)
        if not own.any():
            assert got[i] == 1.0
            continue
        d_own = np.linalg.norm(f[i] - f[own].mean(0))
        others = [c for c in np.unique(y) if c != y[i]]
        d_other = min(np.linalg.norm(f[i] - f[y == c].mean(0)) for c in others)
        assert got[i] == pytest.approx(d_own / (d_own + d_other), abs=1e-10)


def test_out_of_fold_probabilities_match_manual_folds_and_do_not_memorise():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(120, 20))
    y = rng.integers(0, 3, 120)  # labels unrelated to features
    got = out_of_fold_probabilities(f, y, num_classes=3, folds=4, seed=5)
    ref = np.zeros((120, 3))
    for tr, te in StratifiedKFold(4, shuffle=True, random_state=5).split(f, y):
        ref[te] = LogisticRegression(C=1.0, max_iter=300).fit(f[tr], y[tr]).predict_proba(f[te])
    np.testing.assert_allclose(got, ref, atol=1e-8)
    in_sample = LogisticRegression(max_iter=300).fit(f, y).predict_proba(f)[np.arange(120), y]
    oof = got[np.arange(120), y]
    # a model that saw the label is confident in it; the out-of-fold model is not (labels are noise)
    assert in_sample.mean() > oof.mean() + 0.1
    assert oof.mean() < 1 / 3 + 0.03


def test_out_of_fold_handles_tiny_classes():
    f = np.random.default_rng(2).normal(size=(12, 2))
    y = np.array([0] * 6 + [1] * 5 + [2])
    probs = out_of_fold_probabilities(f, y, num_classes=4, folds=5, seed=0)
    assert probs.shape == (12, 4)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert probs[11, 2] == 0.0  # its class never appears in its training fold
    assert (probs[:, 3] == 0).all()


def test_rank_normalise_and_disagreement():
    np.testing.assert_allclose(rank_normalise(np.array([3.0, 1.0, 2.0, 2.0])), [1, 0, 0.5, 0.5])
    np.testing.assert_allclose(rank_normalise(np.array([7.0, 7.0])), [0.5, 0.5])
    items = np.array([0, 0, 0, 1, 2, 2])
    labels = np.array([1, 1, 2, 0, 1, 0])
    agg = np.array([1, 0, 1, -1])
    np.testing.assert_allclose(annotator_disagreement(items, labels, agg), [1 / 3, 0, 0.5, 0])


def test_standardise_columns():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    np.testing.assert_allclose(standardise(x), [[-1, 0], [1, 0]])


def digits_with_flips(n: int, rate: float, seed: int):
    d = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(d.target), n, replace=False)
    x, y = d.data[idx], d.target[idx]
    flip = rng.random(n) < rate
    noisy = np.where(flip, (y + rng.integers(1, 10, n)) % 10, y)
    return x, y, noisy, flip


def precision_at(scores: np.ndarray, truth: np.ndarray, k: int) -> float:
    top = np.lexsort((np.arange(scores.size), -scores))[:k]
    return float(truth[top].mean())


def test_review_ranks_injected_label_errors_on_digits():
    x, _, noisy, flip = digits_with_flips(600, 0.1, seed=0)
    k = int(flip.sum())
    sc = mislabel_scores(x, noisy, num_classes=10, folds=5, seed=0)
    p_comb = precision_at(sc.score, flip, k)
    p_dist = precision_at(sc.distance, flip, k)
    p_self = precision_at(sc.self_confidence, flip, k)
    chance = flip.mean()
    print(f"precision@{k}: combined {p_comb:.3f}, distance {p_dist:.3f}, oof {p_self:.3f}, "
          f"chance {chance:.3f}")  # fmt: skip
    assert p_comb > 0.6 > 5 * chance
    assert p_dist > 3 * chance and p_self > 3 * chance
    # the out-of-fold prediction suggests the true class for most flagged items
    top = sc.ranking(k)
    _, y_true, _, _ = digits_with_flips(600, 0.1, seed=0)
    assert np.mean(sc.oof_pred[top][flip[top]] == y_true[top][flip[top]]) > 0.7


def test_disagreement_signal_moves_disputed_items_up():
    x, y, _, _ = digits_with_flips(200, 0.0, seed=1)
    dis = np.zeros(200)
    dis[[5, 50]] = 2 / 3
    base = mislabel_scores(x, y, num_classes=10, folds=3, seed=0)
    with_dis = mislabel_scores(x, y, num_classes=10, disagreement=dis, folds=3, seed=0)
    r0 = {int(i): r for r, i in enumerate(base.ranking())}
    r1 = {int(i): r for r, i in enumerate(with_dis.ranking())}
    assert r1[5] < r0[5] and r1[50] < r0[50]
    assert set(with_dis.ranking(2).tolist()) == {5, 50} or r1[5] < 20


def test_kcenter_greedy_matches_brute_force():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(150, 4))
    lab = rng.normal(size=(5, 4))
    got = kcenter_greedy(f, 12, labeled=lab, block_size=16)
    centers = list(lab)
    picks = []
    for _ in range(12):
        d = np.min([np.linalg.norm(f - c, axis=1) for c in centers], axis=0)
        d[picks] = -1
        j = int(np.argmax(d))
        picks.append(j)
        centers.append(f[j])
    np.testing.assert_array_equal(got, picks)
    cold = kcenter_greedy(f, 3)
    assert cold[0] == int(np.argmin(np.linalg.norm(f - f.mean(0), axis=1)))
    assert len(set(cold.tolist())) == 3
