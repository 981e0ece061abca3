"""Issue 14 item 8: dozens of bad inputs to the command line, each ending in a non-zero exit and a
one-line error (no traceback) that names the file or argument; the session survives all of them.

The table runs in-process through :func:`ncal.cli.main` (an exception escaping ``main`` would be
the traceback); a sample also runs as real ``ncal`` processes to check stderr itself.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ncal.cli import error_message, main


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Bad inputs of every kind, and one good session to aim the session commands at."""
    from ncal.session import Session

    d = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    f: dict[str, Path] = {"dir": d}
    good = d / "good.npz"
    np.savez(
        good,
        x_train=rng.normal(size=(20, 3)).astype(np.float32),
        y_train=np.arange(20) % 2,
        x_test=rng.normal(size=(6, 3)).astype(np.float32),
        y_test=np.arange(6) % 2,
    )
    f["trunc"] = d / "trunc.npz"
    f["trunc"].write_bytes(good.read_bytes()[:300])
    f["text"] = d / "text.npz"
    f["text"].write_text("hello\n")
    f["objs"] = d / "objs.npz"
    np.savez(f["objs"], x_train=np.array([None], dtype=object), y_train=[0], x_test=[0], y_test=[0])
    f["shifted"] = d / "shifted.npz"
    np.savez(
        f["shifted"],
        x_train=np.zeros((6, 2), np.float32),
        y_train=[5, 6, 7, 5, 6, 7],
        x_test=np.zeros((3, 2), np.float32),
        y_test=[0, 1, 2],
    )
    f["empty"] = d / "empty.npz"
    f["empty"].write_bytes(b"")
    f["afile"] = d / "afile.txt"
    f["afile"].write_text("not a directory\n")
    f["badcfg"] = d / "badcfg"
    f["badcfg"].mkdir()
    (f["badcfg"] / "config.json").write_text("[]")
    (f["badcfg"] / "rounds.jsonl").write_text('{"round": 0}\n')
    f["orphan"] = d / "orphan"
    f["orphan"].mkdir()
    (f["orphan"] / "rounds.jsonl").write_text('{"round": 0}\n')
    f["dangling"] = d / "dangling"
    os.symlink(d / "nowhere" / "x", f["dangling"])
    f["pool"] = d / "pool.npz"
    np.savez(f["pool"], x=rng.normal(size=(30, 4)).astype(np.float32))
    f["s"] = d / "s"
    with Session.create(f["s"], f["pool"], classes=["a", "b"]):
        pass
    f["deep"] = d / "deep.json"
    f["deep"].write_text("[" * 100_000 + "]" * 100_000)
    f["nocols"] = d / "nocols.csv"
    f["nocols"].write_text("x,y\n1,2\n")
    f["unknown"] = d / "unknown.csv"
    f["unknown"].write_text("id,label\nnope,a\n")
    f["badlabel"] = d / "badlabel.csv"
    f["badlabel"].write_text("id,label\n0,zebra\n")
    f["binary"] = d / "binary.csv"
    f["binary"].write_bytes(b"\xff\xfe\x00\x00garbage")
    f["notjson"] = d / "notjson.json"
    f["notjson"].write_text("{not json")
    f["corrupt"] = d / "corrupt"
    f["corrupt"].mkdir()
    (f["corrupt"] / "session.sqlite").write_bytes(b"this is not sqlite" * 100)
    f["grid"] = d / "grid.yaml"
    f["grid"].write_text("name: [unclosed\n")
    return f


