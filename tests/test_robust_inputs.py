"""Issue 14 items 7-10 at the API: loaders refuse broken files with clear errors, signals are
validated in one place, FF counts never wrap, ids are kept exactly, CSV cells are escaped."""

from __future__ import annotations

import csv
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ncal.data import load_dataset
from ncal.data.cifar import read_cifar10
from ncal.dynamics.fluctuation import FluctuationRecorder, feature_fluctuation
from ncal.errors import NcalError
from ncal.signals import PROB_TOLERANCE, Signals
from ncal.strategies import get as get_strategy


# ------------------------------------------------------------------------------ data loaders
def dataset_npz(path: Path, ytr=(0, 1, 2, 0, 1, 2), yte=(0, 1, 2)) -> Path:
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.normal(size=(len(ytr), 3)).astype(np.float32),
        y_train=np.array(ytr),
        x_test=rng.normal(size=(len(yte), 3)).astype(np.float32),
        y_test=np.array(yte),
    )
    return path


def test_npz_loader_errors_name_the_file_and_the_cause(tmp_path):
    good = dataset_npz(tmp_path / "good.npz")
    assert load_dataset(f"features:{good}").num_classes == 3
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(NcalError, match=r"trunc\.npz is truncated or corrupt"):
        load_dataset(f"features:{trunc}")
    text = tmp_path / "text.npz"
    text.write_text("id,label\na,1\n")
    with pytest.raises(NcalError, match=r"is not an \.npz archive") as err:
        load_dataset(f"features:{text}")
    assert "allow_pickle" not in str(err.value)
    objs = tmp_path / "objs.npz"
    np.savez(
        objs, x_train=np.array([{"a": 1}], dtype=object), y_train=[0], x_test=[[0]], y_test=[0]
    )
    with pytest.raises(NcalError, match="holds Python objects"):
        load_dataset(f"npz:{objs}")


def test_npz_whose_test_classes_never_occur_in_training_is_refused(tmp_path):
    bad = dataset_npz(tmp_path / "shifted.npz", ytr=(5, 6, 7, 5, 6, 7), yte=(0, 1, 2))
    with pytest.raises(ValueError, match=r"y_test holds classes \[0, 1, 2\] that y_train never"):
        load_dataset(f"features:{bad}")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def cifar_folder(root: Path, poison: str | None = None) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    batch = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for n in names:
        obj = {**batch, "evil": _Evil()} if n == poison else batch
        (d / n).write_bytes(pickle.dumps(obj))
    (d / "batches.meta").write_bytes(pickle.dumps({"label_names": ["a", "b"]}))
    return d


def test_cifar_refuses_a_malicious_pickle_and_a_truncated_archive(tmp_path, capsys):
    assert read_cifar10(cifar_folder(tmp_path / "ok")).x_train.shape == (10, 32, 32, 3)
    bad = cifar_folder(tmp_path / "bad", poison="data_batch_2")
    with pytest.raises(NcalError, match=r"data_batch_2.*refusing to load global builtins\.print"):
        read_cifar10(bad)
    assert "pwned" not in capsys.readouterr().out
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(cifar_folder(tmp_path / "t"), arcname="cifar-10-batches-py")
    tgz.write_bytes(tgz.read_bytes()[:200])
    with pytest.raises(NcalError, match="truncated or corrupt"):
        read_cifar10(tmp_path)


# ---------------------------------------------------------------------------- FF counters
def test_fluctuation_counts_do_not_wrap_past_uint16():
    rec = FluctuationRecorder(2)
    flip = np.array([0, 0]), np.array([1, 0])
    for t in range(70_001):
        rec.update(flip[t % 2])
    assert rec.counts.tolist() == [70_000, 0]  # uint16 counters gave 4,464
    assert rec.n_updates == 70_001
    hist = np.stack([flip[t % 2] for t in range(5)])
    assert feature_fluctuation(hist).tolist() == [4, 0]


