"""XLA's persistent compilation cache for the scripts: a second run of a program loads its compiled code.

Every script (``train.py``, ``sweep.py``, ``reproduce.py``, ``sample.py``) calls :func:`enable` before
it compiles anything, so rerunning a config — after a kill, with another seed, or another float
hyperparameter (those are traced, so the program is the same) — skips XLA's compile of the programs
it already built. The digits CNN's first call drops from ≈ 6 s to ≈ 2 s this way (BUILD.md).

Where: ``$DLNOTES_COMPILATION_CACHE`` if set (``off`` disables it), else
``~/.cache/dlnotes/xla/<fingerprint>``. The fingerprint folds in what a compiled CPU executable
depends on — jax/jaxlib versions, the machine's architecture, the CPU model and its feature flags —
so a home directory shared between machines, or a reinstall of another jaxlib, never serves code
built for something else (XLA's own key does not include the host CPU's features).

Library code never calls this: importing ``dlnotes`` changes no global JAX setting.
"""
from __future__ import annotations

import hashlib
import os
import platform

ENV = "DLNOTES_COMPILATION_CACHE"


def _cpu_identity() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return platform.processor()
    keep = {"model name", "flags", "Features", "CPU part"}
    seen = {}
    for ln in lines:
        k, _, v = ln.partition(":")
        k = k.strip()
        if k in keep and k not in seen:
            seen[k] = v.strip()
    return "|".join(f"{k}={seen[k]}" for k in sorted(seen))


def fingerprint() -> str:
    """A short hash of jax/jaxlib versions, architecture, CPU model and CPU feature flags."""
    import jax
    import jaxlib

    parts = [jax.__version__, getattr(jaxlib, "__version__", "?"), platform.machine(), platform.system(),
             _cpu_identity()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def default_dir() -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "dlnotes", "xla", fingerprint())


def enable(path: str | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache; returns its directory, or None if disabled.

    ``path`` (else ``$DLNOTES_COMPILATION_CACHE``, else :func:`default_dir`); ``"off"`` disables.
    Every program is cached, however short its compile (the eager ops that prepare data add up).
    A directory that cannot be created disables the cache rather than failing the run.
    """
    import jax

    path = path if path is not None else os.environ.get(ENV)
    if path is not None and path.strip().lower() in ("", "off", "0", "false", "none"):
        return None
    path = os.path.abspath(os.path.expanduser(path or default_dir()))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