def _cases() -> list[tuple[str, list[str]]]:
    """(name, argv) with ``{key}`` placeholders for the fixture's files."""
    run = ["run", "--quiet", "--rounds", "1", "--initial", "4", "--query", "2", "--out"]
    sess = ["session"]
    digits = ["--dataset", "digits", "--pool-size", "120", "--test-size", "60"]
    return [
        # ------------------------------------------------------------------ ncal run
        ("dataset file missing", [*run, "{dir}/r1", "--dataset", "features:{dir}/none.npz"]),
        ("truncated npz", [*run, "{dir}/r2", "--dataset", "features:{trunc}"]),
        ("text file as npz", [*run, "{dir}/r3", "--dataset", "features:{text}"]),
        ("object npz", [*run, "{dir}/r4", "--dataset", "npz:{objs}"]),
        ("empty npz", [*run, "{dir}/r5", "--dataset", "features:{empty}"]),
        ("train/test classes disagree", [*run, "{dir}/r6", "--dataset", "features:{shifted}"]),
        ("unknown dataset", [*run, "{dir}/r7", "--dataset", "nosuchset"]),
        (
            "unknown strategy",
            [*run, "{dir}/r8", "--dataset", "features:{trunc}", "--strategy", "x"],
        ),
        ("model typo", [*run, "{dir}/r9", *digits, "--model", "resnt"]),
        ("bad noise", [*run, "{dir}/r10", "--noise", "sym:abc", "--dataset", "features:{text}"]),
        ("bad param", [*run, "{dir}/r11", "--param", "novalue", "--dataset", "features:{text}"]),
        ("bad train key", [*run, "{dir}/r12", "--train", "nope=1", *digits]),
        ("negative rounds", ["run", "--rounds", "-3", "--out", "{dir}/r13", *digits]),
        ("rounds not a number", ["run", "--rounds", "many", "--out", "{dir}/r14"]),
        ("missing --out", ["run", "--dataset", "features:{trunc}"]),
        ("--out is a file", [*run, "{afile}", *digits]),
        ("config.json holds []", [*run, "{badcfg}", *digits]),
        ("rounds without config", [*run, "{orphan}", *digits]),
        ("unknown command", ["frobnicate"]),
        ("unknown flag", ["run", "--frob"]),
        # ------------------------------------------------------------------ ncal session
        ("init pool missing", [*sess, "init", "{dir}/s1", "--pool", "{dir}/none.npz"]),
        ("init text pool", [*sess, "init", "{dir}/s2", "--pool", "{text}", "--classes", "a,b"]),
        (
            "init truncated pool",
            [*sess, "init", "{dir}/s3", "--pool", "{trunc}", "--classes", "a,b"],
        ),
        (
            "init into dangling link",
            [*sess, "init", "{dangling}", "--pool", "{pool}", "--classes", "a,b"],
        ),
        ("init existing session", [*sess, "init", "{s}", "--pool", "{pool}", "--classes", "a,b"]),
        ("init one class", [*sess, "init", "{dir}/s4", "--pool", "{pool}", "--classes", "a"]),
        ("init bad extractor", [*sess, "init", "{dir}/s5", "--pool", "{pool}", "--extractor", "x"]),
        ("next no session", [*sess, "next", "{dir}/nosession"]),
        ("next k zero", [*sess, "next", "{s}", "--k", "0"]),
        ("next bad strategy", [*sess, "next", "{s}", "--strategy", "nope"]),
        ("next bad params", [*sess, "next", "{s}", "--strategy-params", "[1"]),
        ("next relabel > 1", [*sess, "next", "{s}", "--relabel-fraction", "2"]),
        ("next on a file", [*sess, "next", "{afile}"]),
        ("status corrupt store", [*sess, "status", "{corrupt}"]),
        ("import missing file", [*sess, "import", "{s}", "{dir}/none.csv"]),
        ("import deep json", [*sess, "import", "{s}", "{deep}"]),
        ("import not json", [*sess, "import", "{s}", "{notjson}"]),
        ("import no columns", [*sess, "import", "{s}", "{nocols}"]),
        ("import unknown id", [*sess, "import", "{s}", "{unknown}"]),
        ("import unknown label", [*sess, "import", "{s}", "{badlabel}"]),
        ("import binary csv", [*sess, "import", "{s}", "{binary}"]),
        ("import wrong suffix", [*sess, "import", "{s}", "{pool}"]),
        ("export over the store", [*sess, "export", "{s}", "--out", "{s}/session.sqlite"]),
        ("export over features", [*sess, "export", "{s}", "--out", "{s}/features.npy"]),
        ("export over the pool", [*sess, "export", "{s}", "--out", "{pool}"]),
        ("export to a directory", [*sess, "export", "{s}", "--out", "{dir}"]),
        ("review over the store", [*sess, "review", "{s}", "--out", "{s}/session.sqlite"]),
        ("review to a directory", [*sess, "review", "{s}", "--out", "{s}"]),
        ("export bad method", [*sess, "export", "{s}", "--method", "vote"]),
        # ------------------------------------------------------------------ ncal bench
        ("bench missing grid", ["bench", "{dir}/none.yaml"]),
        ("bench bad yaml", ["bench", "{grid}"]),
    ]


