"""Pool builders: CIFAR-LT counts (docs/algorithms.md App. A), subsampling, OOD pools, shot
groups."""

from __future__ import annotations

import numpy as np
import pytest

from ncal.data import (
    NOT_IN_LABEL_SET,
    contaminate_pool,
    long_tail_counts,
    long_tail_indices,
    resize_images,
    shot_groups,
    stratified_split,
    stratified_subsample,
)


def _cifar_like_labels(per_class: int, num_classes: int, seed: int = 3) -> np.ndarray:
    """Balanced labels in a shuffled (CIFAR-like, not class-sorted) order."""
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(num_classes), per_class))


@pytest.mark.parametrize(
    ("rho", "counts", "total"),
    [
        (100, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], 12406),
        (50, [5000, 3237, 2096, 1357, 878, 568, 368, 238, 154, 100], 13996),
        (10, [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500], 20431),
    ],
)
def test_cifar10_lt_counts_match_appendix_a(rho, counts, total):
    got = long_tail_counts(5000, 10, rho)
    assert got.tolist() == counts
    assert got.sum() == total


@pytest.mark.parametrize(
    ("rho", "head", "tail", "total"),
    [
        (100, [500, 477, 455, 434, 415], [6, 5, 5, 5, 5], 10847),
        (50, [500, 480, 462], [10], 12608),
        (10, [500, 488, 477], [50], 19573),
    ],
)
def test_cifar100_lt_counts_match_appendix_a(rho, head, tail, total):
    got = long_tail_counts(500, 100, rho)
    assert got[: len(head)].tolist() == head
    assert got[-len(tail) :].tolist() == tail
    assert got.sum() == total


def test_long_tail_indices_cifar10_reproduces_counts_and_reference_selection():
    y = _cifar_like_labels(5000, 10)
    idx = long_tail_indices(y, 100, seed=0)
    assert np.bincount(y[idx], minlength=10).tolist() == [
        5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50,
    ]  # fmt: skip
    assert np.unique(idx).size == idx.size
    # LDAM-DRW gen_imbalanced_data, verbatim except a local RandomState for np.random.seed(0).
    rs = np.random.RandomState(0)
    ref = []
    for c, n_c in enumerate(long_tail_counts(5000, 10, 100)):
        members = np.where(y == c)[0]
        rs.shuffle(members)
        ref.append(members[:n_c])
    np.testing.assert_array_equal(idx, np.concatenate(ref))


def test_long_tail_indices_cifar100_total():
    y = _cifar_like_labels(500, 100)
    idx = long_tail_indices(y, 100)
    assert idx.size == 10847
    assert np.bincount(y[idx], minlength=100)[[0, 99]].tolist() == [500, 5]


def test_long_tail_indices_seed_changes_choice_not_counts():
    y = _cifar_like_labels(200, 5)
    a, b = long_tail_indices(y, 10, seed=0), long_tail_indices(y, 10, seed=1)
    assert np.array_equal(np.bincount(y[a]), np.bincount(y[b]))
    assert not np.array_equal(np.sort(a), np.sort(b))


def test_long_tail_errors():
    y = np.repeat(np.arange(3), [10, 10, 2])
    with pytest.raises(ValueError, match="class 2 needs"):
        long_tail_indices(y, 2, n_max=10)
    with pytest.raises(ValueError, match="rho"):
        long_tail_counts(10, 3, 0.5)
    with pytest.raises(ValueError, match="num_classes"):
        long_tail_counts(10, 1, 2)


def test_stratified_subsample_keeps_proportions():
    y = np.repeat(np.arange(4), [400, 300, 200, 100])
    idx = stratified_subsample(y, 100, seed=0)
    assert idx.size == 100 and np.unique(idx).size == 100
    assert np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx]).tolist() == [40, 30, 20, 10]
    np.testing.assert_array_equal(idx, stratified_subsample(y, 100, seed=0))
    # Largest remainder: 7 over [400,300,200,100]/1000 -> exact 2.8, 2.1, 1.4, 0.7 -> 3, 2, 1, 1.
    assert np.bincount(y[stratified_subsample(y, 7, seed=1)], minlength=4).tolist() == [3, 2, 1, 1]
    with pytest.raises(ValueError, match="exceeds"):
        stratified_subsample(y, 1001)


