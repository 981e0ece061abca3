"""Benchmark: the wall-clock parts of one active-learning round in the paper's setting.

One round = train a fresh ResNet-18 (CIFAR stem) on the labeled set into the terminal phase, run the
FF window (held learning rate, the pool predicted after each window epoch), extract the final
logits/features, build the signals and select a batch with NCAL-R (docs/algorithms.md §1.10). The
inputs are synthetic 32x32 colour images whose classes differ in a per-class colour pattern, so
the model can fit them (the timing, not the accuracy, is the point).

Usage::

    python benchmarks/bench_round.py --device cuda                 # paper size: 50k pool
    python benchmarks/bench_round.py --pool 2000 --labeled 500 --width 16   # a quick CPU look

Prints one line per part (seconds and share of the round), then ONE JSON line with the same
figures. The parts add up to ``total``: ``round_setup`` is what ``train_round`` spent outside its
timed steps (validation, moving the model, normalisation statistics), ``other`` the rest (calls
between the parts).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def make_images(n: int, classes: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 (size, size, 3) images: a per-class colour pattern plus pixel noise."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(40, 216, (classes, size, size, 3)).astype(np.int16)
    y = rng.integers(0, classes, n)
    noise = rng.integers(-40, 41, (n, size, size, 3), dtype=np.int16)
    x = np.clip(patterns[y] + noise, 0, 255).astype(np.uint8)
    return x, y.astype(np.int64)


def run_round(args: argparse.Namespace) -> dict:
    """Run one round; returns the seconds of each part and the round's shape."""
    import torch

    from ncal.models import build_model
    from ncal.strategies import get as get_strategy
    from ncal.training import TrainConfig, train_round

    x, y = make_images(args.labeled + args.pool, args.classes, args.size, args.seed)
    x_l, y_l, x_pool = x[: args.labeled], y[: args.labeled], x[args.labeled :]
    config = TrainConfig(
        epochs_max=args.epochs_max,
        ff_window=args.window,
        lr=args.lr,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        min_samples_per_epoch=args.min_samples,
        device=args.device,
        num_threads=args.threads,
    )
    strategy = get_strategy("ncal_r")  # imports the strategy's modules outside the timed round
    # torch's first use_deterministic_algorithms call imports torch._dynamo (seconds, once per
    # process): pay it here so that the round's figures do not carry it
    torch.use_deterministic_algorithms(torch.are_deterministic_algorithms_enabled())
    t_start = time.perf_counter()
    model = build_model(
        "resnet18",
        input_shape=(args.size, args.size, 3),
        num_classes=args.classes,
        seed=args.seed,
        width=args.width,
    )
    t_built = time.perf_counter()
    out = train_round(model, x_l, y_l, x_pool, config=config, seed=args.seed)
    t_trained = time.perf_counter()
    signals = out.signals(y_l, args.classes)
    t_signals = time.perf_counter()
    sel = strategy.select(signals, args.query, np.random.default_rng(args.seed))
    t_end = time.perf_counter()
    if len(sel.indices) != min(args.query, args.pool):
        raise RuntimeError(f"selection returned {len(sel.indices)} indices, not {args.query}")

    info = out.info
    parts = {
        "build_model": t_built - t_start,
        "train_sgd": info["train_seconds"],  # pre-window + window epochs
        "train_acc": info["acc_seconds"],  # eval passes over the labeled set (tau, final acc)
        "ff_window": info["ff_seconds"],  # pool predictions after each window epoch
        "extract": info["extract_seconds"],  # final outputs not already taken in the window
        "round_setup": info["total_seconds"]
        - sum(info[k] for k in ("train_seconds", "acc_seconds", "ff_seconds", "extract_seconds")),
        "signals": t_signals - t_trained,
        "select": t_end - t_signals,
    }
    total = t_end - t_start
    parts["other"] = total - sum(parts.values())
    return {
        "parts": parts,
        "total": total,
        "device": info["device"],
        "epochs": info["epochs"],
        "pre_window_epochs": info["pre_window_epochs"],
        "window_epochs": info["window_epochs"],
        "reached_terminal": info["reached_terminal"],
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    ap.add_argument("--pool", type=int, default=50_000, help="pool size")
    ap.add_argument("--labeled", type=int, default=5_000, help="labeled-set size")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--size", type=int, default=32, help="image side in pixels")
    ap.add_argument("--width", type=int, default=64, help="ResNet-18 base width (64 = standard)")
    ap.add_argument("--epochs-max", type=int, default=30, help="cap on pre-window epochs")
    ap.add_argument("--window", type=int, default=8, help="FF window epochs")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--eval-batch-size", type=int, default=None, help="default 1024 (cuda), 256")
    ap.add_argument("--min-samples", type=int, default=1024, help="min samples per epoch")
    ap.add_argument("--query", type=int, default=1000, help="batch size selected")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: leave)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if min(args.pool, args.labeled, args.size, args.width, args.window, args.query) < 1:
        ap.error("--pool, --labeled, --size, --width, --window and --query must be >= 1")
    if args.classes < 2 or args.labeled < args.classes:
        ap.error("--classes must be >= 2 and --labeled >= --classes")
    if args.eval_batch_size is None:
        args.eval_batch_size = 1024 if args.device.startswith("cuda") else 256

    res = run_round(args)
    print(
        f"one round: ResNet-18 (width {args.width}) on {args.size}x{args.size}x3, "
        f"{args.labeled} labeled, {args.pool} pool, {args.classes} classes, device {res['device']}, "
        f"{res['epochs']} epochs ({res['pre_window_epochs']} + {res['window_epochs']} window), "
        f"terminal phase reached: {res['reached_terminal']}"
    )
    print(f"{'part':<12}{'seconds':>10}{'share':>8}")
    for name, sec in res["parts"].items():
        print(f"{name:<12}{sec:>10.3f}{sec / res['total']:>8.1%}")
    print(f"{'total':<12}{res['total']:>10.3f}")
    summary = {
        **{k: v for k, v in res.items() if k != "parts"},
        **{f"{k}_s": round(v, 6) for k, v in res["parts"].items()},
        "total_s": round(res["total"], 6),
        "pool": args.pool,
        "labeled": args.labeled,
        "width": args.width,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
