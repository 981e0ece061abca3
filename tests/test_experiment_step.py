"""The shared round step: one seeding scheme for the fit and the selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncal import strategies
from ncal._utils.random import derive_seed, rng_for
from ncal.experiment.step import fit_round, select_batch
from ncal.models import build_model
from ncal.training import TrainConfig, train_round

CFG = TrainConfig(epochs_max=4, ff_window=2, augment=False, num_threads=1, device="cpu")


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 3
    y = np.repeat(np.arange(3), 20)
    x = (centers[y] + rng.normal(size=(60, 8))).astype(np.float32)
    return x[:30], y[:30], x[30:]


def _fit(blobs, seed=7, r=2, **kw):
    x_l, y_l, x_p = blobs
    return fit_round(
        x_l, y_l, x_p, model="mlp", num_classes=3, train_config=CFG, seed=seed, round_index=r, **kw
    )


def test_fit_round_draws_from_the_runs_init_and_train_streams(blobs):
    x_l, y_l, x_p = blobs
    fit = _fit(blobs, model_options={"hidden": (16,)})
    net = build_model(
        "mlp", input_shape=(8,), num_classes=3, seed=derive_seed(7, "init", 2), hidden=(16,)
    )
    out = train_round(net, x_l, y_l, x_p, config=CFG, seed=derive_seed(7, "train", 2))
    np.testing.assert_array_equal(fit.outputs.logits_pool, out.logits_pool)
    np.testing.assert_array_equal(fit.outputs.ff_counts, out.ff_counts)
    assert fit.signals.num_classes == 3 and fit.signals.n_pool == 30
    np.testing.assert_array_equal(fit.signals.labels_labeled, y_l)


def test_fit_round_depends_on_the_round(blobs):
    a, b = _fit(blobs, r=0), _fit(blobs, r=1)
    assert not np.array_equal(a.outputs.logits_pool, b.outputs.logits_pool)
    np.testing.assert_array_equal(_fit(blobs, r=0).outputs.logits_pool, a.outputs.logits_pool)


def test_fit_round_passes_extra_sets_and_mc(blobs):
    fit = _fit(blobs, dropout=0.3, need_mc=True, need_ff=False, extra_sets={"test": blobs[2][:5]})
    assert fit.outputs.extra["test"][0].shape == (5, 3)
    assert fit.signals.mc_probs_pool.shape[1:] == (30, 3)
    assert fit.signals.ff_counts is None
    assert isinstance(fit.model, torch.nn.Module)


def test_select_batch_uses_the_select_stream_and_restores_threads(blobs):
    fit = _fit(blobs)
    strat = strategies.get("random")
    before = torch.get_num_threads()
    sel = select_batch(strat, fit.signals, 5, seed=7, round_index=2, num_threads=1)
    assert torch.get_num_threads() == before
    expected = strat.select(fit.signals, 5, rng_for(7, "select", 2, "random")).indices
    np.testing.assert_array_equal(sel.indices, expected)
    other = select_batch(strat, fit.signals, 5, seed=7, round_index=3)
    assert not np.array_equal(other.indices, sel.indices)
