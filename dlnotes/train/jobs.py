"""Config + workdir -> a finished run on disk. Used by ``scripts/train.py`` and ``scripts/sweep.py``.

train_job: one run; writes config.json, metrics.jsonl (one row per logged step),
learning_curve.png, checkpoints/ (resumed when rerun after a kill), DONE.
sweep_job: a grid in one compiled call; writes sweep.jsonl (one row per point),
sweep.png, checkpoints/, DONE.
"""
from __future__ import annotations

import json
import os

import numpy as np

from dlnotes.experiments import base as xbase
from dlnotes.train import hparams as hpmod
from dlnotes.train import plots, sweep as sweepmod, workdir as wd
from dlnotes.train.checkpoint import Checkpointer
from dlnotes.train.runner import Runner


def build_task(config):
    """The experiment's task for this config (validates the config first)."""
    mod = xbase.module(config.experiment)
    if hasattr(mod, "validate"):
        mod.validate(config)
    return mod.build_task(config)


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
    runner = Runner(task)
    hp = hpmod.from_config(config)
    import jax
    key = jax.random.key(int(config.get("seed", 0)))
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    chunk = chunk_steps or int(config.get("chunk_steps", 0)) or None
    res = runner.run(hp, key, chunk_steps=chunk, checkpointer=ckpt, progress="train")
    ckpt.close()
    rows = _metric_rows(res.metrics, task.log_every, task.num_steps)
    sweepmod.write_jsonl(os.path.join(workdir, "metrics.jsonl"), rows)
    plots.learning_curves({"train loss": res.metrics["steps"]["loss"]}, os.path.join(workdir, "learning_curve.png"),
                          title=f"{config.experiment}: diverged={bool(res.state.diverged)}")
    summary = {"final_loss": sweepmod._num(res.metrics["steps"]["loss"][-1]),
               "diverged": bool(res.state.diverged),
               "diverged_at_step": int(res.state.diverged_at) if bool(res.state.diverged) else None,
               "resumed_from": res.resumed_from}
    with open(os.path.join(workdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    wd.mark_done(workdir)
    return res, summary


def sweep_job(config, spec, workdir: str, *, overwrite: bool = False, progress: bool = True,
              chunk_steps: int | None = None, map_batch_size: int | None = None, sharding=None):
    sweep = sweepmod.parse_sweep(spec)
    points = sweepmod.grid_points(config, sweep)
    task = build_task(config)
    mod = xbase.module(config.experiment)
    for p in points:  # every point must be a valid config
        if hasattr(mod, "validate"):
            c = config.copy_and_resolve_references()
            with c.unlocked():
                for k, v in p.items():
                    _set(c, k, v)
            mod.validate(c)
    wd.prepare(workdir, config, overwrite=overwrite, kind=f"sweep {json.dumps(sweep, sort_keys=True)}")
    hp, keys = sweepmod.stack_points(config, points)
    runner = Runner(task, grid=True, map_batch_size=map_batch_size, sharding=sharding)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
    chunk = chunk_steps or int(config.get("chunk_steps", 0)) or None
    res = runner.run(hp, keys, chunk_steps=chunk, checkpointer=ckpt, progress=f"sweep x{len(points)}")
    ckpt.close()
    rows = sweepmod.sweep_rows(points, res)
    sweepmod.write_jsonl(os.path.join(workdir, "sweep.jsonl"), rows)
    keys_swept = [k for k in sweep if k != "seed"] or ["seed"]
    plots.sweep_figure(rows, os.path.join(workdir, "sweep.png"), x=keys_swept[0],
                       y=keys_swept[1] if len(keys_swept) > 1 else None,
                       curves=res.metrics["steps"]["loss"], title=f"{config.experiment} sweep")
    wd.mark_done(workdir)
    return res, rows


def _set(config, path: str, value):
    node = config
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value
