"""Tests for ncal.training: recipe, FF recording, determinism, MC dropout, extraction."""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np
import pytest
import torch
from scipy.special import softmax
from sklearn.datasets import load_digits

from ncal._utils.random import derive_seed
from ncal.dynamics import feature_fluctuation
from ncal.models import build_model
from ncal.models.inputs import to_tensor
from ncal.signals import Signals
from ncal.training import (
    RoundOutputs,
    TrainConfig,
    dropout_only_train,
    eval_pass,
    mc_dropout_probs,
    resolve_device,
    seeded,
    thread_limit,
    train_round,
)
from ncal.training.augment import (
    Normalizer,
    default_crop_padding,
    default_flip,
    random_crop,
    random_hflip,
)
from ncal.training.extract import Preprocessor, prepare_batches
from ncal.training.trainer import _batches

torch.set_num_threads(1)


@lru_cache(maxsize=1)
def digits():
    d = load_digits()
    x = (d.images * (255 / 16)).round().astype(np.uint8)  # (1797, 8, 8) uint8 images
    return x, d.target.astype(np.int64)


def small_cfg(**kw) -> TrainConfig:
    base = {
        "epochs_max": 4,
        "ff_window": 3,
        "min_samples_per_epoch": 0,
        "batch_size": 32,
        "device": "cpu",
        "num_threads": 1,
        "eval_batch_size": 64,
    }
    base.update(kw)
    return TrainConfig(**base)


def run(seed=0, *, model_seed=0, dropout=0.0, n_lab=96, n_pool=120, name="cnn", **kw):
    x, y = digits()
    cfg_kw = {k: v for k, v in kw.items() if k in TrainConfig.__dataclass_fields__}
    call_kw = {k: v for k, v in kw.items() if k not in cfg_kw}
    m = build_model(name, input_shape=(8, 8), num_classes=10, dropout=dropout, seed=model_seed)
    out = train_round(
        m,
        x[:n_lab],
        y[:n_lab],
        x[n_lab : n_lab + n_pool],
        config=small_cfg(**cfg_kw),
        seed=seed,
        **call_kw,
    )
    return m, out


# ---- determinism ------------------------------------------------------------------------------


