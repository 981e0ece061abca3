"""Aggregation and agreement: majority vote, Dawid–Skene, Krippendorff alpha, pairwise agreement."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ncal.session.aggregate import (
    dawid_skene,
    krippendorff_alpha,
    latest_per_pair,
    majority_vote,
    pairwise_agreement,
    vote_counts,
)


def simulate_crowd(
    n_items: int,
    num_classes: int,
    error_rates: list[float],
    *,
    seed: int,
    per_item: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Annotators with symmetric (exclusive) error: wrong label uniform over the other classes.

    Returns items, annotators, labels, the true labels and the realised per-annotator error rates.
    """
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, num_classes, n_items)
    A = len(error_rates)
    items, anns = [], []
    for i in range(n_items):
        who = np.arange(A) if per_item is None else rng.choice(A, per_item, replace=False)
        items += [i] * len(who)
        anns += list(who)
    items, anns = np.array(items), np.array(anns)
    wrong = rng.random(items.size) < np.asarray(error_rates)[anns]
    shift = rng.integers(1, num_classes, items.size)
    labels = np.where(wrong, (truth[items] + shift) % num_classes, truth[items])
    realised = np.array([np.mean(labels[anns == a] != truth[items[anns == a]]) for a in range(A)])
    return items, anns, labels, truth, realised


# ------------------------------------------------------------------------------------- majority
def test_majority_vote_hand_example_and_ties():
    # item 0: votes 1,1,2 -> 1; item 1: 0 vs 2 tie -> lowest index 0; item 2: none; item 3: single 2
    items = np.array([0, 0, 0, 1, 1, 3])
    anns = np.array([0, 1, 2, 0, 1, 2])
    labels = np.array([1, 1, 2, 2, 0, 2])
    res = majority_vote(items, anns, labels, n_items=4, num_classes=3)
    np.testing.assert_array_equal(res.labels, [1, 0, -1, 2])
    np.testing.assert_allclose(res.confidence[[0, 1, 3]], [2 / 3, 0.5, 1.0])
    assert np.isnan(res.confidence[2])
    np.testing.assert_array_equal(res.counts[0], [0, 2, 1])


def test_majority_vote_weights_break_ties_towards_reliable_annotator():
    items = np.array([0, 0, 1, 1])
    anns = np.array([0, 1, 0, 1])
    labels = np.array([2, 0, 0, 2])
    # annotator 0 more reliable: its label wins each tie; without weights the lowest index wins
    res = majority_vote(items, anns, labels, n_items=2, num_classes=3, weights=np.array([0.9, 0.6]))
    np.testing.assert_array_equal(res.labels, [2, 0])
    res = majority_vote(items, anns, labels, n_items=2, num_classes=3)
    np.testing.assert_array_equal(res.labels, [0, 0])


def test_majority_vote_rejects_bad_input():
    with pytest.raises(ValueError, match="labels"):
        majority_vote(np.array([0]), np.array([0]), np.array([5]), n_items=1, num_classes=3)
    with pytest.raises(ValueError, match="items"):
        majority_vote(np.array([4]), np.array([0]), np.array([0]), n_items=2, num_classes=3)


def test_latest_per_pair_keeps_last_annotation_of_each_pair():
    items = np.array([0, 0, 1, 0, 1])
    anns = np.array([0, 1, 0, 0, 1])
    np.testing.assert_array_equal(latest_per_pair(items, anns), [False, True, True, True, True])


# ---------------------------------------------------------------------------------- Dawid–Skene
def dense_reference_ds(items, anns, labels, n_items, A, C, iters, smoothing=0.01):
    """Textbook Dawid–Skene on the dense (items, annotators, labels) count tensor."""
    n = np.zeros((n_items, A, C))
    for i, a, lab in zip(items, anns, labels):
        n[i, a, lab] += 1
    counts = n.sum(axis=1)
    T = counts / counts.sum(axis=1, keepdims=True)
    for _ in range(iters):
        pi = (T.sum(0) + 1e-6) / (n_items + C * 1e-6)
        conf = smoothing + np.einsum("ic,ial->acl", T, n)
        conf /= conf.sum(axis=2, keepdims=True)
        logT = np.log(pi)[None] + np.einsum("ial,acl->ic", n, np.log(conf))
        logT -= logT.max(axis=1, keepdims=True)
        T = np.exp(logT)
        T /= T.sum(axis=1, keepdims=True)
    return T, conf, pi


