"""Config + workdir -> a finished run on disk. Used by ``scripts/train.py`` and ``scripts/sweep.py``.

Above the experiments (it looks an experiment up by its config's name), below the scripts.

train_job: one run; writes config.json, metrics.jsonl (one row per logged step),
learning_curve.png, checkpoints/ (resumed when rerun after a kill), DONE.
sweep_job: a grid in one compiled call; writes sweep.jsonl (one row per point),
sweep.png, checkpoints/, DONE.
"""
from __future__ import annotations

import json
import os
from typing import NamedTuple

import jax
import numpy as np

from dlnotes.errors import ConfigError
from dlnotes.experiments import base as xbase
from dlnotes import hparams as hpmod
from dlnotes.train import plots, sweep as sweepmod, workdir as wd
from dlnotes.train.checkpoint import Checkpointer
from dlnotes.train.runner import Runner


def build_task(config):
    """The experiment's task for this config (validates the config first)."""
    known = {**xbase.EXPERIMENTS, **xbase.PENDING}
    if "experiment" not in config or config.experiment not in known:
        raise ConfigError("experiment", f"unknown experiment {config.get('experiment')!r} "
                                        f"(known: {', '.join(known)})")
    mod = xbase.module(config.experiment)
    if hasattr(mod, "validate"):
        mod.validate(config)
    task = mod.build_task(config)
    task.check_finite()
    return task


def _metric_rows(metrics, log_every: int, num_steps: int) -> list[dict]:
    steps = metrics["steps"]
    evals = metrics["evals"]
    rows = []
    n_eval = len(next(iter(evals.values()))) if evals else num_steps // log_every + 1
    for i in range(n_eval):
        step = i * log_every
        row = {"step": step}
        if i > 0:
            sl = slice(step - log_every, step)
            for name, v in steps.items():
                row[f"train_{name}"] = sweepmod._num(np.nanmean(v[sl])) if np.isfinite(v[sl]).any() else None
        for name, v in evals.items():
            v = np.asarray(v[i])
            row[name] = sweepmod._num(v) if v.ndim == 0 else v.tolist()
        rows.append(row)
    return rows


def train_job(config, workdir: str, *, overwrite: bool = False, progress: bool = True,
              chunk_steps: int | None = None):
    task = build_task(config)
    wd.prepare(workdir, config, overwrite=overwrite, kind="train")
    try:
        return _train(task, config, workdir, progress, chunk_steps)
    finally:
        wd.release(workdir)


def _train(task, config, workdir, progress, chunk_steps):
    runner = Runner(task)
    hp = hpmod.from_config(config)
    key = jax.random.key(int(config.get("seed", 0)))
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    chunk = chunk_steps or int(config.get("chunk_steps", 0)) or None
    res = runner.run(hp, key, chunk_steps=chunk, checkpointer=ckpt, progress="train" if progress else False)
    ckpt.close()
    rows = _metric_rows(res.metrics, task.log_every, task.num_steps)
    sweepmod.write_jsonl(os.path.join(workdir, "metrics.jsonl"), rows)
    plots.learning_curves({"train loss": res.metrics["steps"]["loss"]}, os.path.join(workdir, "learning_curve.png"),
                          title=f"{config.experiment}: diverged={bool(res.state.diverged)}")
    mod = xbase.module(config.experiment)
    if hasattr(mod, "train_figures"):   # an experiment's own figures of a run (e.g. char_lm's bits per character)
        mod.train_figures(config, res.metrics, workdir)
    summary = {"final_loss": sweepmod._num(res.metrics["steps"]["loss"][-1]),
               "diverged": bool(res.state.diverged),
               "diverged_at_step": int(res.state.diverged_at) if bool(res.state.diverged) else None,
               "resumed_from": res.resumed_from}
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    wd.mark_done(workdir)
    return res, summary


def check_sweep(config, spec):
    """Parse and validate a sweep before anything compiles: ``(sweep, points)``."""
    sweep = sweepmod.parse_sweep(spec)
    points = sweepmod.grid_points(config, sweep)
    mod = xbase.module(config.experiment)
    if hasattr(mod, "validate"):
        mod.validate(config)
        for p in points:  # every point must be a valid config
            mod.validate(hpmod.with_changes(config, **{k: v for k, v in p.items() if k != "seed"}))
    return sweep, points


def sweep_kind(spec) -> str:
    """What a sweep workdir holds (saved in config.json; a rerun with another grid is refused)."""
    return f"sweep {json.dumps(sweepmod.parse_sweep(spec), sort_keys=True)}"


