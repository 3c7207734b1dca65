"""The scripts' persistent compilation cache: on by default, off on request, keyed by the machine."""
import json
import os
import subprocess
import sys

import pytest

from dlnotes import compile_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# compiles one program, reports the cache's hits and misses (jax.monitoring events) and its output
_PROBE = """
import json, jax, jax.numpy as jnp
from jax import monitoring
from dlnotes import compile_cache
seen = {}
monitoring.register_event_listener(lambda name, **kw: seen.__setitem__(name, seen.get(name, 0) + 1))
where = compile_cache.enable()
f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum(0) * 3.0 + jnp.sin(x[:, 0]))
y = f(jnp.arange(12.0).reshape(4, 3) / 7)
print(json.dumps({"dir": where, "hits": seen.get("/jax/compilation_cache/cache_hits", 0),
                  "misses": seen.get("/jax/compilation_cache/cache_misses", 0), "y": [float(v) for v in y]}))
"""


def _probe(env_value):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    env[compile_cache.ENV] = env_value
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_second_process_loads_the_compiled_program_and_computes_the_same(tmp_path):
    cache = str(tmp_path / "xla")
    first = _probe(cache)
    assert first["dir"] == cache and first["hits"] == 0 and first["misses"] >= 1
    assert os.listdir(cache), "nothing was written to the cache"
    second = _probe(cache)
    assert second["hits"] >= 1 and second["misses"] == 0
    assert second["y"] == first["y"]          # bit-identical


def test_off_disables_it(tmp_path):
    out = _probe("off")
    assert out["dir"] is None and out["hits"] == 0 and out["misses"] == 0


def test_default_dir_is_keyed_by_versions_and_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    d = compile_cache.default_dir()
    assert d.startswith(str(tmp_path / "dlnotes" / "xla")) and os.path.basename(d) == compile_cache.fingerprint()
    a = compile_cache.fingerprint()
    monkeypatch.setattr(compile_cache, "_cpu_identity", lambda: "model name=another CPU|flags=sse2")
    assert compile_cache.fingerprint() != a


@pytest.mark.parametrize("value", ["", "OFF", "false"])
def test_disabling_spellings(value):
    assert compile_cache.enable(value) is None