def test_stratified_split_partitions():
    y = np.repeat(np.arange(3), [50, 30, 21])
    tr, te = stratified_split(y, 0.2, seed=0)
    assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(y.size))
    assert np.bincount(y[te]).tolist() == [10, 6, 4]
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(y, 1.0)


def test_contaminate_pool():
    rng = np.random.default_rng(0)
    x_in = rng.integers(0, 100, size=(300, 4, 4)).astype(np.uint8)
    y_in = rng.integers(0, 5, 300)
    x_ood = (200 + rng.integers(0, 50, size=(500, 4, 4))).astype(np.uint8)  # disjoint values
    x, y, is_ood = contaminate_pool(x_in, y_in, x_ood, 0.25, seed=1)
    assert x.shape == (400, 4, 4) and is_ood.sum() == 100
    assert np.all(y[is_ood] == NOT_IN_LABEL_SET)
    assert np.all(x[is_ood] >= 200) and np.all(x[~is_ood] < 200)
    # In-distribution rows are exactly the input rows, with their labels, in some order.
    ref = {(r.tobytes(), lab) for r, lab in zip(x_in, y_in)}
    assert {(r.tobytes(), lab) for r, lab in zip(x[~is_ood], y[~is_ood])} == ref
    assert is_ood[:100].any() and is_ood[-100:].any()  # shuffled, not appended
    _, y0, m0 = contaminate_pool(x_in, y_in, x_ood, 0.0, seed=1)
    assert m0.sum() == 0 and np.array_equal(np.sort(y0), np.sort(y_in))
    with pytest.raises(ValueError, match="needs 900 OOD"):
        contaminate_pool(x_in, y_in, x_ood, 0.75)
    with pytest.raises(ValueError, match="shape"):
        contaminate_pool(x_in, y_in, x_ood[:, :2], 0.1)
    with pytest.raises(ValueError, match="fraction"):
        contaminate_pool(x_in, y_in, x_ood, 1.0)


def test_resize_images_averages_the_area_each_pixel_covers():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    assert np.allclose(resize_images(x, (2, 2))[0], [[2.5, 4.5], [10.5, 12.5]])  # 2 x 2 blocks
    # 3 -> 2: each output pixel covers one input pixel and half of the middle one
    row = np.array([[[0.0, 3.0, 6.0]]], dtype=np.float32)
    assert np.allclose(resize_images(row, (1, 2))[0], [[1.0, 5.0]])
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5000, 28, 28)).astype(np.uint8)  # > one chunk
    small = resize_images(imgs, (8, 8))
    assert small.shape == (5000, 8, 8) and small.dtype == np.uint8
    assert abs(small.astype(float).mean() - imgs.astype(float).mean()) < 0.5  # mass preserved
    assert resize_images(rng.random((2, 6, 6, 3)), (3, 3)).shape == (2, 3, 3, 3)  # channels kept
    with pytest.raises(ValueError, match="`x` must be images"):
        resize_images(np.zeros((4, 64)), (8, 8))
    with pytest.raises(ValueError, match="`size`"):
        resize_images(imgs[:2], (0, 8))


def test_shot_groups_thresholds():
    counts = long_tail_counts(5000, 10, 100)
    g = shot_groups(counts)
    assert g["many"].tolist() == list(range(8))  # 139 > 100
    assert g["medium"].tolist() == [8, 9]  # 83, 50
    assert g["few"].tolist() == []
    g = shot_groups([101, 100, 20, 19, 0])
    assert (g["many"].tolist(), g["medium"].tolist(), g["few"].tolist()) == ([0], [1, 2], [3, 4])
    c100 = long_tail_counts(500, 100, 100)
    g = shot_groups(c100)
    assert sum(v.size for v in g.values()) == 100
    assert np.all(c100[g["few"]] < 20) and np.all(c100[g["many"]] > 100)
