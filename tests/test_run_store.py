"""The run store: byte format of a run directory, lenient vs strict reading, finding runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ncal.errors import CorruptRunError, NcalError
from ncal.experiment.store import RunStore, find_runs, load_run


def test_rounds_jsonl_is_one_canonical_line_per_round(tmp_path) -> None:
    store = RunStore(tmp_path / "run")
    store.append_round({"round": 0, "b": np.float32(0.5), "a": np.int64(3), "nan": float("nan")})
    store.append_round({"round": 1, "selected": np.arange(3), "ok": np.bool_(True)})
    assert store.rounds_path.read_text() == (
        '{"a": 3, "b": 0.5, "nan": null, "round": 0}\n'
        '{"ok": true, "round": 1, "selected": [0, 1, 2]}\n'
    )
    assert [r["round"] for r in store.read_rounds()] == [0, 1]


def test_config_and_summary_are_indented_sorted_json(tmp_path) -> None:
    store = RunStore(tmp_path)
    store.write_config({"z": 1, "settings": {"seed": np.int32(2)}})
    assert store.config_path.read_text() == '{\n  "settings": {\n    "seed": 2\n  },\n  "z": 1\n}\n'
    store.write_summary({"status": "complete", "wall_seconds": 1.5})
    assert store.read_summary() == {"status": "complete", "wall_seconds": 1.5}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_strict_reading_checks_round_numbers_lenient_loading_does_not(tmp_path) -> None:
    store = RunStore(tmp_path)
    store.rounds_path.write_text('{"round": 0}\n\n{"round": 2, "x": 1}\n')
    with pytest.raises(CorruptRunError, match="expected round 1, got 2"):
        store.read_rounds()
    assert load_run(tmp_path).rounds == [{"round": 0}, {"round": 2, "x": 1}]


def test_corrupt_files_name_the_file_and_what_to_do(tmp_path) -> None:
    store = RunStore(tmp_path)
    store.config_path.write_text("{not json")
    with pytest.raises(CorruptRunError, match=r"config\.json is not valid JSON.*remove the run"):
        store.read_config()
    store.write_config({"settings": {}})
    store.rounds_path.write_text('{"round": 0}\n{"round": 1, "tru')
    with pytest.raises(CorruptRunError, match=r"rounds\.jsonl line 2 .*corrupt"):
        load_run(tmp_path)


def test_is_complete_and_last_accuracy_tolerate_partial_files(tmp_path) -> None:
    store = RunStore(tmp_path)
    assert not store.is_complete() and store.last_accuracy() is None
    store.summary_path.write_text('{"status": "compl')
    assert not store.is_complete()
    store.write_summary({"status": "complete"})
    assert store.is_complete()
    store.rounds_path.write_text(
        '{"round": 0, "test_accuracy": 0.5}\n{"round": 1, "test_accuracy": 0.75}\n{"round": 2, "te'
    )
    assert store.last_accuracy() == 0.75
    store.rounds_path.write_text('{"round": 0, "test_accuracy": null}\n')
    assert store.last_accuracy() is None


def test_load_run_reads_an_old_directory_written_without_the_store(tmp_path) -> None:
    # unsorted keys, no cell.json, no summary yet: what a custom cell runner may leave
    (tmp_path / "config.json").write_text(
        json.dumps({"settings": {"seed": 1}, "ncal_version": "x"})
    )
    (tmp_path / "rounds.jsonl").write_text(json.dumps({"test_accuracy": 0.4, "round": 0}) + "\n")
    run = load_run(tmp_path)
    assert run.dir == tmp_path
    assert run.config == {"settings": {"seed": 1}, "ncal_version": "x"}
    assert run.rounds == [{"round": 0, "test_accuracy": 0.4}]
    assert run.summary is None and run.cell is None


def test_cell_file_round_trips(tmp_path) -> None:
    store = RunStore(tmp_path / "c")
    store.write_cell({"relpath": "a/b", "hash": "1a2b3c4d", "config": {"seed": 0}})
    assert load_run(tmp_path / "c").cell == {
        "config": {"seed": 0},
        "hash": "1a2b3c4d",
        "relpath": "a/b",
    }


def test_find_runs_single_run_manifest_and_scan(tmp_path) -> None:
    run = tmp_path / "run"
    RunStore(run).write_config({"settings": {}})
    assert find_runs(run) == (run, [run])

    grid = tmp_path / "grid"
    for rel in ("b/x", "a/y"):
        RunStore(grid / rel).write_cell({"relpath": rel})
    # without a manifest: every directory holding rounds.jsonl or cell.json, sorted
    assert find_runs(grid) == (grid, [grid / "a/y", grid / "b/x"])
    # with one: the listed cells that exist, in manifest order
    (grid / "cells.json").write_text(
        json.dumps([{"relpath": "b/x"}, {"relpath": "gone"}, {"relpath": "a/y"}])
    )
    assert find_runs(grid) == (grid, [grid / "b/x", grid / "a/y"])
    (grid / "cells.json").write_text("[{")
    with pytest.raises(CorruptRunError, match=r"cells\.json"):
        find_runs(grid)
    with pytest.raises(NcalError, match="does not exist"):
        find_runs(tmp_path / "missing")
