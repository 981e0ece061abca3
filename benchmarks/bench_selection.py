"""Selection time and peak memory of every baseline strategy, vs scikit-activeml on the same inputs.

Synthetic but realistic signals (class-clustered penultimate features, a linear head's logits, a
labeled set, MC-dropout passes for BALD) are written once per (N, C) to a temporary directory; every
measurement then runs in its own subprocess (clean peak-memory numbers) that loads them, times one
``Strategy.select`` call and reports the peak resident memory it added. scikit-activeml runs on the
identical arrays: its ``CoreSet`` and ``TypiClust`` on the features, its ``Badge`` and
``UncertaintySampling(method="entropy")`` through a frozen linear-head classifier whose
``predict_proba`` returns exactly our softmax (and, for ``Badge``, the features as embeddings).
Peers run under an address-space limit (``--peer-mem-gb``) so that a huge allocation fails with
``MemoryError`` instead of exhausting the machine; such outcomes are recorded, not raised.

Examples
--------
The key cells (CoreSet at N=50k, k=1000; BADGE at N=50k, C=10 and C=100, k=100)::

    python benchmarks/bench_selection.py --n 50000 --classes 10 --k 1000 --strategies coreset
    python benchmarks/bench_selection.py --n 50000 --classes 10,100 --k 100 --strategies badge

The output is a table, then ONE JSON line: a list of objects with keys ``strategy, n, d, classes, k,
seconds, peak_mb, peer_seconds, speedup`` (plus ``peer_status``, ``peer_peak_mb``,
``same_selection`` and ``status``); ``peer_seconds`` is null where scikit-activeml has no
counterpart or did not finish. For TypiClust and ProbCover, whose picks differ from the peer's by
design, rows also give ``shared_picks`` and what both pick sets achieve, measured the same way:
``coverage_ours`` / ``coverage_peer`` (ProbCover: fraction of L ∪ U within our δ of the labeled
set or a pick) and ``mean_nearest_ours`` / ``mean_nearest_peer`` (TypiClust: mean distance from a
pool point to its nearest labeled point or pick). With ``--repeat R`` ours and the peer run
alternately R times: ``seconds`` and ``peer_seconds`` are medians, ``seconds_all`` and
``peer_seconds_all`` every run, and ``speedup_min`` the smallest ratio of a pair run back to back::

    python benchmarks/bench_selection.py --n 10000 --classes 10 --k 100 \\
        --strategies typiclust,probcover --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ALL_STRATEGIES = (
    "entropy",
    "bald",
    "coreset",
    "cdal",
    "badge",
    "bait",
    "typiclust",
    "probcover",
    "sisom_proxy",
    "diverse",
)
# our strategy name -> scikit-activeml counterpart
PEERS = {
    "coreset": "CoreSet",
    "badge": "Badge",
    "entropy": "UncertaintySampling",
    "typiclust": "TypiClust",
    "probcover": "ProbCover",
}
MC_PASSES = 10


# --------------------------------------------------------------------------- synthetic signals


def make_data(out: Path, n: int, n_labeled: int, d: int, c: int, seed: int, mc: bool) -> None:
    """Write float32 features, float64 logits (linear head), labeled set and MC passes."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, size=(c, d)).astype(np.float32)
    w = (centers / np.linalg.norm(centers, axis=1, keepdims=True) * 2.0).astype(np.float64)
    b = rng.normal(0.0, 0.1, size=c)

    def features(m: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, c, m)
        x = np.empty((m, d), dtype=np.float32)
        for s in range(0, m, 16384):
            blk = centers[y[s : s + 16384]] + rng.normal(0.0, 1.2, size=(len(y[s : s + 16384]), d))
            x[s : s + 16384] = np.maximum(blk, 0.0)  # ReLU-like, non-negative features
        return x, y

    fp, _ = features(n)
    fl, yl = features(n_labeled)
    logits = fp.astype(np.float64) @ w.T + b
    z = fl.astype(np.float64) @ w.T + b
    pl = np.exp(z - z.max(1, keepdims=True))
    pl /= pl.sum(1, keepdims=True)
    np.save(out / "features_pool.npy", fp)
    np.save(out / "features_labeled.npy", fl)
    np.save(out / "labels_labeled.npy", yl)
    np.save(out / "logits_pool.npy", logits)
    np.save(out / "probs_labeled.npy", pl)
    np.save(out / "head_w.npy", w)
    np.save(out / "head_b.npy", b)
    # the signals of the label-cleaning and NCAL strategies: flip counts over a 20-epoch window,
    # three annotators who agree with the labels 80% of the time, held-out labeled probabilities
    np.save(out / "ff_counts.npy", rng.integers(0, 8, n))
    agree = rng.random((n_labeled, 3)) < 0.8
    np.save(
        out / "annotations_labeled.npy",
        np.where(agree, yl[:, None], rng.integers(0, c, (n_labeled, 3))),
    )
    np.save(out / "probs_labeled_oof.npy", pl)
    if mc:
        passes = np.empty((MC_PASSES, n, c), dtype=np.float32)
        for t in range(MC_PASSES):
            zt = logits + rng.normal(0.0, 0.5, size=logits.shape)
            zt -= zt.max(1, keepdims=True)
            e = np.exp(zt)
            passes[t] = e / e.sum(1, keepdims=True)
        np.save(out / "mc_probs_pool.npy", passes)


