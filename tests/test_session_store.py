"""Session store, pool readers, annotation import (validation, idempotence) and exported files."""

from __future__ import annotations

import csv
import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ncal.errors import CorruptRunError, NcalError
from ncal.session import Session, SessionStore
from ncal.session.pool import load_pool, pool_features

CLASSES = ["cat", "dog", "bird"]


def feature_pool(tmp_path: Path, n: int = 60, held: int = 10, d: int = 5) -> Path:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, d)) + 3 * np.eye(3, d)[y]
    yy = np.full(n, -1)
    yy[-held:] = y[-held:]
    path = tmp_path / "pool.npz"
    np.savez(path, x=x.astype(np.float32), ids=np.array([f"item{i:03d}" for i in range(n)]), y=yy)
    return path


@pytest.fixture
def session(tmp_path: Path) -> Session:
    s = Session.create(tmp_path / "s", feature_pool(tmp_path), classes=CLASSES)
    yield s
    s.close()


def write_csv(path: Path, rows: list[list], header=("id", "label", "annotator")) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


# ---------------------------------------------------------------------------------------- pools
def test_npz_pool_ids_heldout_and_hash(tmp_path):
    p = load_pool(feature_pool(tmp_path))
    assert p.ids[:2] == ["item000", "item001"] and len(p) == 60
    assert (p.heldout_labels[-10:] >= 0).all() and (p.heldout_labels[:-10] == -1).all()
    assert p.kind == "features" and p.features.shape == (60, 5)
    assert p.source["hash"] == load_pool(tmp_path / "pool.npz").source["hash"]


def test_npy_parquet_and_dataset_npz_pools(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "f.npy", x)
    p = load_pool(tmp_path / "f.npy")
    assert p.ids == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(p.features, x)

    import pandas as pd

    df = pd.DataFrame({"key": ["a", "b", "c", "d"], "f0": x[:, 0], "f1": x[:, 1]})
    df.to_parquet(tmp_path / "f.parquet")
    p = load_pool(tmp_path / "f.parquet", id_column="key")
    assert p.ids == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(p.features, x[:, :2])
    with pytest.raises(NcalError, match="id-column"):
        load_pool(tmp_path / "f.parquet")

    np.savez(
        tmp_path / "ds.npz",
        x_train=x,
        y_train=np.array([0, 1, 0, 1]),
        x_test=x[:2],
        y_test=np.array([1, 0]),
        class_names=np.array(["u", "v"]),
    )
    p = load_pool(tmp_path / "ds.npz")
    assert p.ids == ["train/0", "train/1", "train/2", "train/3", "test/0", "test/1"]
    np.testing.assert_array_equal(p.heldout_labels, [-1, -1, -1, -1, 1, 0])
    assert p.class_names == ["u", "v"]


def test_pool_errors_are_clear(tmp_path):
    np.savez(tmp_path / "dup.npz", x=np.zeros((3, 2)), ids=np.array(["a", "b", "a"]))
    with pytest.raises(NcalError, match=r"unique.*'a'"):
        load_pool(tmp_path / "dup.npz")
    np.savez(tmp_path / "nan.npz", x=np.array([[0.0, np.nan]]))
    with pytest.raises(NcalError, match="NaN"):
        load_pool(tmp_path / "nan.npz")
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(NcalError, match=r"image folder, \.npz"):
        load_pool(tmp_path / "p.txt")
    with pytest.raises(NcalError, match="does not exist"):
        load_pool(tmp_path / "missing.npz")


def image_folder(tmp_path: Path, n: int = 12) -> Path:
    root = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 255, (20 + i, 24, 3), dtype=np.uint8)  # different sizes
        Image.fromarray(arr).save(sub / f"im{i:02d}.{'png' if i % 3 else 'jpg'}")
    (root / "notes.txt").write_text("not an image")
    return root


def test_image_folder_pool_and_pixel_features(tmp_path):
    root = image_folder(tmp_path)
    p = load_pool(root)
    assert p.ids == sorted(p.ids) and p.ids[0] == "a/im01.png" and len(p) == 12
    h0 = p.source["hash"]
    feats, info = pool_features(p, extractor="pixels", pca_dim=8, image_size=8)
    assert feats.shape == (12, 8) and feats.dtype == np.float32
    assert info["name"] == "pixels_pca" and info["pca_components"] == 8
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(root / "a" / "im01.png")
    assert load_pool(root).source["hash"] != h0  # content changes change the pool hash


