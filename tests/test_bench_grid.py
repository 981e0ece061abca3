"""Grid files: expansion, stable readable cell directories, validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ncal.bench.grid import StrategyEntry, config_hash, expand_grid, load_grid, slugify
from ncal.errors import NcalError

ROOT = Path(__file__).resolve().parents[1]

BASE = {
    "datasets": ["digits"],
    "noise": ["none", "sym:0.3"],
    "strategies": ["random", {"name": "ncal_r", "params": {"direction": "low"}, "label": "low"}],
    "seeds": 2,
    "budget": {"initial": 40, "query": 30, "rounds": 2},
    "train": {"epochs_max": 5},
    "pool_size": 300,
}


def test_expansion_count_order_and_config() -> None:
    cells = expand_grid(BASE)
    assert len(cells) == 2 * 2 * 2  # seeds x noise x strategies
    # seed-major order: every strategy of seed 0 before seed 1 (paired results fill in early)
    assert [c.config["seed"] for c in cells] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [c.config["noise"] for c in cells[:4]] == ["none", "none", "sym:0.3", "sym:0.3"]
    assert [c.strategy for c in cells[:2]] == ["random", "low"]
    c = cells[1].config
    assert c == {
        "dataset": "digits",
        "noise": "none",
        "strategy": "ncal_r",
        "strategy_params": {"direction": "low"},
        "initial": 40,
        "query": 30,
        "rounds": 2,
        "seed": 0,
        "model": "auto",
        "train": {"epochs_max": 5},
        "evals": [],
        "pool_size": 300,
    }
    assert len({c.relpath for c in cells}) == len(cells)


def test_slugs_are_readable_and_hashes_stable() -> None:
    cells = expand_grid(BASE)
    # golden values: a change here silently orphans every finished cell of existing grids
    assert cells[0].relpath == "dataset=digits/noise=none/strategy=random/seed=0_5f3dca68"
    assert (
        cells[3].relpath
        == "dataset=digits/noise=sym-0.3/strategy=ncal_r-low/seed=0_" + cells[3].hash
    )
    # = first 8 hex digits of `printf '{"a":[1,2],"b":1}' | sha1sum`
    assert config_hash({"b": 1, "a": [1, 2]}) == config_hash({"a": [1, 2], "b": 1}) == "edab56f3"
    assert [c.hash for c in expand_grid(BASE)] == [c.hash for c in cells]  # deterministic
    changed = expand_grid({**BASE, "train": {"epochs_max": 6}})
    assert all(a.hash != b.hash for a, b in zip(cells, changed))  # any setting change → new cells
    assert cells[0].budget == "40+30x2"


def test_extra_axes_add_directory_levels() -> None:
    cells = expand_grid(
        {
            **BASE,
            "model": ["cnn", "mlp"],
            "budget": [
                {"initial": 40, "query": 30, "rounds": 2},
                {"initial": 0.1, "query": 0.05, "rounds": 3},
            ],
        }
    )
    assert len(cells) == 2 * 2 * 2 * 2 * 2
    assert cells[0].relpath.startswith(
        "dataset=digits/noise=none/model=cnn/budget=40+30x2/strategy=random/"
    )
    assert cells[2].relpath.startswith("dataset=digits/noise=none/model=cnn/budget=0.1+0.05x3/")
    assert cells[2].config["initial"] == 0.1 and cells[2].config["rounds"] == 3


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("sym:0.3", "sym-0.3"),
        ("human:cifar10n-worst", "human-cifar10n-worst"),
        ("cifar10:/data/sets/cifar-10", "cifar10-cifar-10"),
        ("npz:/tmp/x/my data.npz", "npz-my-data.npz"),
        ("ncal_r(direction=abs)", "ncal_r-direction=abs"),
        ("::", "x"),
    ],
)
def test_slugify(text, slug) -> None:
    assert slugify(text) == slug


def test_strategy_labels_and_directories() -> None:
    assert (
        StrategyEntry("entropy").key == "entropy" and StrategyEntry("entropy").dirname == "entropy"
    )
    e = StrategyEntry("ncal_r", {"direction": "abs", "centering": "frozen"})
    assert e.key == "ncal_r(centering=frozen,direction=abs)"
    assert StrategyEntry("ncal_r", {}, "high").dirname == "ncal_r-high"
    assert StrategyEntry("ncal_r", {}, "ncal_r").dirname == "ncal_r"
    assert StrategyEntry("ncal_r", {}, "ncal_r abs").dirname == "ncal_r-abs"


def test_yaml_file_and_example_config(tmp_path) -> None:
    path = tmp_path / "mygrid.yaml"
    path.write_text("datasets: [digits]\nstrategies: [random, entropy]\nseeds: [3, 7]\n")
    g = load_grid(path)
    assert g.out == Path("runs/mygrid") and g.name == "mygrid"
    assert (
        g.seeds == [3, 7]
        and g.noise == ["none"]
        and g.budgets == [{"initial": 200, "query": 200, "rounds": 5}]
    )
    assert load_grid(path, out=tmp_path / "o").out == tmp_path / "o"
    tiny = load_grid(ROOT / "configs" / "examples" / "tiny.yaml")
    assert len(tiny.cells()) == 12 and tiny.out == Path("runs/tiny")


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"dataset": ["digits"]}, "unknown grid key"),
        ({"datasets": None}, "`datasets` is required"),
        ({"datasets": []}, "must not be empty"),
        ({"noise": ["none", "none"]}, "twice"),
        ({"strategies": []}, "`strategies` is required"),
        ({"strategies": ["random", "random"]}, "unique"),
        ({"strategies": [{"name": "random", "parms": {}}]}, "name \\(required\\), params, label"),
        ({"strategies": ["no_such_strategy"]}, "unknown strategy"),
        ({"seeds": 0}, "seeds"),
        ({"seeds": [1, 1]}, "twice"),
        ({"seeds": [-1]}, "seeds"),
        ({"budget": {"initial": -5}}, "initial"),
        ({"budget": {"rounds": 1.5}}, "rounds"),
        ({"budget": {"initial": 2.5}}, "fraction"),
        ({"budget": {"queries": 3}}, "unknown key"),
        ({"train": {"epochs": 3}}, "TrainConfig"),
        ({"train": [1]}, "mapping"),
        ({"experiment": {"seed": 3}}, "must not set"),
        ({"experiment": {"test_sise": 3}}, "ExperimentConfig"),
        ({"evals": "ood"}, "list"),
        ({"pool_size": "big"}, "pool_size"),
    ],
)
def test_bad_grids_name_the_problem(override, match) -> None:
    with pytest.raises(NcalError, match=match):
        load_grid({**BASE, **override})


def test_missing_or_malformed_file(tmp_path) -> None:
    with pytest.raises(NcalError, match="does not exist"):
        load_grid(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [digits\n")
    with pytest.raises(NcalError, match="not valid YAML"):
        load_grid(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(NcalError, match="mapping"):
        load_grid(bad)
