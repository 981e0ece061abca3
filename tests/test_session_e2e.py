"""End-to-end: several labeling rounds through the `ncal session` CLI with simulated annotators.

Real offline data (scikit-learn digits, 64-d pixel features), three annotators with known symmetric
error rates (5 %, 15 %, 30 %), batches exported as CSV and Label Studio JSON and imported back.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from ncal.cli import main
from ncal.errors import NcalError
from ncal.session import Session

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ERROR_RATES = {"ann_a": 0.05, "ann_b": 0.15, "ann_c": 0.30}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def digits_pool(tmp_path: Path, n_heldout: int = 297) -> tuple[Path, dict[str, int]]:
    d = load_digits()
    rng = np.random.default_rng(0)
    ids = np.array([f"d{i:04d}" for i in range(len(d.target))])
    y = np.full(len(ids), -1)
    held = rng.choice(len(ids), n_heldout, replace=False)
    y[held] = d.target[held]
    path = tmp_path / "digits.npz"
    np.savez(path, x=d.data.astype(np.float32), ids=ids, y=y, class_names=np.array(NAMES))
    return path, dict(zip(ids.tolist(), d.target.tolist()))


class Annotator:
    """Symmetric exclusive noise: with probability ``rate``, a uniformly drawn wrong label."""

    def __init__(self, name: str, rate: float, truth: dict[str, int], seed: int) -> None:
        self.name, self.rate, self.truth = name, rate, truth
        self.rng = np.random.default_rng(seed)

    def label(self, ids: list[str]) -> list[int]:
        y = np.array([self.truth[i] for i in ids])
        wrong = self.rng.random(len(ids)) < self.rate
        return np.where(wrong, (y + self.rng.integers(1, 10, len(ids))) % 10, y).tolist()


def batch_ids(csv_path: Path, kind: str | None = None) -> list[str]:
    with open(csv_path) as fh:
        return [r["id"] for r in csv.DictReader(fh) if kind is None or r["kind"] == kind]


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "label", "annotator"])
        w.writerows(rows)
    return path


def write_labelstudio(path: Path, tasks_json: Path, labels: dict[str, int], who: str) -> Path:
    """Turn exported tasks into a Label Studio export with one choices annotation per task."""
    tasks = json.loads(tasks_json.read_text())
    for t_id, t in enumerate(tasks):
        t["id"] = t_id
        t["annotations"] = [
            {
                "completed_by": {"id": 3, "email": who},
                "was_cancelled": False,
                "result": [
                    {
                        "from_name": "label",
                        "to_name": "item",
                        "type": "choices",
                        "value": {"choices": [NAMES[labels[t["data"]["id"]]]]},
                    }
                ],
            }
        ]
    path.write_text(json.dumps(tasks))
    return path


def cli(*args: str | Path) -> int:
    return main(["session", *[str(a) for a in args]])


def test_three_annotators_over_rounds(tmp_path, monkeypatch, capsys):
    pool, truth = digits_pool(tmp_path)
    sdir = tmp_path / "session"
    assert cli("init", sdir, "--pool", pool, "--epochs", "30") == 0
    crowd = [Annotator(n, r, truth, seed=i) for i, (n, r) in enumerate(ERROR_RATES.items())]
    given: set[tuple[str, str, int]] = set()
    files: list[Path] = []
    k = 60
    for rnd in range(1, 5):
        if rnd == 3:
            # a `next` killed mid-fit (Ctrl-C) leaves the session exactly as it was
            import ncal.training

            def boom(*a, **kw):
                raise KeyboardInterrupt

            with Session(sdir) as s:
                before = s.store.dump()
            monkeypatch.setattr(ncal.training, "train_round", boom)
            assert cli("next", sdir, "--k", k) == 130
            monkeypatch.undo()
            with Session(sdir) as s:
                assert s.store.dump() == before
        assert cli("next", sdir, "--k", k) == 0
        csv_path = sdir / "batches" / f"round_{rnd:03d}.csv"
        ls_path = sdir / "batches" / f"round_{rnd:03d}.labelstudio.json"
        ids = batch_ids(csv_path)
        assert len(ids) == k
        if rnd == 2:
            # asking again without new labels gives the same batch
            first = csv_path.read_bytes()
            assert cli("next", sdir, "--k", k) == 0
            assert csv_path.read_bytes() == first
            assert "same batch" in capsys.readouterr().out
        labels = {c.name: dict(zip(ids, c.label(ids))) for c in crowd}
        for name, lab in labels.items():
            given |= {(i, name, v) for i, v in lab.items()}
        if rnd == 1:
            rows = [(i, NAMES[labels[n][i]], n) for n in labels for i in ids]
            files.append(write_csv(tmp_path / "r1.csv", rows))
        else:  # two annotators by CSV (labels as indices), one through Label Studio
            rows = [(i, str(labels[n][i]), n) for n in ("ann_a", "ann_b") for i in ids]
            files.append(write_csv(tmp_path / f"r{rnd}_ab.csv", rows))
            files.append(
                write_labelstudio(tmp_path / f"r{rnd}_c.json", ls_path, labels["ann_c"], "ann_c")
            )
        for f in files[-2 if rnd > 1 else -1 :]:
            assert cli("import", sdir, f) == 0

    with Session(sdir) as s:
        rounds = s.store.rounds()
        assert [r["selector"] for r in rounds] == ["random", "ncal_r", "ncal_r", "ncal_r"]
        assert rounds[0]["fallback"] == "random" and rounds[1]["fallback"] is None
        dump = s.store.dump()
        a = s.store.annotations()
        ids_by_row = s.store.item_ids()
        stored = {
            (ids_by_row[r], n, int(v)) for r, n, v in zip(a["item_row"], a["annotator"], a["label"])
        }
    # labels never lost: every annotation given is stored, exactly once
    assert stored == given and len(a["id"]) == len(given) == 4 * k * 3

    # re-importing every file changes nothing
    for f in files:
        assert cli("import", sdir, f) == 0
    # files with an unknown id / unknown label are rejected whole and change nothing
    bad_id = write_csv(
        tmp_path / "bad_id.csv", [("d0000", "one", "ann_a"), ("x999", "two", "ann_a")]
    )
    bad_lab = write_csv(
        tmp_path / "bad_lab.csv", [("d0000", "one", "ann_a"), ("d0001", "ten", "ann_a")]
    )
    assert cli("import", sdir, bad_id) == 2
    assert cli("import", sdir, bad_lab) == 2
    err = capsys.readouterr().err
    assert "unknown id 'x999'" in err and "unknown label 'ten'" in err
    with Session(sdir) as s:
        assert s.store.dump() == dump

    # status: Dawid–Skene recovers the annotators' error rates
    assert cli("status", sdir, "--json") == 0
    st = json.loads(capsys.readouterr().out)
    assert st["n_labeled"] == 4 * k and st["n_annotations"] == 4 * k * 3 and st["n_annotators"] == 3
    assert st["aggregation"] == "ds"
    realised = {}
    for name in ERROR_RATES:
        mine = [(i, v) for i, n, v in given if n == name]
        realised[name] = np.mean([truth[i] != v for i, v in mine])
    est = {a["annotator"]: 1.0 - a["ds_reliability"] for a in st["annotators"]}
    print(
        "DS error-rate recovery:",
        {n: (ERROR_RATES[n], round(realised[n], 3), round(est[n], 3)) for n in est},
    )
    for name, rate in ERROR_RATES.items():
        assert abs(est[name] - realised[name]) < 0.05
        assert abs(est[name] - rate) < 0.1
    assert 0.4 < st["agreement"]["krippendorff_alpha"] < 0.95
    accs = [r["heldout_accuracy"] for r in st["rounds"]]
    assert accs[0] is None and all(0.5 < x <= 1 for x in accs[1:])
    assert accs[-1] > 0.85
    assert Path(st["learning_curve_png"]).is_file()

    # export: aggregated labels are far more accurate than the worst annotator
    out = tmp_path / "labels.csv"
    assert cli("export", sdir, "--method", "ds", "--out", out) == 0
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * k
    assert all(
        r["n_annotations"] == "3" and r["label_name"] == NAMES[int(r["label"])] for r in rows
    )
    acc_ds = np.mean([truth[r["id"]] == int(r["label"]) for r in rows])
    assert cli("export", sdir, "--method", "majority", "--out", tmp_path / "mv.csv") == 0
    with open(tmp_path / "mv.csv") as fh:
        acc_mv = np.mean([truth[r["id"]] == int(r["label"]) for r in csv.DictReader(fh)])
    print(f"exported label accuracy: DS {acc_ds:.3f}, majority {acc_mv:.3f}")
    assert acc_ds >= acc_mv - 0.01 and acc_ds > 0.93


def test_review_finds_injected_errors_and_relabel_fixes_them(tmp_path, capsys):
    pool, truth = digits_pool(tmp_path, n_heldout=0)
    sdir = tmp_path / "session"
    assert cli("init", sdir, "--pool", pool, "--epochs", "20") == 0
    assert cli("next", sdir, "--k", 400, "--seed", 1) == 0  # cold start: random batch
    ids = batch_ids(sdir / "batches" / "round_001.csv")
    rng = np.random.default_rng(5)
    flip = rng.random(len(ids)) < 0.12
    wrong = {i for i, f in zip(ids, flip) if f}
    given = {i: (truth[i] + int(rng.integers(1, 10))) % 10 if i in wrong else truth[i] for i in ids}
    f = write_csv(tmp_path / "solo.csv", [(i, NAMES[v], "solo") for i, v in given.items()])
    assert cli("import", sdir, f) == 0
    capsys.readouterr()

    n_wrong = len(wrong)
    assert cli("review", sdir, "--top", n_wrong, "--json") == 0
    queue = json.loads(capsys.readouterr().out)
    assert [q["rank"] for q in queue] == list(range(1, n_wrong + 1))
    precision = np.mean([q["id"] in wrong for q in queue])
    chance = n_wrong / len(ids)
    print(f"review precision@{n_wrong}: {precision:.3f} (chance {chance:.3f})")
    assert precision > 0.6 and precision > 4 * chance
    fixes = [q for q in queue if q["id"] in wrong]
    assert np.mean([NAMES.index(q["suggested"]) == truth[q["id"]] for q in fixes]) > 0.7

    # the relabel share of the next batch is the top of the review queue
    assert cli("next", sdir, "--k", 40, "--relabel-fraction", 0.5, "--strategy", "entropy",
               "--prefill") == 0  # fmt: skip
    csv_path = sdir / "batches" / "round_002.prefill.csv"
    relabel = batch_ids(csv_path, "relabel")
    query = batch_ids(csv_path, "new")
    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    assert all(
        r["prediction"] in NAMES and 0 < float(r["prediction_confidence"]) <= 1 for r in rows
    )
    # relabel rows carry the out-of-fold suggestion, which mostly is the true class
    sugg = {r["id"]: NAMES.index(r["prediction"]) for r in rows if r["kind"] == "relabel"}
    assert np.mean([sugg[i] == truth[i] for i in relabel]) > 0.7
    tasks = json.loads((sdir / "batches" / "round_002.prefill.labelstudio.json").read_text())
    assert all(t["predictions"][0]["result"][0]["value"]["choices"][0] in NAMES for t in tasks)
    # the round's candidate signals are kept (terminal-phase FF counts, predictions)
    sig = np.load(sdir / "rounds" / "round_002.npz")
    assert sig["rows"].shape == sig["ff_counts"].shape == (1797 - 400,)
    assert set(sig["selected"].tolist()) == {
        int(np.flatnonzero(sig["rows"] == r)[0]) for r in [int(i[1:]) for i in query]
    }
    assert len(relabel) == 20 and len(query) == 20
    assert set(relabel) <= set(ids) and not set(query) & set(ids)
    assert relabel == [q["id"] for q in queue[:20]]
    rel_precision = np.mean([i in wrong for i in relabel])
    print(f"relabel precision: {rel_precision:.3f}")

    # a second look by the same annotator replaces their vote: the wrong labels go away
    with Session(sdir) as s:
        before = s.aggregate()
        rows = [s.store.id_to_row()[i] for i in ids]
        errors_before = sum(before.labels[r] != truth[i] for r, i in zip(rows, ids))
    f2 = write_csv(tmp_path / "second.csv", [(i, NAMES[truth[i]], "solo") for i in relabel])
    assert cli("import", sdir, f2) == 0
    with Session(sdir) as s:
        after = s.aggregate()
        errors_after = sum(after.labels[r] != truth[i] for r, i in zip(rows, ids))
        assert len(s.store.annotations()["id"]) == 400 + 20  # the first labels are kept
    assert errors_before == n_wrong
    assert errors_after == n_wrong - sum(i in wrong for i in relabel)

    # relabeled items are not sent again (the 20 new items of round 2 are still unlabeled, so
    # round 3 needs --replace)
    assert cli("next", sdir, "--k", 10, "--relabel-fraction", 1.0, "--strategy", "entropy",
               "--replace") == 0  # fmt: skip
    again = batch_ids(sdir / "batches" / "round_003.csv", "relabel")
    assert len(again) == 10 and not set(again) & set(relabel)


def test_cold_start_kcenter_and_unfinished_batch_kept_until_replace(tmp_path, capsys):
    pool, truth = digits_pool(tmp_path, n_heldout=0)
    sdir = tmp_path / "s"
    assert cli("init", sdir, "--pool", pool, "--cold-start", "kcenter") == 0
    assert cli("next", sdir, "--k", 10) == 0
    with Session(sdir) as s:
        r1 = s.store.round(1)
        assert r1["fallback"] == "kcenter" and r1["selector"] == "kcenter"
        first = [b["id"] for b in s.store.batch(1)]
    first_csv = (sdir / "batches" / "round_001.csv").read_text()
    capsys.readouterr()
    # other settings, no labels back: the unfinished batch is handed out again, with a note
    assert cli("next", sdir, "--k", 12, "--cold-start", "random") == 0
    out = capsys.readouterr().out
    assert "round 1 is unfinished: 10 of 10 item(s) have no label yet" in out
    assert "`--replace`" in out and "['cold_start', 'k']" in out
    with Session(sdir) as s:
        assert [b["id"] for b in s.store.batch(1)] == first
    # a partly labeled batch is still unfinished: the rest is asked for again
    f = write_csv(tmp_path / "part.csv", [(i, NAMES[truth[i]], "a") for i in first[:4]])
    assert cli("import", sdir, f) == 0
    with Session(sdir) as s:
        res = s.next_batch(10)
        assert res.reused and res.round == 1 and res.pending == 6
        assert [b["kind"] for b in res.items] == ["new"] * 10
    # --replace with labels back: a new round from the current labels
    assert cli("next", sdir, "--k", 12, "--cold-start", "random", "--replace") == 0
    with Session(sdir) as s:
        assert [r["round"] for r in s.store.rounds()] == [1, 2]
        assert len(s.store.batch(2)) == 12 and not {b["id"] for b in s.store.batch(2)} & set(
            first[:4]
        )
    # --replace with nothing back: the round is recomputed as a new issue in new files
    assert cli("next", sdir, "--k", 5, "--replace") == 0
    with Session(sdir) as s:
        assert [r["round"] for r in s.store.rounds()] == [1, 2]
        assert len(s.store.batch(2)) == 5 and s.store.round(2)["info"]["issue"] == 1
    assert batch_ids(sdir / "batches" / "round_002.csv") != batch_ids(
        sdir / "batches" / "round_002b.csv"
    )
    assert len(batch_ids(sdir / "batches" / "round_002b.csv")) == 5
    assert (sdir / "batches" / "round_001.csv").read_text() == first_csv  # never rewritten


def test_crash_mid_fit_leaves_session_usable_and_text_output(tmp_path, monkeypatch, capsys):
    pool, truth = digits_pool(tmp_path)
    sdir = tmp_path / "s"
    assert cli("init", sdir, "--pool", pool, "--epochs", "5") == 0
    assert cli("status", sdir) == 0  # empty session: no annotations yet
    assert cli("review", sdir) == 0
    assert "nothing to review" in capsys.readouterr().out
    assert cli("next", sdir, "--k", 30) == 0
    ids = batch_ids(sdir / "batches" / "round_001.csv")
    f = write_csv(tmp_path / "a.csv", [(i, NAMES[truth[i]], "a") for i in ids])
    assert cli("import", sdir, f) == 0
    import ncal.session.fit

    def crash(*a, **kw):
        raise RuntimeError("GPU fell over")

    with Session(sdir) as s:
        before = s.store.dump()
        monkeypatch.setattr(ncal.session.fit, "fit_session_round", crash)
        with pytest.raises(RuntimeError, match="fell over"):
            s.next_batch(20, strategy="margin")
        monkeypatch.undo()
        assert s.store.dump() == before
        res = s.next_batch(20, strategy="margin")
        assert res.round == 2 and not res.reused and res.heldout_accuracy > 0.3
    capsys.readouterr()
    assert cli("status", sdir) == 0
    out = capsys.readouterr().out
    assert "pool 1500 (labeled 30, unlabeled 1470), held-out 297" in out
    assert "round 2: margin" in out and "learning curve:" in out
    assert cli("review", sdir, "--top", 5, "--out", tmp_path / "q.csv") == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 6
    with open(tmp_path / "q.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 5


def test_cli_errors_exit_2_without_traceback(tmp_path, capsys):
    pool, _ = digits_pool(tmp_path, n_heldout=0)
    assert cli("next", tmp_path / "missing") == 2
    assert "session init" in capsys.readouterr().err
    sdir = tmp_path / "s"
    assert cli("init", sdir, "--pool", pool) == 0
    assert cli("init", sdir, "--pool", pool) == 2
    assert cli("next", sdir, "--strategy", "nope") == 2
    assert "known strategies" in capsys.readouterr().err
    assert cli("next", sdir, "--relabel-fraction", "1.5") == 2
    assert "`--relabel-fraction` must be in [0, 1]" in capsys.readouterr().err
    with Session(sdir) as s, pytest.raises(NcalError, match="`relabel_fraction` must be in"):
        s.next_batch(10, relabel_fraction=1.5)  # the library names the argument, not the flag
    assert cli("next", sdir, "--k", "0") == 2
    assert "`--k` must be a positive integer" in capsys.readouterr().err
    assert cli("next", sdir, "--strategy-params", "[1]") == 2
    assert cli("export", sdir) == 0  # no labels yet: an empty labels file
    assert (
        sdir / "labels.csv"
    ).read_text().strip() == "id,label,label_name,n_annotations,confidence"


def test_same_seed_same_labels_same_batch_in_a_fresh_session(tmp_path):
    pool, truth = digits_pool(tmp_path, n_heldout=0)
    batches = []
    for name in ("s1", "s2"):
        sdir = tmp_path / name
        assert cli("init", sdir, "--pool", pool, "--epochs", "5") == 0
        assert cli("next", sdir, "--k", 30, "--seed", 4) == 0
        ids = batch_ids(sdir / "batches" / "round_001.csv")
        f = write_csv(tmp_path / f"{name}.csv", [(i, NAMES[truth[i]], "a") for i in ids])
        assert cli("import", sdir, f) == 0
        assert cli("next", sdir, "--k", 15, "--seed", 4) == 0
        batches.append(batch_ids(sdir / "batches" / "round_002.csv"))
    assert batches[0] == batches[1] and len(batches[0]) == 15


@pytest.mark.slow
def test_measurements_over_seeds(tmp_path):
    """Review precision@k and Dawid–Skene error-rate recovery over 5 seeds (library API)."""
    from ncal.session.aggregate import dawid_skene
    from ncal.session.review import mislabel_scores

    d = load_digits()
    precisions, ds_err = [], []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(d.target), 500, replace=False)
        x, y = d.data[idx], d.target[idx]
        flip = rng.random(500) < 0.12
        noisy = np.where(flip, (y + rng.integers(1, 10, 500)) % 10, y)
        sc = mislabel_scores(x, noisy, num_classes=10, seed=seed)
        k = int(flip.sum())
        precisions.append(flip[sc.ranking(k)].mean())
        items = np.repeat(np.arange(500), 3)
        anns = np.tile(np.arange(3), 500)
        rates = np.array(list(ERROR_RATES.values()))
        wrong = rng.random(1500) < rates[anns]
        labels = np.where(wrong, (y[items] + rng.integers(1, 10, 1500)) % 10, y[items])
        realised = np.array([np.mean(labels[anns == a] != y[items[anns == a]]) for a in range(3)])
        res = dawid_skene(items, anns, labels, n_items=500, n_annotators=3, num_classes=10)
        ds_err.append(np.abs((1 - res.reliability) - realised))
    p = np.array(precisions)
    e = np.array(ds_err)
    print(f"precision@k over 5 seeds: {p.mean():.3f} ± {p.std():.3f} (chance 0.12)")
    print(f"|DS error rate − realised| per annotator, mean over seeds: {e.mean(0).round(4)}")
    assert p.mean() > 0.75 and (e < 0.05).all()
