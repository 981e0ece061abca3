"""Issue 14 items 2 and 4: bench pool workers die with their parent (real processes, SIGKILL), and a
Ray instance started by ``run_grid`` listens on the loopback interface only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ncal.bench import run_grid
from ncal.bench.executors import _RAY_CLUSTER_ENV, _ray_loopback

RUNNERS = textwrap.dedent(
    """
    import json, os, time
    from pathlib import Path

    def sleepy_runner(config, cell_dir):
        Path(cell_dir).mkdir(parents=True, exist_ok=True)
        (Path(cell_dir) / "pid").write_text(str(os.getpid()))
        time.sleep(300)

    def listening_runner(config, cell_dir):
        import psutil
        driver = psutil.Process(os.getppid()).parent()  # worker -> raylet -> driver
        procs = [driver, *driver.children(recursive=True)]
        seen = set()
        for p in procs:
            try:
                conns = p.net_connections(kind="inet")
            except (psutil.Error, OSError):
                continue
            seen |= {(p.name(), c.laddr.ip) for c in conns if c.status == psutil.CONN_LISTEN}
        Path(cell_dir).mkdir(parents=True, exist_ok=True)
        (Path(cell_dir) / "listen.json").write_text(json.dumps(sorted(seen)))
    """
)


def grid(out: Path, seeds: int = 2) -> dict:
    return {
        "name": "robust",
        "datasets": ["digits"],
        "noise": ["none"],
        "strategies": ["random"],
        "seeds": seeds,
        "budget": {"initial": 10, "query": 5, "rounds": 1},
        "out": str(out),
    }


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's bookkeeping is left


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_pool_workers_die_when_the_bench_parent_is_killed(tmp_path):
    (tmp_path / "robust_runners.py").write_text(RUNNERS)
    out = tmp_path / "grid"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from robust_runners import sleepy_runner
        from ncal.bench import run_grid
        run_grid({grid(out)!r}, workers=2, quiet=True, cell_runner=sleepy_runner)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 180
        while len(list(out.rglob("pid"))) < 2:
            assert parent.poll() is None and time.monotonic() < deadline, "workers never started"
            time.sleep(0.2)
        workers = [int(p.read_text()) for p in out.rglob("pid")]
        assert all(alive(w) for w in workers)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    deadline = time.monotonic() + 20
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [w for w in workers if alive(w)]
    for w in survivors:  # clean up before failing
        os.kill(w, signal.SIGKILL)
    assert survivors == [], "pool workers outlived their killed parent"


def test_loopback_switch_is_set_only_without_an_address_and_restored(monkeypatch):
    monkeypatch.delenv(_RAY_CLUSTER_ENV, raising=False)
    with _ray_loopback(False):
        assert _RAY_CLUSTER_ENV not in os.environ
    with _ray_loopback(True):
        assert os.environ[_RAY_CLUSTER_ENV] == "0"
    assert _RAY_CLUSTER_ENV not in os.environ
    monkeypatch.setenv(_RAY_CLUSTER_ENV, "1")
    with _ray_loopback(True):
        assert os.environ[_RAY_CLUSTER_ENV] == "0"
    assert os.environ[_RAY_CLUSTER_ENV] == "1"


def test_local_ray_listens_on_loopback_only(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    pytest.importorskip("psutil")
    (tmp_path / "robust_runners.py").write_text(RUNNERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    from robust_runners import listening_runner  # type: ignore[import-not-found]

    out = tmp_path / "grid"
    run_grid(
        grid(out, seeds=1), executor="ray", workers=1, quiet=True, cell_runner=listening_runner
    )
    (found,) = list(out.rglob("listen.json"))
    listening = json.loads(found.read_text())
    names = {name for name, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening
    exposed = [(n, ip) for n, ip in listening if ip.removeprefix("::ffff:") != "127.0.0.1"]
    assert exposed == [], f"Ray servers listening beyond loopback: {exposed}"
