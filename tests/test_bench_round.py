"""benchmarks/bench_round.py at a tiny size on the CPU: every part is timed and they add up."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_round.py"
PARTS = (
    "build_model",
    "train_sgd",
    "train_acc",
    "ff_window",
    "extract",
    "round_setup",
    "signals",
    "select",
    "other",
)


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_round", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_round_prints_parts_that_add_up(capsys) -> None:
    bench = _load_script()
    # width 8: a ResNet-18 of width 4 crashes torch's channels-last CPU kernels (torch 2.13)
    argv = "--device cpu --pool 64 --labeled 40 --size 8 --width 8 --epochs-max 2 --window 2"
    argv += " --query 8 --min-samples 0 --threads 1 --batch-size 16"
    assert bench.main(argv.split()) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["device"] == "cpu"
    assert summary["pool"] == 64 and summary["labeled"] == 40
    assert summary["window_epochs"] == 2 and summary["epochs"] == 4
    seconds = [summary[f"{p}_s"] for p in PARTS]
    named = seconds[:-1]  # `other` is the remainder, a few calls' worth, so it may round to 0
    assert all(s > 0 for s in named), dict(zip(PARTS, seconds))
    assert summary["other_s"] >= -1e-5
    assert sum(seconds) == pytest.approx(summary["total_s"], abs=1e-4)
    # the table prints the same parts, in order, and their total
    table = {ln.split()[0]: float(ln.split()[1]) for ln in lines[2:-1]}
    assert list(table) == [*PARTS, "total"]
    assert sum(table[p] for p in PARTS) == pytest.approx(table["total"], abs=0.005 * len(PARTS))


def test_rejects_an_empty_pool() -> None:
    bench = _load_script()
    with pytest.raises(SystemExit):
        bench.main(["--pool", "0", "--device", "cpu"])
