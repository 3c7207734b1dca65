"""An installed (not editable) dlnotes runs its experiments' configs from any directory."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_installed_package_loads_configs(tmp_path):
    target = tmp_path / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--target", str(target), ROOT], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    code = ("import dlnotes, dlnotes.experiments.base as b;"
            "assert dlnotes.__file__.startswith(%r), dlnotes.__file__;"
            "c = b.load_config('lr_stability', 'fast'); print(c.experiment, c.num_steps)" % str(target))
    env = dict(os.environ, PYTHONPATH=str(target), JAX_PLATFORMS="cpu")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["lr_stability", "200"]
