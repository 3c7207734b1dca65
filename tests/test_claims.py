"""Every registered experiment's fast profile: each of its claims must pass."""
import os

import pytest

from dlnotes.experiments import base


@pytest.mark.parametrize("name", list(base.EXPERIMENTS))
def test_experiment_claims_pass(name, tmp_path):
    config = base.load_config(name, "fast")
    claims = base.module(name).run(config, str(tmp_path))
    assert sorted(c.id for c in claims) == sorted(base.EXPERIMENTS[name])
    for c in claims:
        assert c.passed, f"{c.id} failed: measured {c.measured} vs {c.threshold} ({c.details})"
        assert c.figure is None or (c.figure.endswith(".png") and os.path.exists(c.figure)), c.figure
