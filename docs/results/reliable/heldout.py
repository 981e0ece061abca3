"""The study's held-out check: NCAL-R+ version 4 on seeds 10-19, which no version was designed on.

Versions 2-4 of NCAL-R+ were changed after reading the study's results on seeds 0-9, so their
numbers there are not confirmations. The five ``heldout_*`` grids (``configs/reliable/``) rerun
five settings on seeds 10-19 with the same strategies (no ablations), recipe and budgets:
difficulty-dependent annotators on Fashion-MNIST and MNIST-5k, and the same with 20% OOD items on
Fashion-MNIST, MNIST-5k (where version 4 lost most) and digits. After ``ncal report`` of each
grid::

    python docs/results/reliable/heldout.py     # writes heldout.md and heldout.json

Each setting gets the goals table of ``summarize.py`` and, beside it, the study's own figures on
seeds 0-9 for the same setting, so the two seed sets can be read side by side.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize import OURS, cell, fmt, goals, goals_table, load_settings, paired, setting_table

HERE = Path(__file__).resolve().parent
HELDOUT = (
    "heldout_fashion_difficulty",
    "heldout_fashion_ood20",
    "heldout_mnist5k_difficulty",
    "heldout_mnist5k_ood20",
    "heldout_digits_ood20",
)


CONTRASTS = ("random", "ncal_r", "eaoa")


def contrasts_table(rows: list[dict]) -> str:
    """NCAL-R+ against random, its base NCAL-R and EAOA, paired over the seeds of each row."""
    head = "| setting | seeds | " + " | ".join(f"Δ vs {c} (p)" for c in CONTRASTS)
    lines = [head + " |", "|---|---|" + "---|" * len(CONTRASTS)]
    for r in rows:
        st = r["strategies"]
        cells = []
        for c in CONTRASTS:
            if OURS in st and c in st:
                _, diff, p = paired(st[OURS], st[c])
                cells.append(f"{diff:+.2f} ({fmt(p, '.3f')})")
            else:
                cells.append("—")
        lines.append(f"| {cell(r['name'])} | {r['seeds_label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    held, missing = load_settings(HELDOUT)
    study = {s["name"]: s for s in json.loads((HERE / "summary.json").read_text())["settings"]}
    lines = [
        "# Held-out seeds: NCAL-R+ version 4 on seeds 10-19",
        "",
        "Written by `python docs/results/reliable/heldout.py` (its docstring says what ran). The",
        "columns are those of [`goals.md`](goals.md); the second row of each setting repeats the",
        "study's figures on seeds 0-9, the seeds versions 2-4 were designed on.",
        "",
    ]
    rows = []
    for s in held:
        s["goals"] = goals(s)
        rows.append({**s, "seeds_label": "10-19"})
        if s["name"] in study:
            rows.append({**study[s["name"]], "seeds_label": "0-9, the study"})
    table = goals_table([{**r, "name": f"{r['name']} (seeds {r['seeds_label']})"} for r in rows])
    lines += [
        table,
        "NCAL-R+ against random, NCAL-R and EAOA (AUBC points, paired t-test p):",
        "",
        contrasts_table(rows),
        "## Every strategy, seeds 10-19",
        "",
    ]
    lines += [setting_table(s) for s in held]
    if missing:
        lines += [f"Grids without a report yet: {', '.join(missing)}.", ""]
    (HERE / "heldout.md").write_text("\n".join(lines))
    (HERE / "heldout.json").write_text(
        json.dumps({"settings": held, "grids_missing": missing}, indent=1) + "\n"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
