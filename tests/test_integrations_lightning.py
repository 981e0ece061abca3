"""The Lightning callback records FF on the last `window` epochs of `max_epochs`; its counts equal a
recomputation from predictions stored by an independent callback, and its signals feed the
strategies unchanged."""

from __future__ import annotations

import importlib
import sys

import lightning.pytorch as L
import numpy as np
import pytest
import torch
from torch import nn

import ncal.strategies as S
from ncal.dynamics import feature_fluctuation
from ncal.integrations.lightning import FFCallback

N_POOL, N_LAB, D, C = 50, 24, 5, 3


class TinyClassifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(D, 8), nn.ReLU())
        self.head = nn.Linear(8, C)

    def forward(self, x):
        return self.head(self.body(x))

    def training_step(self, batch, _idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


class StorePredictions(L.Callback):
    """Independent record: the pool's eval-mode argmax after every epoch."""

    def __init__(self, x_pool):
        self.x_pool, self.preds = x_pool, {}

    def on_train_epoch_end(self, trainer, pl_module):
        pl_module.eval()
        with torch.no_grad():
            self.preds[trainer.current_epoch] = pl_module(self.x_pool).argmax(1).numpy()
        pl_module.train()


def _fit(callbacks, max_epochs):
    g = torch.Generator().manual_seed(0)
    x_pool = torch.randn(N_POOL, D, generator=g)
    x_lab = torch.randn(N_LAB, D, generator=g)
    y_lab = torch.randint(0, C, (N_LAB,), generator=g)
    torch.manual_seed(0)
    module = TinyClassifier()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x_lab, y_lab), batch_size=N_LAB
    )
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks(x_pool),
    )
    trainer.fit(module, loader)
    return module, x_pool, x_lab, y_lab


@pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")
def test_lightning_callback_records_the_last_window_epochs():
    made = {}

    def callbacks(x_pool):
        made["ff"] = FFCallback(x_pool, window=4, feature_layer="body", keep_history=True)
        made["own"] = StorePredictions(x_pool)
        return [made["ff"], made["own"]]

    module, x_pool, x_lab, y_lab = _fit(callbacks, max_epochs=8)
    ff, own = made["ff"], made["own"]
    assert ff.tracker.recorded_epochs == [4, 5, 6, 7]
    stored = np.stack([own.preds[e] for e in range(4, 8)])
    np.testing.assert_array_equal(ff.tracker.history, stored)
    np.testing.assert_array_equal(ff.ff_counts, feature_fluctuation(stored))

    sig = ff.signals(x_lab, y_lab)
    with torch.no_grad():
        feats = module.body(x_pool).numpy()
    assert sig.probs_pool.shape == (N_POOL, C) and sig.features_labeled.shape == (N_LAB, 8)
    np.testing.assert_allclose(sig.features_pool, feats, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(sig.ff_counts, ff.ff_counts)
    by_hand = S.Signals(probs_pool=sig.probs_pool, features_pool=feats,
                        features_labeled=sig.features_labeled, labels_labeled=y_lab.numpy(),
                        ff_counts=feature_fluctuation(stored), num_classes=C)  # fmt: skip
    np.testing.assert_array_equal(
        S.get("ncal_r").select(sig, 6).indices, S.get("ncal_r").select(by_hand, 6).indices
    )


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.delitem(sys.modules, "ncal.integrations.lightning")
    with pytest.raises(ImportError, match="install the extra `lightning`"):
        importlib.import_module("ncal.integrations.lightning")
