"""Spreading a sweep's grid axis over devices, processes and hosts.

- **Devices** (GPUs, TPU cores, or CPU devices forced with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=N``): the grid axis is
  sharded with ``NamedSharding(Mesh(devices, ("grid",)), P("grid"))``; ``jit``
  runs each device's slice of points, data replicated.
- **Processes / hosts** (``jax.distributed``): each process trains its own
  contiguous slice of the (padded) grid on its local devices (points are
  independent, so no collective runs during training; a checkpoint is written by
  all processes together, see ``checkpoint.Checkpointer``) — and the final metrics
  are gathered with ``multihost_utils.process_allgather``; process 0 writes the files.
- **Locally**, ``scripts/sweep.py --processes=2`` launches the processes itself,
  one pinned per core (on a small CPU this beats one process: XLA's CPU code for
  tiny batched matmuls gains nothing from a big vmap and one process's threads
  do not fill the cores).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def grid_sharding(devices=None) -> NamedSharding | None:
    """Sharding of the grid axis over ``devices`` (local ones by default); None for 1 device."""
    devices = list(devices if devices is not None else jax.local_devices())
    if len(devices) <= 1:
        return None
    return NamedSharding(Mesh(np.array(devices), ("grid",)), P("grid"))


def pad_to_multiple(points: list, m: int) -> list:
    """Repeat the last point so that ``len`` is a multiple of ``m`` (padding rows are dropped later)."""
    return list(points) + [points[-1]] * ((-len(points)) % m)


def process_slice(n: int) -> slice:
    """This process's contiguous share of ``n`` points (``n`` a multiple of the process count)."""
    per = n // jax.process_count()
    i = jax.process_index()
    return slice(i * per, (i + 1) * per)


def allgather(tree):
    """Concatenate every process's host-local arrays along axis 0 (identity in one process)."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils
    return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))


def barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        multihost_utils.sync_global_devices(name)


def initialize(coordinator: str | None, num_processes: int | None, process_id: int | None) -> None:
    """``jax.distributed.initialize`` (gloo collectives on CPU). With no arguments,
    JAX detects the cluster (SLURM, TPU pods, ...)."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # used only by CPU devices
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PIN_ENV = "DLNOTES_CPU_CORE"


def pin_from_env() -> None:
    """Pin this process to the core named by ``$DLNOTES_CPU_CORE`` (set by :func:`launch_local`)."""
    core = os.environ.get(PIN_ENV)
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(core)})


def launch_local(argv: list[str], n: int, *, pin: bool = True) -> int:
    """Run ``argv`` (a script and its flags) as ``n`` local jax.distributed processes,
    process i pinned to core i mod #cores. Returns the first non-zero exit status."""
    port = free_port()
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    procs = []
    for i in range(n):
        args = [sys.executable, *argv, f"--coordinator=127.0.0.1:{port}", f"--num_processes={n}",
                f"--process_id={i}", "--processes=0"]
        env = dict(os.environ)
        if pin and cores:  # applied by the child itself (pin_from_env), before JAX starts
            env[PIN_ENV] = str(cores[i % len(cores)])
        procs.append(subprocess.Popen(args, env=env, stdout=None if i == 0 else subprocess.DEVNULL))
    codes = [p.wait() for p in procs]
    return next((c for c in codes if c), 0)