def test_same_seed_bit_identical_and_global_rng_untouched():
    rng_before = torch.get_rng_state()
    _, a = run(
        seed=5, dropout=0.3, need_mc=True, mc_passes=3, extra_sets={"test": digits()[0][-50:]}
    )
    assert torch.equal(rng_before, torch.get_rng_state())
    _, b = run(
        seed=5, dropout=0.3, need_mc=True, mc_passes=3, extra_sets={"test": digits()[0][-50:]}
    )
    for name in (
        "logits_pool",
        "features_pool",
        "logits_labeled",
        "features_labeled",
        "ff_counts",
        "mc_probs_pool",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(a.extra["test"][0], b.extra["test"][0])
    _, c = run(seed=6, dropout=0.3)
    assert not np.array_equal(a.logits_pool, c.logits_pool)  # data order / augmentation differ


# ---- FF window ----------------------------------------------------------------------------------


def test_ff_equals_flips_of_recorded_history_and_final_predictions():
    _, out = run(seed=1, ff_window=5, record_history=True, lr=0.1, window_lr_factor=1.0)
    h = out.pred_history
    assert h.shape == (5, 120)
    np.testing.assert_array_equal(out.ff_counts, feature_fluctuation(h))
    # the last recorded checkpoint is the model the round's signals come from
    np.testing.assert_array_equal(h[-1], out.logits_pool.argmax(axis=1))
    assert out.ff_counts.max() <= 4
    assert out.ff_counts.sum() > 0  # a live window rate moves some predictions
    assert out.info["ff_zero_fraction"] == pytest.approx(np.mean(out.ff_counts == 0))


def test_ff_margin_std_equals_std_of_margins_of_recorded_logits():
    _, out = run(seed=1, ff_window=5, record_history=True, lr=0.1, window_lr_factor=1.0)
    z = out.logits_history
    assert z.shape == (5, 120, 10)
    np.testing.assert_array_equal(z[-1], out.logits_pool)  # the last checkpoint is the final model
    np.testing.assert_array_equal(z.argmax(axis=2), out.pred_history)
    p = np.sort(softmax(z.astype(np.float64), axis=2), axis=2)
    margins = p[..., -1] - p[..., -2]  # (5, 120), brute force from the stored checkpoints
    np.testing.assert_allclose(out.ff_margin_std, margins.std(axis=0), rtol=1e-9, atol=1e-13)
    # continuous: every pool item moves, also those whose predicted label never flipped
    assert (out.ff_margin_std > 0).all() and (out.ff_counts == 0).any()
    s = out.signals(digits()[1][:96], 10)
    np.testing.assert_array_equal(s.ff_margin_std, out.ff_margin_std)


def test_window_lr_constant_positive_and_schedule_values():
    cfg = small_cfg(lr=0.08, window_lr_factor=0.25, epochs_max=6, tau=1.0, plateau_patience=None)
    _, out = run(
        seed=0,
        **{k: getattr(cfg, k) for k in ("lr", "window_lr_factor", "epochs_max")},
        tau=1.0,
        plateau_patience=None,
        min_samples_per_epoch=200,
    )
    log = out.info["epoch_log"]
    window = [e for e in log if e["phase"] == "window"]
    assert len(window) == 3
    for e in window:
        assert e["lr_first"] == e["lr_last"] == pytest.approx(0.02)
    assert out.info["window_lr"] == pytest.approx(0.02)
    assert out.info["window_lr_range"] == [pytest.approx(0.02), pytest.approx(0.02)]
    # pre-window: cosine from lr down towards the window rate, hand-computed at epoch starts
    pre = [e for e in log if e["phase"] == "pre"]
    for e in pre:
        k = e["epoch"] - 1
        want = 0.02 + (0.08 - 0.02) * 0.5 * (1 + math.cos(math.pi * k / 6))
        assert e["lr_first"] == pytest.approx(want)
    assert pre[0]["lr_first"] == pytest.approx(0.08)
    assert all(a["lr_last"] >= b["lr_first"] for a, b in itertools.pairwise(pre))
    assert out.info["passes_per_epoch"] == 3  # ceil(200 / 96)


def test_lr_at_schedules():
    c = TrainConfig(lr=0.1, epochs_max=10, ff_window=4, window_lr_factor=0.2)
    assert c.lr_at(0, False) == pytest.approx(0.1)
    assert c.lr_at(10, False) == pytest.approx(0.02)
    assert c.lr_at(30, False) == pytest.approx(0.02)  # floored after the cap
    assert c.lr_at(3, True) == pytest.approx(0.02)
    k = TrainConfig(lr=0.1, schedule="constant")
    assert k.lr_at(7, False) == 0.1 and k.lr_at(7, True) == pytest.approx(0.02)
    old = TrainConfig(lr=0.1, epochs_max=10, ff_window=4, schedule="cosine")
    assert old.lr_at(14, True) == pytest.approx(0.0, abs=1e-12)  # the pre-project recipe
    assert old.lr_at(7, False) == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.5)))


# ---- terminal phase bookkeeping -----------------------------------------------------------------


def test_terminal_phase_reached_by_tau():
    _, out = run(seed=0, tau=0.5, epochs_max=30, min_samples_per_epoch=256)
    i = out.info
    assert i["stop_reason"] == "tau" and i["reached_terminal"]
    assert i["terminal_epoch"] == i["pre_window_epochs"] < 30
    assert i["train_acc_at_window"] >= 0.5
    assert i["epochs"] == i["pre_window_epochs"] + 3
    pre = [e for e in i["epoch_log"] if e["phase"] == "pre"]
    assert pre[-1]["train_acc"] >= 0.5 and all(e["train_acc"] < 0.5 for e in pre[:-1])
    # final train accuracy is the accuracy of the returned labeled logits
    y = digits()[1][:96]
    assert i["final_train_acc"] == pytest.approx(np.mean(out.logits_labeled.argmax(1) == y))