def prepare_sweep(config, spec, workdir: str, *, overwrite: bool = False):
    """Validate a sweep and make its workdir ready, before any process compiles (``--processes``):
    this process holds the workdir and hands it to the processes it launches."""
    check_sweep(config, spec)
    wd.prepare(workdir, config, overwrite=overwrite, kind=sweep_kind(spec))
    wd.hand_to_children(workdir)


def sweep_job(config, spec, workdir: str, *, overwrite: bool = False, progress: bool = True,
              chunk_steps: int | None = None, map_batch_size: int | None = None, shard: bool = True,
              library_dots: bool = False):
    """Train the grid; rows to ``workdir/sweep.jsonl`` (written by process 0). ``library_dots``: see
    ``dlnotes.train.runner`` (opt-in library dot calls on CPU, faster for grids of small MLPs).

    The grid axis is sharded over the local devices (``shard``) and split across
    ``jax.distributed`` processes; see ``dlnotes.train.parallel``.
    """
    from dlnotes.train import parallel

    sweep, points = check_sweep(config, spec)
    task = build_task(config)
    kind = sweep_kind(spec)
    lead = jax.process_index() == 0
    if lead:  # process 0 holds the workdir for all (or runs under its launcher's hold)
        wd.prepare(workdir, config, overwrite=overwrite, kind=kind)
    parallel.barrier("dlnotes-prepared")
    if not lead:
        wd.prepare(workdir, config, overwrite=False, kind=kind, hold=False)
    try:
        return _sweep(task, config, sweep, points, workdir, lead, progress, chunk_steps, map_batch_size, shard,
                      library_dots)
    finally:
        wd.release(workdir)


def _sweep(task, config, sweep, points, workdir, lead, progress, chunk_steps, map_batch_size, shard,
           library_dots=False):
    from dlnotes.train import parallel

    sharding = parallel.grid_sharding() if shard else None
    n_local_dev = len(sharding.mesh.devices.flat) if sharding is not None else 1
    padded = parallel.pad_to_multiple(points, jax.process_count() * n_local_dev)
    mine = padded[parallel.process_slice(len(padded))]
    hp, keys = sweepmod.stack_points(config, mine)
    runner = Runner(task, grid=True, map_batch_size=map_batch_size, sharding=sharding, library_dots=library_dots)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))   # one checkpoint, written by all processes
    chunk = chunk_steps or int(config.get("chunk_steps", 0)) or None
    res = runner.run(hp, keys, chunk_steps=chunk, checkpointer=ckpt,
                     progress=f"sweep x{len(points)}" if (progress and lead) else False)
    ckpt.close()
    gathered = parallel.allgather({"diverged": np.asarray(res.state.diverged),
                                   "diverged_at": np.asarray(res.state.diverged_at), "metrics": res.metrics,
                                   "resumed_from": np.asarray([-1 if res.resumed_from is None
                                                               else res.resumed_from])})
    n = len(points)
    full = _Result(state=_State(gathered["diverged"][:n], gathered["diverged_at"][:n]),
                   metrics=jax.tree.map(lambda x: x[:n], gathered["metrics"]))
    rows = sweepmod.sweep_rows(points, full)
    if lead:
        sweepmod.write_jsonl(os.path.join(workdir, "sweep.jsonl"), rows)
        keys_swept = [k for k in sweep if k != "seed"] or ["seed"]
        plots.sweep_figure(rows, os.path.join(workdir, "sweep.png"), x=keys_swept[0],
                           y=keys_swept[1] if len(keys_swept) > 1 else None,
                           curves=full.metrics["steps"]["loss"], title=f"{config.experiment} sweep")
        resumed = [None if r < 0 else int(r) for r in np.asarray(gathered["resumed_from"]).reshape(-1)]
        layout = {"points": n, "padded_points": len(padded), "processes": jax.process_count(),
                  "devices_per_process": n_local_dev, "devices": jax.process_count() * n_local_dev,
                  "points_per_device": len(padded) // (jax.process_count() * n_local_dev),
                  "resumed_from": resumed}
        with open(os.path.join(workdir, "summary.json"), "w") as f:
            json.dump(layout, f, indent=2)
        wd.mark_done(workdir)
    parallel.barrier("dlnotes-written")
    return full, rows


class _State(NamedTuple):
    diverged: np.ndarray
    diverged_at: np.ndarray


class _Result(NamedTuple):
    state: _State
    metrics: dict
