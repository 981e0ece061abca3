"""Simulated annotator pools: agreement of independent vs correlated errors, pairing, OOD."""

from __future__ import annotations

import numpy as np
import pytest

from ncal.consensus import pairwise_agreement
from ncal.data.annotators import AnnotatorPool, parse_annotator_specs
from ncal.errors import NcalError

Y = np.random.default_rng(0).integers(0, 10, 4000)


def agreement(specs, errors):
    pool = AnnotatorPool.from_specs(specs, Y, 10, errors=errors, seed=1)
    M = len(specs)
    items = np.repeat(np.arange(Y.size), M)
    who, labels = pool.annotate(items)
    overall, _, _ = pairwise_agreement(items, who, labels, n_items=Y.size, n_annotators=M)
    rates = [np.mean(labels[who == a] != Y[items[who == a]]) for a in range(M)]
    return overall, rates


@pytest.mark.parametrize(
    "specs, independent, correlated",
    [
        (["sym:0.3"] * 3, 0.49, 1.00),
        (["sym:0.2", "sym:0.4"], 0.48, 0.79),
        (
            ["human:cifar10n-random1", "human:cifar10n-random2", "human:cifar10n-random3"],
            0.68,
            0.97,
        ),
    ],
)
def test_pairwise_agreement_independent_vs_correlated(specs, independent, correlated):
    ind, rates = agreement(specs, "independent")
    cor, rates_c = agreement(specs, "correlated")
    assert ind == pytest.approx(independent, abs=0.01)
    assert cor == pytest.approx(correlated, abs=0.01)
    # both modes keep each annotator's own error rate
    np.testing.assert_allclose(rates, rates_c, atol=0.02)


def test_sym_rates_and_independent_theory():
    ind, rates = agreement(["sym:0.2", "sym:0.4"], "independent")
    np.testing.assert_allclose(rates, [0.2, 0.4], atol=0.02)
    assert ind == pytest.approx(0.8 * 0.6 + 0.2 * 0.4 / 9, abs=0.015)


def test_answers_are_paired_across_request_orders():
    items = np.array([5, 7, 5, 9, 7, 5])
    a = AnnotatorPool.from_specs(["sym:0.5"] * 3, Y, 10, seed=3)
    b = AnnotatorPool.from_specs(["sym:0.5"] * 3, Y, 10, seed=3)
    who_a, lab_a = a.annotate(items)
    # the other "strategy" asks in another order and in two batches
    order = np.array([3, 1, 0, 5, 4, 2])
    who_b1, lab_b1 = b.annotate(items[order[:3]])
    who_b2, lab_b2 = b.annotate(items[order[3:]])
    got = {}
    for it, w, lab in zip(items[order], np.r_[who_b1, who_b2], np.r_[lab_b1, lab_b2]):
        got.setdefault(int(it), []).append((int(w), int(lab)))
    want = {}
    for it, w, lab in zip(items, who_a, lab_a):
        want.setdefault(int(it), []).append((int(w), int(lab)))
    assert got == want


def test_round_robin_gives_each_ask_of_an_item_the_next_annotator():
    pool = AnnotatorPool.from_specs(["none", "none", "none"], Y, 10, seed=0)
    who, labels = pool.annotate(np.array([4, 4, 4, 4]))
    assert [(w - who[0]) % 3 for w in who] == [0, 1, 2, 0]
    np.testing.assert_array_equal(labels, Y[4])
    assert pool.asks(4) == 4 and pool.params()["assignment"] == "round_robin"


def test_ood_item_costs_an_annotation_and_is_not_in_label_set():
    y = Y[:20].copy()
    ood = np.zeros(20, dtype=bool)
    ood[[3, 8]] = True
    y[ood] = -1
    pool = AnnotatorPool.from_specs(["sym:0.2", "none"], y, 10, is_ood=ood, seed=0)
    _, labels = pool.annotate(np.array([3, 8, 0]))
    assert labels[:2].tolist() == [-1, -1] and labels[2] >= 0
    assert pool.asks(3) == 1


def test_difficulty_annotator_errs_more_on_hard_items():
    rng = np.random.default_rng(0)
    p_ref = rng.dirichlet(np.ones(10) * 0.3, size=Y.size)
    pool = AnnotatorPool.from_specs(["oracle:0.3"], Y, 10, reference_probs=p_ref, seed=0)
    _, labels = pool.annotate(np.arange(Y.size))
    hard = 1.0 - p_ref[np.arange(Y.size), Y] > 0.9
    wrong = labels != Y
    assert wrong.mean() == pytest.approx(0.3, abs=0.03)
    assert wrong[hard].mean() > wrong[~hard].mean() + 0.1


def test_bad_specs_name_the_annotator():
    with pytest.raises(NcalError, match="annotator 1"):
        parse_annotator_specs(["sym:0.2", "sym:abc"])
    with pytest.raises(NcalError, match=r"annotator 0.*reference_probs"):
        AnnotatorPool.from_specs(["oracle:0.3"], Y, 10)
    with pytest.raises(ValueError, match="errors"):
        AnnotatorPool.from_specs(["sym:0.2"], Y, 10, errors="shared")
