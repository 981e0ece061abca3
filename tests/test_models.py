"""Tests for ncal.models: shapes, features/head contract, determinism, errors, pretrained."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from ncal.models import (
    Backbone,
    build_model,
    default_model_name,
    parse_input_shape,
    resolve_model_name,
)
from ncal.training import seeded

CASES = [
    ("cnn", (28, 28), (1, 28, 28), 128),
    ("cnn", (8, 8), (1, 8, 8), 128),
    ("cnn", (32, 32, 3), (3, 32, 32), 128),
    ("cnn", (64, 64), (1, 64, 64), 128),  # adaptive pooling keeps the FC at 7×7×64
    ("resnet18", (8, 8), (1, 8, 8), 512),
    ("mlp", (20,), (20,), 256),
]


@pytest.mark.parametrize(("name", "shape", "tensor_shape", "d"), CASES)
def test_shapes_and_head_contract(name, shape, tensor_shape, d):
    m = build_model(name, input_shape=shape, num_classes=7, seed=0).eval()
    x = torch.randn(5, *tensor_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z = m(x)
        h = m.features(x)
        z2, h2 = m.forward_with_features(x)
    assert z.shape == (5, 7) and h.shape == (5, d) and m.feature_dim == d
    assert isinstance(m.head, nn.Linear) and m.head.weight.shape == (7, d)
    # forward == head(features) exactly, and == h W^T + b computed by hand (float64)
    assert torch.equal(z, m.head(h)) and torch.equal(z, z2) and torch.equal(h, h2)
    ref = h.double().numpy() @ m.head.weight.double().detach().numpy().T
    ref += m.head.bias.double().detach().numpy()
    np.testing.assert_allclose(z.double().numpy(), ref, rtol=1e-5, atol=1e-5)
    assert not m.has_dropout


def test_features_are_penultimate_after_relu_for_cnn():
    m = build_model("cnn", input_shape=(28, 28), num_classes=10, seed=0).eval()
    with torch.no_grad():
        h = m.features(torch.rand(4, 1, 28, 28))
    assert (h >= 0).all()  # after the hidden ReLU, before the head


def test_resnet18_parameter_count_matches_reference():
    # ResNet-18 (CIFAR stem, 10 classes) has 11,173,962 parameters (kuangliu/pytorch-cifar).
    m = build_model("resnet18", input_shape=(32, 32, 3), num_classes=10, seed=0)
    assert sum(p.numel() for p in m.parameters()) == 11_173_962
    assert not any(isinstance(mod, nn.MaxPool2d) for mod in m.modules())
    stem = next(mod for mod in m.modules() if isinstance(mod, nn.Conv2d))
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)


def test_cnn_matches_findings_architecture():
    m = build_model("cnn", input_shape=(28, 28), num_classes=10, seed=0)
    convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
    lins = [mod for mod in m.modules() if isinstance(mod, nn.Linear)]
    assert [c.out_channels for c in convs] == [32, 64]
    assert [(lin.in_features, lin.out_features) for lin in lins] == [(64 * 7 * 7, 128), (128, 10)]


def test_dropout_sits_before_head_only():
    m = build_model("cnn", input_shape=(8, 8), num_classes=3, dropout=0.5, seed=0)
    assert m.has_dropout and m.head_only_dropout
    drops = [mod for mod in m.modules() if isinstance(mod, nn.Dropout)]
    assert len(drops) == 1 and drops[0].p == 0.5
    x = torch.rand(64, 1, 8, 8)
    m.eval()
    with torch.no_grad():
        assert torch.equal(m(x), m.head(m.features(x)))
        m.train()
        torch.manual_seed(0)
        z_train = m(x)
    assert not torch.allclose(z_train, m.eval()(x))  # dropout active in train mode


def test_build_is_deterministic_given_seed_and_leaves_global_rng():
    before = torch.get_rng_state()
    a = build_model("cnn", input_shape=(28, 28), num_classes=10, seed=3)
    b = build_model("cnn", input_shape=(28, 28), num_classes=10, seed=3)
    c = build_model("cnn", input_shape=(28, 28), num_classes=10, seed=4)
    assert torch.equal(before, torch.get_rng_state())
    for pa, pb, _pc in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb)
    assert not torch.equal(a.head.weight, c.head.weight)
    # torch.manual_seed before build_model gives the same init as seed=...
    with seeded(3):
        d = build_model("cnn", input_shape=(28, 28), num_classes=10)
    assert all(torch.equal(pa, pd) for pa, pd in zip(a.parameters(), d.parameters()))


def test_parse_input_shape_layouts():
    assert parse_input_shape((28, 28)) == ("image", (1, 28, 28))
    assert parse_input_shape((32, 32, 3)) == ("image", (3, 32, 32))
    assert parse_input_shape((3, 32, 32)) == ("image", (3, 32, 32))
    assert parse_input_shape((28, 28, 1)) == ("image", (1, 28, 28))
    assert parse_input_shape((1280,)) == ("features", (1280,))
    assert default_model_name((28, 28)) == "cnn"
    assert default_model_name((8, 8)) == "cnn"
    assert default_model_name((32, 32, 3)) == "resnet18"
    assert default_model_name((512,)) == "mlp"
    assert isinstance(build_model("auto", input_shape=(16,), num_classes=3), Backbone)


def test_mlp_flattens_images():
    m = build_model("mlp", input_shape=(28, 28), num_classes=10, hidden=(64,), seed=0)
    x = torch.rand(3, 1, 28, 28)
    assert m.input_kind == "image" and m.features(x).shape == (3, 64)
    torch.testing.assert_close(m(x), m.head(m.features(x)))
    flat = build_model("mlp", input_shape=(784,), num_classes=10, hidden=(64,), seed=0)
    torch.testing.assert_close(m(x), flat(x.reshape(3, 784)))  # same init, same function


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"name": "vgg"}, ValueError, "`name`"),
        ({"name": "cnn", "input_shape": (20,)}, ValueError, "needs images"),
        ({"name": "cnn", "input_shape": (3, 3)}, ValueError, "at least 4×4"),
        ({"name": "cnn", "dropout": 1.0}, ValueError, "`dropout`"),
        ({"name": "cnn", "dropout": "x"}, TypeError, "`dropout`"),
        ({"name": "cnn", "num_classes": 1}, ValueError, "`num_classes`"),
        ({"name": "cnn", "input_shape": (28, 28, 7)}, ValueError, "`input_shape`"),
        ({"name": "cnn", "input_shape": (0, 28)}, ValueError, "`input_shape`"),
        ({"name": "cnn", "input_shape": "28"}, TypeError, "`input_shape`"),
    ],
)
def test_build_model_errors_name_the_argument(kwargs, exc, match):
    args = {"name": "cnn", "input_shape": (28, 28), "num_classes": 10, **kwargs}
    name = args.pop("name")
    with pytest.raises(exc, match=match):
        build_model(name, **args)


# ---- pretrained adapter ----------------------------------------------------------------------


def test_pretrained_missing_extra_gives_clear_import_error(monkeypatch):
    from ncal.models import pretrained

    monkeypatch.setitem(sys.modules, "efficientnet_lite_pytorch", None)
    with pytest.raises(ImportError, match=r"`pretrained` extra.*efficientnet-lite-pytorch"):
        pretrained.EfficientNetLite0Features(size=32, device="cpu")


def test_feature_cache_key_depends_on_every_part():
    from ncal.models.pretrained import feature_cache_key

    x = np.zeros((2, 8, 8), np.uint8)
    base = feature_cache_key("d", "train", 32, x=x)
    assert base == feature_cache_key("d", "train", 32, x=x.copy())
    x2 = x.copy()
    x2[0, 0, 0] = 1
    others = {
        feature_cache_key("e", "train", 32, x=x),
        feature_cache_key("d", "test", 32, x=x),
        feature_cache_key("d", "train", 64, x=x),
        feature_cache_key("d", "train", 32, model="other", x=x),
        feature_cache_key("d", "train", 32, x=x2),
    }
    assert base not in others and len(others) == 5


@pytest.fixture(scope="module")
def lite0():
    from ncal.models import pretrained

    assert pretrained.pretrained_available(), "the `pretrained` extra is installed by `make test`"
    torch.set_num_threads(1)
    return pretrained.EfficientNetLite0Features(size=32, batch_size=3, device="cpu")


def test_pretrained_features_shape_and_grayscale(lite0):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    f = lite0(gray)
    assert f.shape == (4, 1280) and f.dtype == np.float32 and np.isfinite(f).all()
    # grayscale is the same image replicated to three channels
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    np.testing.assert_allclose(lite0(rgb), f, rtol=1e-5, atol=1e-5)
    # batching does not change the result (batch_size=3 splits 4 images into 3 + 1)
    np.testing.assert_allclose(lite0(gray[3:]), f[3:], rtol=1e-4, atol=1e-5)
    assert not np.allclose(f[0], f[1])


def test_pretrained_feature_cache_roundtrip(lite0, tmp_path, monkeypatch):
    from ncal.models import pretrained

    x = np.random.default_rng(1).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    monkeypatch.setattr(pretrained, "EfficientNetLite0Features", lambda **kw: lite0)
    f1 = pretrained.extract_pretrained_features(
        x, dataset="toy", split="train", size=32, cache_dir=tmp_path
    )
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and "toy_train_32px" in files[0].name

    def boom(**kw):
        raise AssertionError("cache miss: extractor rebuilt")

    monkeypatch.setattr(pretrained, "EfficientNetLite0Features", boom)
    f2 = pretrained.extract_pretrained_features(
        x, dataset="toy", split="train", size=32, cache_dir=tmp_path
    )
    np.testing.assert_array_equal(f1, f2)
    with pytest.raises(AssertionError, match="cache miss"):  # other split → other key
        pretrained.extract_pretrained_features(
            x, dataset="toy", split="test", size=32, cache_dir=tmp_path
        )


@pytest.mark.parametrize(
    ("shape", "kind", "want"),
    [
        ((28, 28), None, "cnn"),  # mnist5k: what the experiment loop has always built
        ((28, 28, 1), None, "cnn"),
        ((64, 64), None, "cnn"),  # large grayscale stays a CNN
        ((32, 32, 3), None, "resnet18"),
        ((3, 32, 32), None, "resnet18"),  # channels-first colour is colour too
        ((16, 16, 4), None, "cnn"),
        ((1280,), None, "mlp"),
        ((1280,), "features", "mlp"),
        ((8, 8), "features", "mlp"),
        ((8, 8), "image", "cnn"),
    ],
)
def test_auto_model_rule(shape, kind, want):
    assert default_model_name(shape, kind) == want
    assert resolve_model_name("auto", shape, kind) == want


def test_resolve_model_name_keeps_explicit_names_and_rejects_unknown():
    assert resolve_model_name("mlp", (32, 32, 3)) == "mlp"
    assert resolve_model_name("resnet18", (28, 28)) == "resnet18"
    with pytest.raises(ValueError, match="`name` must be one of"):
        resolve_model_name("vgg", (28, 28))
    with pytest.raises(ValueError, match="`kind`"):
        default_model_name((28, 28), "text")
    auto = build_model("auto", input_shape=(3, 8, 8), num_classes=3, width=8)
    assert type(auto).__name__ == "ResNet18"


def test_models_package_does_not_import_training():
    import ast
    from pathlib import Path

    import ncal.models

    for path in Path(ncal.models.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = ("." * node.level) + (node.module or "")
                assert "training" not in module, f"{path.name} imports {module}"
