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
    """Checkpoints of a train state (and metrics) under ``directory``.

    In one process the leaves are host arrays. Under ``jax.distributed`` (a sweep split
    across processes) every leaf has the grid as its leading axis and each process holds
    its own slice: a save turns the slices into one global array sharded over all
    processes' devices and every process writes its part of one checkpoint, which orbax
    commits once all have written; a restore gives each process its slice back.
    """

    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self._global = None
        if jax.process_count() > 1:
            from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
            self._global = NamedSharding(Mesh(np.array(jax.devices()), ("grid",)), P("grid"))
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True),
            item_handlers=ocp.StandardCheckpointHandler(),
        )

    def _to_global(self, tree):
        return jax.tree.map(lambda x: jax.make_array_from_process_local_data(self._global, np.asarray(x)),
                            tree)

    def _to_local(self, tree):
        def local(a):
            shards = sorted(a.addressable_shards, key=lambda s: s.index[0].start or 0)
            return np.concatenate([np.asarray(s.data) for s in shards], axis=0)
        return jax.tree.map(local, tree)

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, extra: Any = None) -> None:
        leaves = {str(i): np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}
        item = {"state": leaves, "extra": extra if extra is not None else {}}
        if self._global is not None:
            item = self._to_global(item)
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
                if self._global is None:
                    item = self.manager.restore(step, args=ocp.args.StandardRestore())
                else:
                    meta = self.manager.item_metadata(step)
                    if meta is None:
                        raise ValueError("no item metadata")
                    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=self._global),
                                          getattr(meta, "tree", meta))
                    item = self._to_local(self.manager.restore(step, args=ocp.args.StandardRestore(target)))
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
        if jax.process_index() == 0:
            self._rename_aside(steps)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices("dlnotes-checkpoints-moved-aside")
        self.manager.reload()

    def _rename_aside(self, steps):
        for step in steps:
            src = os.path.join(self.directory, str(step))
            dst = f"{src}.unreadable"
            n = 1
            while os.path.exists(dst):
                n += 1
                dst = f"{src}.unreadable{n}"
            os.rename(src, dst)
            log.warning("moved the unreadable checkpoint aside to %s", dst)

    def close(self):
        self.manager.close()