def test_dawid_skene_matches_dense_textbook_em():
    items, anns, labels, _, _ = simulate_crowd(200, 4, [0.1, 0.3, 0.45], seed=1, per_item=2)
    res = dawid_skene(
        items, anns, labels, n_items=200, n_annotators=3, num_classes=4, max_iter=15, tol=0.0,
        shrinkage=0.0, accuracy_strength=0.0,
    )  # fmt: skip
    T, conf, pi = dense_reference_ds(items, anns, labels, 200, 3, 4, res.n_iter)
    assert res.n_iter == 15
    np.testing.assert_allclose(res.posteriors, T, atol=1e-10)
    # the result's priors and confusion are those of the last M-step (used by the last E-step)
    np.testing.assert_allclose(res.priors, pi, atol=1e-12)
    np.testing.assert_allclose(res.confusion, conf, atol=1e-12)
    np.testing.assert_allclose(res.confusion.sum(axis=2), 1.0)


@pytest.mark.parametrize("per_item", [None, 2])
def test_dawid_skene_recovers_annotator_error_rates(per_item):
    rates = [0.05, 0.15, 0.30]
    items, anns, labels, truth, realised = simulate_crowd(
        1500, 10, rates, seed=0, per_item=per_item
    )
    res = dawid_skene(items, anns, labels, n_items=1500, n_annotators=3, num_classes=10)
    est = 1.0 - res.reliability
    assert res.converged
    np.testing.assert_allclose(est, realised, atol=0.02)
    np.testing.assert_allclose(est, rates, atol=0.04)
    mv = majority_vote(items, anns, labels, n_items=1500, num_classes=10)
    acc_ds = np.mean(res.labels == truth)
    acc_mv = np.mean(mv.labels == truth)
    assert acc_ds >= acc_mv
    # Bayes-optimal labels under the true annotator model: DS should be (almost) as good
    true_conf = np.stack([np.full((10, 10), r / 9) + np.eye(10) * (1 - r - r / 9) for r in rates])
    logp = np.zeros((1500, 10))
    np.add.at(logp, items, np.log(true_conf[anns, :, labels]))
    acc_oracle = np.mean(logp.argmax(axis=1) == truth)
    # (full confusion matrices are estimated from few off-diagonal counts: a small gap is expected)
    assert acc_ds >= acc_oracle - 0.04
    # reliability definition: sum_c pi_c confusion[a, c, c]
    np.testing.assert_allclose(
        res.reliability, np.einsum("c,acc->a", res.priors, res.confusion), atol=1e-12
    )


def test_dawid_skene_unannotated_items_get_prior_and_no_label():
    items = np.array([0, 0, 2])
    anns = np.array([0, 1, 0])
    labels = np.array([1, 1, 0])
    res = dawid_skene(items, anns, labels, n_items=3, n_annotators=2, num_classes=2)
    assert res.labels[1] == -1
    np.testing.assert_allclose(res.posteriors[1], res.priors)
    np.testing.assert_array_equal(res.labels[[0, 2]], [1, 0])
    np.testing.assert_array_equal(res.n_annotations, [2, 1])


def test_dawid_skene_agrees_with_crowd_kit():
    import crowdkit.aggregation as ck
    import pandas as pd

    items, anns, labels, _, _ = simulate_crowd(600, 5, [0.05, 0.2, 0.35], seed=3)
    ours = dawid_skene(items, anns, labels, n_items=600, n_annotators=3, num_classes=5)
    df = pd.DataFrame({"task": items, "worker": anns, "label": labels})
    theirs = ck.DawidSkene(n_iter=200).fit_predict(df).sort_index()
    assert np.mean(theirs.to_numpy() == ours.labels) > 0.99


