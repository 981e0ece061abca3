"""The annotator model behind NCAL-R+'s discount and relabel decision: agreement inversion,
which evidence sets q_ann, and the posterior weakness of a labeled item."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ncal.strategies._annotation_model import (
    accuracy_from_agreement,
    fit_annotation_model,
    posterior_weakness,
)


@given(q=st.floats(0.1, 1.0), c=st.integers(2, 100))
def test_agreement_inverts_to_the_accuracy(q: float, c: int) -> None:
    q = max(q, 1.0 / c)
    agreement = q**2 + (1.0 - q) ** 2 / (c - 1)
    np.testing.assert_allclose(accuracy_from_agreement(np.array([agreement]), c), [q], atol=1e-7)


def test_below_chance_agreement_is_chance_accuracy() -> None:
    np.testing.assert_allclose(accuracy_from_agreement(np.array([0.0, 0.1]), 10), [0.1, 0.1])


def _annotators(q: float, n: int = 400, c: int = 5, seed: int = 0):
    """Three symmetric annotators of accuracy ``q`` and a model whose confidence is random."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    ann = np.repeat(y[:, None], 3, axis=1)
    wrong = rng.random(ann.shape) > q
    ann[wrong] = (ann[wrong] + rng.integers(1, c, wrong.sum())) % c
    logits = rng.normal(0, 1, (n, c))
    logits[np.arange(n), y] += 2.0
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return ann, p


def test_pairs_recover_the_annotators_accuracy() -> None:
    for q in (0.6, 0.8, 1.0):
        ann, p = _annotators(q)
        model = fit_annotation_model(ann, p)
        assert model.info["source"] == "pairs" and model.info["n_repeated"] == 400
        est = model.annotator_accuracy(np.linspace(0, 1, 5))
        assert abs(est.mean() - q) < 0.05


def test_margin_dependence_needs_evidence() -> None:
    # symmetric annotators: one level whatever the margin
    for seed in range(3):
        ann, p = _annotators(0.7, seed=seed)
        assert not fit_annotation_model(ann, p).info["margin_dependent"]
    # annotators who err on the items the model finds hard: two levels, the hard half lower
    ann, p = _annotators(0.95, seed=0)
    rng = np.random.default_rng(1)
    margin = np.sort(p, axis=1)[:, -1] - np.sort(p, axis=1)[:, -2]
    hard = margin < np.median(margin)
    wrong = (rng.random(ann.shape) < 0.4) & hard[:, None]
    ann[wrong] = (ann[wrong] + 1) % 5
    model = fit_annotation_model(ann, p)
    assert model.info["margin_dependent"]
    q_hard, q_easy = model.annotator_accuracy(np.array([0.0, 1.0]))
    assert q_hard < q_easy - 0.2


def test_single_annotations_use_the_confident_model() -> None:
    ann, p = _annotators(0.8)
    ann[:, 1:] = -1
    model = fit_annotation_model(ann, p)
    assert model.info["source"] == "confident_model"
    # the most confident quarter of the model is mostly right: agreement close to q_ann
    assert 0.65 < model.annotator_accuracy(np.array([0.5]))[0] < 0.85
    no_votes = fit_annotation_model(np.full((4, 3), -1), np.full((4, 5), 0.2))
    assert no_votes.info["source"] == "none"
    np.testing.assert_array_equal(no_votes.annotator_accuracy(np.zeros(3)), np.ones(3))


def test_weakness_weighs_each_voter_by_its_accuracy() -> None:
    p = np.array([[0.05, 0.9, 0.05], [0.05, 0.9, 0.05], [0.05, 0.9, 0.05], [0.3, 0.4, 0.3]])
    ann = np.array([[0, -1, -1], [0, 0, 0], [1, -1, -1], [-1, -1, -1]])
    clean, noisy = _model(q_ann=0.999, q_model=0.8), _model(q_ann=0.6, q_model=0.8)
    w_clean, w_noisy = posterior_weakness(ann, p, clean), posterior_weakness(ann, p, noisy)
    assert w_clean[0] < 0.01 < 0.3 < w_noisy[0]  # one annotation against the model
    assert w_noisy[1] < w_noisy[0]  # three agreeing annotations settle it
    assert w_noisy[2] < 0.1  # annotation and model agree
    assert w_clean[3] == w_noisy[3] == 0.0  # nothing to settle


def _model(q_ann: float, q_model: float):
    from ncal.strategies._annotation_model import AnnotationModel

    return AnnotationModel(
        3, lambda m: np.full(np.shape(m), q_ann), lambda m: np.full(np.shape(m), q_model)
    )
