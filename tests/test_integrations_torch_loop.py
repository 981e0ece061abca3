"""FFTracker: FF recorded from a plain PyTorch loop equals a recomputation from stored predictions,
and its signals are aligned, shaped and feed the strategies unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import ncal.strategies as S
from ncal.dynamics import feature_fluctuation
from ncal.integrations import DegenerateFFWarning, FFTracker

N_POOL, N_LAB, D, C = 60, 30, 5, 3


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x_pool = torch.randn(N_POOL, D, generator=g)
    x_lab = torch.randn(N_LAB, D, generator=g)
    y_lab = torch.randint(0, C, (N_LAB,), generator=g)
    return x_pool, x_lab, y_lab


def _model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, C))


def _train(model, x_lab, y_lab, epochs, on_epoch_end, lr=0.5):
    """Full-batch SGD with a large step so that predictions on the pool keep moving."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for epoch in range(epochs):
        model.train()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x_lab), y_lab).backward()
        opt.step()
        on_epoch_end(epoch)


def _own_predictions(model, x):
    model.eval()
    with torch.no_grad():
        out = model(x).argmax(1).numpy()
    model.train()
    return out


def test_ff_equals_recomputation_from_stored_predictions():
    x_pool, x_lab, y_lab = _data()
    model = _model()
    tracker = FFTracker(x_pool, epochs=12, window=6, keep_history=True)
    mine = {}

    def end(epoch):
        mine[epoch] = _own_predictions(model, x_pool)
        tracker.on_epoch_end(model, epoch)

    _train(model, x_lab, y_lab, 12, end)
    assert tracker.recorded_epochs == [6, 7, 8, 9, 10, 11]
    assert tracker.n_checkpoints == 6
    stored = np.stack([mine[e] for e in range(6, 12)])
    np.testing.assert_array_equal(tracker.history, stored)
    np.testing.assert_array_equal(tracker.ff_counts, feature_fluctuation(stored))
    assert tracker.ff_counts.max() > 0  # the large step makes some pool labels flip
    assert tracker.ff_counts.max() <= 5


def test_start_epoch_opens_the_window_and_recording_keeps_train_mode():
    x_pool, x_lab, y_lab = _data()
    model = _model()
    tracker = FFTracker(x_pool, start_epoch=3)
    modes = []

    def end(epoch):
        tracker.on_epoch_end(model, epoch)
        modes.append(model.training)

    _train(model, x_lab, y_lab, 5, end)
    assert tracker.recorded_epochs == [3, 4]
    assert modes == [True] * 5


