"""The Hugging Face Trainer callback on a tiny BERT built from a config (no download): FF counts equal
a recomputation from independently stored predictions; features are the pooler output."""

from __future__ import annotations

import importlib
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"  # the model is built from a config; nothing may be downloaded

import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

import ncal.strategies as S
from ncal.dynamics import feature_fluctuation
from ncal.integrations.hf import FFCallback

N_POOL, N_LAB, SEQ, C = 40, 24, 6, 3


class StorePredictions(TrainerCallback):
    """Independent record: the pool's eval-mode argmax after every epoch."""

    def __init__(self, pool):
        self.pool, self.preds = pool, {}

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        model.eval()
        with torch.no_grad():
            self.preds[round(state.epoch) - 1] = model(**self.pool).logits.argmax(1).numpy()
        model.train()


def test_hf_callback_records_the_last_window_epochs(tmp_path):
    g = torch.Generator().manual_seed(0)
    pool = {
        "input_ids": torch.randint(0, 50, (N_POOL, SEQ), generator=g),
        "attention_mask": torch.ones(N_POOL, SEQ, dtype=torch.long),
    }
    x_lab = torch.randint(0, 50, (N_LAB, SEQ), generator=g)
    y_lab = torch.randint(0, C, (N_LAB,), generator=g)
    train = [{"input_ids": x_lab[i], "labels": y_lab[i]} for i in range(N_LAB)]
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, num_labels=C)  # fmt: skip
    model = BertForSequenceClassification(config)
    ff = FFCallback(pool, window=3, feature_layer="bert.pooler", keep_history=True)
    own = StorePredictions(pool)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        num_train_epochs=5,
        per_device_train_batch_size=8,
        learning_rate=2e-2,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    Trainer(model=model, args=args, train_dataset=train, callbacks=[ff, own]).train()

    assert ff.tracker.recorded_epochs == [2, 3, 4]
    stored = np.stack([own.preds[e] for e in (2, 3, 4)])
    np.testing.assert_array_equal(ff.tracker.history, stored)
    np.testing.assert_array_equal(ff.ff_counts, feature_fluctuation(stored))
    assert ff.ff_counts.max() > 0  # a large step: some pool predictions flip in the window

    sig = ff.signals({"input_ids": x_lab}, y_lab)
    model.eval()
    with torch.no_grad():
        pooled = model.bert(**pool).pooler_output.numpy()
    assert sig.probs_pool.shape == (N_POOL, C) and sig.features_labeled.shape == (N_LAB, 16)
    np.testing.assert_allclose(sig.features_pool, pooled, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(sig.labels_labeled, y_lab.numpy())
    by_hand = S.Signals(probs_pool=sig.probs_pool, features_pool=pooled,
                        features_labeled=sig.features_labeled, labels_labeled=y_lab.numpy(),
                        ff_counts=feature_fluctuation(stored), num_classes=C)  # fmt: skip
    np.testing.assert_array_equal(
        S.get("ncal_r").select(sig, 5).indices, S.get("ncal_r").select(by_hand, 5).indices
    )


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "ncal.integrations.hf")
    with pytest.raises(ImportError, match="install the extra `hf`"):
        importlib.import_module("ncal.integrations.hf")
