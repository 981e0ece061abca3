"""`ncal session next`: model choice by CV, ActiveLab relabel requests from real annotations,
Label Studio images for npz pools and the annotator-name map on import."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from ncal.session import Session

NAMES = [str(i) for i in range(10)]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "label", "annotator"])
        w.writerows(rows)
    return path


def _digits(tmp_path, images: bool = False, n: int | None = None):
    d = load_digits()
    if n is not None:
        d.data, d.images, d.target = d.data[:n], d.images[:n], d.target[:n]
    rng = np.random.default_rng(0)
    y = np.full(len(d.target), -1)
    held = rng.choice(len(y), len(y) // 4, replace=False)
    y[held] = d.target[held]
    x = (d.images * 255 / 16).astype(np.uint8) if images else d.data.astype(np.float32)
    path = tmp_path / "digits.npz"
    np.savez(path, x=x, y=y, class_names=np.array(NAMES))
    return path, d, held


def test_default_model_is_no_worse_than_logistic_regression(tmp_path):
    pool, d, held = _digits(tmp_path)
    free = np.setdiff1d(np.arange(len(d.target)), held)
    lab = np.sort(np.random.default_rng(3).choice(free, 40, replace=False))
    with Session.create(tmp_path / "s", pool, train={"epochs_max": 20}) as s:
        f = _write_csv(tmp_path / "l.csv", [(str(r), NAMES[d.target[r]], "a") for r in lab])
        s.import_labels(f)
        res = s.next_batch(10, strategy="entropy")
    lr = LogisticRegression(C=1.0, max_iter=1000).fit(d.data[lab], d.target[lab])
    lr_acc = float(np.mean(lr.predict(d.data[held]) == d.target[held]))
    choice = res.info["model_choice"]
    assert set(choice["cv_accuracy"]) == {"logreg/given", "mlp/given"}
    assert choice["model"] in ("logreg", "mlp") and choice["folds"] == 3
    assert res.heldout_accuracy >= lr_acc - 0.02, (res.heldout_accuracy, lr_acc, choice)


def test_activelab_turns_relabel_picks_into_relabel_requests(tmp_path):
    pool, d, held = _digits(tmp_path)
    free = np.setdiff1d(np.arange(len(d.target)), held)
    lab = np.sort(np.random.default_rng(1).choice(free, 300, replace=False))
    rng = np.random.default_rng(2)
    rows = []
    for name, rate in (("a", 0.2), ("b", 0.5), ("c", 0.6)):
        wrong = rng.random(lab.size) < rate
        given = np.where(wrong, (d.target[lab] + rng.integers(1, 10, lab.size)) % 10, d.target[lab])
        rows += [(str(r), NAMES[g], name) for r, g in zip(lab, given)]
    with Session.create(tmp_path / "s", pool, train={"epochs_max": 10}) as s:
        s.import_labels(_write_csv(tmp_path / "l.csv", rows))
        a = s.aggregate()
        assert a.method == "ds"  # 300 items carry labels from 3 annotators: identifiable
        res = s.next_batch(30, strategy="activelab", model="logreg")
    kinds = [b["kind"] for b in res.items]
    assert len(res.items) == 30 and set(kinds) <= {"new", "relabel"}
    relabel = [b["item_row"] for b in res.items if b["kind"] == "relabel"]
    new = [b["item_row"] for b in res.items if b["kind"] == "new"]
    assert res.info["selection"]["n_relabel"] == len(relabel) > 0
    assert set(relabel) <= set(lab.tolist()) and not set(new) & set(lab.tolist())
    with open(res.csv_path) as fh:
        assert [r["kind"] for r in csv.DictReader(fh)] == kinds


def test_auto_aggregation_follows_the_consensus_identifiability_rule(tmp_path):
    pool, d, held = _digits(tmp_path)
    free = np.setdiff1d(np.arange(len(d.target)), held)[:30]
    rows = [(str(r), NAMES[d.target[r]], n) for r in free for n in ("a", "b")]
    with Session.create(tmp_path / "s", pool) as s:
        s.import_labels(_write_csv(tmp_path / "l.csv", rows))
        a = s.aggregate()
    assert a.method == "majority" and "2 annotator(s)" in a.fallback_reason


def test_npz_image_tasks_show_pngs_and_annotator_map(tmp_path):
    pool, d, _ = _digits(tmp_path, images=True, n=200)
    with Session.create(tmp_path / "s", pool, extractor="pixels", pca_dim=16) as s:
        res = s.next_batch(5)
        tasks = json.loads(res.labelstudio_path.read_text())
        assert all(t["data"]["image"].endswith(".png") for t in tasks)
        from PIL import Image

        first = res.items[0]
        png = np.asarray(Image.open(tasks[0]["data"]["image"]))
        assert np.array_equal(png, (d.images[first["item_row"]] * 255 / 16).astype(np.uint8))
        assert (
            '<Image name="image" value="$image"/>' in (s.dir / "labelstudio_config.xml").read_text()
        )
        export = [
            {"data": {"id": b["id"]}, "annotations": [
                {"completed_by": 7, "result": [{"value": {"choices": ["3"]}}]}]}
            for b in res.items
        ]  # fmt: skip
        f = tmp_path / "ls.json"
        f.write_text(json.dumps(export))
        m = tmp_path / "map.csv"
        m.write_text("id,name\n7,alice\n")
        rep = s.import_labels(f, annotator_map=m)
        assert rep.n_new == 5 and rep.unmapped == []
        assert set(s.store.annotations()["annotator"].tolist()) == {"alice"}
    with Session.create(tmp_path / "s2", pool, extractor="pixels", image_url_prefix="/d/") as s:
        tasks = json.loads(s.next_batch(3).labelstudio_path.read_text())
        assert all(t["data"]["image"].startswith("/d/") for t in tasks)
