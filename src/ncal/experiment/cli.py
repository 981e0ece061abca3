"""``ncal run``, ``ncal datasets`` and ``ncal strategies``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import NcalError
from .recipes import RECIPES, recipe


def _number(text: str) -> float | int:
    """A budget: an integer count, or a fraction of the pool in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a fraction, got {text!r}") from None
    return int(value) if value.is_integer() and value >= 1 else value


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _key_values(items: list[str] | None, flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise NcalError(f"`{flag}` expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = _parse_value(value.strip())
    return out


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``run``, ``datasets`` and ``strategies`` to the ``ncal`` parser."""
    _add_run(sub)
    ds = sub.add_parser(
        "datasets", help="list datasets, whether they are available here, and how to get them"
    )
    ds.set_defaults(func=_datasets)

    st = sub.add_parser("strategies", help="list acquisition strategies and the signals each needs")
    st.set_defaults(func=_strategies)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawTextHelpFormatter):
    """Defaults in the help, and help texts keep their line breaks (the noise models' list)."""


def _noise_help() -> str:
    from ..data import describe_noise_models

    return "oracle noise of the single annotator (without --annotator); one of:\n" + (
        describe_noise_models()
    )


def _add_run(sub: argparse._SubParsersAction) -> None:
    # Long on purpose: argparse declarations only, one per flag, so every setting of `ncal run`
    # reads in one place (no logic here).
    run = sub.add_parser(
        "run",
        help="run one active-learning experiment (resumable)",
        description="Train to the terminal phase, select, query a noisy oracle (or several "
        "annotators), repeat; one JSON line per finished round in OUT/rounds.jsonl. Rerunning the "
        "same command resumes an interrupted run.",
        formatter_class=_HelpFormatter,
    )
    run.add_argument("--dataset", default="mnist5k", help="dataset name (see `ncal datasets`)")
    run.add_argument("--noise", default="sym:0.3", help=_noise_help())
    _add_annotator_options(run)
    run.add_argument(
        "--strategy", default="ncal_r", help="acquisition strategy (see `ncal strategies`)"
    )
    run.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="strategy parameter, repeatable (e.g. direction=low)",
    )
    run.add_argument(
        "--initial",
        type=_number,
        default=200,
        help="initial labeled items, one annotation each (count or pool fraction)",
    )
    run.add_argument(
        "--query",
        type=_number,
        default=200,
        help="annotations bought per round (count or pool fraction); without --annotator one\n"
        "annotation = one new labeled item",
    )
    run.add_argument("--rounds", type=int, default=5, help="acquisition rounds")
    run.add_argument(
        "--seed",
        type=int,
        default=0,
        help="fixes initial set, init and oracle draws (paired across strategies)",
    )
    run.add_argument(
        "--pool-size", type=int, default=None, help="stratified subsample of the training split"
    )
    run.add_argument(
        "--test-size", type=int, default=None, help="stratified subsample of the test split"
    )
    run.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="default",
        help="backbone + training settings: `default` (model auto: CNN for grayscale images,\n"
        "ResNet-18 for colour, MLP for features; slow on a CPU: see the estimate printed after\n"
        "the first round)\n"
        "or `fast-mlp` (the studies' MLP on pixels: seconds per round on a CPU)",
    )
    run.add_argument(
        "--model", default=None, help="auto, cnn, resnet18 or mlp (default: the recipe's)"
    )
    run.add_argument(
        "--train",
        action="append",
        metavar="KEY=VALUE",
        help="training-recipe override, repeatable (e.g. epochs_max=40)",
    )
    run.add_argument(
        "--evals", default="", help="comma list of extra evaluations: ood,shift,probe,gcd,longtail"
    )
    run.add_argument("--ood-dataset", default=None, help="OOD test set for --evals ood")
    run.add_argument(
        "--probe-datasets", default="", help="comma list of target datasets for --evals probe"
    )
    run.add_argument(
        "--pool-ood-dataset", default=None, help="dataset whose samples contaminate the pool"
    )
    run.add_argument(
        "--pool-ood-fraction",
        type=float,
        default=0.0,
        help="share of the pool drawn from --pool-ood-dataset",
    )
    run.add_argument(
        "--pool-imbalance",
        type=float,
        default=None,
        help="long-tailed pool with ratio rho = n_max/n_min",
    )
    run.add_argument(
        "--features",
        choices=("raw", "pretrained"),
        default="raw",
        help="pretrained: frozen EfficientNet-Lite0 features (extra `pretrained`) + an MLP head",
    )
    run.add_argument("--device", default="auto", help="auto (GPU when present), cpu or cuda")
    run.add_argument("--out", required=True, help="run directory (created; resumed when it exists)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)


def _add_annotator_options(run: argparse.ArgumentParser) -> None:
    """``--annotator`` (repeatable) and the settings that only apply together with it."""
    from .config import ANNOTATOR_ASSIGNMENTS, ANNOTATOR_ERRORS, CONSENSUS_METHODS

    run.add_argument(
        "--annotator",
        action="append",
        metavar="SPEC",
        default=argparse.SUPPRESS,  # absent = no annotators; and no "(default: None)" in the help
        help="one simulated annotator with this noise spec (same forms as --noise; class-\n"
        "conditional or oracle:ε), repeatable: --annotator oracle:0.15 --annotator oracle:0.3\n"
        "--annotator oracle:0.45. The budget then counts annotations and rounds train on\n"
        "consensus labels; relabel-aware strategies (activelab, relabel) may annotate again",
    )
    run.add_argument(
        "--annotator-errors",
        choices=ANNOTATOR_ERRORS,
        default=argparse.SUPPRESS,
        help="annotators err independently or on the same (hard) items; needs --annotator "
        "(default then: independent)",
    )
    run.add_argument(
        "--annotator-assignment",
        choices=ANNOTATOR_ASSIGNMENTS,
        default=argparse.SUPPRESS,
        help="which annotator answers a request; needs --annotator (default then: round_robin)",
    )
    run.add_argument(
        "--consensus",
        choices=CONSENSUS_METHODS,
        default=argparse.SUPPRESS,
        help="consensus of an item's annotations: majority vote, Dawid-Skene, or auto\n"
        "(Dawid-Skene where identifiable); needs --annotator (default then: auto)",
    )


def _config_from_args(args: argparse.Namespace):
    from .config import ExperimentConfig

    evals = [e for e in args.evals.split(",") if e]
    base = recipe(args.recipe)
    return ExperimentConfig(
        dataset=args.dataset,
        noise=args.noise,
        strategy=args.strategy,
        strategy_params=_key_values(args.param, "--param"),
        initial=args.initial,
        query=args.query,
        rounds=args.rounds,
        seed=args.seed,
        pool_size=args.pool_size,
        test_size=args.test_size,
        model=args.model or base["model"],
        train={**base["train"], **_key_values(args.train, "--train")},
        evals=evals,
        ood_dataset=args.ood_dataset,
        probe_datasets=[d for d in args.probe_datasets.split(",") if d],
        pool_ood_dataset=args.pool_ood_dataset,
        pool_ood_fraction=args.pool_ood_fraction,
        pool_imbalance=args.pool_imbalance,
        features=args.features,
        device=args.device,
        # SUPPRESS defaults: an option not given is absent from `args`
        annotators=getattr(args, "annotator", None),
        annotator_errors=getattr(args, "annotator_errors", None),
        annotator_assignment=getattr(args, "annotator_assignment", None),
        consensus=getattr(args, "consensus", None),
    )


def _run(args: argparse.Namespace) -> int:
    from .runner import run_experiment

    config = _config_from_args(args)
    rows = run_experiment(config, args.out, quiet=args.quiet)
    several = config.annotators is not None  # then also annotations bought and relabels
    head = f"{'round':>5} {'labels':>6} {'test acc':>8} {'noise(L)':>8} {'noise(batch)':>12}"
    print(head + (f" {'annotations':>11} {'relabels':>8}" if several else ""))
    for r in rows:
        nb = r.get("noise_rate_batch")
        line = (
            f"{r['round']:>5} {r['n_labeled']:>6} {r['test_accuracy']:>8.4f} "
            f"{(r['noise_rate_labeled'] or 0):>8.3f} {'' if nb is None else f'{nb:.3f}':>12}"
        )
        if several:
            line += f" {r.get('annotations', ''):>11} {r.get('relabels', ''):>8}"
        print(line)
    print(f"results: {Path(args.out) / 'rounds.jsonl'}")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from ..data import list_datasets

    rows = list_datasets()
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        mark = "yes" if r["available"] else "no "
        print(f"{r['name']:<{width}}  available: {mark}  {r['description']}")
        if not r["available"]:
            print(f"{'':<{width}}  how to get it: {r['how_to_get']}")
    return 0


def _strategies(args: argparse.Namespace) -> int:
    from .. import strategies

    for name in strategies.available():
        cls = strategies.strategy_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        print(f"{name:<18} {doc[0] if doc else ''}")
        print(f"{'':<18} needs: {', '.join(cls.needs) or 'nothing (pool size only)'}")
    return 0