def test_session_aggregate_is_the_consensus_implementation():
    import ncal.consensus as consensus
    import ncal.session.aggregate as aggregate

    for name in aggregate.__all__:
        assert getattr(aggregate, name) is getattr(consensus, name), name


# ------------------------------------------------------------------------------------ agreement
def brute_alpha(units: list[list[int]]) -> float:
    """Krippendorff's nominal alpha from the definition: pairable values, loops only."""
    cats = sorted({v for u in units for v in u})
    o = {(c, k): 0.0 for c in cats for k in cats}
    for u in units:
        m = len(u)
        if m < 2:
            continue
        for i, j in itertools.permutations(range(m), 2):
            o[(u[i], u[j])] += 1.0 / (m - 1)
    n_c = {c: sum(o[(c, k)] for k in cats) for c in cats}
    n = sum(n_c.values())
    d_o = sum(o[(c, k)] for c in cats for k in cats if c != k) / n
    d_e = sum(n_c[c] * n_c[k] for c in cats for k in cats if c != k) / (n * (n - 1))
    return 1.0 - d_o / d_e


def to_arrays(units: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    items = np.array([i for i, u in enumerate(units) for _ in u], dtype=np.int64)
    labels = np.array([v for u in units for v in u], dtype=np.int64)
    return items, labels


def test_krippendorff_alpha_published_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", 4 observers x 12 units,
    # nominal alpha = 0.743 (values 1..5 shifted to 0..4; missing values dropped)
    table = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = [[row[u] - 1 for row in table if row[u] is not None] for u in range(12)]
    items, labels = to_arrays(units)
    alpha = krippendorff_alpha(items, labels, n_items=12, num_classes=5)
    assert alpha == pytest.approx(0.743, abs=5e-4)
    assert alpha == pytest.approx(brute_alpha(units), abs=1e-12)


def test_krippendorff_alpha_matches_brute_force_on_random_data():
    rng = np.random.default_rng(7)
    units = [list(rng.integers(0, 4, rng.integers(1, 5))) for _ in range(60)]
    items, labels = to_arrays(units)
    got = krippendorff_alpha(items, labels, n_items=60, num_classes=4)
    assert got == pytest.approx(brute_alpha(units), abs=1e-12)


def test_krippendorff_alpha_perfect_agreement_and_degenerate_cases():
    units = [[0, 0], [1, 1, 1], [2, 2]]
    items, labels = to_arrays(units)
    assert krippendorff_alpha(items, labels, n_items=3, num_classes=3) == pytest.approx(1.0)
    items, labels = to_arrays([[0], [1]])  # nothing pairable
    assert np.isnan(krippendorff_alpha(items, labels, n_items=2, num_classes=2))


def test_pairwise_agreement_matches_loops():
    items, anns, labels, _, _ = simulate_crowd(80, 3, [0.1, 0.3, 0.5, 0.2], seed=5, per_item=3)
    overall, rate, overlap = pairwise_agreement(items, anns, labels, n_items=80, n_annotators=4)
    agree = np.zeros((4, 4))
    both = np.zeros((4, 4))
    for i in range(80):
        sel = items == i
        for (a1, l1), (a2, l2) in itertools.combinations(zip(anns[sel], labels[sel]), 2):
            both[a1, a2] += 1
            both[a2, a1] += 1
            agree[a1, a2] += l1 == l2
            agree[a2, a1] += l1 == l2
    np.testing.assert_array_equal(overlap, both)
    off = ~np.eye(4, dtype=bool)
    assert (both[off] > 0).all()
    np.testing.assert_allclose(rate[off], agree[off] / both[off])
    assert overall == pytest.approx(agree[off].sum() / both[off].sum())


def test_vote_counts_shape_and_values():
    counts = vote_counts(np.array([0, 0, 2]), np.array([1, 1, 0]), n_items=3, num_classes=2)
    np.testing.assert_array_equal(counts, [[0, 2], [0, 0], [1, 0]])
