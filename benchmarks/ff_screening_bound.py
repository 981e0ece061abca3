"""Experiment: can FF recording skip pool items that provably cannot flip? (It cannot, usefully.)

FF counts prediction flips of every pool item over the window's checkpoints, so each checkpoint
costs one pool pass. An exact shortcut would skip the items whose prediction provably did not
change. For a one-hidden-layer MLP ``z = W2 relu(W1 x + b1) + b2`` the change since a reference
checkpoint is bounded per item: ``|h - h_ref| <= ||dW1||_2 |x| + |db1|`` (ReLU is 1-Lipschitz),
and the margin of the reference prediction ``a`` over a class ``b`` moves by at most
``|dW2_a - dW2_b| |h| + |W2_a - W2_b| |h - h_ref| + |db2_a - db2_b|``. An item whose margins all
exceed their bounds keeps its prediction and needs no pass.

This trains the MLP of the ``fast-mlp`` recipe (784-256-10, SGD with momentum, lr 0.01, then a
held lr of 0.005 in the window) on 500 MNIST-5k items with 20% symmetric label noise until 99%
training accuracy, then prints, for each of the 7 window epochs after the first checkpoint, the
spectral norm of ``dW1`` and the share of the pool certified against that first checkpoint
(checked against the exact predictions). It answers whether the shortcut is worth building.

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
    with torch.no_grad():
        w1, b1, w2, b2 = (p.detach().clone() for p in net.parameters())
        h_ref = torch.relu(xp @ w1.T + b1)
        z_ref = h_ref @ w2.T + b2
        x_norm = xp.norm(dim=1)
        top = z_ref.argmax(1)
        margin = z_ref.gather(1, top[:, None]) - z_ref  # (n, C), >= 0
        w_diff = (w2[top][:, None, :] - w2[None, :, :]).norm(dim=2)
        is_top = torch.arange(z_ref.shape[1])[None, :] == top[:, None]
    shares = []
    for t in range(1, 8):
        epoch()
        with torch.no_grad():
            v1, c1, v2, c2 = (p.detach() for p in net.parameters())
            spec = torch.linalg.matrix_norm(v1 - w1, ord=2)
            dh = spec * x_norm + (c1 - b1).norm()
            dw2 = v2 - w2
            dw_diff = (dw2[top][:, None, :] - dw2[None, :, :]).norm(dim=2)
            db_diff = ((c2 - b2)[top][:, None] - (c2 - b2)[None, :]).abs()
            bound = dw_diff * (h_ref.norm(dim=1) + dh)[:, None] + w_diff * dh[:, None] + db_diff
            safe = ((bound < margin) | is_top).all(1)
            pred = (torch.relu(xp @ v1.T + c1) @ v2.T + c2).argmax(1)
            assert bool((pred[safe] == top[safe]).all()), "the bound is violated: a bug"
        share = float(safe.float().mean())
        shares.append(round(share, 4))
        print(f"window epoch {t}: ||dW1||_2 = {float(spec):.4f}, certified {share:.1%} of the pool")
    print(json.dumps({"seed": a.seed, "pool": len(pool), "certified_share": shares}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
