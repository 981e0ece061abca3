"""Consensus: the three Dawid–Skene failure cases and their fix, purity, annotation counting."""

from __future__ import annotations

import numpy as np
import pytest

from ncal.consensus import (
    annotation_matrix,
    consensus_labels,
    consensus_purity,
    dawid_skene,
    ds_identifiable,
    majority_vote,
)


def crowd(n, C, accuracies, seed):
    """Every item labeled by every annotator; wrong labels uniform over the other classes."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, C, n)
    A = len(accuracies)
    items, anns = np.repeat(np.arange(n), A), np.tile(np.arange(A), n)
    wrong = rng.random(items.size) >= np.asarray(accuracies)[anns]
    labels = np.where(wrong, (truth[items] + rng.integers(1, C, items.size)) % C, truth[items])
    return items, anns, labels, truth


def plain(items, anns, labels, n, A, C):
    return dawid_skene(
        items, anns, labels, n_items=n, n_annotators=A, num_classes=C,
        shrinkage=0.0, accuracy_strength=0.0,
    )  # fmt: skip


def test_two_annotators_plain_ds_inverts_and_auto_falls_back_to_majority():
    # the reported failure: true accuracies 0.95 / 0.70, 10 classes, 50 items
    items, anns, labels, truth = crowd(50, 10, [0.95, 0.70], seed=1)
    old = plain(items, anns, labels, 50, 2, 10)
    assert old.reliability[1] > old.reliability[0] + 0.15  # confidently inverted
    res = consensus_labels(items, anns, labels, 50, 10, method="auto")
    assert res.method_used == "majority"
    assert "not identifiable from 2 annotator" in res.fallback_reason
    mv = majority_vote(items, anns, labels, n_items=50, num_classes=10)
    np.testing.assert_array_equal(res.labels, mv.labels)
    assert np.mean(res.labels == truth) >= np.mean(old.labels == truth)
    # no confident inversion: the fallback reliabilities of the two are within 0.1
    assert abs(res.reliability[0] - res.reliability[1]) < 0.1


def test_three_annotators_few_items_regularised_ds_beats_plain_ds():
    # 30 items, 10 classes: plain EM mis-orders annotators; averaged over 20 crowds the
    # regularised fit has smaller reliability error and labels at least as accurate as majority
    err_plain, err_reg, acc_reg, acc_mv = [], [], [], []
    acc = np.array([0.95, 0.6, 0.8, 0.7])
    for seed in range(20):
        rng = np.random.default_rng(seed)
        truth = rng.integers(0, 10, 30)
        items = np.repeat(np.arange(30), 2)
        anns = np.concatenate([rng.choice(4, 2, replace=False) for _ in range(30)])
        wrong = rng.random(60) >= acc[anns]
        labels = np.where(wrong, (truth[items] + rng.integers(1, 10, 60)) % 10, truth[items])
        old = plain(items, anns, labels, 30, 4, 10)
        new = dawid_skene(items, anns, labels, n_items=30, n_annotators=4, num_classes=10)
        mv = majority_vote(items, anns, labels, n_items=30, num_classes=10)
        err_plain.append(np.abs(old.reliability - acc).mean())
        err_reg.append(np.abs(new.reliability - acc).mean())
        acc_reg.append(np.mean(new.labels == truth))
        acc_mv.append(np.mean(mv.labels == truth))
    assert np.mean(err_reg) < np.mean(err_plain) - 0.03
    assert np.mean(acc_reg) >= np.mean(acc_mv)


def test_three_annotators_enough_overlap_reliabilities_ordered():
    items, anns, labels, truth = crowd(200, 10, [0.95, 0.70, 0.80], seed=0)
    res = consensus_labels(items, anns, labels, 200, 10, method="auto")
    assert res.method_used == "ds" and res.fallback_reason is None
    assert res.reliability[0] > res.reliability[2] > res.reliability[1]
    mv = majority_vote(items, anns, labels, n_items=200, num_classes=10)
    assert np.mean(res.labels == truth) >= np.mean(mv.labels == truth)


def test_single_perfect_annotator():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, 100)
    items, anns = np.arange(100), np.zeros(100, dtype=np.int64)
    # plain EM drifts with iterations (the 0.486-like values reported); the regularised fit
    # cannot learn anything about a lone annotator and returns its prior instead
    drifted = dawid_skene(
        items, anns, truth, n_items=100, n_annotators=1, num_classes=10, tol=0.0,
        shrinkage=2.0, accuracy_strength=2.0, max_iter=200,
    )  # fmt: skip
    prior_diag = (2.0 * 0.7 + 0.01) / (2.0 + 10 * 0.01)  # (shrinkage·rho0 + smoothing) / row sum
    assert drifted.reliability[0] == pytest.approx(prior_diag)
    assert drifted.labels.tolist() == truth.tolist()
    res = consensus_labels(items, anns, truth, 100, 10, method="auto")
    assert res.method_used == "majority"
    assert res.reliability[0] == pytest.approx(1.0)
    assert consensus_purity(res, truth) == 1.0


def test_perfect_annotator_among_noisy_ones_near_one():
    items, anns, labels, _ = crowd(150, 10, [1.0, 0.7, 0.6], seed=2)
    res = consensus_labels(items, anns, labels, 150, 10, method="ds")
    assert res.reliability[0] > 0.9  # measured 0.913 (plain EM: 0.913)
    assert res.reliability[0] > res.reliability[1] > res.reliability[2]


def test_ds_identifiable_rules():
    ok, why = ds_identifiable(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))
    assert not ok and "2 annotator" in why
    items = np.repeat(np.arange(4), 3)
    anns = np.tile([0, 1, 2], 4)
    ok, why = ds_identifiable(items, anns, min_items=5)
    assert not ok and "only 4 item(s)" in why
    assert ds_identifiable(items, anns, min_items=4) == (True, None)


def test_consensus_hand_case_counts_agreement_and_ood_votes():
    # item 0: 1,1,2 -> 1 (agreement 2/3); item 1: one OOD answer only -> no label; item 2: 0
    items = np.array([0, 0, 0, 1, 2])
    anns = np.array([0, 1, 2, 0, 1])
    labels = np.array([1, 1, 2, -1, 0])
    res = consensus_labels(items, anns, labels, 3, 3, method="majority")
    np.testing.assert_array_equal(res.labels, [1, -1, 0])
    np.testing.assert_array_equal(res.n_annotations, [3, 0, 1])
    np.testing.assert_allclose(res.agreement[[0, 2]], [2 / 3, 1.0])
    assert np.isnan(res.agreement[1])
    # annotator 0 said 1 (agrees); 1 said 1 and 0 (both agree); 2 said 2 (disagrees)
    np.testing.assert_allclose(res.reliability, [1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="method"):
        consensus_labels(items, anns, labels, 3, 3, method="vote")


def test_consensus_purity_hand_case():
    consensus = np.array([0, 1, -1, 2, 2])
    y_true = np.array([0, 2, 1, 2, -1])  # item 4 is OOD: wrong whatever its consensus
    assert consensus_purity(consensus, y_true) == pytest.approx(2 / 4)
    assert consensus_purity(consensus, y_true, np.array([0, 3])) == 1.0
    mask = np.array([False, True, True, False, False])
    assert consensus_purity(consensus, y_true, mask) == 0.0
    assert np.isnan(consensus_purity(consensus, y_true, np.array([2])))


def test_annotation_matrix_last_answer_wins_and_missing_is_minus_one():
    m = annotation_matrix(
        np.array([0, 1, 0, 0]), np.array([1, 0, 1, 0]), np.array([2, 1, 0, 3]),
        n_items=3, n_annotators=2,
    )  # fmt: skip
    np.testing.assert_array_equal(m, [[3, 0], [1, -1], [-1, -1]])


# ------------------------------------------------ selection-biased overlap (the active-learning case)
def _hard_item_overlap(seed: int):
    """900 items answered once, in turn, by annotators with difficulty-dependent error rates
    15 / 30 / 45%; the 120 hardest are answered by all three (relabel requests go to hard items).
    A wrong answer is the item's plausible wrong class, so the two weaker annotators tend to agree."""
    rng = np.random.default_rng(seed)
    n, c = 900, 10
    y = rng.integers(0, c, n)
    d = rng.random(n) ** 2
    confuse = (y + 1 + rng.integers(0, 2, n)) % c
    rates = np.array([0.15, 0.30, 0.45])
    hard = set(np.argsort(-d)[:120].tolist())
    items, anns, labels = [], [], []
    for i in range(n):
        for a in [i % 3] + ([(i + 1) % 3, (i + 2) % 3] if i in hard else []):
            p = min(0.95, rates[a] * d[i] / d.mean())
            labels.append(confuse[i] if rng.random() < p else y[i])
            items.append(i)
            anns.append(a)
    return np.array(items), np.array(anns), np.array(labels), y, n, c


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auto_consensus_survives_overlap_on_hard_items_only(seed):
    it, an, lab, y, n, c = _hard_item_overlap(seed)
    maj = consensus_purity(consensus_labels(it, an, lab, n, c, method="majority"), y)
    ds = consensus_labels(it, an, lab, n, c, method="ds")
    auto = consensus_labels(it, an, lab, n, c, method="auto")
    # plain Dawid-Skene ranks the best annotator last and re-guesses its single answers
    assert np.argmin(ds.reliability) == 0
    assert consensus_purity(ds, y) <= maj
    # auto keeps single answers and refuses implausible fits: never more than a point below majority
    assert consensus_purity(auto, y) >= maj - 0.01
    if auto.method_used == "majority":
        assert "implausible" in auto.fallback_reason
