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
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and key in lines[0], p.stderr[-2000:]
    assert "Traceback" not in p.stderr
    assert not wd.exists()  # stopped before writing (or compiling) anything


def test_bad_workdir_and_config_file(bad_files):
    p = run(TRAIN + [f"--workdir={bad_files}/file/sub"])
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1 and "file/sub" in p.stderr
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


def test_sigkill_then_rerun_is_bit_identical(tmp_path):
    """Kill real runs at several points (mid-chunk, after the 1st/3rd/6th checkpoint); rerun; compare."""
    args = TRAIN + ["--config.num_steps=3000", "--config.batch_size=8",
                    "--config.sampling=epoch", "--chunk_steps=100"]
    ref = tmp_path / "ref"
    assert run(args + [f"--workdir={ref}"]).returncode == 0
    want = _final(ref)
    landed = 0
    for n_ckpt in (0, 1, 3, 6):
        wd = tmp_path / f"killed{n_ckpt}"
        proc = subprocess.Popen([sys.executable, *args, f"--workdir={wd}"], cwd=ROOT, env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        ck = wd / "checkpoints"
        while time.time() < deadline and proc.poll() is None:
            done = [d for d in (os.listdir(ck) if ck.exists() else []) if d.isdigit()]
            if (n_ckpt == 0 and (wd / "config.json").exists()) or (n_ckpt and len(done) >= min(n_ckpt, 2)
                                                                   and max(map(int, done)) >= 100 * n_ckpt):
                break
            time.sleep(0.02)
        if proc.poll() is not None:  # finished before we could kill it
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        landed += 1
        p = run(args + [f"--workdir={wd}"])
        assert p.returncode == 0, p.stderr[-2000:]
        got = _final(wd)
        assert got[0] == want[0]
        for a, b in zip(got[1], want[1]):
            np.testing.assert_array_equal(a, b)
        assert got[2] == want[2]
        summary = json.loads((wd / "summary.json").read_text())
        assert n_ckpt == 0 or summary["resumed_from"] is None or summary["resumed_from"] >= 100
    assert landed >= 3


def test_corrupt_latest_checkpoint_falls_back(tmp_path, caplog):
    import jax.numpy as jnp
    from dlnotes.train.checkpoint import Checkpointer
    c = Checkpointer(str(tmp_path), max_to_keep=3)
    tree = {"a": jnp.arange(4.0), "b": jnp.ones((2, 2))}
    c.save(10, tree, {"m": np.arange(3)})
    c.save(20, jax_tree_add(tree, 1.0), {"m": np.arange(3)})
    for root, _, files in os.walk(tmp_path / "20"):   # truncate every data file of the newest
        for f in files:
            with open(os.path.join(root, f), "w") as fh:
                fh.write("")
    step, restored, extra = Checkpointer(str(tmp_path)).restore(tree)
    assert step == 10
    np.testing.assert_array_equal(restored["a"], np.arange(4.0))
    assert any("unreadable" in r.getMessage() for r in caplog.records)


def jax_tree_add(tree, v):
    import jax
    return jax.tree.map(lambda x: x + v, tree)