# --------------------------------------------------------------------------- workers (subprocesses)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def add_round_shape_args(p: argparse.ArgumentParser) -> None:
    """The selection problem of the issue's goals, as options: N = 50k pool items of d = 512,
    C = 10 classes, k = 1,000 picks, 1,000 labeled items (shared by the 50k benchmarks)."""
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--labeled", type=int, default=1000)


def _peak_mb(rss_before_kb: int, reset: bool) -> float:
    peak_kb = _status_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(0.0, (peak_kb - rss_before_kb) / 1024.0)


def _parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"bait:fisher_rank=10;pca_dim=16"`` -> ("bait", {"fisher_rank": 10, "pca_dim": 16})."""
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(";")):
        key, _, raw = item.partition("=")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = None if raw == "None" else raw
    return name, params


def worker_ours(data: Path, spec: str, k: int, out: Path) -> dict[str, Any]:
    import torch

    import ncal.strategies as S

    name, params = _parse_spec(spec)
    load = {f.stem: np.load(f) for f in data.glob("*.npy") if not f.stem.startswith("head")}
    c = load["logits_pool"].shape[1]
    sig = S.Signals(
        logits_pool=load["logits_pool"],
        features_pool=load["features_pool"],
        features_labeled=load["features_labeled"],
        labels_labeled=load["labels_labeled"],
        probs_labeled=load["probs_labeled"],
        mc_probs_pool=load.get("mc_probs_pool"),
        ff_counts=load.get("ff_counts"),
        annotations_labeled=load.get("annotations_labeled"),
        probs_labeled_oof=load.get("probs_labeled_oof"),
        num_classes=c,
    )
    strat = S.get(name, **params)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    rss = _status_kb("VmRSS")
    reset = _reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    sel = strat.select(sig, k, np.random.default_rng(0))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _peak_mb(rss, reset)
    np.save(out, sel.indices)
    info = {k: v for k, v in sel.info.items() if isinstance(v, (int, float, str, bool))}
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak, "status": "ok", "info": info}


def _frozen_head_classifier(w: np.ndarray, b: np.ndarray):
    from skactiveml.base import SkactivemlClassifier

    class FrozenLinearHead(SkactivemlClassifier):
        """``predict_proba(X) = softmax(X Wᵀ + b)``; optionally also returns X as embeddings."""

        def __init__(self, w=None, b=None, classes=None, missing_label=np.nan, random_state=None):
            super().__init__(
                classes=classes, missing_label=missing_label, random_state=random_state
            )
            self.w = w
            self.b = b

        def fit(self, X, y, sample_weight=None):
            return self

        def predict_proba(self, X, return_embeddings=False):
            z = np.asarray(X, dtype=np.float64) @ self.w.T + self.b
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            return (p, X) if return_embeddings else p

    return FrozenLinearHead(w=w, b=b, classes=np.arange(w.shape[0]))


def worker_peer(data: Path, spec: str, k: int, out: Path, mem_gb: float) -> dict[str, Any]:
    from skactiveml import pool

    name, _ = _parse_spec(spec)
    fp = np.load(data / "features_pool.npy")
    fl = np.load(data / "features_labeled.npy")
    yl = np.load(data / "labels_labeled.npy")
    w, b = np.load(data / "head_w.npy"), np.load(data / "head_b.npy")
    # pool first, then labeled: query indices < N are pool indices
    x = np.concatenate([fp, fl])
    y = np.full(len(x), np.nan)
    y[len(fp) :] = yl
    clf = _frozen_head_classifier(w, b)
    # CoreSet gets the same values in float64: with float32 input sklearn returns float32 distances,
    # and near-equal maxima become exact ties that CoreSet breaks at random.
    x64 = x.astype(np.float64) if PEERS[name] == "CoreSet" else None
    if mem_gb > 0:
        limit = _status_kb("VmSize") * 1024 + int(mem_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    rss = _status_kb("VmRSS")
    reset = _reset_peak()
    t0 = time.perf_counter()
    try:
        if PEERS[name] == "CoreSet":
            q = pool.CoreSet(random_state=0).query(x64, y, batch_size=k)
        elif PEERS[name] == "TypiClust":
            q = pool.TypiClust(random_state=0).query(x, y, batch_size=k)
        elif PEERS[name] == "ProbCover":
            q = pool.ProbCover(n_classes=len(w), random_state=0).query(x, y, batch_size=k)
        elif PEERS[name] == "Badge":
            q = pool.Badge(clf_embedding_flag_name="return_embeddings", random_state=0).query(
                x, y, clf, fit_clf=False, batch_size=k
            )
        else:
            q = pool.UncertaintySampling(method="entropy", random_state=0).query(
                x, y, clf, fit_clf=False, batch_size=k
            )
    except MemoryError:
        return {"seconds": None, "peak_mb": _peak_mb(rss, reset), "status": "MemoryError"}
    seconds = time.perf_counter() - t0
    peak = _peak_mb(rss, reset)
    np.save(out, np.asarray(q, dtype=np.int64))
    return {"seconds": seconds, "peak_mb": peak, "status": "ok"}


# --------------------------------------------------------------------------- driver


def run_worker(kind: str, args: list[str], timeout: float, threads: int) -> dict[str, Any]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, __file__, "--_worker", kind, *args]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"seconds": None, "peak_mb": None, "status": f"timeout>{timeout:g}s"}
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["?"]
        err = "MemoryError" if "MemoryError" in res.stderr else f"error: {tail[0][:120]}"
        return {"seconds": None, "peak_mb": None, "status": err}
    return json.loads(lines[-1])


def _csv(kind):
    return lambda s: [kind(v) for v in s.split(",") if v]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=_csv(int), default=[10_000, 50_000, 200_000])
    p.add_argument("--classes", type=_csv(int), default=[10, 100])
    p.add_argument("--k", type=_csv(int), default=[100, 1000])
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--labeled", type=int, default=1000, help="size of the labeled set")
    p.add_argument(
        "--strategies",
        type=lambda s: [v for v in s.split(",") if v],
        default=list(ALL_STRATEGIES),
        help="names, optionally with parameters: bait:fisher_rank=10;pca_dim=16",
    )
    p.add_argument("--no-peers", action="store_true", help="skip scikit-activeml")
    p.add_argument("--peer-timeout", type=float, default=900.0, help="seconds before a peer is cut")
    p.add_argument("--peer-mem-gb", type=float, default=6.0, help="address-space limit for peers")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds before ours is cut")
    p.add_argument("--threads", type=int, default=1, help="BLAS/torch threads, both sides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run ours and the peer alternately this many times; report medians and the "
        "smallest speed-up of a pair run back to back",
    )
    p.add_argument("--_worker", choices=["ours", "peer"], help=argparse.SUPPRESS)
    p.add_argument("--_data", help=argparse.SUPPRESS)
    p.add_argument("--_spec", help=argparse.SUPPRESS)
    p.add_argument("--_out", help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a._worker:
        data, out = Path(a._data), Path(a._out)
        if a._worker == "ours":
            res = worker_ours(data, a._spec, a.k[0], out)
        else:
            res = worker_peer(data, a._spec, a.k[0], out, a.peer_mem_gb)
        print(json.dumps(res), flush=True)
        return 0

    try:
        import skactiveml

        peer_version = skactiveml.__version__
    except ImportError:
        peer_version = None
    use_peers = not a.no_peers and peer_version is not None
    print(
        f"# bench_selection: d={a.d}, labeled={a.labeled}, threads={a.threads}, "
        f"scikit-activeml={peer_version if use_peers else 'off'}",
        flush=True,
    )
    head = (
        f"{'strategy':<24}{'N':>8}{'C':>5}{'k':>6}{'ours s':>10}{'ours MB':>9}"
        f"{'peer s':>10}{'peer MB':>9}{'speedup':>9}  peer / note"
    )
    print(head, flush=True)
    rows: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="ncal-bench-"))
    try:
        need_mc = any(_parse_spec(s)[0] == "bald" for s in a.strategies)
        for n in a.n:
            for c in a.classes:
                data = tmp / f"n{n}_c{c}"
                data.mkdir()
                make_data(data, n, a.labeled, a.d, c, a.seed, need_mc)
                for k in a.k:
                    for spec in a.strategies:
                        rows.append(_cell(a, data, spec, n, c, k, use_peers))
                shutil.rmtree(data)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(rows), flush=True)
    return 0


def _cell(a, data: Path, spec: str, n: int, c: int, k: int, use_peers: bool) -> dict[str, Any]:
    name, _ = _parse_spec(spec)
    common = ["--_data", str(data), "--_spec", spec, "--k", str(k)]
    ours_out = data / "sel_ours.npy"
    peer_out = data / "sel_peer.npy"
    with_peer = use_peers and name in PEERS and not _parse_spec(spec)[1]
    ours_runs: list[dict[str, Any]] = []
    peer_runs: list[dict[str, Any]] = []
    for _ in range(max(1, a.repeat)):  # alternate, so that both sides see the same load
        ours_runs.append(
            run_worker("ours", [*common, "--_out", str(ours_out)], a.timeout, a.threads)
        )
        if with_peer:
            args = [*common, "--_out", str(peer_out), "--peer-mem-gb", str(a.peer_mem_gb)]
            peer_runs.append(run_worker("peer", args, a.peer_timeout, a.threads))
    ours = _median_run(ours_runs)
    row: dict[str, Any] = {
        "strategy": spec,
        "n": n,
        "d": a.d,
        "classes": c,
        "k": k,
        "seconds": ours["seconds"],
        "peak_mb": ours["peak_mb"],
        "peer_seconds": None,
        "speedup": None,
        "status": ours["status"],
        "peer_status": None,
        "peer_peak_mb": None,
        "same_selection": None,
    }
    if a.repeat > 1:
        row["seconds_all"] = [r["seconds"] for r in ours_runs]
    if with_peer:
        peer = _median_run(peer_runs)
        row["peer_seconds"] = peer["seconds"]
        row["peer_status"] = f"{PEERS[name]}: {peer['status']}"
        row["peer_peak_mb"] = peer["peak_mb"]
        if peer["seconds"] and ours["seconds"]:
            row["speedup"] = peer["seconds"] / ours["seconds"]
        if a.repeat > 1:
            row["peer_seconds_all"] = [r["seconds"] for r in peer_runs]
            pairs = [
                p["seconds"] / o["seconds"]
                for o, p in zip(ours_runs, peer_runs, strict=True)
                if o["seconds"] and p["seconds"]
            ]
            row["speedup_min"] = min(pairs) if pairs else None
        if peer["status"] == "ok" and ours["status"] == "ok":
            mine, theirs = np.load(ours_out), np.load(peer_out)
            if name == "coreset":  # deterministic, same pick order expected
                row["same_selection"] = mine.tolist() == theirs.tolist()
            elif name == "entropy":  # same set (skactiveml breaks ties at random)
                row["same_selection"] = sorted(mine.tolist()) == sorted(theirs.tolist())
            else:  # stochastic, different clusterings: how many picks the two share
                row["shared_picks"] = len(set(mine.tolist()) & set(theirs.tolist()))
                row.update(_pick_quality(data, name, mine, theirs, ours.get("info", {})))
            peer_out.unlink()
    if ours_out.exists():
        ours_out.unlink()
    _print_row(row)
    return row


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run of median time (the last one when none finished), as the row reports it."""
    done = sorted((r for r in runs if r["seconds"] is not None), key=lambda r: r["seconds"])
    return done[(len(done) - 1) // 2] if done else runs[-1]


def _pick_quality(
    data: Path, name: str, mine: np.ndarray, theirs: np.ndarray, info: dict[str, Any]
) -> dict[str, Any]:
    """What the two pick sets achieve, measured the same way for both: for ProbCover the
    fraction of L ∪ U within our δ of the labeled set or a pick (the objective it maximises),
    for TypiClust the mean distance from each pool point to its nearest labeled point or pick."""
    fp = np.load(data / "features_pool.npy").astype(np.float64)
    fl = np.load(data / "features_labeled.npy").astype(np.float64)
    x = np.concatenate([fl, fp])
    nx = np.einsum("ij,ij->i", x, x)

    def nearest(picks: np.ndarray) -> np.ndarray:
        """Each point's distance to its nearest labeled point or pick (blocked over points)."""
        c = np.concatenate([np.arange(len(fl)), len(fl) + picks])
        out = np.empty(len(x))
        for s in range(0, len(x), 4096):
            d = nx[s : s + 4096, None] + nx[None, c] - 2.0 * (x[s : s + 4096] @ x[c].T)
            out[s : s + 4096] = np.sqrt(np.maximum(d.min(1), 0.0))
        return out

    if name == "probcover" and "delta" in info:
        delta = info["delta"]
        return {
            "coverage_ours": float((nearest(mine) < delta).mean()),
            "coverage_peer": float((nearest(theirs) < delta).mean()),
        }
    if name == "typiclust":
        return {
            "mean_nearest_ours": float(nearest(mine)[len(fl) :].mean()),
            "mean_nearest_peer": float(nearest(theirs)[len(fl) :].mean()),
        }
    return {}


def _fmt(v: Any, spec: str) -> str:
    return format(v, spec) if v is not None else "-".rjust(int(spec.split(".")[0]))


def _print_row(r: dict[str, Any]) -> None:
    note = r["peer_status"] or ""
    if r["same_selection"] is not None:
        note += f", same selection: {r['same_selection']}"
    if r.get("shared_picks") is not None:
        note += f", shared picks: {r['shared_picks']}/{r['k']}"
    if r.get("coverage_ours") is not None:
        note += (
            f", coverage at our δ: ours {r['coverage_ours']:.3f} / peer {r['coverage_peer']:.3f}"
        )
    if r.get("mean_nearest_ours") is not None:
        note += (
            f", mean pool distance to nearest pick: ours {r['mean_nearest_ours']:.3f}"
            f" / peer {r['mean_nearest_peer']:.3f}"
        )
    if r.get("speedup_min") is not None:
        note += f", smallest paired speed-up {r['speedup_min']:.1f}x"
    if r["status"] != "ok":
        note = f"ours {r['status']}; {note}"
    print(
        f"{r['strategy']:<24}{r['n']:>8}{r['classes']:>5}{r['k']:>6}"
        f"{_fmt(r['seconds'], '10.2f')}{_fmt(r['peak_mb'], '9.0f')}"
        f"{_fmt(r['peer_seconds'], '10.2f')}{_fmt(r['peer_peak_mb'], '9.0f')}"
        f"{_fmt(r['speedup'], '8.1f')}{'x' if r['speedup'] else ' '}  {note}",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
