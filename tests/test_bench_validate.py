"""Whole-grid validation before any cell runs; name checks for `ncal run`; failure reasons."""

from __future__ import annotations

import pytest
import yaml

from ncal.bench.cli import _explain_unfinished, last_line
from ncal.bench.executors import CellOutcome, GridResult
from ncal.bench.grid import load_grid
from ncal.bench.validate import check_grid
from ncal.errors import NcalError
from ncal.strategies.params import check_strategy_params
from ncal.training.validate import check_train_config, check_train_keys

GOOD = {
    "datasets": ["digits"],
    "noise": ["none", "sym:0.3"],
    "strategies": ["random", {"name": "ncal_r", "params": {"direction": "low"}}],
    "seeds": 2,
    "budget": {"initial": 30, "query": 20, "rounds": 2},
    "train": {"epochs_max": 3},
}


def test_every_mistake_is_listed_at_once_with_file_and_key(tmp_path) -> None:
    bad = {
        **GOOD,
        "datasets": ["digits", "npz:/no/such/file.npz", "mnist7"],
        "noise": ["none", "sym:1.7"],
        "strategies": [
            "random",
            "entropy",
            {"name": "ncal_r", "params": {"directon": "low"}},
            {"name": "ncal_r", "params": {"direction": "sideways"}, "label": "bad"},
            "nosuch",
        ],
        "train": {"epochs": 3, "lr": -1.0},
        "annotators": [["oracle:0.1", "sym:2"]],
        "annotator_errors": ["sometimes"],
        "pool_size": 100,
        "budget": {"initial": 50, "query": 60, "rounds": 3},
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(NcalError) as info:
        check_grid(path)
    lines = [line.strip("- ").strip() for line in str(info.value).splitlines()[1:]]
    expected = {
        "grid.yaml: datasets[1]": "does not exist",
        "grid.yaml: datasets[2]": "unknown dataset 'mnist7'",
        "grid.yaml: noise[1]": "bad noise spec 'sym:1.7'",
        "grid.yaml: strategies[2].params.directon": (
            "unknown parameter of `ncal_r` (did you mean `direction`?); valid: direction,"
        ),
        "grid.yaml: strategies[3].params": "`direction` must be one of",
        "grid.yaml: strategies[4]": "unknown strategy 'nosuch'",
        "grid.yaml: train.epochs": "did you mean `epochs_max`?",
        "grid.yaml: train": "lr",
        "grid.yaml: annotators[0][1]": "bad noise spec 'sym:2'",
        "grid.yaml: annotator_errors[0]": "got 'sometimes'",
        "grid.yaml: budget[0]": "the pool holds only 100",
    }
    assert str(info.value).startswith(f"grid.yaml: {len(expected)} problem(s)")
    assert len(lines) == len(expected)
    for prefix, text in expected.items():
        assert any(line.startswith(prefix + ":") and text in line for line in lines), prefix


def test_structural_problems_are_collected_too() -> None:
    with pytest.raises(NcalError) as info:
        load_grid({**GOOD, "dataset": ["digits"], "seeds": 0, "strategies": ["random", 3]})
    msg = str(info.value)
    assert msg.startswith("grid: 3 problem(s)")
    assert "grid: dataset: unknown grid key (did you mean `datasets`?)" in msg
    assert "grid: seeds: " in msg and "grid: strategies[1]: " in msg


def test_a_valid_grid_passes_and_annotator_axes_name_the_cells() -> None:
    grid = check_grid(
        {
            **GOOD,
            "annotators": [["oracle:0.1", "oracle:0.3", "oracle:0.45"], ["sym:0.2", "sym:0.4"]],
            "annotator_errors": ["independent", "correlated"],
        }
    )
    cells = grid.cells()
    assert len(cells) == 2 * 2 * 2 * 2 * 2
    first = cells[0]
    assert first.config["annotators"] == ["oracle:0.1", "oracle:0.3", "oracle:0.45"]
    assert first.config["annotator_errors"] == "independent"
    assert "/annotators=oracle-0.1+oracle-0.3+oracle-0.45/errors=independent/" in first.relpath
    assert len({c.hash for c in cells}) == len(cells)
    # without the axes the cell configs (and so the hashes of older grids) are unchanged
    plain = check_grid(GOOD).cells()[0]
    assert "annotators" not in plain.config and "annotators=" not in plain.relpath
    with pytest.raises(NcalError, match="annotator_errors: applies to several annotators"):
        check_grid({**GOOD, "annotator_errors": ["correlated"]})
    with pytest.raises(NcalError, match="a list of annotator LISTS"):
        check_grid({**GOOD, "annotators": ["oracle:0.1", "oracle:0.2"]})


def test_name_checks_for_ncal_run_list_the_valid_names() -> None:
    with pytest.raises(NcalError, match=r"`directon`: unknown parameter of `ncal_r` .*valid: "):
        check_strategy_params("ncal_r", {"directon": "low"})
    with pytest.raises(NcalError, match=r"takes no parameters|valid: "):
        check_strategy_params("random", {"k": 1})
    assert check_strategy_params("ncal_r", {"direction": "low"}).params()["direction"] == "low"
    with pytest.raises(NcalError, match=r"`epoch`: unknown TrainConfig field .*epochs_max"):
        check_train_keys({"epoch": 3})
    check_train_keys({"epochs_max": 3})
    assert check_train_config({"epochs_max": 3}).epochs_max == 3
    with pytest.raises(NcalError, match="epochs_max"):
        check_train_config({"epochs_max": 0})


def test_failed_cells_show_their_reason_even_when_quiet(tmp_path, capsys) -> None:
    result = GridResult(
        tmp_path,
        [
            CellOutcome("a/seed=0", "random", "complete"),
            CellOutcome(
                "b/seed=1", "ncal_r", "failed", error="Traceback...\nValueError: pool too small"
            ),
            CellOutcome("c/seed=2", "ncal_r", "incomplete"),
        ],
    )
    assert _explain_unfinished(result, quiet=True) == 1
    err = capsys.readouterr().err
    assert "failed: b/seed=1: ValueError: pool too small" in err
    assert "1 cell(s) failed" in err and "cell.json" in err
    assert "1 cell(s) stopped before their last round" in err
    assert _explain_unfinished(GridResult(tmp_path, result.outcomes[:1]), quiet=True) == 0
    assert last_line(None) == "unknown error" and last_line("a\nb\n\n") == "b"


def test_bench_check_validates_and_runs_nothing(tmp_path, capsys) -> None:
    from ncal.cli import main

    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "out": str(tmp_path / "out")}))
    assert main(["bench", str(path), "--check"]) == 0
    assert "valid; 8 cell(s)" in capsys.readouterr().out  # 2 noise x 2 strategies x 2 seeds
    assert not (tmp_path / "out").exists()
    path.write_text(yaml.safe_dump({**GOOD, "strategies": ["nosuch"]}))
    assert main(["bench", str(path), "--check"]) != 0
    assert "strategies[0]: unknown strategy 'nosuch'" in capsys.readouterr().err