def test_cap_and_plateau_and_last_k():
    _, cap = run(seed=0, tau=1.0, epochs_max=2, plateau_patience=None)
    assert cap.info["stop_reason"] == "cap" and cap.info["pre_window_epochs"] == 2
    assert not cap.info["reached_terminal"]
    # an impossible improvement margin: the plateau rule fires `patience` epochs after the first
    _, pl = run(seed=0, tau=1.0, epochs_max=20, plateau_patience=2, plateau_delta=1.0)
    assert pl.info["stop_reason"] == "plateau" and pl.info["pre_window_epochs"] == 3
    _, lk = run(seed=0, window_policy="last_k", epochs_max=5, tau=0.01)
    assert lk.info["stop_reason"] == "last_k"
    assert lk.info["epochs"] == 5 and lk.info["pre_window_epochs"] == 2
    assert lk.info["terminal_epoch"] == 1 and lk.info["reached_terminal"]


# ---- extraction and signals ---------------------------------------------------------------------


def test_extraction_consistency_and_signals():
    x, y = digits()
    m, out = run(seed=2, extra_sets={"again": x[96:216], "test": x[-40:]})
    assert out.logits_pool.shape == (120, 10) and out.features_pool.shape == (120, 128)
    assert out.logits_labeled.shape == (96, 10) and out.features_labeled.shape == (96, 128)
    np.testing.assert_array_equal(out.extra["again"][0], out.logits_pool)
    np.testing.assert_array_equal(out.extra["again"][1], out.features_pool)
    assert out.extra["test"][0].shape == (40, 10)
    # logits == head(features) with the returned model
    W = m.head.weight.detach().double().numpy()
    b = m.head.bias.detach().double().numpy()
    np.testing.assert_allclose(out.features_pool @ W.T + b, out.logits_pool, rtol=1e-4, atol=1e-4)
    s = out.signals(y[:96], 10)
    assert isinstance(s, Signals) and s.num_classes == 10
    np.testing.assert_allclose(s.probs_pool, softmax(out.logits_pool.astype(np.float64), axis=1))
    np.testing.assert_allclose(s.probs_labeled.sum(1), 1.0)
    assert s.probs_pool.dtype == np.float64
    np.testing.assert_array_equal(s.ff_counts, out.ff_counts)
    with pytest.raises(ValueError, match="labels_labeled"):
        out.signals(y[:95], 10)


def test_need_ff_false_gives_same_model_and_no_counts():
    _, a = run(seed=3)
    _, b = run(seed=3, need_ff=False)
    assert b.ff_counts is None and b.ff_margin_std is None and b.info["ff_seconds"] == 0.0
    np.testing.assert_array_equal(a.logits_pool, b.logits_pool)


def test_prepared_inputs_give_the_same_outputs_as_batch_by_batch():
    x, _ = digits()
    m = build_model("cnn", input_shape=(8, 8), num_classes=10, seed=4)
    prep = Preprocessor((1, 8, 8), Normalizer.fit("fixed", to_tensor(x[:2], (1, 8, 8))), "cpu")
    batches = prepare_batches(x[:150], prep, batch_size=64, sample_shape=(1, 8, 8))
    assert [len(b) for b in batches] == [64, 64, 22]
    direct = eval_pass(m, x[:150], prep, batch_size=64)
    cached = eval_pass(m, x[:150], prep, batch_size=64, batches=batches)
    for a, b in zip(direct, cached):
        np.testing.assert_array_equal(a, b)
    # over the byte cap (150 * 64 * 4 bytes) nothing is kept: the caller prepares as it goes
    assert (
        prepare_batches(x[:150], prep, batch_size=64, sample_shape=(1, 8, 8), max_bytes=38399)
        is None
    )
    assert prepare_batches(x[:150], prep, batch_size=64, sample_shape=(1, 8, 8), max_bytes=38400)