def test_signals_aligned_with_the_final_model():
    x_pool, x_lab, y_lab = _data()
    model = _model()
    tracker = FFTracker(x_pool, epochs=6, window=3, feature_layer="1")
    _train(model, x_lab, y_lab, 6, lambda e: tracker.on_epoch_end(model, e))
    sig = tracker.signals(model, x_lab, y_lab.numpy())
    with torch.no_grad():
        hidden_pool = model[1](model[0](x_pool)).numpy()
        hidden_lab = model[1](model[0](x_lab)).numpy()
        logits_pool = model(x_pool).numpy()
    assert sig.probs_pool.shape == (N_POOL, C) and sig.probs_labeled.shape == (N_LAB, C)
    np.testing.assert_allclose(sig.probs_pool.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(sig.logits_pool, logits_pool, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sig.features_pool, hidden_pool, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sig.features_labeled, hidden_lab, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(sig.labels_labeled, y_lab.numpy())
    assert sig.ff_counts.shape == (N_POOL,) and sig.num_classes == C

    # an `embed` callable gives the same features as the hook
    by_embed = FFTracker(x_pool, epochs=6, embed=lambda m, x: m[1](m[0](x)))
    logits, feats = by_embed.predict(model, x_pool)
    np.testing.assert_allclose(feats, hidden_pool, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(logits, logits_pool, rtol=1e-6, atol=1e-6)


def test_signals_feed_the_strategies_unchanged():
    x_pool, x_lab, y_lab = _data()
    model = _model()
    tracker = FFTracker(x_pool, epochs=10, window=5, feature_layer="1")
    _train(model, x_lab, y_lab, 10, lambda e: tracker.on_epoch_end(model, e))
    sig = tracker.signals(model, x_lab, y_lab)
    by_hand = S.Signals(
        probs_pool=sig.probs_pool,
        features_pool=sig.features_pool,
        features_labeled=sig.features_labeled,
        labels_labeled=y_lab.numpy(),
        ff_counts=tracker.ff_counts,
        num_classes=C,
    )
    got = S.get("ncal_r").select(sig, 7).indices
    np.testing.assert_array_equal(got, S.get("ncal_r").select(by_hand, 7).indices)
    assert len(set(got.tolist())) == 7


def test_dataloader_and_dict_pools_match_a_tensor_pool():
    x_pool, x_lab, y_lab = _data()

    class KwargModel(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, features, mask=None):
            return self.inner(features * mask)

    results = []
    for pool in (
        x_pool,
        x_pool.numpy().astype(np.float64),  # floating arrays become float32 tensors
        torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x_pool, torch.zeros(N_POOL)), batch_size=7
        ),
    ):
        model = _model()
        tracker = FFTracker(pool, epochs=8, window=4, batch_size=11)
        _train(model, x_lab, y_lab, 8, lambda e, m=model, t=tracker: t.on_epoch_end(m, e))
        results.append(tracker.ff_counts)
    model = KwargModel(_model())
    tracker = FFTracker({"features": x_pool, "mask": torch.ones(N_POOL, D)}, epochs=8, window=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for epoch in range(8):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x_lab, torch.ones(N_LAB, D)), y_lab).backward()
        opt.step()
        tracker.on_epoch_end(model, epoch)
    results.append(tracker.ff_counts)
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])


def test_degenerate_ff_warns_and_names_the_threshold():
    x_pool, x_lab, y_lab = _data()
    model = _model()
    tracker = FFTracker(x_pool, start_epoch=0)
    for epoch in range(3):  # no training: predictions never change
        tracker.on_epoch_end(model, epoch)
    np.testing.assert_array_equal(tracker.ff_counts, np.zeros(N_POOL, dtype=np.int64))
    with pytest.warns(DegenerateFFWarning, match="all 60 pool counts are 0 over 3 checkpoints"):
        tracker.signals(model, x_lab, y_lab)

    too_few = FFTracker(x_pool, epochs=5, window=1)
    for epoch in range(5):
        too_few.on_epoch_end(model, epoch)
    with pytest.warns(DegenerateFFWarning, match="1 checkpoint"):
        too_few.signals(model, x_lab, y_lab)


def test_errors_name_the_argument():
    x_pool, x_lab, y_lab = _data()
    model = _model()
    with pytest.raises(ValueError, match="shuffle=False"):
        FFTracker(torch.utils.data.DataLoader(x_pool, shuffle=True), epochs=3)
    with pytest.raises(TypeError, match="re-iterable"):
        FFTracker(iter([x_pool]), epochs=3)
    with pytest.raises(ValueError, match="either `embed` or `feature_layer`"):
        FFTracker(x_pool, embed=lambda m, x: x, feature_layer="0")
    with pytest.raises(ValueError, match="`window` must be an integer >= 1"):
        FFTracker(x_pool, window=0)
    with pytest.raises(ValueError, match=r"`epochs`.*`start_epoch`"):
        FFTracker(x_pool).on_epoch_end(model, 0)
    tracker = FFTracker(x_pool, start_epoch=0)
    tracker.on_epoch_end(model, 1)
    with pytest.raises(ValueError, match="`epoch` must increase"):
        tracker.on_epoch_end(model, 1)
    with pytest.raises(ValueError, match="`feature_layer` 'head'"):
        FFTracker(x_pool, feature_layer="head").signals(model, x_lab, y_lab)
    with pytest.raises(ValueError, match="`labels_labeled` has 29 entries"):
        FFTracker(x_pool, start_epoch=0).signals(model, x_lab, y_lab[:29])
    with pytest.raises(TypeError, match=r"`model` must be a torch\.nn\.Module"):
        tracker.record(lambda x: x)
