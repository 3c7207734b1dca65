"""Compile time of a first run, per experiment: what a user waits for in ``train.py`` and ``make test``.

Each measurement is a fresh process (no persistent compilation cache) that builds an experiment's task
from its fast config and times the first ``Runner.run`` (compile included, evaluation compiled in),
summing XLA's backend compile time over the programs it built (``jax.monitoring``'s
``/jax/core/compile/backend_compile_duration``; tracing and lowering to MLIR are reported apart).
Two ways, alternating process by process (``harness.compare``): ours (init compiled at LLVM level 1 on
CPU, ``runner.INIT_OPTIONS``; the evaluation compiled once as its own function when chunks hold few
blocks, ``runner.EVAL_APART_MAX_BLOCKS``; a zero dropout / drop-path rate compiled in as a constant,
``hparams.freeze_zero_switches``; the task's CPU compiler options, ``Task.cpu_compiler_options``: XLA's
loop emitters for the digits CNN and conv_geometry) against the runner as it was before all four (the baseline:
INIT_OPTIONS emptied, EVAL_APART_MAX_BLOCKS = 0, the freeze off and the task's options dropped in the child,
so init compiles at XLA's default level, every chunk compiles the evaluation in, a zero rate's random branch
too, with XLA's default emitters). The ratio per experiment is the median of the per-round
ratios of the first call's wall time; the compile seconds are medians too.

    .venv/bin/python benchmarks/compile.py [--rounds=3] [--only=digits_cnn,transformer]

Writes ``benchmarks/results/compile.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

EXPERIMENTS = ("digits_cnn", "normalization", "regularization", "transformer", "gnn", "conv_geometry")
EVENTS = {"backend_compile_s": "/jax/core/compile/backend_compile_duration",
          "trace_s": "/jax/core/compile/jaxpr_trace_duration",
          "lower_s": "/jax/core/compile/jaxpr_to_mlir_module_duration"}


def child(name: str, baseline: bool) -> None:
    """In a fresh process: the first ``Runner.run`` of ``name``'s fast config; prints one JSON line."""
    import dataclasses
    import importlib

    import jax
    import jax.monitoring as monitoring

    from dlnotes import hparams as hpmod
    from dlnotes.experiments import base
    from dlnotes.train import runner as runner_mod

    if baseline:
        runner_mod.INIT_OPTIONS = {}
        runner_mod.EVAL_APART_MAX_BLOCKS = 0
        hpmod.freeze_zero_switches = dict   # zero dropout / drop-path rates traced, their branch compiled
    events: list = []
    armed = [False]
    monitoring.register_event_duration_secs_listener(
        lambda event, duration, **kw: armed[0] and events.append((event, duration)))
    cfg = base.load_config(name, "fast")
    task = importlib.import_module(f"dlnotes.experiments.{name}").build_task(cfg)
    if baseline:   # XLA's default (fusion) emitters, not the task's CPU options
        task = dataclasses.replace(task, cpu_compiler_options=None)
    hp = hpmod.from_config(cfg)
    armed[0] = True
    t0 = time.perf_counter()
    jax.block_until_ready(runner_mod.Runner(task).run(hp, jax.random.key(0)).state.params)
    out = {"first_call_s": time.perf_counter() - t0}
    for key, event in EVENTS.items():
        out[key] = sum(d for e, d in events if e == event)
    out["backend_compiles"] = [round(d, 3) for e, d in events if e == EVENTS["backend_compile_s"]]
    print(json.dumps(out))


def spawn(name: str, baseline: bool) -> dict:
    from harness import child_json

    return child_json(__file__, ["--child", name] + (["--baseline"] if baseline else []),
                      env={"DLNOTES_COMPILATION_CACHE": "off"})


def main(argv=None):
    from harness import compare, write_result

    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", default=",".join(EXPERIMENTS))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return child(a.child, a.baseline)
    print(f"first-run compile time, fresh processes, {a.rounds} interleaved rounds; load {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    results = {}
    for name in a.only.split(","):
        details = {"ours": [], "before": []}

        def run(kind, baseline):
            def once():
                d = spawn(name, baseline)
                details[kind].append(d)
                return d["first_call_s"]
            return once
        print(f"{name}:")
        cmp = compare({"ours": run("ours", False), "before": run("before", True)}, repeats=a.rounds)
        med = {kind: {k: statistics.median(d[k] for d in runs) for k in ("first_call_s", *EVENTS)}
               for kind, runs in details.items()}
        print(f"  medians: " + "; ".join(f"{kind} first call {m['first_call_s']:.2f} s, backend compile "
                                          f"{m['backend_compile_s']:.2f} s, trace {m['trace_s']:.2f} s, lower "
                                          f"{m['lower_s']:.2f} s" for kind, m in med.items()))
        results[name] = {"comparison": cmp, "medians": med, "runs": details}
    write_result("compile", {"experiments": results, "rounds": a.rounds,
                             "note": "fresh processes, no persistent cache, fast configs, evaluation included; "
                                     "'before' = init at XLA's default level, the evaluation compiled into "
                                     "init and every chunk, zero dropout / drop-path rates traced, XLA's default "
                                     "emitters (no task CPU options)"})


if __name__ == "__main__":
    main()
