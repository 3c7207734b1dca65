"""Atomic checkpoints of any pytree (orbax ``CheckpointManager``).

A checkpoint stores the flat leaves of the train state plus the metrics so far;
restoring unflattens them against a template of the same structure, so NNX
``State``s, optax NamedTuples and key data round-trip exactly. orbax writes
into a temporary directory and renames it, so a checkpoint is either complete
or absent; if the newest one still fails to load (truncated or corrupt files),
:meth:`Checkpointer.restore` warns and falls back to the previous one; if none
loads, it warns once more and the run starts from step 0. Only the errors an
unreadable checkpoint raises are caught (``UNREADABLE``); a bug surfaces.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)

# What orbax raises for a truncated, corrupt or foreign checkpoint: missing files (OSError), bad JSON /
# bytes / array metadata or leaves of another shape (ValueError, incl. JSONDecodeError and
# UnicodeDecodeError), a missing item (KeyError).
UNREADABLE = (OSError, ValueError, KeyError)


class Checkpointer:
    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        extra = {"create": True}
        self._primary = jax.process_index()
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
        """``(step, state, extra)`` from the newest loadable checkpoint, or None.

        Unreadable checkpoints newer than the one restored are moved aside (``<step>.unreadable``:
        kept for inspection, out of the way of the run that re-saves those steps)."""
        treedef = jax.tree.structure(template)
        bad = []
        found = None
        for step in reversed(self.all_steps()):
            try:
                item = self.manager.restore(step, args=ocp.args.StandardRestore())
                leaves = [np.asarray(item["state"][str(i)]) for i in range(treedef.num_leaves)]
                ref = jax.tree.leaves(template)
                for a, r in zip(leaves, ref):
                    if a.shape != np.shape(r):
                        raise ValueError(f"leaf shape {a.shape} != expected {np.shape(r)}")
                found = step, jax.tree.unflatten(treedef, leaves), item.get("extra", {})
                break
            except UNREADABLE as e:
                bad.append(step)
                log.warning("checkpoint %s/%d unreadable (%s: %s); trying the previous one",
                            self.directory, step, type(e).__name__, (str(e).splitlines() or [""])[0][:200])
        if bad:
            if found is None:
                log.warning("no readable checkpoint in %s (%d unreadable); starting from step 0",
                            self.directory, len(bad))
            self._move_aside(bad)
        return found

    def _move_aside(self, steps):
        if jax.process_count() > 1 and jax.process_index() != self._primary:
            return
        for step in steps:
            src = os.path.join(self.directory, str(step))
            dst = f"{src}.unreadable"
            n = 1
            while os.path.exists(dst):
                n += 1
                dst = f"{src}.unreadable{n}"
            os.rename(src, dst)
            log.warning("moved the unreadable checkpoint aside to %s", dst)
        self.manager.reload()

    def close(self):
        self.manager.close()
