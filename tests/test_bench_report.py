"""Reports of grid and run directories: files, tables, figures, CLI wiring (no training)."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
import yaml

from ncal.bench import aubc_per_seed, aubc_table, load_results, run_grid, write_report
from ncal.bench.report import fmt_p, fmt_pm
from ncal.cli import main
from test_bench_executors import fake_runner, grid_dict


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "g"
    run_grid(grid_dict(out), workers=1, quiet=True, cell_runner=fake_runner)
    return out


def test_load_results_flattens_metrics_and_drops_payloads(grid_dir) -> None:
    df = load_results(grid_dir)
    assert len(df) == 12 * 4
    assert {"nc.nc1", "nc.etf_M", "eval.ood.msp.auroc", "test_accuracy", "noise_rate_batch"} <= set(
        df.columns
    )
    assert not {"selected", "class_histogram"} & set(df.columns)
    assert set(df["budget"]) == {"30+20x3"} and set(df["status"]) == {"complete"}
    # the strategy column is the display label, the registry name is kept apart
    assert set(df.loc[df["strategy"] == "margin-lbl", "strategy_name"]) == {"margin"}


def test_grid_report_has_every_section_table_and_figure(grid_dir, tmp_path) -> None:
    paths = write_report(grid_dir, tmp_path / "rep")
    md = paths["markdown"].read_text()
    for heading in (
        "## Setup",
        "## How to read this",
        "## Learning curves",
        "## Area under the budget curve",
        "## Paired differences vs random",
        "## Pairwise-penalty matrix",
        "## Labels to reach 90%",
        "## Query purity",
        "## Training diagnostics",
        "## Neural-collapse metrics per round",
        "## Evaluation metrics per round",
        "### Machine and time",
    ):
        assert heading in md, heading
    names = {p.name for p in paths["figures"]}
    assert {
        "learning_curves.png",
        "aubc.png",
        "penalty_matrix.png",
        "query_purity.png",
        "nc_0.png",
        "eval_ood_0.png",
    } <= names
    for p in paths["figures"]:
        w, h = png_size(p)
        assert 300 < w < 4000 and 200 < h < 4000
        assert f"]({p.relative_to(tmp_path / 'rep').as_posix()})" in md  # linked, relative

    # AUBC table rows carry the values of the stats module
    df = load_results(grid_dir)
    table = aubc_table(aubc_per_seed(df)).set_index(["noise", "strategy"])
    r = table.loc[("sym:0.3", "entropy")]
    assert f"| digits | sym:0.3 | entropy | 2 | {fmt_pm(r['mean'] * 100, r['std'] * 100)} |" in md
    assert "| winner \\ loser | random | entropy | margin-lbl |" in md
    assert re.search(r"\| digits \| sym:0\.3 \| entropy \| 2 \| -?\d+\.\d\d ± \d+\.\d\d \| ", md)
    assert "cells: 12 (12 complete, 0 unfinished), 48 finished rounds" in md

    page = paths["html"].read_text()
    assert page.count('src="data:image/png;base64,') == len(paths["figures"])
    assert "figures/" not in re.sub(r"<figcaption>.*?</figcaption>", "", page)  # self-contained
    assert "<table>" in page and "<b>AUBC</b>" in page


def test_report_defaults_into_the_grid_dir_and_lists_unfinished_cells(tmp_path) -> None:
    out = tmp_path / "g"
    grid = grid_dict(
        out,
        noise=["sym:0.3"],
        seeds=1,
        strategies=["random", {"name": "entropy", "params": {"fail": 2}}],
    )
    run_grid(grid, workers=1, quiet=True, cell_runner=fake_runner)
    paths = write_report(out)
    assert paths["markdown"] == out / "report.md" and (out / "report.html").exists()
    md = paths["markdown"].read_text()
    assert "## Unfinished cells" in md and "| 2/4 |" in md
    assert "left out of AUBC" in md


def test_single_run_directory_report(grid_dir, tmp_path) -> None:
    cell = json.loads((grid_dir / "cells.json").read_text())[0]["relpath"]
    paths = write_report(grid_dir / cell, tmp_path / "one")
    md = paths["markdown"].read_text()
    assert "## Learning curves" in md and "## Pairwise-penalty matrix" not in md
    assert "No paired comparison" in md  # one strategy only
    assert "| digits | none | random | 1 |" in md  # one seed: mean without ± std


def test_empty_grid_report(tmp_path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "cells.json").write_text("[]")
    md = write_report(tmp_path / "g")["markdown"].read_text()
    assert "No finished rounds yet" in md


def test_formatting_helpers() -> None:
    assert fmt_pm(74.6123, 2.571) == "74.61 ± 2.57"
    assert fmt_pm(74.6123, float("nan")) == "74.61"
    assert fmt_p(0.0004) == "<0.001" and fmt_p(0.01234) == "0.012" and fmt_p(np.nan) == "—"


def test_cli_report_and_bench_on_a_finished_grid(grid_dir, tmp_path, capsys) -> None:
    assert main(["report", str(grid_dir), "--out", str(tmp_path / "r"), "--reach", "0.8"]) == 0
    assert "Labels to reach 80%" in (tmp_path / "r" / "report.md").read_text()
    # `ncal bench` on a grid whose cells are all finished: nothing runs
    cfg = tmp_path / "grid.yaml"
    cfg.write_text(yaml.safe_dump(grid_dict(grid_dir)))
    before = (grid_dir / "bench_runs.jsonl").read_text().count("\n")
    assert main(["bench", str(cfg), "--quiet", "--no-report", "--workers", "1"]) == 0
    record = json.loads((grid_dir / "bench_runs.jsonl").read_text().splitlines()[before])
    assert record["skipped"] == 12 and record["ran"] == 0 and record["workers"] == 1
    assert not (grid_dir / "report.md").exists()
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "error:" in capsys.readouterr().err
