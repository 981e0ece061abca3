"""Noise models (docs/algorithms.md §2.1–2.4): realised rates, transition structure, spec errors,
the registry, human noise statistics against the CIFAR-N files (docs/data.md)."""

from __future__ import annotations

import numpy as np
import pytest

from ncal.data import (
    CIFAR100_FINE_TO_COARSE,
    check_noise_spec,
    describe_noise_models,
    empirical_transition,
    make_noisy_labels,
    noise_models,
    noise_transition_matrix,
    parse_noise_spec,
)
from ncal.data import human_noise as hn

Y10 = np.repeat(np.arange(10), 2000)  # balanced, 20k
Y100 = np.repeat(np.arange(100), 500)  # balanced, 50k like CIFAR-100


def rate(y, yn):
    return float(np.mean(y != yn))


def test_t_hat_matches_brute_force():
    y = np.array([0, 0, 0, 1, 1, 2])
    yn = np.array([0, 1, 1, 1, 0, 2])
    T = empirical_transition(y, yn, 4)
    ref = np.zeros((4, 4))
    for a, b in zip(y, yn):
        ref[a, b] += 1
    ref[:3] /= ref[:3].sum(1, keepdims=True)
    np.testing.assert_allclose(T, ref)
    _, T2 = make_noisy_labels(Y10, "sym:0.3", num_classes=10, seed=0)
    yn2, _ = make_noisy_labels(Y10, "sym:0.3", num_classes=10, seed=0)
    np.testing.assert_allclose(T2, empirical_transition(Y10, yn2, 10))