CASES = _cases()


def _argv(template: list[str], files: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in files.items()}) for a in template]


@pytest.mark.parametrize("name,template", CASES, ids=[c[0] for c in CASES])
def test_bad_cli_input_fails_cleanly(files, capsys, monkeypatch, name, template):
    monkeypatch.delenv("NCAL_DEBUG", raising=False)
    before = (files["s"] / "session.sqlite").read_bytes()
    try:
        rc = main(_argv(template, files))
    except SystemExit as exc:  # argparse: usage error
        rc = exc.code
    err = capsys.readouterr().err
    assert rc not in (0, None), f"{name}: exit 0; stderr: {err}"
    assert "Traceback (most recent call last)" not in err
    assert err.strip(), f"{name}: no message"
    if rc != 2 or "usage:" not in err:
        assert err.startswith("error:") or "error:" in err, err
        assert "a bug in ncal" not in err, f"{name}: reported as a bug: {err}"
    assert (files["s"] / "session.sqlite").read_bytes() == before  # nothing lost


def test_fuzz_table_is_large(files):
    assert len(CASES) >= 45, len(CASES)


@pytest.mark.parametrize(
    "name",
    ["truncated npz", "export over the store", "import deep json", "init into dangling link"],
)
def test_real_process_stderr_has_no_traceback(files, name):
    template = dict(CASES)[name]
    cmd = [sys.executable, "-c", "import sys; from ncal.cli import main; sys.exit(main())"]
    env = {k: v for k, v in os.environ.items() if k != "NCAL_DEBUG"}
    res = subprocess.run(
        [*cmd, *_argv(template, files)], capture_output=True, text=True, timeout=300, env=env
    )
    assert res.returncode == 2, res.stderr
    assert "Traceback (most recent call last)" not in res.stderr
    assert res.stderr.splitlines()[-2].startswith("error:")  # then the NCAL_DEBUG hint


def test_disk_full_and_read_only_become_messages_naming_the_file(files, capsys, monkeypatch):
    import ncal._utils.io as io_mod

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_mod.os, "fsync", full)
    out = files["dir"] / "labels_full.csv"
    rc = main(["session", "export", str(files["s"]), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "disk is full" in err and "Traceback" not in err
    assert not out.exists()  # the atomic write left nothing half-written
    msg, code = error_message(PermissionError(errno.EACCES, "Permission denied", "/ro/x.csv"))
    assert code == 2 and msg == "cannot use '/ro/x.csv': permission denied"
    msg, _ = error_message(OSError(errno.EROFS, "Read-only file system", "/mnt/x"))
    assert "read-only" in msg and "/mnt/x" in msg
    msg, code = error_message(KeyError("x"))
    assert code == 2
    msg, code = error_message(ZeroDivisionError("boom"))
    assert code == 3 and "bug" in msg


def test_a_model_typo_leaves_nothing_that_refuses_the_corrected_command(files, capsys):
    from ncal.experiment.store import RunStore

    out = files["dir"] / "typo"
    argv = ["run", "--quiet", "--rounds", "1", "--out", str(out), "--dataset", "digits"]
    assert main([*argv, "--model", "resnt"]) == 2
    assert "`model` must be one of" in capsys.readouterr().err
    assert not (out / "config.json").exists() and not (out / "rounds.jsonl").exists()
    RunStore(out).check_compatible({"settings": {"model": "mlp"}})  # the corrected run may start
