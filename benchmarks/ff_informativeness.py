"""Benchmark: does feature fluctuation carry information? Flip counts against continuous variants.

One round of the ``fast-mlp`` recipe on MNIST-5k (30 % symmetric label noise on the labeled set, a
pool of ``--pool`` training images, ``--labeled`` labeled ones), per seed and labeled size. For
each FF variant (docs/algorithms.md §1.10; :mod:`ncal.dynamics`):

* ``flips``: predicted-label flips between consecutive window checkpoints (the paper's FF);
* ``margin_std``: std of the top-1 minus top-2 probability margin over the checkpoints;
* ``margin_change``: mean absolute change of that margin between consecutive checkpoints;

it reports the share of the pool with a nonzero value and the AUROC of the value for "the final
model misclassifies the item on its TRUE label" (0.5: no information). For reference it also
reports ``1 - margin`` of the final model (margin sampling's score) and NCAL-R's composite with
each FF variant. ``margin_std`` is also checked against the recorder the trainer ran (identical up
to float64 rounding).

Usage::

    python benchmarks/ff_informativeness.py [--seeds 3] [--labeled 100 500] [--pool 2000]

Prints a table, then ONE JSON line with every number.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np


def one_round(seed: int, n_labeled: int, n_pool: int) -> dict[str, float]:
    """Train one round and score every FF variant on the pool; returns name -> number."""
    from sklearn.metrics import roc_auc_score

    import ncal.strategies as S
    from ncal._utils.random import derive_seed
    from ncal.data import load_dataset, make_noisy_labels
    from ncal.dynamics import margin_fluctuation, probability_margin
    from ncal.experiment.recipes import recipe
    from ncal.models import build_model
    from ncal.training import TrainConfig, train_round

    ds = load_dataset("mnist5k")
    rng = np.random.default_rng(derive_seed(seed, "ff-bench"))
    order = rng.permutation(len(ds.y_train))
    lab, pool = order[:n_labeled], order[n_labeled : n_labeled + n_pool]
    y_noisy, _ = make_noisy_labels(
        ds.y_train[lab], "sym_exact:0.3", num_classes=ds.num_classes, seed=seed
    )
    rec = recipe("fast-mlp")
    net = build_model(
        rec["model"],
        input_shape=ds.x_train.shape[1:],
        num_classes=ds.num_classes,
        seed=derive_seed(seed, "init"),
    )
    t0 = time.perf_counter()
    out = train_round(
        net,
        ds.x_train[lab],
        y_noisy,
        ds.x_train[pool],
        config=TrainConfig(**rec["train"]),
        seed=derive_seed(seed, "train"),
        record_history=True,
    )
    seconds = time.perf_counter() - t0
    margins = np.stack([probability_margin(z) for z in out.logits_history])
    brute_std = margin_fluctuation(margins, "margin_std")
    np.testing.assert_allclose(out.ff_margin_std, brute_std, rtol=1e-9, atol=1e-12)

    wrong = out.logits_pool.argmax(axis=1) != ds.y_train[pool]
    values = {
        "flips": out.ff_counts.astype(np.float64),
        "margin_std": out.ff_margin_std,
        "margin_change": margin_fluctuation(margins, "margin_change"),
        "1-margin (final)": 1.0 - probability_margin(out.logits_pool),
    }
    signals = out.signals(y_noisy, ds.num_classes)
    for variant in ("flips", "margin_std"):
        with warnings.catch_warnings():  # degenerate flips are reported here, as a number
            warnings.simplefilter("ignore", RuntimeWarning)
            sel = S.get("ncal_r", ff=variant).select(signals, len(pool))
        full = np.empty(len(pool))
        full[sel.indices] = sel.scores
        values[f"ncal_r(ff={variant})"] = full
    values["cmap (ncal_r's other term)"] = np.where(
        np.isfinite(sel.info["cmap"]), sel.info["cmap"], 0.0
    )
    row: dict[str, float] = {
        "seed": seed,
        "n_labeled": n_labeled,
        "error_rate": float(wrong.mean()),
        "train_seconds": seconds,
        "stop_reason": out.info["stop_reason"],
    }
    for name, v in values.items():
        row[f"{name} nonzero"] = float(np.mean(v != 0))
        row[f"{name} auroc"] = (
            float(roc_auc_score(wrong, v)) if 0 < wrong.sum() < wrong.size else float("nan")
        )
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--labeled", type=int, nargs="+", default=[100, 500])
    ap.add_argument("--pool", type=int, default=2000)
    args = ap.parse_args(argv)
    rows = [one_round(s, n, args.pool) for n in args.labeled for s in range(args.seeds)]
    names = [k[: -len(" auroc")] for k in rows[0] if k.endswith(" auroc")]
    for n in args.labeled:
        sub = [r for r in rows if r["n_labeled"] == n]
        err = np.mean([r["error_rate"] for r in sub])
        print(f"\nlabeled {n}, pool {args.pool}, {len(sub)} seeds, pool error rate {err:.3f}")
        print(f"{'signal':24s} {'nonzero share':>14s} {'AUROC (wrong)':>14s}")
        for name in names:
            nz = [r[f"{name} nonzero"] for r in sub]
            au = [r[f"{name} auroc"] for r in sub]
            print(
                f"{name:24s} {np.mean(nz):8.3f} ±{np.std(nz):.3f} {np.mean(au):8.3f} ±{np.std(au):.3f}"
            )
    print(json.dumps({"pool": args.pool, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