def test_round_is_bit_identical_with_and_without_prepared_inputs(monkeypatch):
    """The FF window and the accuracy passes reuse prepared inputs; a round that cannot keep them
    (over the byte cap) must give the same FF counts, window predictions and outputs."""
    import ncal.training.trainer as trainer_mod

    _, cached = run(seed=5, record_history=True, extra_sets={"test": digits()[0][-30:]})
    monkeypatch.setattr(trainer_mod, "prepare_batches", lambda *a, **k: None)
    _, direct = run(seed=5, record_history=True, extra_sets={"test": digits()[0][-30:]})
    np.testing.assert_array_equal(cached.pred_history, direct.pred_history)
    np.testing.assert_array_equal(cached.ff_counts, direct.ff_counts)
    for name in ("logits_pool", "features_pool", "logits_labeled", "features_labeled"):
        np.testing.assert_array_equal(getattr(cached, name), getattr(direct, name))
    np.testing.assert_array_equal(cached.extra["test"][0], direct.extra["test"][0])
    assert [e["loss"] for e in cached.info["epoch_log"]] == [
        e["loss"] for e in direct.info["epoch_log"]
    ]


def test_empty_pool_and_feature_inputs():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 6)) * 4
    yl = np.repeat(np.arange(3), 20)
    xl = (centers[yl] + rng.normal(size=(60, 6))).astype(np.float32) * 10 + 5
    m = build_model("mlp", input_shape=(6,), num_classes=3, seed=0)
    cfg = small_cfg(epochs_max=30, tau=0.95)
    out = train_round(m, xl, yl, np.zeros((0, 6), np.float32), config=cfg, seed=0)
    assert out.logits_pool.shape == (0, 3) and out.features_pool.shape == (0, 256)
    assert out.ff_counts.shape == (0,) and out.ff_margin_std.shape == (0,)
    assert out.info["augment"]["enabled"] is False and out.info["normalize"] == "labeled"
    assert out.info["reached_terminal"]


# ---- MC dropout ---------------------------------------------------------------------------------


def _bn_resnet(dropout=0.5):
    return build_model(
        "resnet18", input_shape=(8, 8), num_classes=4, dropout=dropout, width=8, seed=0
    )


def test_mc_dropout_leaves_batchnorm_untouched_and_varies():
    m = _bn_resnet()
    x = digits()[0][:40]
    prep = Preprocessor((1, 8, 8), Normalizer.fit_array("fixed", x, (1, 8, 8)), torch.device("cpu"))
    # give BN non-trivial running stats first
    m.train()
    with torch.no_grad():
        m(prep(x))
    buffers = {k: v.clone() for k, v in m.state_dict().items()}
    full = mc_dropout_probs(m, x, prep, passes=4, seed=7, batch_size=16, reuse_features=False)
    fast = mc_dropout_probs(m, x, prep, passes=4, seed=7, batch_size=16, reuse_features=True)
    for k, v in m.state_dict().items():
        assert torch.equal(v, buffers[k]), k
    assert full.shape == (4, 40, 4)
    np.testing.assert_allclose(full.sum(-1), 1.0, rtol=1e-5)
    assert not np.allclose(full[0], full[1])  # independent masks
    np.testing.assert_allclose(full, fast, rtol=1e-5, atol=1e-6)  # same masks, same order
    np.testing.assert_array_equal(
        full, mc_dropout_probs(m, x, prep, passes=4, seed=7, batch_size=16, reuse_features=False)
    )
    # the mean over many passes approaches the eval-mode (no dropout) prediction
    z, _ = eval_pass(m, x, prep, batch_size=16)
    assert m.training  # mode restored
    with dropout_only_train(m):
        assert not any(mod.training for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d))
        assert m.dropout.training
    assert z.shape == (40, 4)


