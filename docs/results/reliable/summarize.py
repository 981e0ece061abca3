"""The NCAL-R+ study in one file: ``summary.json`` (every setting, every strategy, per seed) and
``goals.md`` (each of the study's four goals, setting by setting).

Reads the ``results_summary.json`` that ``ncal report`` writes beside each grid's report, so run
``ncal report docs/results/reliable/runs/<grid> --out docs/results/reliable/<grid>`` first; then

    python docs/results/reliable/summarize.py

Goals (the issue's wording, tested here):

1. AUBC over annotations at least the best other strategy's in every noisy setting, significantly
   higher (paired t-test over the shared seeds, p < 0.05) in at least half; in the clean setting no
   significant loss. "Other" excludes NCAL-R+'s own ablations.
2. Final consensus purity at least random's minus 5 points in every noisy setting.
3. OOD share below the contamination fraction (20% and 50% settings).
4. Random's final accuracy reached with at most 0.6x the annotations random needs for it.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

from ncal.bench.stats import paired_test

HERE = Path(__file__).resolve().parent
GRIDS = (
    "fashion_main",
    "fashion_correlated",
    "fashion_ood20",
    "fashion_ood50",
    "mnist5k_main",
    "mnist5k_ood20",
    "digits_main",
    "digits_ood20",
)
OURS = "ncal_plus"
ANNOTATORS = {
    "none+none+none": "3 clean annotators",
    "oracle:0.15+oracle:0.3+oracle:0.45": "3 difficulty annotators",
    "human:cifar10n-random1+human:cifar10n-random2+human:cifar10n-random3": (
        "3 annotators with CIFAR-10N statistics"
    ),
    "sym:0.2+sym:0.2+sym:0.2": "3 annotators, symmetric 20%",
}


def setting_name(setting: dict) -> str:
    """``dataset | annotators, errors | OOD x%`` as in the issue."""
    spec, _, errors = setting["annotators"].partition(" (")
    who = ANNOTATORS.get(spec, spec)
    parts = [setting["dataset"], f"{who}, {errors.rstrip(')') or 'independent'}"]
    if setting["ood_fraction"]:
        parts.append(f"OOD {round(100 * setting['ood_fraction'])}%")
    return " | ".join(parts)


def load_settings(grids: tuple[str, ...] = GRIDS) -> tuple[list[dict], list[str]]:
    settings, missing = [], []
    for grid in grids:
        path = HERE / grid / "results_summary.json"
        if not path.is_file():
            missing.append(grid)
            continue
        for s in json.loads(path.read_text())["settings"]:
            settings.append(
                {
                    "name": setting_name(s),
                    "grid": grid,
                    "dataset": s["dataset"],
                    "noisy": s["noisy"],
                    "ood_fraction": s["ood_fraction"],
                    "strategies": s["strategies"],
                }
            )
    return settings, missing


def paired(a: dict, b: dict) -> tuple[int, float, float]:
    """n shared seeds, mean AUBC difference a - b (points), two-sided paired t-test p."""
    sb = dict(zip(b["seeds"], b["aubc"]))
    d = [x - sb[s] for s, x in zip(a["seeds"], a["aubc"]) if s in sb]
    t = paired_test(d)
    return t.n, 100 * t.mean, t.p_t


def mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else math.nan


def goals(setting: dict) -> dict | None:
    st = setting["strategies"]
    if OURS not in st or "random" not in st:
        return None
    ours, rnd = st[OURS], st["random"]
    others = {k: v for k, v in st.items() if not k.startswith(OURS) and v["aubc"]}
    best = max(others, key=lambda k: mean(others[k]["aubc"]))
    n, diff, p = paired(ours, others[best])
    purity_gap = None
    if ours["final_purity"] is not None and rnd["final_purity"] is not None:
        purity_gap = 100 * (ours["final_purity"] - rnd["final_purity"])
    need, rnd_need = ours["annotations_to_random_final"], rnd["annotations_to_random_final"]
    return {
        "seeds": n,
        "best_other": best,
        "aubc_minus_best": round(diff, 3),
        "p": round(p, 4) if not math.isnan(p) else None,
        "aubc_at_least_best": diff >= 0,
        "significantly_higher": diff > 0 and p < 0.05,
        "significant_loss": diff < 0 and p < 0.05,
        "purity_minus_random": None if purity_gap is None else round(purity_gap, 2),
        "purity_ok": purity_gap is not None and purity_gap >= -5.0,
        "ood_share": ours["ood_share"],
        "ood_ok": (ours["ood_share"] or 0.0) < setting["ood_fraction"]
        if setting["ood_fraction"]
        else None,
        "annotations_ratio": None if need is None or not rnd_need else round(need / rnd_need, 3),
        "annotations_ok": need is not None and bool(rnd_need) and need <= 0.6 * rnd_need,
    }


def cell(name: str) -> str:
    """A setting name as one Markdown table cell (its ``|`` separators escaped)."""
    return name.replace("|", "\\|")


def fmt(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def goals_table(settings: list[dict]) -> str:
    head = (
        "| setting | seeds | best other | Δ AUBC vs best (p) | purity − random | OOD share "
        "| annotations / random's |\n|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for s in settings:
        g = s.get("goals")
        if g is None:
            continue
        ood = "—" if g["ood_ok"] is None else f"{100 * g['ood_share']:.1f}%"
        rows.append(
            f"| {cell(s['name'])} | {g['seeds']} | {g['best_other']} | {g['aubc_minus_best']:+.2f} "
            f"({fmt(g['p'], '.3f')}) | {fmt(g['purity_minus_random'], '+.1f')} | {ood} "
            f"| {fmt(g['annotations_ratio'], '.2f')} |"
        )
    return head + "\n".join(rows) + "\n"


def pct(x: float | None, spec: str = ".1f") -> str:
    return "—" if x is None else format(100 * x, spec)


def setting_table(setting: dict) -> str:
    """Every strategy of one setting, best mean AUBC first, with its paired Δ against random."""
    st = setting["strategies"]
    rows = []
    for name, v in sorted(st.items(), key=lambda kv: -mean(kv[1]["aubc"])):
        a = [100 * x for x in v["aubc"]]
        sd = statistics.stdev(a) if len(a) > 1 else 0.0
        delta = "—"
        if name != "random" and "random" in st:
            _, diff, p = paired(v, st["random"])
            delta = f"{diff:+.2f} ({fmt(None if math.isnan(p) else p, '.3f')})"
        reach = v["annotations_to_random_final"]
        rows.append(
            f"| {name} | {len(a)} | {mean(a):.2f} ± {sd:.2f} | {delta} | {pct(v['final_purity'])} "
            f"| {pct(v['wrong_rate'])} | {pct(v['ood_share'])} | {fmt(reach, '.0f')} |"
        )
    head = (
        f"### {setting['name']}\n\n"
        "| strategy | seeds | AUBC % | Δ vs random (p) | purity % | wrong % | OOD % "
        "| annotations to random's final |\n|---|---|---|---|---|---|---|---|\n"
    )
    return head + "\n".join(rows) + "\n"


# Earlier versions of NCAL-R+ whose summaries are kept beside this file (``v1/``, ``v2/``, ``v3/``).
CURRENT_VERSION = 4
EARLIER = (1, 2, 3)


def versions_table(settings: list[dict]) -> str:
    """The current NCAL-R+ against each kept earlier version and against NCAL-R, paired over the
    seeds."""
    earlier = {}
    for v in EARLIER:
        path = HERE / f"v{v}" / "summary.json"
        if path.is_file():
            data = json.loads(path.read_text())["settings"]
            earlier[v] = {x["name"]: x["strategies"].get(OURS) for x in data}
    if not earlier:
        return ""
    now = f"v{CURRENT_VERSION}"
    rows = []
    for s in settings:
        new = s["strategies"].get(OURS)
        olds = {v: by_name.get(s["name"]) for v, by_name in earlier.items()}
        if not new or not all(olds.values()):
            continue
        cells = [f"{100 * mean(o['aubc']):.2f}" for o in olds.values()]
        cells.append(f"{100 * mean(new['aubc']):.2f}")
        for o in olds.values():
            _, d, p = paired(new, o)
            cells.append(f"{d:+.2f} ({p:.3f})")
        r = s["strategies"].get("ncal_r")
        d_r, p_r = paired(new, r)[1:] if r else (math.nan, math.nan)
        cells.append(f"{d_r:+.2f} ({p_r:.3f})")
        runs = [*olds.values(), new]
        cells.append(" → ".join(pct(o["final_purity"]) for o in runs))
        cells.append(" → ".join(pct(o["ood_share"]) for o in runs))
        rows.append(f"| {cell(s['name'])} | " + " | ".join(cells) + " |")
    vs = list(earlier)
    head = (
        [f"v{v} AUBC" for v in vs]
        + [f"{now} AUBC"]
        + [f"Δ {now} − v{v} (p)" for v in vs]
        + [f"Δ {now} − ncal_r (p)", "purity %", "OOD %"]
    )
    chain = " → ".join(f"v{v}" for v in [*vs, CURRENT_VERSION])
    return (
        f"\n## Version {CURRENT_VERSION} against earlier versions and NCAL-R\n\n"
        f"AUBC % (mean over seeds) of NCAL-R+ "
        + ", ".join(f"version {v} (`v{v}/summary.json`)" for v in vs)
        + f" and version {CURRENT_VERSION}; Δ paired over the seeds (t-test p); purity and OOD "
        f"share, {chain}.\n\n"
        "| setting | " + " | ".join(head) + " |\n"
        "|" + "---|" * (len(head) + 1) + "\n" + "\n".join(rows) + "\n"
    )


def verdict(settings: list[dict]) -> str:
    noisy = [s["goals"] for s in settings if s.get("goals") and s["noisy"]]
    clean = [s["goals"] for s in settings if s.get("goals") and not s["noisy"]]
    ood = [g for g in noisy if g["ood_ok"] is not None]
    lines = [
        f"- AUBC at least the best other's: {sum(g['aubc_at_least_best'] for g in noisy)} of "
        f"{len(noisy)} noisy settings (goal: all); significantly higher in "
        f"{sum(g['significantly_higher'] for g in noisy)} (goal: at least {math.ceil(len(noisy) / 2)}); "
        f"significant loss in the clean settings: {sum(g['significant_loss'] for g in clean)} of "
        f"{len(clean)} (goal: 0).",
        f"- Purity at least random's − 5 points: {sum(g['purity_ok'] for g in noisy)} of "
        f"{len(noisy)} noisy settings (goal: all).",
        f"- OOD share below the contamination: {sum(g['ood_ok'] for g in ood)} of {len(ood)} "
        "OOD settings (goal: all).",
        f"- Random's final accuracy with ≤ 0.6× its annotations: "
        f"{sum(g['annotations_ok'] for g in noisy + clean)} of {len(noisy + clean)} settings "
        "(goal: all).",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    settings, missing = load_settings()
    for s in settings:
        s["goals"] = goals(s)
    (HERE / "summary.json").write_text(
        json.dumps({"settings": settings, "grids_missing": missing}, indent=1) + "\n"
    )
    text = (
        "# NCAL-R+ study: the goals, setting by setting\n\n"
        "Written by `python docs/results/reliable/summarize.py` from each grid's "
        "`results_summary.json`. Δ AUBC in points over the annotation axis, paired over the seeds "
        "both strategies share (t-test); purity is final consensus purity of the in-distribution "
        "training items; annotations / random's is the annotations NCAL-R+ needs to reach random's "
        "final mean accuracy over those random needs (— when it never does).\n\n"
        + goals_table(settings)
        + "\n"
        + verdict(settings)
        + (f"\nGrids without a report yet: {', '.join(missing)}.\n" if missing else "")
        + versions_table(settings)
        + "\n## Every setting\n\n"
        "AUBC in % (mean ± sd over seeds) over the annotation axis; Δ: paired difference against "
        "random over the shared seeds (t-test p); purity: final consensus purity of the "
        "in-distribution training items; wrong: share of bought annotations that were wrong "
        "in-distribution answers; OOD: share spent on OOD items; the last column is the "
        "annotations the seed-mean curve needs to reach random's final mean accuracy.\n\n"
        + "\n".join(setting_table(s) for s in settings)
    )
    (HERE / "goals.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
