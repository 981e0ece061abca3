"""Oracles (docs/algorithms.md §2.5): fixed noisy labels, the difficulty-dependent oracle, the OOD
wrapper and make_oracle over every noise spec."""

from __future__ import annotations

import numpy as np
import pytest

from ncal.data import (
    NOT_IN_LABEL_SET,
    DifficultyOracle,
    FixedNoisyOracle,
    OODAwareOracle,
    contaminate_pool,
    load_dataset,
    make_noisy_labels,
    make_oracle,
    parse_noise_spec,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def digits_oracle(digits):
    return DifficultyOracle(
        digits.y_train, num_classes=10, target_rate=0.3, seed=0, x=digits.x_train
    )


def test_fixed_oracle_answers_and_truth():
    clean = np.array([0, 1, 2, 3, 4, 0])
    noisy = np.array([0, 2, 2, 3, 1, 0])
    o = FixedNoisyOracle(noisy, clean)
    labels, is_noisy = o.query([4, 1, 0], round=2)
    assert labels.tolist() == [1, 2, 0] and is_noisy.tolist() == [True, True, False]
    again, _ = o.query([4, 1, 0], round=3)
    np.testing.assert_array_equal(again, labels)
    assert o.realised_rate() == pytest.approx(2 / 6) and o.realised_rate([0, 2]) == 0.0
    assert o.realised_rate([]) == 0.0 and o.n_queries == 6
    np.testing.assert_allclose(o.transition(5)[1], [0, 0, 1, 0, 0])
    with pytest.raises(IndexError, match="outside"):
        o.query([6])
    with pytest.raises(TypeError, match="integers"):
        o.query(np.array([0.5]))
    blind = FixedNoisyOracle(noisy)
    assert not blind.knows_truth and not blind.query([1])[1].any()
    with pytest.raises(ValueError, match="clean labels"):
        blind.realised_rate()
    with pytest.raises(ValueError, match="entries"):
        FixedNoisyOracle(noisy, clean[:3])


def test_difficulty_oracle_hits_target_and_is_consistent(digits, digits_oracle):
    o, y = digits_oracle, digits.y_train
    assert o.error_prob.mean() == pytest.approx(0.3, abs=1e-9)  # bisection is exact
    assert abs(o.realised_rate() - 0.3) < 0.04  # binomial, n=1438: 3.3 sigma
    assert 0 <= o.error_prob.min() and o.error_prob.max() <= 0.9 + 1e-12
    np.testing.assert_allclose(o.error_prob, np.clip(o.eps1 * o.difficulty_scores, 0, 0.9))
    idx = np.array([5, 17, 5, 900])
    a, na = o.query(idx, round=0)
    b, nb = o.query(idx, round=4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(na, nb)
    assert a[0] == a[2]
    noisy = o.noisy_labels != y
    assert np.all(o.noisy_labels[noisy] != y[noisy])
    assert o.info["reference_accuracy_oof"] > 0.8  # a real (but out-of-fold) reference model


def test_difficulty_oracle_noisier_on_harder_samples(digits, digits_oracle):
    o, y = digits_oracle, digits.y_train
    d = o.difficulty_scores
    err = o.noisy_labels != y
    lo, hi = np.quantile(d, [0.5, 0.9])
    assert err[d >= hi].mean() > 3 * err[d <= lo].mean()
    # out-of-fold reference: well below the ~100 % train accuracy of a fit that memorises
    assert o.info["reference_accuracy_oof"] < 0.995


def test_difficulty_oracle_same_seed_same_answers_and_nested_errors(digits, digits_oracle):
    again = DifficultyOracle(digits.y_train, num_classes=10, target_rate=0.3, seed=0,
                             x=digits.x_train)  # fmt: skip
    np.testing.assert_array_equal(again.noisy_labels, digits_oracle.noisy_labels)
    P = digits_oracle.p_ref
    lo = DifficultyOracle(digits.y_train, num_classes=10, target_rate=0.1, seed=0, p_ref=P)
    hi = DifficultyOracle(digits.y_train, num_classes=10, target_rate=0.3, seed=0, p_ref=P)
    err_lo, err_hi = lo.noisy_labels != digits.y_train, hi.noisy_labels != digits.y_train
    assert np.all(err_hi[err_lo])  # raising the target only adds errors (shared uniforms)


def test_difficulty_oracle_wrong_labels_follow_p_ref():
    rng = np.random.default_rng(0)
    n, C = 4000, 5
    y = rng.integers(0, C, n)
    P = np.full((n, C), 0.0)
    P[np.arange(n), y] = rng.uniform(0.2, 1.0, n)
    P[np.arange(n), (y + 2) % C] = 1 - P[np.arange(n), y]  # all off-class mass on y+2
    o = DifficultyOracle(y, num_classes=C, target_rate=0.2, seed=1, p_ref=P)
    wrong = o.noisy_labels != y
    np.testing.assert_array_equal(o.noisy_labels[wrong], (y[wrong] + 2) % C)
    np.testing.assert_allclose(o.difficulty_scores, 1 - P[np.arange(n), y])


def test_difficulty_oracle_uniform_fallback_and_entropy():
    n, C = 3000, 4
    y = np.arange(n) % C
    P = np.eye(C)[y]  # confident reference: no off-class mass anywhere
    o = DifficultyOracle(y, num_classes=C, target_rate=0.2, seed=0, p_ref=P, eps0=0.2)
    wrong = o.noisy_labels != y
    assert abs(wrong.mean() - 0.2) < 0.03
    shift = (o.noisy_labels[wrong] - y[wrong]) % C
    assert set(shift.tolist()) == {1, 2, 3}  # uniform over the other classes
    Pu = np.full((n, C), 1 / C)
    e = DifficultyOracle(y, num_classes=C, target_rate=0.3, seed=0, p_ref=Pu, difficulty="entropy")
    np.testing.assert_allclose(e.difficulty_scores, 1.0)


def test_difficulty_oracle_errors():
    y = np.arange(100) % 4
    P = np.eye(4)[y]
    with pytest.raises(ValueError, match="unreachable"):
        DifficultyOracle(y, num_classes=4, target_rate=0.3, seed=0, p_ref=P)
    with pytest.raises(ValueError, match="below the floor"):
        DifficultyOracle(y, num_classes=4, target_rate=0.1, seed=0, p_ref=P, eps0=0.2)
    with pytest.raises(ValueError, match="target_rate"):
        DifficultyOracle(y, num_classes=4, target_rate=0.95, seed=0, p_ref=P)
    with pytest.raises(ValueError, match="needs `x` or `features`"):
        DifficultyOracle(y, num_classes=4, target_rate=0.1, seed=0)
    with pytest.raises(ValueError, match="p_ref"):
        DifficultyOracle(y, num_classes=4, target_rate=0.1, seed=0, p_ref=P[:, :3])


def test_difficulty_oracle_on_features():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 200)
    feats = rng.normal(size=(600, 300)) + 1.5 * np.eye(3, 300)[y]  # 300-d -> PCA to 128
    o = DifficultyOracle(y, num_classes=3, target_rate=0.15, seed=0, features=feats)
    assert "PCA to 128" in o.info["reference"] and abs(o.realised_rate() - 0.15) < 0.05


SPECS = ["none", "sym:0.3", "sym_inclusive:0.3", "sym_exact:0.3", "asym:0.4", "asym_dividemix:0.4",
         "asym_exact:0.4", "pairflip:0.3", "idn:0.3", "human:cifar10n-aggre",
         "human:cifar10n-random1", "human:cifar10n-random2", "human:cifar10n-random3",
         "human:cifar10n-worst"]  # fmt: skip


@pytest.mark.parametrize("spec", SPECS)
def test_make_oracle_fixed_specs_equal_make_noisy_labels(digits, spec):
    y, x = digits.y_train, digits.x_train
    o = make_oracle(spec, y, num_classes=10, seed=3, x=x)
    assert isinstance(o, FixedNoisyOracle)
    ref, _ = make_noisy_labels(y, spec, num_classes=10, seed=3, x=x)
    np.testing.assert_array_equal(o.noisy_labels, ref)
    idx = np.arange(0, y.size, 7)
    labels, is_noisy = o.query(idx)
    np.testing.assert_array_equal(is_noisy, labels != y[idx])
    assert o.info["spec"] == str(parse_noise_spec(spec))


@pytest.mark.parametrize(
    "spec", ["asym100_blocks:0.4", "asym100_superclass:0.4", "human:cifar100n"]
)
def test_make_oracle_100_class_specs(spec):
    y = np.repeat(np.arange(100), 30)
    o = make_oracle(spec, y, num_classes=100, seed=0)
    assert abs(o.realised_rate() - 0.4) < 0.04


def test_make_oracle_difficulty_spec(digits):
    o = make_oracle("oracle:0.2", digits.y_train, num_classes=10, seed=0, x=digits.x_train)
    assert isinstance(o, DifficultyOracle) and abs(o.realised_rate() - 0.2) < 0.04
    yn, _ = make_noisy_labels(digits.y_train, "oracle:0.2", num_classes=10, seed=0,
                              x=digits.x_train)  # fmt: skip
    assert abs(np.mean(yn != digits.y_train) - 0.2) < 0.04
    with pytest.raises(TypeError, match="unexpected"):
        make_oracle("sym:0.2", digits.y_train, num_classes=10, seed=0, gamma=2.0)


@pytest.mark.parametrize("policy", ["reject", "random"])
def test_ood_aware_oracle(digits, policy):
    x_in, y_in = digits.x_train[:600], digits.y_train[:600]
    x_ood = np.full((400, 8, 8), 255, np.uint8)
    x, y, is_ood = contaminate_pool(x_in, y_in, x_ood, 0.2, seed=0)
    o = make_oracle("sym:0.3", y, num_classes=10, seed=5, x=x, is_ood=is_ood, ood_policy=policy)
    assert isinstance(o, OODAwareOracle) and o.n == 750
    base = make_oracle("sym:0.3", y[~is_ood], num_classes=10, seed=5)
    ood_idx, in_idx = np.flatnonzero(is_ood), np.flatnonzero(~is_ood)
    labels, noisy = o.query(np.concatenate([ood_idx[:5], in_idx[:50]]))
    np.testing.assert_array_equal(labels[5:], base.noisy_labels[:50])
    np.testing.assert_array_equal(noisy[5:], base.noisy_labels[:50] != y[in_idx[:50]])
    if policy == "reject":
        assert np.all(labels[:5] == NOT_IN_LABEL_SET) and not noisy[:5].any()
    else:
        assert np.all((labels[:5] >= 0) & (labels[:5] < 10)) and noisy[:5].all()
    assert o.ood_count([*ood_idx[:5].tolist(), int(in_idx[0])]) == 5
    assert o.realised_rate() == pytest.approx(base.realised_rate())
    assert o.realised_rate(ood_idx) == 0.0  # no in-distribution samples asked
    again, _ = o.query(ood_idx[:5])
    np.testing.assert_array_equal(again, labels[:5])


def test_ood_wrapper_checks_sizes():
    base = FixedNoisyOracle([0, 1, 1], [0, 1, 0])
    with pytest.raises(ValueError, match="in-distribution"):
        OODAwareOracle(base, [False, True, False])
    with pytest.raises(ValueError, match="num_classes"):
        OODAwareOracle(base, [False, True, False, False], policy="random")
