"""The grid axis over devices and processes gives the same rows as one device."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = ["scripts/sweep.py", "--config=configs/sgd_noise.py:fast", "--noprogress", "--config.num_steps=400",
         "--config.batch_size=8", "--config.sampling=epoch",
         "--sweep=optimizer.learning_rate=0.01,0.1,0.5,5.0;seed=0:3"]   # 12 points, η = 5 diverges


def sweep(wd, *extra, devices=1):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    p = subprocess.run([sys.executable, *SWEEP, f"--workdir={wd}", *extra], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return [json.loads(line) for line in (wd / "sweep.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return sweep(tmp_path_factory.mktemp("one") / "wd", "--noshard")


def _same(rows, ref):
    assert len(rows) == len(ref) == 12
    assert any(r["diverged"] for r in ref) and not all(r["diverged"] for r in ref)
    for a, b in zip(rows, ref):
        assert a["optimizer.learning_rate"] == b["optimizer.learning_rate"] and a["seed"] == b["seed"]
        assert a["diverged"] == b["diverged"] and a["diverged_at_step"] == b["diverged_at_step"]
        if b["final_loss"] is None:
            assert a["final_loss"] is None
        else:
            assert a["final_loss"] == pytest.approx(b["final_loss"], rel=1e-6)


def test_sharded_over_4_cpu_devices_equals_unsharded(reference, tmp_path):
    _same(sweep(tmp_path / "wd", devices=4), reference)   # 12 points -> 3 per device


def test_two_processes_equal_one(reference, tmp_path):
    wd = tmp_path / "wd"
    _same(sweep(wd, "--processes=2"), reference)
    assert sorted(os.listdir(wd / "checkpoints")) == ["process_0", "process_1"]