def test_none_and_determinism():
    yn, T = make_noisy_labels(Y10, "none", num_classes=10, seed=0)
    np.testing.assert_array_equal(yn, Y10)
    np.testing.assert_array_equal(T, np.eye(10))
    a, _ = make_noisy_labels(Y10, "sym:0.4", num_classes=10, seed=3)
    b, _ = make_noisy_labels(Y10, "sym:0.4", num_classes=10, seed=3)
    c, _ = make_noisy_labels(Y10, "sym:0.4", num_classes=10, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sym_exclusive_rate_and_uniform_off_diagonal():
    yn, T = make_noisy_labels(Y10, "sym:0.3", num_classes=10, seed=0)
    assert abs(rate(Y10, yn) - 0.3) < 0.012  # 4 sigma at n=20k
    off = T[~np.eye(10, dtype=bool)]
    assert abs(off.mean() - 0.3 / 9) < 1e-3 and off.min() > 0.02
    np.testing.assert_allclose(
        noise_transition_matrix("sym:0.3", 10),
        0.7 * np.eye(10) + 0.3 / 9 * (1 - np.eye(10)),
    )


def test_sym_inclusive_rate_is_eta_times_c_minus_1_over_c():
    yn, _ = make_noisy_labels(Y10, "sym_inclusive:0.5", num_classes=10, seed=0)
    assert abs(rate(Y10, yn) - 0.45) < 0.012


def test_sym_exact_flips_exact_counts_per_class():
    y = np.repeat(np.arange(5), [100, 81, 40, 7, 3])
    yn, _ = make_noisy_labels(y, "sym_exact:0.3", num_classes=5, seed=1)
    flips = np.bincount(y[yn != y], minlength=5)
    assert flips.tolist() == [30, 24, 12, 2, 0]
    assert rate(y, yn) == (30 + 24 + 12 + 2) / y.size


@pytest.mark.parametrize("spec", ["asym:0.4", "asym_T:0.4", "asym_dividemix:0.4", "asym_exact:0.4"])
def test_asym_cifar10_map_only(spec):
    yn, T = make_noisy_labels(Y10, spec, num_classes=10, seed=0)
    flipped = yn != Y10
    allowed = {(9, 1), (2, 0), (4, 7), (3, 5), (5, 3)}
    assert set(zip(Y10[flipped].tolist(), yn[flipped].tolist())) <= allowed
    assert not flipped[np.isin(Y10, [0, 1, 6, 7, 8])].any()
    assert abs(rate(Y10, yn) - 0.2) < 0.015  # ≈ η/2 on balanced data
    if spec == "asym_exact:0.4":
        assert np.bincount(Y10[flipped], minlength=10)[[2, 3, 4, 5, 9]].tolist() == [800] * 5
    elif spec != "asym_dividemix:0.4":
        assert np.all(np.abs(T[[2, 3, 4, 5, 9], [0, 5, 7, 3, 1]] - 0.4) < 0.05)


def test_asym_dividemix_flips_among_floor_eta_n():
    yn, _ = make_noisy_labels(Y10, "asym_dividemix:0.4", num_classes=10, seed=0)
    assert (yn != Y10).sum() <= int(0.4 * Y10.size)


def test_pairflip_goes_to_next_class():
    y = np.repeat(np.arange(7), 1000)
    yn, T = make_noisy_labels(y, "pairflip:0.3", num_classes=7, seed=0)
    f = yn != y
    np.testing.assert_array_equal(yn[f], (y[f] + 1) % 7)
    assert abs(f.mean() - 0.3) < 0.02 and T[6, 0] > 0.25


def test_asym100_blocks_next_in_block_of_five():
    yn, _ = make_noisy_labels(Y100, "asym100_blocks:0.4", num_classes=100, seed=0)
    f = yn != Y100
    c = Y100[f]
    np.testing.assert_array_equal(yn[f], 5 * (c // 5) + (c % 5 + 1) % 5)
    assert abs(f.mean() - 0.4) < 0.01


def test_asym100_superclass_next_inside_official_superclass():
    yn, _ = make_noisy_labels(Y100, "asym100_superclass:0.4", num_classes=100, seed=0)
    f = yn != Y100
    assert np.all(CIFAR100_FINE_TO_COARSE[yn] == CIFAR100_FINE_TO_COARSE[Y100])
    # successor = next larger fine index in the same super-class, wrapping to the smallest
    for src in range(100):
        group = np.flatnonzero(CIFAR100_FINE_TO_COARSE == CIFAR100_FINE_TO_COARSE[src])
        nxt = group[(np.searchsorted(group, src) + 1) % 5]
        assert set(yn[f & (Y100 == src)].tolist()) == {nxt}
    assert abs(f.mean() - 0.4) < 0.01
    # Official map: 20 super-classes of 5; e.g. apple(0)->fruit(4), bear(3)->large carnivores(8).
    assert np.bincount(CIFAR100_FINE_TO_COARSE).tolist() == [5] * 20
    assert CIFAR100_FINE_TO_COARSE[[0, 3, 99]].tolist() == [4, 8, 13]


def test_asym100_superclass_with_given_coarse_labels():
    y = np.repeat(np.arange(100), 50)
    coarse = y // 10  # a made-up grouping of 10 consecutive classes
    yn, _ = make_noisy_labels(y, "asym100_superclass:0.3", num_classes=100, seed=0,
                              coarse_labels=coarse)  # fmt: skip
    f = yn != y
    np.testing.assert_array_equal(yn[f], 10 * (y[f] // 10) + (y[f] % 10 + 1) % 10)
    with pytest.raises(ValueError, match="one super-class per fine class"):
        make_noisy_labels(y, "asym100_superclass:0.3", num_classes=100, seed=0,
                          coarse_labels=np.arange(y.size) % 20)  # fmt: skip


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3)).astype(np.uint8)


def test_idn_rate_depends_on_x_and_records_scaling():
    y = np.repeat(np.arange(10), 400)
    x = _images(y.size)
    yn, _, info = make_noisy_labels(y, "idn:0.3", num_classes=10, seed=0, x=x, return_info=True)
    assert abs(rate(y, yn) - 0.3) < 0.03
    assert info["x_scaling"].startswith("uint8/255") and "CHW" in info["x_scaling"]
    assert info["input_dim"] == 192 and info["rate_realised"] == rate(y, yn)
    yn2, _ = make_noisy_labels(y, "idn:0.3", num_classes=10, seed=0, x=_images(y.size, 1))
    assert not np.array_equal(yn, yn2)  # same seed, other inputs -> other flips
    # float input outside [0, 1] is min-max scaled; same images as floats in [0,1] give same labels
    yf, _ = make_noisy_labels(y, "idn:0.3", num_classes=10, seed=0, x=x.astype(np.float32) / 255)
    np.testing.assert_array_equal(yf, yn)
    _, _, info = make_noisy_labels(y, "idn:0.1", num_classes=10, seed=0,
                                   x=x.reshape(len(x), -1) * 3.0 - 7, return_info=True)  # fmt: skip
    assert info["x_scaling"].startswith("min-max")


def test_idn_flips_concentrate_on_few_classes_per_sample_class():
    # With [0,1]-scaled inputs the softmax is peaked: each class's flips favour few targets.
    y = np.repeat(np.arange(10), 400)
    _, T = make_noisy_labels(y, "idn:0.4", num_classes=10, seed=2, x=_images(y.size, 3))
    off = T * (1 - np.eye(10))
    top2 = np.sort(off, axis=1)[:, -2:].sum(1)
    assert np.mean(top2 / off.sum(1)) > 0.5


def test_idn_needs_x():
    with pytest.raises(ValueError, match="needs the inputs"):
        make_noisy_labels(Y10, "idn:0.2", num_classes=10, seed=0)
    with pytest.raises(ValueError, match="rows"):
        make_noisy_labels(Y10, "idn:0.2", num_classes=10, seed=0, x=_images(5))


# ---------------------------------------------------------------------------------- human noise
FILE_RATES = {
    "cifar10n-aggre": 0.0901,
    "cifar10n-random1": 0.17234,
    "cifar10n-random2": 0.18122,
    "cifar10n-random3": 0.1764,
    "cifar10n-worst": 0.40208,
    "cifar100n": 0.4020,
}


@pytest.mark.parametrize("name", list(FILE_RATES))
def test_shipped_human_statistics_match_data_md(name):
    assert hn.human_noise_rate(name) == pytest.approx(FILE_RATES[name], abs=1e-9)
    n = hn.human_noise_counts(name)
    assert n.sum() == 50000 and np.all(n.sum(1) == 50000 // n.shape[0])


def test_aggre_transition_matches_appendix_a():
    T = hn.human_noise_T("cifar10n-aggre")
    assert T[0, 0] == pytest.approx(0.943, abs=5e-4) and T[9, 1] == pytest.approx(0.073, abs=5e-4)
    assert T[3, 5] == pytest.approx(0.057, abs=5e-4) and T[8, 8] == pytest.approx(0.974, abs=5e-4)
    worst = np.diag(hn.human_noise_T("cifar10n-worst"))
    np.testing.assert_allclose(worst, [.650, .592, .632, .487, .488, .580, .594, .722, .683, .551],
                               atol=5e-4)  # fmt: skip


@pytest.mark.parametrize("name", list(FILE_RATES))
def test_human_noise_realised_rate_on_balanced_labels(name):
    y = Y100 if name == "cifar100n" else np.repeat(np.arange(10), 5000)
    C = 100 if name == "cifar100n" else 10
    yn, T, info = make_noisy_labels(y, f"human:{name}", num_classes=C, seed=0, return_info=True)
    assert abs(rate(y, yn) - FILE_RATES[name]) < 0.008  # ~3.5 sigma at n=50k
    P = hn.human_noise_T(name)
    n_c = y.size // C
    dg = np.diag(P)
    assert np.all(np.abs(np.diag(T) - dg) <= 5 * np.sqrt(dg * (1 - dg) / n_c))  # 5 sigma
    # mean row L1 distance: ~0.13 for 100N at 500/class (seeds 0-4); 0.57 against a matrix with the
    # same diagonal but uniform confusions, so the confusion pattern itself is reproduced
    assert np.abs(T - P).sum(1).mean() < (0.2 if C == 100 else 0.045)  # 10N: 0.009-0.025
    assert "not CIFAR-N itself" in info["source"]
    # structural zeros of the human matrix are never drawn
    zero = hn.human_noise_counts(name) == 0
    assert T[zero].sum() == 0


def test_human_noise_needs_matching_class_count():
    with pytest.raises(ValueError, match="10 classes"):
        make_noisy_labels(np.arange(20) % 5, "human:cifar10n-aggre", num_classes=5, seed=0)
    with pytest.raises(ValueError, match="100 classes"):
        make_noisy_labels(Y10, "human:cifar100n", num_classes=10, seed=0)


def test_regenerated_tables_equal_shipped_file(tmp_path):
    out = hn.generate_human_noise_file(tmp_path / "T.npz")
    with np.load(out) as new, np.load(hn.SHIPPED_FILE) as old:
        assert sorted(new.files) == sorted(old.files)
        for k in new.files:
            np.testing.assert_array_equal(new[k], old[k])
    raw = hn.read_cifarn_file("CIFAR-10_human.pt")
    assert rate(raw["clean_label"], raw["aggre_label"]) == pytest.approx(0.0901)
    assert rate(raw["clean_label"], raw["worse_label"]) == pytest.approx(0.40208)


# ------------------------------------------------------------------------------------ spec errors
@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("foo:0.3", "unknown noise model 'foo'"),
        ("sym", "needs a numeric rate"),
        ("sym:abc", "needs a numeric rate"),
        ("sym:1.5", r"must be in \[0, 1.0\]"),
        ("sym:-0.1", "must be in"),
        ("sym:nan", "must be in"),
        ("asym:0.5", "outnumbers"),
        ("pairflip:0.7", "outnumbers"),
        ("idn:1.0", r"\[0, 1.0\)"),
        ("oracle:0.95", r"\[0, 0.9\)"),
        ("human:cifar10n-bogus", "unknown human noise set"),
        ("none:0.3", "takes no rate"),
        ("", "non-empty"),
    ],
)
def test_bad_specs_raise_with_accepted_forms(spec, match):
    with pytest.raises(ValueError, match=match) as e:
        parse_noise_spec(spec)
    if "must be in" not in match and "outnumbers" not in match and "\\[" not in match:
        assert "accepted forms" in str(e.value)


def test_spec_aliases_and_round_trip():
    assert parse_noise_spec("sym:0.3").model == "sym_exclusive"
    assert parse_noise_spec("asym:0.2").model == "asym_T"
    assert parse_noise_spec("human:cifar10n-worse").source == "cifar10n-worst"
    for s in ["sym_exclusive:0.3", "pairflip:0.2", "human:cifar100n", "none", "oracle:0.25"]:
        assert str(parse_noise_spec(s)) == s


def test_model_class_count_errors():
    with pytest.raises(ValueError, match="10 classes"):
        make_noisy_labels(np.arange(10) % 5, "asym:0.2", num_classes=5, seed=0)
    with pytest.raises(ValueError, match="100 classes"):
        make_noisy_labels(Y10, "asym100_blocks:0.2", num_classes=10, seed=0)
    with pytest.raises(ValueError, match="outside"):
        make_noisy_labels(Y10, "sym:0.2", num_classes=5, seed=0)
    with pytest.raises(ValueError, match="no fixed class-conditional"):
        noise_transition_matrix("idn:0.2", 10)


# ---------------------------------------------------------------------------------------- registry
def test_registry_lists_every_model_once_and_drives_parsing_and_help():
    from ncal.data.noise import NOISE_MODELS

    names = noise_models()
    assert names == tuple(m.name for m in NOISE_MODELS)
    assert names[0] == "none" and len(set(names)) == len(names) == 13
    lines = describe_noise_models().splitlines()
    assert [line.split(":")[0].split(" ")[0] for line in lines] == list(names)
    for m in NOISE_MODELS:
        if m.parameter is None:
            arg = ""
        else:
            arg = f":{m.source_names[0]}" if m.parameter == "SET" else ":0.1"
        assert parse_noise_spec(m.name + arg).model == m.name
        for alias in m.aliases:
            assert parse_noise_spec(alias + arg).model == m.name
    assert "cifar10n-worst" in lines[-1] and "(also: sym, symmetric)" in lines[1]


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("sym:0.3", "sym_exclusive:0.3"),
        ("SYMMETRIC:0.2", "sym_exclusive:0.2"),
        ("asym_t:0.2", "asym_T:0.2"),
        ("pair_flip:0.1", "pairflip:0.1"),
        ("instance:0.4", "idn:0.4"),
        ("clean", "none"),
        ("human:cifar10n-worse", "human:cifar10n-worst"),
        ("oracle:0.25", "oracle:0.25"),
    ],
)
def test_check_noise_spec_canonicalises(spec, canonical):
    assert check_noise_spec(spec) == canonical


def test_check_noise_spec_rejects_with_every_form_listed():
    with pytest.raises(ValueError, match="unknown noise model 'gauss'") as e:
        check_noise_spec("gauss:0.1")
    for name in noise_models():
        assert name in str(e.value)
    assert "η in [0, 0.5) for asym_T" in str(e.value)


def test_noise_package_does_not_import_the_oracle():
    import ast
    from pathlib import Path

    import ncal.data.noise

    for path in Path(ncal.data.noise.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = ("." * node.level) + (node.module or "")
                assert "oracle" not in module, f"{path.name} imports {module}"
