"""The layers of ncal: no import cycles, and no import from a lower layer to a higher one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from import_graph import cycles, describe, import_edges, layer_violations

SRC = Path(__file__).resolve().parents[1] / "src" / "ncal"

#: bottom-up; a module may import from its own layer or lower ones (docs: DESIGN in README "Layout").
LAYERS = {
    "errors": 0,
    "_utils": 0,
    "signals": 1,
    "_crossfit": 1,
    "consensus": 1,
    "api": 4,
    "integrations": 7,
    "geometry": 2,
    "dynamics": 2,
    "strategies": 3,
    "ncal": 3,  # the package's own __init__: re-exports selection helpers
    "data": 4,
    "models": 5,
    "training": 6,
    "evaluation": 7,
    "experiment": 8,
    "bench": 9,
    "session": 10,
    "cli": 11,
}


def test_no_import_cycles():
    found = cycles(import_edges(SRC, "ncal"))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_import_from_a_higher_layer():
    bad = layer_violations(import_edges(SRC, "ncal"), LAYERS, "ncal")
    assert not bad, "imports from a higher layer:\n" + describe(bad)


def test_every_top_level_module_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in SRC.iterdir()}
    names = {n for n in names if not n.startswith("__") and n != "py.typed"}
    assert names <= set(LAYERS), f"no layer for: {sorted(names - set(LAYERS))}"


# ------------------------------------------------------------------ the checker itself can fail


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_finds_a_cycle_through_a_lazy_import(tmp_path):
    pkg = tmp_path / "toy"
    _write(
        pkg,
        {
            "__init__.py": "",
            "low/__init__.py": "",
            "low/a.py": "from .b import f\n",
            "low/b.py": "def f():\n    from . import a  # lazy, still an edge\n",
            "high.py": "from .low.a import f\n",
        },
    )
    edges = import_edges(pkg, "toy")
    assert edges["toy.low.a"] == {"toy.low.b"}
    assert edges["toy.low.b"] == {"toy.low.a"}
    assert cycles(edges) == [["toy.low.a", "toy.low.b"]]


def test_checker_finds_an_upward_import(tmp_path):
    pkg = tmp_path / "toy"
    _write(
        pkg,
        {
            "__init__.py": "",
            "low.py": "def g():\n    import toy.high\n",
            "high.py": "from . import low\n",
        },
    )
    edges = import_edges(pkg, "toy")
    assert cycles(edges) == [["toy.high", "toy.low"]]
    bad = layer_violations(edges, {"toy": 0, "low": 1, "high": 2}, "toy")
    assert bad == [("toy.low", "toy.high")]


def test_checker_clean_package_passes(tmp_path):
    pkg = tmp_path / "toy"
    _write(pkg, {"__init__.py": "", "low.py": "X = 1\n", "high.py": "from .low import X\n"})
    edges = import_edges(pkg, "toy")
    assert cycles(edges) == []
    assert layer_violations(edges, {"toy": 0, "low": 1, "high": 2}, "toy") == []


# ------------------------------------------------------------------ importing is cheap


@pytest.mark.parametrize(
    "code",
    [
        "import ncal",
        "import ncal.strategies as S; S.available()",
        "import ncal.strategies as S; [S.strategy_class(n) for n in S.available()]",
    ],
)
def test_import_loads_no_torch(code):
    out = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False", f"`{code}` imported torch"
