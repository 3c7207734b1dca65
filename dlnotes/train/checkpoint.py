"""Atomic checkpoints of any pytree (orbax ``CheckpointManager``).

A checkpoint stores the flat leaves of the train state plus the metrics so far;
restoring unflattens them against a template of the same structure, so NNX
``State``s, optax NamedTuples and key data round-trip exactly. orbax writes
into a temporary directory and renames it, so a checkpoint is either complete
or absent; if the newest one still fails to load (truncated or corrupt files),
:meth:`Checkpointer.restore` warns and falls back to the previous one.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        extra = {"create": True}
        if jax.process_count() > 1:  # each process keeps its own checkpoints (its slice of a grid)
            i = jax.process_index()
            extra["multiprocessing_options"] = ocp.options.MultiprocessingOptions(
                primary_host=i, active_processes={i}, barrier_sync_key_prefix=f"p{i}")
            extra["create"] = False
            os.makedirs(self.directory, exist_ok=True)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, enable_async_checkpointing=False, **extra),
        )

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, extra: Any = None) -> None:
        leaves = {str(i): np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}
        item = {"state": leaves, "extra": extra if extra is not None else {}}
        self.manager.save(int(step), args=ocp.args.StandardSave(item), force=True)
        self.manager.wait_until_finished()

    def restore(self, template: Any):
        """``(step, state, extra)`` from the newest loadable checkpoint, or None."""
        treedef = jax.tree.structure(template)
        for step in reversed(self.all_steps()):
            try:
                item = self.manager.restore(step, args=ocp.args.StandardRestore())
                leaves = [np.asarray(item["state"][str(i)]) for i in range(treedef.num_leaves)]
                ref = jax.tree.leaves(template)
                for a, r in zip(leaves, ref):
                    if a.shape != np.shape(r):
                        raise ValueError(f"leaf shape {a.shape} != expected {np.shape(r)}")
                return step, jax.tree.unflatten(treedef, leaves), item.get("extra", {})
            except Exception as e:  # noqa: BLE001 — any unreadable checkpoint falls back
                log.warning("checkpoint %s/%d unreadable (%s: %s); trying the previous one",
                            self.directory, step, type(e).__name__, str(e).splitlines()[0][:200])
        return None

    def close(self):
        self.manager.close()
