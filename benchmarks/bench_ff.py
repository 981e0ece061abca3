"""Benchmark: the cost of FF recording against the SGD it rides on, per shipped training recipe.

FF is recorded by predicting the whole pool after each of the ``ff_window`` window epochs
(docs/algorithms.md §1.10). This times, on mnist5k shapes (4,000 training images of 28x28; a
labeled set of ``--labeled`` and the rest as the pool):

* ``sgd``: one window epoch of SGD (the trainer's own epoch, ``min_samples_per_epoch`` included);
* ``baseline``: one pool prediction pass as it was first written (``torch.no_grad``, every batch
  converted and normalised from the stored uint8 images on every pass);
* ``ff``: one pool pass as the trainer records FF now (inputs prepared once per window,
  ``torch.inference_mode``), the one-off preparation spread over the window's passes.

Usage::

    python benchmarks/bench_ff.py [--labeled 100 500] [--repeat 3] [--threads 1]

Prints a table per recipe and labeled size (best of ``--repeat``), then ONE JSON line. ``share``
is what FF costs in a round of ``--epochs`` epochs: ``window * ff / (epochs * sgd)``.

A second table times *real rounds*: ``train_round`` on MNIST-5k itself (a random labeled set with
its true labels, the other training images as the pool), which stops the pre-window phase at the
terminal phase instead of after a nominal number of epochs. It reports the trainer's own record,
``ff_seconds / train_seconds``, and the part FF adds (the window's last pool pass doubles as the
extraction pass every strategy needs, so ``(window - 1) / window`` of the FF time is added).
``--no-real`` skips it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

N_TRAIN = 4000  # mnist5k: 5,000 images, 4,000 of them in the training split
SHAPE = (28, 28)


def recipes() -> dict[str, tuple[str, dict]]:
    """Recipe name → (model, TrainConfig fields): the demo's/papers' MLP and the CNN default."""
    from ncal.bench.demo import DEMO_GRID

    return {
        "mlp (demo, configs/paper)": ("mlp", dict(DEMO_GRID["train"])),
        "cnn (default)": ("cnn", {}),
    }


def _baseline_pass(model, x, prep, batch_size: int) -> np.ndarray:
    """The pool pass as first written: no_grad, each batch prepared from the stored samples."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            z = model(prep(x[s : s + batch_size]))
            out.append(z.float().cpu().numpy())
    model.train()
    return np.concatenate(out).argmax(axis=1)


def _best(fn, repeat: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, value


def measure(model_name: str, fields: dict, n_labeled: int, repeat: int, threads: int) -> dict:
    """Seconds of one window SGD epoch, one baseline pool pass and one FF pass (best of repeat)."""
    import torch

    from ncal.models import build_model
    from ncal.training import TrainConfig
    from ncal.training.extract import eval_pass, prepare_batches
    from ncal.training.trainer import _RoundTrainer

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (N_TRAIN, *SHAPE), dtype=np.uint8)
    y = rng.integers(0, 10, N_TRAIN)
    x_l, y_l, x_pool = x[:n_labeled], y[:n_labeled], x[n_labeled:]
    config = TrainConfig(**{**fields, "device": "cpu", "num_threads": threads})
    model = build_model(model_name, input_shape=SHAPE, num_classes=10, seed=0)
    torch.set_num_threads(threads)
    trainer = _RoundTrainer(
        model,
        x_l,
        y_l,
        config=config,
        seed=0,
        device=torch.device("cpu"),
        n_pool=len(x_pool),
        need_ff=True,
        progress=False,
    )
    bs = config.eval_batch_size
    trainer.train_epoch(0, in_window=True)  # warm-up: first-call allocations
    sgd, _ = _best(lambda: trainer.train_epoch(1, in_window=True), repeat)
    base, pred_base = _best(lambda: _baseline_pass(model, x_pool, trainer.prep, bs), repeat)
    shape = tuple(model.sample_shape)
    prep_s, batches = _best(
        lambda: prepare_batches(x_pool, trainer.prep, batch_size=bs, sample_shape=shape), repeat
    )

    def ff_pass():
        logits, _ = eval_pass(model, x_pool, trainer.prep, features=False, batches=batches)
        return logits.argmax(axis=1)

    ff, pred_ff = _best(ff_pass, repeat)
    if not np.array_equal(pred_base, pred_ff):
        raise RuntimeError("the FF pass predicts differently from the baseline pass")
    ff += prep_s / config.ff_window
    return {
        "labeled": n_labeled,
        "pool": len(x_pool),
        "sgd_s": sgd,
        "baseline_s": base,
        "ff_s": ff,
        "window": config.ff_window,
        "passes_per_epoch": trainer.passes,
    }