def test_image_session_records_extractor_and_exports_image_tasks(tmp_path):
    root = image_folder(tmp_path)
    with Session.create(
        tmp_path / "s", root, classes=CLASSES, extractor="pixels", image_url_prefix="/data/?d="
    ) as s:
        assert s.meta["features"]["name"] == "pixels_pca"
        assert s.features.shape[0] == 12
        b = s.next_batch(4, strategy="random")
        tasks = json.loads(b.labelstudio_path.read_text())
        assert tasks[0]["data"]["image"] == "/data/?d=" + tasks[0]["data"]["id"]
        assert b.fallback == "random"
        cfg = ET.fromstring((s.dir / "labelstudio_config.xml").read_text())
        assert [c.get("value") for c in cfg.iter("Choice")] == CLASSES
        assert cfg.find("Image").get("name") == "image"


def test_pretrained_extractor_used_when_installed(tmp_path):
    from ncal.models import pretrained as pt

    assert pt.pretrained_available(), "the `pretrained` extra is installed by `make test`"
    p = load_pool(image_folder(tmp_path, n=4))
    feats, info = pool_features(p, extractor="auto", pretrained_size=32)
    assert info["name"] == "pretrained" and feats.shape == (4, pt.FEATURE_DIM)
    assert np.isfinite(feats).all() and feats.std() > 0


# ---------------------------------------------------------------------------------------- store
def test_create_refuses_existing_session_and_bad_classes(tmp_path, session):
    with pytest.raises(NcalError, match="already holds a session"):
        Session.create(session.dir, tmp_path / "pool.npz", classes=CLASSES)
    with pytest.raises(NcalError, match="unique"):
        Session.create(tmp_path / "t", tmp_path / "pool.npz", classes=["a", "a", "b"])
    with pytest.raises(NcalError, match="no class names"):
        Session.create(tmp_path / "u", tmp_path / "pool.npz")
    assert not (tmp_path / "u" / "session.sqlite").exists()


def test_store_rolls_back_a_failed_transaction(session):
    before = session.store.dump()
    with pytest.raises(RuntimeError), session.store.transaction() as cur:
        cur.execute("INSERT INTO meta(key, value) VALUES ('x', '1')")
        raise RuntimeError("crash mid-write")
    assert session.store.dump() == before


