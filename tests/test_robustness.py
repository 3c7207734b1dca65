"""Runs you can trust: bad input refused in one line, nothing lost, exact resume after SIGKILL."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, JAX_PLATFORMS="cpu")
TRAIN = ["scripts/train.py", "--config=configs/sgd_noise.py:fast", "--noprogress"]


def run(args, **kw):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=600, **kw)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    np.savez(d / "nan.npz", x=np.array([[1.0], [np.nan]]), y=np.array([1.0, 2.0]))
    np.savez(d / "empty.npz", x=np.zeros((0, 2)), y=np.zeros(0))
    (d / "file").write_text("not a directory")
    return d


BAD = {  # name: (extra args, key the one-line error must name)
    "unknown key": (["--config.optimizer.foo=1"], "config.optimizer.foo"),
    "wrong type": (["--config.num_steps=abc"], "config.num_steps"),
    "eta <= 0": (["--config.optimizer.learning_rate=0"], "optimizer.learning_rate"),
    "probability >= 1": (["--config.optimizer.momentum=1.0"], "optimizer.momentum"),
    "batch > data": (["--config.batch_size=100000"], "batch_size"),
    "nan in data": (["--config.data.npz={d}/nan.npz"], "nan.npz"),
    "empty data": (["--config.data.npz={d}/empty.npz"], "empty.npz"),
    "missing data file": (["--config.data.npz={d}/missing.npz"], "missing.npz"),
    "unknown optimizer": (["--config.optimizer.name=rmsprop"], "optimizer.name"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_refused_in_one_line(case, bad_files, tmp_path):
    extra, key = BAD[case]
    wd = tmp_path / "wd"
    p = run(TRAIN + [f"--workdir={wd}"] + [a.format(d=bad_files) for a in extra])
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert not wd.exists()  # stopped before writing (or compiling) anything


def test_bad_workdir_and_config_file(bad_files):
    p = run(TRAIN + [f"--workdir={bad_files}/file/sub"])
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "file/sub" in p.stderr
    p = run(["scripts/train.py", "--config=configs/no_such.py:fast", "--workdir=/tmp/x"])
    assert p.returncode != 0 and p.stderr.strip() == "error: configs/no_such.py: no such config file"
    p = run(["scripts/sweep.py", "--config=configs/sgd_noise.py:fast", "--workdir=/tmp/x",
             "--sweep=optimizer.learning_rate=0.1,-1"])
    assert p.returncode != 0 and "optimizer.learning_rate" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_resume_with_a_different_config_is_refused(tmp_path):
    wd = tmp_path / "wd"
    args = ["scripts/train.py", "--config=configs/lr_stability.py:fast", "--noprogress", f"--workdir={wd}",
            "--chunk_steps=20"]
    # an unfinished run: config.json written, no DONE
    from dlnotes.experiments.base import load_config
    from dlnotes.train import workdir
    workdir.prepare(str(wd), load_config("lr_stability", "fast"))
    workdir.release(str(wd))
    p = run(args + ["--config.optimizer.learning_rate=0.5", "--config.num_steps=100"])
    assert p.returncode != 0
    assert "num_steps" in p.stderr and "optimizer.learning_rate" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def _final(wd):
    from dlnotes.train.checkpoint import Checkpointer
    c = Checkpointer(str(wd / "checkpoints"))
    step = c.all_steps()[-1]
    import orbax.checkpoint as ocp
    item = c.manager.restore(step, args=ocp.args.StandardRestore())
    c.close()
    leaves = item["state"]
    return step, [np.asarray(leaves[k]) for k in sorted(leaves, key=int)], (wd / "metrics.jsonl").read_text()


def _checkpoint_steps(wd, sub="checkpoints"):
    ck = wd / sub
    return sorted(int(d) for d in (os.listdir(ck) if ck.exists() else []) if d.isdigit())


def _start_and_kill(args, wd, n_ckpt, sub="checkpoints", chunk=100):
    """Start ``args`` on ``wd``; SIGKILL its whole process group once ``n_ckpt`` checkpoints exist
    (0: once config.json exists). Returns the newest checkpoint step at the kill (None: none), or
    False if the run finished first."""
    proc = subprocess.Popen([sys.executable, *args, f"--workdir={wd}"], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        done = _checkpoint_steps(wd, sub)
        if (n_ckpt == 0 and (wd / "config.json").exists()) or (n_ckpt and done and done[-1] >= chunk * n_ckpt):
            break
        time.sleep(0.02)
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _checkpoint_steps(wd, sub)
    return done[-1] if done else None


def test_sigkill_then_rerun_resumes_and_is_bit_identical(tmp_path):
    """Kill real runs at several points (mid-chunk, after the 1st/3rd/6th checkpoint); rerun; the rerun
    resumes from the newest checkpoint that existed at the kill and ends bit-identical."""
    args = TRAIN + ["--config.num_steps=3000", "--config.batch_size=8",
                    "--config.sampling=epoch", "--chunk_steps=100"]
    ref = tmp_path / "ref"
    assert run(args + [f"--workdir={ref}"]).returncode == 0
    want = _final(ref)
    landed = 0
    for n_ckpt in (0, 1, 3, 6):
        wd = tmp_path / f"killed{n_ckpt}"
        newest = _start_and_kill(args, wd, n_ckpt)
        if newest is False:  # finished before we could kill it
            continue
        landed += 1
        p = run(args + [f"--workdir={wd}"])
        assert p.returncode == 0, p.stderr[-2000:]
        got = _final(wd)
        assert got[0] == want[0]
        for a, b in zip(got[1], want[1]):
            np.testing.assert_array_equal(a, b)
        assert got[2] == want[2]
        summary = json.loads((wd / "summary.json").read_text())
        assert summary["resumed_from"] == newest, (summary, newest)
        if n_ckpt:
            assert newest >= 100 * n_ckpt
    assert landed >= 3


def _corrupt(step_dir):
    for root, _, files in os.walk(step_dir):   # truncate every file of the checkpoint
        for f in files:
            with open(os.path.join(root, f), "w") as fh:
                fh.write("")


def test_corrupt_checkpoints_through_the_cli(tmp_path):
    """Newest checkpoint corrupt: falls back with a warning, ends bit-identical. All unreadable: a
    warning and a restart from step 0 (never silent), still bit-identical."""
    args = TRAIN + ["--config.num_steps=600", "--config.batch_size=8", "--chunk_steps=100"]
    ref = tmp_path / "ref"
    assert run(args + [f"--workdir={ref}"]).returncode == 0
    want = _final(ref)
    for case in ("newest", "all"):
        wd = tmp_path / case
        newest = _start_and_kill(args, wd, 3)
        assert newest, "run finished before it could be killed"
        steps = _checkpoint_steps(wd)
        for st in (steps[-1:] if case == "newest" else steps):
            _corrupt(wd / "checkpoints" / str(st))
        p = run(args + [f"--workdir={wd}"])
        assert p.returncode == 0, p.stderr[-2000:]
        assert "unreadable" in p.stderr
        summary = json.loads((wd / "summary.json").read_text())
        if case == "newest":
            assert summary["resumed_from"] == steps[-2]
        else:
            assert summary["resumed_from"] is None and "starting from step 0" in p.stderr
        got = _final(wd)
        assert got[0] == want[0] and got[2] == want[2]
        for a, b in zip(got[1], want[1]):
            np.testing.assert_array_equal(a, b)


def test_a_bug_in_restore_surfaces(tmp_path, monkeypatch):
    import jax.numpy as jnp
    from dlnotes.train.checkpoint import Checkpointer
    c = Checkpointer(str(tmp_path))
    c.save(10, {"a": jnp.arange(3.0)})

    def broken(*a, **k):
        raise TypeError("a bug, not an unreadable file")
    monkeypatch.setattr(c.manager, "restore", broken)
    with pytest.raises(TypeError):
        c.restore({"a": jnp.arange(3.0)})


def test_one_workdir_one_run(tmp_path):
    """A second run on a workdir that a live run holds is refused in one line naming the workdir and
    the holder; once the holder is SIGKILLed, the workdir is free again (no stale lock)."""
    args = TRAIN + ["--config.num_steps=200000", "--config.batch_size=8", "--chunk_steps=100"]
    wd = tmp_path / "wd"
    proc = subprocess.Popen([sys.executable, *args, f"--workdir={wd}"], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not _checkpoint_steps(wd):
            time.sleep(0.05)
        p = run(args + [f"--workdir={wd}"])
        assert p.returncode == 2
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and str(wd) in lines[0] and f"pid {proc.pid}" in lines[0], p.stderr[-2000:]
        assert "Traceback" not in p.stderr
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    from dlnotes.train import workdir
    workdir.lock(str(wd))       # free again after SIGKILL
    workdir.release(str(wd))


def test_bad_input_exits_with_status_2(tmp_path):
    p = run(TRAIN + [f"--workdir={tmp_path / 'wd'}", "--config.optimizer.learning_rate=-1"])
    assert p.returncode == 2
    p = run(["scripts/reproduce.py", "--only=C999", f"--workdir={tmp_path / 'r'}"])
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