# ------------------------------------------------------------------------ signals validation
def probs(n=6, c=3, seed=0):
    p = np.random.default_rng(seed).random((n, c)) + 0.1
    return p / p.sum(1, keepdims=True)


BAD_SIGNALS = {
    "negative probs": (dict(probs_pool=probs() * [1, 1, 1] - [0.5, 0, 0]), "negative"),
    "unnormalised": (dict(probs_pool=probs() * 2), "rows must sum to 1"),
    "nan probs": (dict(probs_pool=np.full((6, 3), np.nan)), "NaN"),
    "features rows": (
        dict(probs_pool=probs(), features_pool=np.zeros((5, 2))),
        "same number of rows",
    ),
    "ff length": (dict(probs_pool=probs(), ff_counts=np.zeros(4)), "same number of rows"),
    "ff negative": (dict(probs_pool=probs(), ff_counts=np.array([0, 1, -2, 0, 0, 0])), "non-neg"),
    "ff 2-D": (dict(probs_pool=probs(), ff_counts=np.zeros((6, 1))), "1-D"),
    "num_classes": (dict(probs_pool=probs(), num_classes=4), "3 class columns"),
    "logits width": (
        dict(logits_pool=np.zeros((6, 3)), probs_pool=probs(c=2), num_classes=3),
        "class columns",
    ),
    "labels range": (
        dict(
            probs_pool=probs(), labels_labeled=np.array([0, 3]), features_labeled=np.zeros((2, 1))
        ),
        r"must lie in \[0, 2\]",
    ),
    "labeled rows": (
        dict(
            probs_pool=probs(), labels_labeled=np.array([0, 1]), features_labeled=np.zeros((3, 1))
        ),
        "labeled-set signals",
    ),
    "mc rows": (dict(probs_pool=probs(), mc_probs_pool=np.full((2, 5, 3), 1 / 3)), "axis 1"),
    "mc 2-D": (dict(probs_pool=probs(), mc_probs_pool=np.full((5, 3), 1 / 3)), r"\(T, N, C\)"),
    "annotations range": (
        dict(probs_pool=probs(), annotations_labeled=np.array([[0, -2]]), num_classes=3),
        r"\[-1, 2\]",
    ),
    "num_classes type": (dict(probs_pool=probs(), num_classes=0), "positive integer"),
}


@pytest.mark.parametrize("case", sorted(BAD_SIGNALS))
def test_signals_validate_refuses(case):
    kwargs, match = BAD_SIGNALS[case]
    with pytest.raises(ValueError, match=match):
        Signals(**kwargs).validate()


def test_signals_validate_tolerance_and_agreement():
    p = probs()
    Signals(probs_pool=p, num_classes=3, ff_counts=np.arange(6)).validate(num_classes=3)
    Signals(probs_pool=p + PROB_TOLERANCE / 10 / 3).validate()  # within tolerance: accepted
    with pytest.raises(ValueError, match="rows must sum to 1"):
        Signals(probs_pool=p + PROB_TOLERANCE * 2 / 3).validate()
    with pytest.raises(ValueError, match=r"`num_classes` is 4 but `signals\.num_classes` is 3"):
        Signals(probs_pool=p, num_classes=3).validate(num_classes=4)


def test_strategy_select_validates_the_signals_it_uses():
    sig = Signals(probs_pool=probs() * 3, num_classes=3)
    with pytest.raises(ValueError, match="rows must sum to 1"):
        get_strategy("entropy").select(sig, 2)
    sig = Signals(
        probs_pool=probs(), features_pool=np.zeros((5, 2)), features_labeled=np.zeros((2, 2))
    )
    with pytest.raises(ValueError, match="same number of rows"):
        get_strategy("coreset").select(sig, 2, rng=np.random.default_rng(0))
    # a signal the strategy does not use is not its business
    ok = Signals(probs_pool=probs(), features_labeled=np.zeros((9, 1)), num_classes=3)
    assert get_strategy("entropy").select(ok, 2).indices.shape == (2,)