def test_corrupt_or_foreign_store_is_reported(tmp_path):
    bad = tmp_path / "session.sqlite"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(CorruptRunError):
        SessionStore(bad)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.commit()
    with pytest.raises(CorruptRunError, match="missing tables"):
        SessionStore(other)
    with pytest.raises(NcalError, match="session init"):
        Session(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------- import
def test_csv_import_names_indices_annotators_and_blank_rows(tmp_path, session):
    f = write_csv(
        tmp_path / "a.csv",
        [["item000", "cat", "ann1"], ["item001", "2", "ann1"], ["item002", "", "ann1"],
         ["item000", "dog", "ann2"], ["item000", "cat", "ann1"]],
    )  # fmt: skip
    rep = session.import_labels(f)
    assert (rep.n_rows, rep.n_new, rep.n_skipped, rep.already_imported) == (3, 3, 1, False)
    ann = session.store.annotations()
    assert sorted(zip(ann["item_row"].tolist(), ann["label"].tolist(), ann["annotator"])) == [
        (0, 0, "ann1"), (0, 1, "ann2"), (1, 2, "ann1"),
    ]  # fmt: skip
    g = write_csv(tmp_path / "b.csv", [["item003", "bird"]], header=("id", "label"))
    session.import_labels(g, annotator="carol")
    assert session.store.annotations()["annotator"][-1] == "carol"


def test_reimport_is_idempotent_even_under_another_name(tmp_path, session):
    f = write_csv(tmp_path / "a.csv", [["item000", "cat", "x"], ["item001", "dog", "x"]])
    session.import_labels(f)
    dump = session.store.dump()
    rep = session.import_labels(f)
    assert rep.already_imported and rep.n_new == 0
    copy = tmp_path / "renamed.csv"
    copy.write_bytes(f.read_bytes())
    assert session.import_labels(copy).already_imported
    assert session.store.dump() == dump


@pytest.mark.parametrize(
    "rows, message",
    [
        ([["item000", "cat", "x"], ["nope", "cat", "x"]], "unknown id 'nope'"),
        ([["item000", "cat", "x"], ["item001", "cow", "x"]], "unknown label 'cow'"),
        ([["item000", "cat", "x"], ["item001", "7", "x"]], "unknown label '7'"),
        ([["item000", "cat", "x"], ["item059", "cat", "x"]], "held-out"),
        ([["item000", "cat", "x"], ["item000", "dog", "x"]], "another label"),
    ],
)
def test_rejected_file_changes_nothing(tmp_path, session, rows, message):
    session.import_labels(write_csv(tmp_path / "ok.csv", [["item005", "bird", "y"]]))
    dump = session.store.dump()
    with pytest.raises(NcalError, match=message) as err:
        session.import_labels(write_csv(tmp_path / "bad.csv", rows))
    assert "nothing was changed" in str(err.value)
    assert session.store.dump() == dump


def test_rejection_lists_first_twenty_problems(tmp_path, session):
    rows = [[f"ghost{i}", "cat", "x"] for i in range(30)]
    with pytest.raises(NcalError) as err:
        session.import_labels(write_csv(tmp_path / "bad.csv", rows))
    msg = str(err.value)
    assert "ghost19" in msg and "ghost20" not in msg and "and 10 more" in msg


def test_csv_without_required_columns(tmp_path, session):
    with pytest.raises(NcalError, match="'id' and 'label'"):
        session.import_labels(write_csv(tmp_path / "x.csv", [["a", "b"]], header=("item", "lab")))


def test_labelstudio_export_import(tmp_path, session):
    tasks = [
        {
            "id": 1,
            "data": {"id": "item000"},
            "annotations": [
                {"completed_by": 7, "result": [{"type": "choices", "value": {"choices": ["dog"]}}]},
                {"completed_by": {"id": 8, "email": "e@x.org"},
                 "result": [{"type": "choices", "value": {"choices": ["cat"]}}]},
                {"completed_by": 9, "was_cancelled": True, "result": []},
            ],
        },
        {"id": 2, "data": {"id": "item001"}, "annotations": [{"completed_by": 7, "result": []}]},
    ]  # fmt: skip
    f = tmp_path / "export.json"
    f.write_text(json.dumps(tasks))
    rep = session.import_labels(f)
    assert (rep.format, rep.n_new, rep.n_skipped) == ("labelstudio", 2, 2)
    a = session.store.annotations()
    assert sorted(zip(a["annotator"], a["label"].tolist())) == [("7", 1), ("e@x.org", 0)]
    tasks[0]["annotations"][0]["result"][0]["value"]["choices"] = ["dog", "cat"]
    f2 = tmp_path / "multi.json"
    f2.write_text(json.dumps(tasks))
    with pytest.raises(NcalError, match="expected exactly one"):
        session.import_labels(f2)


def test_relabel_by_same_annotator_keeps_both_rows_uses_latest(tmp_path, session):
    session.import_labels(write_csv(tmp_path / "a.csv", [["item000", "cat", "ann"]]))
    session.import_labels(write_csv(tmp_path / "b.csv", [["item000", "dog", "ann"]]))
    assert len(session.store.annotations()["id"]) == 2
    agg = session.aggregate("majority")
    assert agg.labels[0] == 1 and agg.n_labels[0] == 1


# ---------------------------------------------------------------------------------------- files
def test_batch_csv_round_trips_through_import(tmp_path, session):
    b = session.next_batch(5, strategy="random", seed=3)
    assert b.fallback == "random" and len(b.items) == 5
    with open(b.csv_path) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [it["id"] for it in b.items]
    assert {r["kind"] for r in rows} == {"new"} and all(r["round"] == "1" for r in rows)
    for r in rows[:3]:
        r["label"], r["annotator"] = "bird", "zed"
    filled = tmp_path / "filled.csv"
    with open(filled, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    rep = session.import_labels(filled)
    assert (rep.n_new, rep.n_skipped) == (3, 2)
    tasks = json.loads(b.labelstudio_path.read_text())
    assert [t["data"]["id"] for t in tasks] == [it["id"] for it in b.items]
    assert tasks[0]["data"]["features_ref"].startswith("features.npy#row=")


def test_npz_image_pool_session(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "imgs.npz",
        x_train=rng.integers(0, 255, (30, 8, 8), dtype=np.uint8),
        y_train=rng.integers(0, 3, 30),
        x_test=rng.integers(0, 255, (6, 8, 8), dtype=np.uint8),
        y_test=rng.integers(0, 3, 6),
        class_names=np.array(CLASSES),
    )
    with Session.create(
        tmp_path / "s", tmp_path / "imgs.npz", extractor="pixels", pca_dim=4, image_size=8
    ) as s:
        assert s.classes == CLASSES
        info = s.meta["features"]
        assert (
            info["name"] == "pixels_pca" and info["channels"] == 1 and s.features.shape == (36, 4)
        )
        assert s.meta["pool"]["n_heldout"] == 6 and s.meta["pool"]["format"] == "dataset_npz"
        b = s.next_batch(5, strategy="random")
        assert all(it["id"].startswith("train/") for it in b.items)
        tasks = json.loads(b.labelstudio_path.read_text())
        # npz image pools: the images are written to files and the tasks show them
        image = Path(tasks[0]["data"]["image"])
        assert image.suffix == ".png" and image.exists() and image.parent.name == "images"
        cfg = ET.fromstring((s.dir / "labelstudio_config.xml").read_text())
        assert cfg.find("Image") is not None
