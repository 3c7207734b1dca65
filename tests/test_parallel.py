"""The grid axis over devices and processes gives the same rows as one device; killed sweeps resume.

The grid has 9 points: it divides by neither 4 devices nor 2 processes, so the padding path runs.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = ["scripts/sweep.py", "--config=configs/sgd_noise.py:fast", "--noprogress", "--config.num_steps=1500",
         "--config.batch_size=8", "--config.sampling=epoch", "--chunk_steps=100",
         "--sweep=optimizer.learning_rate=0.01,0.5,5.0;seed=0:3"]   # 9 points, η = 5 diverges


def _env(devices):
    return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def sweep(wd, *extra, devices=1):
    p = subprocess.run([sys.executable, *SWEEP, f"--workdir={wd}", *extra], cwd=ROOT, env=_env(devices),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return [json.loads(line) for line in (wd / "sweep.jsonl").read_text().splitlines()]


def summary(wd):
    return json.loads((wd / "summary.json").read_text())


def killed_then_rerun(wd, *extra, devices=1, processes=1):
    """Start the sweep, SIGKILL its process group after its 3rd checkpoint, rerun it to the end."""
    proc = subprocess.Popen([sys.executable, *SWEEP, f"--workdir={wd}", *extra], cwd=ROOT, env=_env(devices),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ck = wd / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        steps = [int(d) for d in (os.listdir(ck) if ck.exists() else []) if d.isdigit()]
        if steps and max(steps) >= 300:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (wd / "sweep.jsonl").exists()
    # the newest checkpoint that existed at the kill (one checkpoint holds every process's slice)
    newest = max(int(x) for x in os.listdir(ck) if x.isdigit())
    rows = sweep(wd, *extra, devices=devices)
    assert summary(wd)["resumed_from"] == [newest] * processes, (summary(wd), newest)
    return rows


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    wd = tmp_path_factory.mktemp("one") / "wd"
    rows = sweep(wd, "--noshard")
    s = summary(wd)
    assert (s["devices"], s["processes"], s["padded_points"]) == (1, 1, 9)
    return rows


def _same(rows, ref):
    assert len(rows) == len(ref) == 9
    assert any(r["diverged"] for r in ref) and not all(r["diverged"] for r in ref)
    for a, b in zip(rows, ref):
        assert a["optimizer.learning_rate"] == b["optimizer.learning_rate"] and a["seed"] == b["seed"]
        assert a["diverged"] == b["diverged"] and a["diverged_at_step"] == b["diverged_at_step"]
        if b["final_loss"] is None:
            assert a["final_loss"] is None
        else:
            assert a["final_loss"] == pytest.approx(b["final_loss"], rel=1e-6)


def test_sharded_over_4_cpu_devices_equals_unsharded_and_resumes(reference, tmp_path):
    wd = tmp_path / "wd"
    _same(sweep(wd, devices=4), reference)   # 9 points padded to 12: 3 per device
    s = summary(wd)
    assert (s["devices"], s["processes"], s["padded_points"], s["points_per_device"]) == (4, 1, 12, 3)
    assert s["resumed_from"] == [None]
    wk = tmp_path / "killed"
    killed_then_rerun(wk, devices=4)
    assert (wk / "sweep.jsonl").read_text() == (wd / "sweep.jsonl").read_text()   # bit-identical
    assert summary(wk)["resumed_from"][0] >= 300


def test_two_processes_equal_one_and_resume(reference, tmp_path):
    wd = tmp_path / "wd"
    _same(sweep(wd, "--processes=2"), reference)
    ck = wd / "checkpoints" / "1500" / "default"   # one checkpoint, each process wrote its slice
    assert {"ocdbt.process_0", "ocdbt.process_1"} <= set(os.listdir(ck)), os.listdir(ck)
    s = summary(wd)
    assert (s["devices"], s["processes"], s["padded_points"], s["points_per_device"]) == (2, 2, 10, 5)
    wk = tmp_path / "killed"
    killed_then_rerun(wk, "--processes=2", processes=2)
    assert (wk / "sweep.jsonl").read_text() == (wd / "sweep.jsonl").read_text()   # bit-identical
    assert summary(wk)["resumed_from"][0] >= 300
