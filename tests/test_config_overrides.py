"""Derived settings follow their inputs on the command line; every config loads, validates and resolves."""
import os
import subprocess
import sys

import pytest

from dlnotes.experiments import base

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("profile", ["fast", "full"])
def test_digits_cnn_steps_follow_epochs_and_batch_size(profile):
    from dlnotes.configs.digits_cnn import N_TRAIN
    c = base.load_config("digits_cnn", profile)
    c.lock()
    assert c.num_steps == 30 * (N_TRAIN // 32) and c.log_every == 5 * (N_TRAIN // 32)
    c.epochs = 200                                   # what --config.epochs=200 does
    assert c.num_steps == 200 * (N_TRAIN // 32)
    c.batch_size = 64
    assert c.num_steps == 200 * (N_TRAIN // 64) and c.log_every == 5 * (N_TRAIN // 64)
    c.num_steps = 11700                              # an explicit step count still wins
    assert c.num_steps == 11700 and c.epochs == 200


def test_override_reaches_the_task_through_the_cli():
    """What scripts/train.py sees after ``--config.epochs=10 --config.batch_size=64``."""
    code = ("import sys; from absl import flags; from ml_collections import config_flags;"
            "config_flags.DEFINE_config_file('config', lock_config=True);"
            "flags.FLAGS(sys.argv);"
            "from dlnotes.experiments import digits_cnn; t = digits_cnn.build_task(flags.FLAGS.config);"
            "print(t.num_steps, t.log_every, t.batch_size)")
    p = subprocess.run([sys.executable, "-c", code, "--config=configs/digits_cnn.py:fast", "--config.epochs=10",
                        "--config.batch_size=64"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert p.returncode == 0, p.stderr[-2000:]
    from dlnotes.configs.digits_cnn import N_TRAIN
    assert p.stdout.split() == [str(10 * (N_TRAIN // 64)), str(5 * (N_TRAIN // 64)), "64"]


@pytest.mark.parametrize("name", list(base.EXPERIMENTS))
def test_every_config_resolves_to_plain_values(name):
    """No config leaf is left as an unresolved reference, and int step counts stay ints."""
    for profile in ("fast", "full"):
        c = base.load_config(name, profile)
        c.to_json_best_effort()
        if "num_steps" in c and "log_every" in c and c.num_steps:
            assert isinstance(c.num_steps, int) and isinstance(c.log_every, int)