def real_round(model_name: str, fields: dict, n_labeled: int, threads: int) -> dict:
    """One real round on MNIST-5k: epochs run and the trainer's own time record."""
    from ncal.data import load_dataset
    from ncal.models import build_model
    from ncal.training import TrainConfig, train_round

    data = load_dataset("mnist5k")
    order = np.random.default_rng(0).permutation(len(data.x_train))
    lab, pool = np.sort(order[:n_labeled]), np.sort(order[n_labeled:])
    config = TrainConfig(**{**fields, "device": "cpu", "num_threads": threads})
    model = build_model(model_name, input_shape=SHAPE, num_classes=10, seed=0)
    out = train_round(
        model, data.x_train[lab], data.y_train[lab], data.x_train[pool], config=config, seed=0
    )
    info = out.info
    share = info["ff_seconds"] / info["train_seconds"]
    window = info["window_epochs"]
    return {
        "labeled": n_labeled,
        "pool": len(pool),
        "epochs": info["pre_window_epochs"] + window,
        "train_s": info["train_seconds"],
        "ff_s": info["ff_seconds"],
        "share": share,
        "share_added": share * (window - 1) / window,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labeled", type=int, nargs="+", default=[100, 500], help="labeled sizes")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement; best is kept")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the grids use 1)")
    ap.add_argument("--epochs", type=int, default=20, help="epochs of a round, for `share`")
    ap.add_argument("--no-real", action="store_true", help="skip the real-round table")
    args = ap.parse_args(argv)
    if (
        min(args.repeat, args.threads, args.epochs, *args.labeled) < 1
        or max(args.labeled) >= N_TRAIN
    ):
        ap.error(f"--repeat/--threads/--epochs >= 1 and --labeled in [1, {N_TRAIN})")
    rows = []
    print(
        f"{'recipe':<28}{'labeled':>8}{'pool':>6}{'sgd s':>9}{'base s':>9}{'ff s':>9}"
        f"{'base/sgd':>10}{'ff/sgd':>8}{'share':>7}"
    )
    for label, (model_name, fields) in recipes().items():
        for n_l in args.labeled:
            r = measure(model_name, fields, n_l, args.repeat, args.threads)
            r["recipe"] = label
            r["ratio_baseline"] = r["baseline_s"] / r["sgd_s"]
            r["ratio_ff"] = r["ff_s"] / r["sgd_s"]
            r["share"] = r["window"] * r["ff_s"] / (args.epochs * r["sgd_s"])
            rows.append(r)
            print(
                f"{label:<28}{n_l:>8}{r['pool']:>6}{r['sgd_s']:>9.4f}{r['baseline_s']:>9.4f}"
                f"{r['ff_s']:>9.4f}{r['ratio_baseline']:>10.2f}{r['ratio_ff']:>8.2f}"
                f"{r['share']:>7.1%}"
            )
    real = []
    if not args.no_real:
        print(
            f"\nreal rounds (MNIST-5k)\n{'recipe':<28}{'labeled':>8}{'pool':>6}{'epochs':>8}"
            f"{'train s':>9}{'ff s':>8}{'share':>7}{'added':>7}"
        )
        for label, (model_name, fields) in recipes().items():
            for n_l in args.labeled:
                r = real_round(model_name, fields, n_l, args.threads)
                r["recipe"] = label
                real.append(r)
                print(
                    f"{label:<28}{n_l:>8}{r['pool']:>6}{r['epochs']:>8}{r['train_s']:>9.2f}"
                    f"{r['ff_s']:>8.2f}{r['share']:>7.1%}{r['share_added']:>7.1%}"
                )

    def rounded(rs: list[dict]) -> list[dict]:
        return [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in rs]

    print(
        json.dumps(
            {
                "threads": args.threads,
                "epochs": args.epochs,
                "rows": rounded(rows),
                "real_rounds": rounded(real),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
