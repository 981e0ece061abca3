"""The README's Python examples run as written (offline), so they cannot rot: the example at the top
and every ``python`` block of the section "Your own model", run in order in one namespace."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    """Every fenced ``python`` block of ``text``, in order."""
    return BLOCK.findall(text)


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section, up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
    if match is None:
        raise AssertionError(f"README.md has no section '## {title}'")
    return match.group(1)


def test_extraction_finds_blocks_in_order():
    text = "## A\n```python\nx = 1\n```\ntext\n```bash\nls\n```\n## B\n```python\ny = 2\n```\n"
    assert python_blocks(section(text, "A")) == ["x = 1\n"]
    assert python_blocks(section(text, "B")) == ["y = 2\n"]
    with pytest.raises(AssertionError, match="no section '## C'"):
        section(text, "C")


def test_top_example_runs():
    text = README.read_text(encoding="utf-8")
    first = python_blocks(text.split("\n## ", 1)[0])
    assert len(first) == 1, "the README should open with one Python example"
    namespace: dict = {}
    exec(compile(first[0], "README.md:top", "exec"), namespace)
    picked = namespace["picked"]
    assert picked.shape == (20,) and len(set(picked.tolist())) == 20
    assert np.all(namespace["labels"][picked] == -1)  # only unlabeled rows are picked
    assert namespace["ff"].max() > 0  # real flips, not random integers


@pytest.mark.filterwarnings("ignore:.*does not have many workers:UserWarning")
def test_your_own_model_section_runs():
    blocks = python_blocks(section(README.read_text(encoding="utf-8"), "Your own model"))
    assert len(blocks) >= 2, "expected the torch-loop and Lightning examples"
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)  # e.g. a degenerate-FF warning
        warnings.filterwarnings("ignore", message=".*does not have many workers")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        for i, code in enumerate(blocks):
            exec(compile(code, f"README.md:Your own model:{i}", "exec"), namespace)
    to_label = namespace["to_label"]
    assert to_label.shape == (20,)
    assert not set(to_label.tolist()) & set(namespace["labeled"].tolist())
    assert namespace["signals"].ff_counts.max() > 0
    assert namespace["ff"].tracker.recorded_epochs == list(range(32, 40))
    assert namespace["picked"].shape == (20,)
