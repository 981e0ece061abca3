"""``ncal demo``: the embedded grid and the command (a stand-in runner, no training)."""

from __future__ import annotations

from ncal.bench import executors
from ncal.bench.demo import DEMO_GRID, run_demo
from ncal.bench.grid import load_grid
from ncal.cli import build_parser, main
from test_bench_executors import fake_runner

# Cell directories of the demo; a change of DEMO_GRID changes the hashes, and an existing
# runs/demo would then be run again from scratch instead of resumed.
DEMO_CELLS = [
    "dataset=mnist5k/noise=sym-0.3/strategy=random/seed=0_89493aff",
    "dataset=mnist5k/noise=sym-0.3/strategy=entropy/seed=0_f799304e",
    "dataset=mnist5k/noise=sym-0.3/strategy=ncal_r/seed=0_3c0e4453",
    "dataset=mnist5k/noise=sym-0.3/strategy=random/seed=1_3c3f3132",
    "dataset=mnist5k/noise=sym-0.3/strategy=entropy/seed=1_410ed0aa",
    "dataset=mnist5k/noise=sym-0.3/strategy=ncal_r/seed=1_96371fb5",
    "dataset=mnist5k/noise=sym-0.3/strategy=random/seed=2_cd4dd2c3",
    "dataset=mnist5k/noise=sym-0.3/strategy=entropy/seed=2_67f4203e",
    "dataset=mnist5k/noise=sym-0.3/strategy=ncal_r/seed=2_89f78b58",
]


def test_demo_grid_expands_to_the_known_cells(tmp_path) -> None:
    cells = load_grid(dict(DEMO_GRID, out=str(tmp_path))).cells()
    assert [c.relpath for c in cells] == DEMO_CELLS
    assert {c.config["train"]["epochs_max"] for c in cells} == {150}
    assert {(c.config["initial"], c.config["query"], c.config["rounds"]) for c in cells} == {
        (100, 100, 5)
    }


def test_demo_command_is_registered_once_with_its_options() -> None:
    args = build_parser().parse_args(["demo", "--out", "x", "--workers", "2", "--quiet"])
    assert args.func is run_demo
    assert (args.out, args.workers, args.quiet) == ("x", 2, True)
    assert build_parser().parse_args(["demo"]).out == "runs/demo"


def test_demo_runs_the_grid_and_writes_the_report(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(executors, "default_cell_runner", fake_runner)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--workers", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "(9 runs)" in printed and f"report: {out / 'report.md'}" in printed
    md = (out / "report.md").read_text()
    assert "ncal benchmark report — demo" in md
    assert "| mnist5k | sym:0.3 | ncal_r | 3 |" in md  # AUBC row: three seeds
    # a second call resumes: every cell is finished, nothing runs
    assert main(["demo", "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert "(0 runs)" in capsys.readouterr().out