# ------------------------------------------------------------------------ ids and CSV cells
def test_ids_kept_exactly_and_formula_cells_escaped_round_trip(tmp_path):
    from ncal.session import Session
    from ncal.session.exporters import escape_cell

    ids = [" lead", "trail ", "=cmd|' /C calc'!A0", "+1", "@sum", "-2", "plain"] + [
        f"x{i}" for i in range(13)
    ]
    x = np.random.default_rng(0).normal(size=(len(ids), 3)).astype(np.float32)
    np.savez(tmp_path / "pool.npz", x=x, ids=np.array(ids))
    with Session.create(tmp_path / "s", tmp_path / "pool.npz", classes=["a", "=b"]) as s:
        assert s.store.item_ids()[:7] == ids[:7]  # nothing stripped
        batch = [{"id": i, "kind": "query"} for i in ids[:7]]
        from ncal.session.exporters import write_batch_csv

        path = write_batch_csv(tmp_path / "batch.csv", batch, round_number=1, classes=s.classes)
        rows = list(csv.reader(io.StringIO(path.read_text())))
        written = [r[0] for r in rows[1:]]
        assert written == [escape_cell(i) for i in ids[:7]]
        assert not any(c.startswith(("=", "+", "-", "@")) for c in written)
        # the tool's own batch file, filled in, imports: ids (spaces, escapes) map back exactly
        filled = [rows[0]] + [[r[0], r[1], r[2], "'=b", "ann"] for r in rows[1:]]
        with open(tmp_path / "filled.csv", "w", newline="") as fh:
            csv.writer(fh).writerows(filled)
        rep = s.import_labels(tmp_path / "filled.csv")
        assert rep.n_new == 7
        a = s.store.annotations()
        assert sorted(s.store.item_ids()[r] for r in a["item_row"]) == sorted(ids[:7])
        assert set(a["label"].tolist()) == {1}
        out, n = s.export_labels(tmp_path / "labels.csv", method="majority")
        cells = [r[0] for r in csv.reader(io.StringIO(out.read_text()))][1:]
        assert n == 7 and "'=cmd|' /C calc'!A0" in cells and " lead" in cells


def test_pool_ids_with_control_characters_are_refused(tmp_path):
    from ncal.session.pool import load_pool

    x = np.zeros((3, 2), np.float32)
    np.savez(tmp_path / "p.npz", x=x, ids=np.array(["a", "b\nc", "d"]))
    with pytest.raises(NcalError, match=r"control characters.*rows \[1\]"):
        load_pool(tmp_path / "p.npz")


def test_deeply_nested_labelstudio_json_is_a_clear_error(tmp_path):
    from ncal.session.importers import read_annotations

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(NcalError, match="nests JSON too deeply"):
        read_annotations(deep)


def test_output_path_guard(tmp_path):
    from ncal.session.exporters import check_output_path, write_labels_csv

    store = tmp_path / "session.sqlite"
    store.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    with pytest.raises(NcalError, match="existing non-text file"):
        write_labels_csv(store, [["a", 0, "x", 1, "1.0"]])
    assert store.read_bytes().startswith(b"SQLite format 3")
    with pytest.raises(NcalError, match="is an existing directory"):
        check_output_path(tmp_path)
    inp = tmp_path / "annotations.csv"
    inp.write_text("id,label\n")
    with pytest.raises(NcalError, match="an input of the session"):
        check_output_path(tmp_path / "." / "annotations.csv", protected=[inp])
    folder = tmp_path / "images"
    folder.mkdir()
    with pytest.raises(NcalError, match="an input of the session"):
        check_output_path(folder / "new.csv", protected=[folder])
    assert check_output_path(tmp_path / "new.csv", protected=[inp]) == tmp_path / "new.csv"
