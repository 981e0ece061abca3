"""Experiment: can FF recording skip pool items that provably cannot flip? (It cannot, usefully.)

FF counts prediction flips of every pool item over the window's checkpoints, so each checkpoint
costs one pool pass. An exact shortcut would skip the items whose prediction provably did not
change. For a one-hidden-layer MLP ``z = W2 relu(W1 x + b1) + b2`` the change since a reference
checkpoint is bounded per item and hidden unit: ``|h_j - h_ref,j| <= |(dW1 x)_j + db1_j| =: u_j``
(ReLU is 1-Lipschitz), and the margin of the reference prediction ``a`` over a class ``b`` moves by
at most ``sum_j |W2_aj - W2_bj| u_j + |dW2_aj - dW2_bj| (h_ref,j + u_j) + |db2_a - db2_b|``. An
item whose margins all exceed their bounds keeps its prediction and needs no pass. ``u`` is bounded
three ways, from cheap to tight:

* ``norm``: ``||h - h_ref|| <= ||dW1||_2 |x| + |db1|`` with Cauchy-Schwarz on the whole hidden
  vector instead of the per-unit sum (no per-item product at all);
* ``rank r``: the exact product with the best rank-``r`` part of ``dW1`` plus each row's residual
  norm times ``|x|`` (``r (d + h)`` multiply-adds per item instead of ``d h``);
* ``exact``: ``|(dW1 x)_j + db1_j|`` itself, which costs the first layer's full product, so it is
  the ceiling of any cheaper bound on the first layer, not a shortcut.

This trains the MLP of the ``fast-mlp`` recipe (784-256-10, SGD with momentum, lr 0.01, then a
held lr of 0.005 in the window) on 500 MNIST-5k items with 20% symmetric label noise until 99%
training accuracy, then prints, for each of the 7 window epochs after the first checkpoint, the
share of the pool each bound certifies against the first checkpoint (what skipping needs: a
skipped item has no newer exact logits) and against the previous one (an optimistic ceiling), each
checked against the exact predictions. It answers whether the shortcut is worth building.

Usage::

    python benchmarks/ff_screening_bound.py [--seed 0]

Prints one line per window epoch, then ONE JSON line.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from ncal.data import load_dataset


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(a.seed)
    d = load_dataset("mnist5k")
    x = torch.tensor(d.x_train.reshape(len(d.x_train), -1), dtype=torch.float32) / 255.0
    x = (x - 0.1307) / 0.3081
    order = rng.permutation(len(x))
    lab, pool = order[:500], order[500:]
    xl, xp = x[lab], x[pool]
    yl = torch.tensor(d.y_train[lab])
    noisy = torch.tensor(rng.random(500) < 0.2)
    yl[noisy] = torch.tensor(rng.integers(0, 10, int(noisy.sum())))
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def epoch() -> None:
        perm = torch.randperm(500)
        for _ in range(3):  # about the trainer's minimum samples per epoch
            for s in range(0, 500, 64):
                b = perm[s : s + 64]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(xl[b]), yl[b]).backward()
                opt.step()

    for _ in range(150):
        epoch()
        with torch.no_grad():
            if (net(xl).argmax(1) == yl).float().mean() >= 0.99:
                break
    for g in opt.param_groups:
        g["lr"] = 0.005

    def params() -> list[torch.Tensor]:
        return [p.detach().clone() for p in net.parameters()]

    x_norm = xp.norm(dim=1)
    first = previous = params()
    rows = []
    for t in range(1, 8):
        epoch()
        now = params()
        row = {"epoch": t}
        for ref_name, ref in (("first", first), ("previous", previous)):
            row[ref_name] = certified_shares(xp, x_norm, ref, now)
        rows.append(row)
        print(f"window epoch {t}: certified vs first {row['first']}, vs previous {row['previous']}")
        previous = now
    print(json.dumps({"seed": a.seed, "pool": len(pool), "certified_share": rows}))
    return 0


BOUNDS = ("norm", "rank 8", "rank 32", "exact")


@torch.no_grad()
def certified_shares(xp, x_norm, ref, now) -> dict[str, float]:
    """Share of the pool whose prediction each bound proves unchanged between ``ref`` and ``now``."""
    w1, b1, w2, b2 = ref
    v1, c1, v2, c2 = now
    h = torch.relu(xp @ w1.T + b1)
    z = h @ w2.T + b2
    top = z.argmax(1)
    margin = z.gather(1, top[:, None]) - z  # (n, C), >= 0
    is_top = torch.arange(z.shape[1])[None, :] == top[:, None]
    w_diff = (w2[top][:, None, :] - w2[None, :, :]).abs()  # (n, C, h)
    dw2 = v2 - w2
    dw_diff = (dw2[top][:, None, :] - dw2[None, :, :]).abs()
    db_diff = ((c2 - b2)[top][:, None] - (c2 - b2)[None, :]).abs()
    exact_pred = (torch.relu(xp @ v1.T + c1) @ v2.T + c2).argmax(1)
    d1, db1 = v1 - w1, c1 - b1
    u_mat, s, vh = torch.linalg.svd(d1, full_matrices=False)
    out = {}
    for name in BOUNDS:
        if name == "norm":  # Cauchy-Schwarz on whole vectors: ||h - h_ref|| <= dh
            dh = torch.linalg.matrix_norm(d1, ord=2) * x_norm + db1.norm()
            bound = (
                w_diff.norm(dim=2) * dh[:, None]
                + dw_diff.norm(dim=2) * (h.norm(dim=1) + dh)[:, None]
                + db_diff
            )
        elif name == "exact":
            u = (xp @ d1.T + db1).abs()
        else:
            r = int(name.split()[1])
            low = (u_mat[:, :r] * s[:r]) @ vh[:r]
            u = (xp @ low.T + db1).abs() + (d1 - low).norm(dim=1)[None, :] * x_norm[:, None]
        if name != "norm":
            bound = (w_diff * u[:, None, :]).sum(2) + (dw_diff * (h + u)[:, None, :]).sum(2)
            bound += db_diff
        safe = ((bound < margin) | is_top).all(1)
        assert bool((exact_pred[safe] == top[safe]).all()), "the bound is violated: a bug"
        out[name] = round(float(safe.float().mean()), 3)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