def test_mc_dropout_errors():
    m = _bn_resnet(dropout=0.0)
    prep = Preprocessor(
        (1, 8, 8), Normalizer.fit("fixed", torch.zeros(1, 1, 8, 8)), torch.device("cpu")
    )
    with pytest.raises(ValueError, match="dropout"):
        mc_dropout_probs(m, digits()[0][:4], prep, passes=2, seed=0)
    with pytest.raises(ValueError, match="dropout"):
        run(need_mc=True)
    with pytest.raises(ValueError, match="mc_passes"):
        run(dropout=0.3, need_mc=True, mc_passes=0)


def test_train_round_mc_outputs():
    _, out = run(seed=0, dropout=0.4, need_mc=True, mc_passes=5)
    assert out.mc_probs_pool.shape == (5, 120, 10)
    assert out.signals(digits()[1][:96], 10).mc_probs_pool is out.mc_probs_pool


# ---- augmentation, normalisation, helpers
# ---------------------------------------------------------


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 2, 6, 5)
    out = random_crop(x, 2, g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        hits = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out[i], padded[i, :, dy : dy + 6, dx : dx + 5])
        ]
        assert hits, i
    assert torch.equal(random_crop(x, 0, g), x)
    a = random_crop(x, 2, torch.Generator().manual_seed(3))
    b = random_crop(x, 2, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_random_hflip_mirrors_about_half():
    x = torch.rand(400, 1, 4, 4)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    same = torch.tensor([torch.equal(o, xi) for o, xi in zip(out, x)])
    mirrored = torch.tensor([torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)])
    assert bool((same | mirrored).all())
    assert 150 < int(mirrored.sum()) < 250


def test_defaults_for_crop_and_flip():
    assert default_crop_padding((1, 28, 28)) == 2
    assert default_crop_padding((3, 32, 32)) == 4
    assert default_crop_padding((1, 8, 8)) == 1
    assert default_flip((3, 32, 32)) and not default_flip((1, 28, 28))


def test_to_tensor_layouts_and_normalizer():
    hwc = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3, 3), dtype=np.uint8)
    t = to_tensor(hwc, (3, 4, 3))
    assert t.shape == (5, 3, 4, 3)
    np.testing.assert_allclose(t[:, 1].numpy(), hwc[..., 1] / 255.0, rtol=1e-6)
    n = Normalizer.fit_array("labeled", hwc, (3, 4, 3), chunk=2)
    ref_mean = (hwc / 255.0).mean(axis=(0, 1, 2))
    ref_std = (hwc / 255.0).std(axis=(0, 1, 2))
    np.testing.assert_allclose(n.mean.flatten().numpy(), ref_mean, rtol=1e-5)
    np.testing.assert_allclose(n.std.flatten().numpy(), ref_std, rtol=1e-5)
    f = Normalizer.fit("fixed", t)
    np.testing.assert_allclose(f(t).numpy(), (t.numpy() - 0.5) / 0.5)


def test_batches_never_leave_a_single_sample():
    assert _batches(65, 64) == [(0, 65)]
    assert _batches(129, 64) == [(0, 64), (64, 129)]
    assert _batches(130, 64) == [(0, 64), (64, 128), (128, 130)]
    assert _batches(10, 64) == [(0, 10)]
    assert _batches(1, 64) == [(0, 1)]


def test_device_seed_thread_helpers():
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="`device`"):
        resolve_device("tpu")
    assert derive_seed(1, "order") != derive_seed(1, "augment") != derive_seed(2, "order")
    assert derive_seed(1, "order") == derive_seed(1, "order")
    state = torch.get_rng_state()
    with seeded(3):
        a = torch.rand(3)
    with seeded(3):
        b = torch.rand(3)
    assert torch.equal(a, b) and torch.equal(state, torch.get_rng_state())
    n = torch.get_num_threads()
    with thread_limit(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == n


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "exc"),
    [
        ("lr", -1.0, ValueError),
        ("lr", 0.0, ValueError),
        ("momentum", 1.0, ValueError),
        ("weight_decay", -1e-4, ValueError),
        ("tau", 1.5, ValueError),
        ("tau", float("nan"), ValueError),
        ("ff_window", 0, ValueError),
        ("epochs_max", 2.5, TypeError),
        ("batch_size", True, TypeError),
        ("window_lr_factor", 0.0, ValueError),
        ("schedule", "step", ValueError),
        ("window_policy", "first_k", ValueError),
        ("normalize", "zscore", ValueError),
        ("plateau_patience", 0, ValueError),
        ("num_threads", 0, ValueError),
        ("augment", "yes", TypeError),
    ],
)
def test_bad_config_names_the_field(field, value, exc):
    with pytest.raises(exc, match=f"TrainConfig.{field}"):
        TrainConfig(**{field: value})


def test_config_cross_field_and_from_dict():
    with pytest.raises(ValueError, match="ff_window"):
        TrainConfig(window_policy="last_k", epochs_max=4, ff_window=5)
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"lr": 0.1, "epochz": 3})
    c = TrainConfig.from_dict(TrainConfig(lr=0.2).to_dict())
    assert c.lr == 0.2 and c == TrainConfig(lr=0.2)


def test_train_round_input_errors():
    x, y = digits()
    m = build_model("cnn", input_shape=(8, 8), num_classes=10, seed=0)
    cfg = small_cfg()
    with pytest.raises(ValueError, match="`y_labeled` has 9 labels but `x_labeled` has 10"):
        train_round(m, x[:10], y[:9], x[10:20], config=cfg, seed=0)
    with pytest.raises(ValueError, match="`x_pool` has shape"):
        train_round(m, x[:10], y[:10], np.zeros((4, 28, 28), np.uint8), config=cfg, seed=0)
    with pytest.raises(ValueError, match="extra_sets\\['test'\\]"):
        train_round(m, x[:10], y[:10], x[10:20], config=cfg, seed=0, extra_sets={"test": x[:3, :4]})
    with pytest.raises(ValueError, match="y_labeled"):
        train_round(m, x[:10], y[:10] + 10, x[10:20], config=cfg, seed=0)
    with pytest.raises(ValueError, match="empty"):
        train_round(m, x[:0], y[:0], x[10:20], config=cfg, seed=0)
    with pytest.raises(TypeError, match="`config`"):
        train_round(m, x[:10], y[:10], x[10:20], config={"lr": 0.1}, seed=0)
    with pytest.raises(TypeError, match="`seed`"):
        train_round(m, x[:10], y[:10], x[10:20], config=cfg, seed=1.5)


def test_progress_bar_runs(capsys):
    _, out = run(seed=0, progress=True, epochs_max=2)
    assert isinstance(out, RoundOutputs) and out.info["epochs"] == 5


def test_running_accuracy_mode():
    y = digits()[1][:96]
    _, out = run(seed=0, train_acc_mode="running", tau=1.0, plateau_patience=None)
    i = out.info
    assert i["train_acc_mode"] == "running"
    accs = [e["train_acc"] for e in i["epoch_log"]]
    # running accuracies are multiples of 1/96 (counts over the epoch's last pass)
    assert all(abs(a * 96 - round(a * 96)) < 1e-9 for a in accs)
    assert i["final_train_acc"] == pytest.approx(np.mean(out.logits_labeled.argmax(1) == y))
    assert accs[-1] == i["final_train_acc"]


def test_info_is_json_serialisable_and_float_images_are_not_rescaled():
    import json

    _, out = run(seed=0, epochs_max=1, ff_window=1)
    json.dumps(out.info)
    f = np.full((2, 4, 4), 0.25, dtype=np.float32)
    assert torch.equal(to_tensor(f, (1, 4, 4)), torch.full((2, 1, 4, 4), 0.25))
