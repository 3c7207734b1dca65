"""Training throughput of C23's digits CNN: the engine vs the same net in PyTorch eager.

Model (configs/digits_cnn.py): conv 3×3·16 → ReLU → conv 3×3·32 → ReLU → 2×2 max pool →
dense 10 (9,930 parameters) on 1,257 8×8 training digits; Adam 1e-3, batch 32, epochs
with reshuffling, no augmentation, the same number of steps on both sides.

    .venv/bin/python benchmarks/cnn.py [--steps=600] [--repeats=5] [--no_compile]

Ours: ``digits_cnn.build_task`` through ``Runner`` (one compiled ``lax.scan``), timed after a
warm-up run that compiles, fresh seed key per repeat. Training only on both sides: the task's
evaluation (every split's accuracy at step 0 and at the end) is switched off, as PyTorch's loop
has none. The first call (compile included) is reported both ways: training only, and as
``train.py`` meets it, with the evaluation compiled in; and in fresh processes (5 rounds, medians):
both ways without XLA's persistent compilation cache, and with the evaluation and the cache a previous
process filled (the scripts enable it).
PyTorch: the same loop in eager mode and with ``torch.compile`` of the step (default threads); one net,
optimizer and compiled step serve every run, re-initialized in place (new seed, zero Adam state) before it.
Rounds interleave ours / eager / compiled (``harness.compare``): the median per-round ratio is the
result; also XLA's cost analysis of the compiled chunk (FLOPs and bytes per step) and the fraction
of the measured matmul peak. Writes ``benchmarks/results/cnn.json``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def config(steps: int):
    from dlnotes.experiments import base
    from dlnotes import hparams as hpmod

    cfg = base.load_config("digits_cnn", "full")
    return hpmod.with_changes(cfg, **{"augment.enabled": False, "num_steps": steps, "log_every": steps})


def make_ours(steps: int):
    """(one timed run -> seconds, first call incl. compile in s, XLA cost analysis of the compiled chunk)."""
    import jax

    from harness import engine_timer
    from dlnotes.experiments import digits_cnn
    from dlnotes import hparams as hpmod
    from dlnotes.train.runner import Runner

    import dataclasses

    cfg = config(steps)
    hp = hpmod.from_config(cfg)
    built = digits_cnn.build_task(cfg)   # the data (and its eager ops) before the clock, as for training only
    t0 = time.perf_counter()
    full = Runner(built)
    jax.block_until_ready(full.run(hp, jax.random.key(0)).state.params)
    first_with_eval = time.perf_counter() - t0
    task = dataclasses.replace(built, evaluate=None)
    runner = Runner(task)
    run_once, first = engine_timer(runner, hp)
    cost = {}
    try:
        import jax.numpy as jnp
        state, _ = runner.init(hp, jax.random.key(0))
        # one training step on its own (XLA counts a scan's body once, not per iteration)
        from dlnotes.train.loop import epoch_permutation
        perm = epoch_permutation(task, jax.random.key(0), 0)   # epoch sampling slices a permutation
        step = jax.jit(lambda s, h, d, t: runner.engine.step(s, h, d, t, perm))
        ca = step.lower(state, jax.tree.map(jnp.asarray, hp), task.data, jnp.int32(1)).compile().cost_analysis()
        ca = ca[0] if isinstance(ca, (list, tuple)) else ca
        cost = {"flops_per_step": float(ca.get("flops", float("nan"))),
                "bytes_per_step": float(ca.get("bytes accessed", float("nan")))}
    except Exception as e:  # noqa: BLE001 — cost analysis is informative only
        cost = {"error": f"{type(e).__name__}: {e}"}
    return run_once, {"training_only": first, "with_evaluation": first_with_eval}, cost


def make_torch(steps: int, compiled: bool = False):
    """One timed run of the same net and loop in PyTorch (eager, or ``torch.compile`` of the step)."""
    import torch
    from torch import nn

    from dlnotes.data.images import load_digits_split

    data = load_digits_split(0, n_val=180, n_test=360)
    x = torch.tensor(np.transpose(data["train"]["x"], (0, 3, 1, 2)))   # NCHW
    y = torch.tensor(data["train"]["y"]).long()
    batch = 32
    per_epoch = len(y) // batch
    seed = iter(range(10**6))

    # One net, optimizer and (compiled) step for all runs, re-initialized in place before each: a new
    # net per run made torch.compile recompile inside every timed run (its guards hold the optimizer),
    # and after 8 recompiles dynamo fell back to eager (12-02: torch.compile's rounds were 1.9 s
    # against eager's 1.1 s).
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 32, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        return loss

    fn = torch.compile(step) if compiled else step

    def reset():
        """Fresh initial weights (a new seed) and zero Adam moments and counts, all in place."""
        torch.manual_seed(next(seed))
        with torch.no_grad():
            for m in net.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            for state in opt.state.values():
                for v in state.values():
                    if torch.is_tensor(v):
                        v.zero_()

    def run_once():
        reset()
        t0 = time.perf_counter()
        perm = None
        for t in range(steps):
            if t % per_epoch == 0:
                perm = torch.randperm(len(y))
            idx = perm[(t % per_epoch) * batch:(t % per_epoch + 1) * batch]
            fn(x[idx], y[idx])
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    run_once()  # warm-up (compiles under torch.compile: its first step, and again once Adam has state)
    return run_once, time.perf_counter() - t0


def matmul_peak():
    """GFLOP/s of a 2048² float32 matmul in JAX (median of 5): the machine's practical peak."""
    import jax
    import jax.numpy as jnp
    a = jnp.ones((2048, 2048), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        ts.append(time.perf_counter() - t0)
    return 2 * 2048 ** 3 / statistics.median(ts) / 1e9


def first_call_child(cache: str, training_only: bool = False) -> None:
    """In a fresh process: seconds of the first ``Runner.run`` (compile included, evaluation compiled in,
    as ``train.py`` meets it, unless ``training_only``), with the persistent compilation cache at
    ``cache`` ("off": none)."""
    import dataclasses
    import json

    import jax

    from dlnotes import compile_cache
    from dlnotes import hparams as hpmod
    from dlnotes.experiments import digits_cnn
    from dlnotes.train.runner import Runner

    compile_cache.enable(cache)
    cfg = config(600)
    hp = hpmod.from_config(cfg)
    task = digits_cnn.build_task(cfg)
    if training_only:
        task = dataclasses.replace(task, evaluate=None)
    t0 = time.perf_counter()
    jax.block_until_ready(Runner(task).run(hp, jax.random.key(0)).state.params)
    print(json.dumps({"first_call_s": time.perf_counter() - t0}))


def first_calls(rounds: int = 5) -> dict:
    """First call in fresh processes (medians of ``rounds``, kinds alternating): without a compilation
    cache, evaluation compiled in (``no_cache``) and training only (``no_cache_training_only``), and with
    the cache a previous process filled (``warm_cache``: what a rerun of ``train.py`` meets; the scripts
    enable it, ``compile_cache``). Five rounds: a fresh process's compile swings by ±25% from run to run
    on this shared machine (and by ~1.3× from hour to hour), so ``runs`` keeps every value."""
    import tempfile

    from harness import child_json

    kinds = {"no_cache": ("off", False), "no_cache_training_only": ("off", True), "warm_cache": (None, False)}
    out = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory() as d:
        for r in range(rounds + 1):
            for kind, (cache, train_only) in kinds.items():
                if r == rounds and kind != "warm_cache":
                    continue
                args = ["--first_call_child", cache or os.path.join(d, "xla")] + (["--training_only"] if train_only else [])
                first = child_json(__file__, args, timeout=600)["first_call_s"]
                if kind == "warm_cache" and r == 0:
                    continue  # this one filled the cache
                out[kind].append(first)
    return {k: statistics.median(v) for k, v in out.items()} | {"runs": out}


def main(argv=None):
    from harness import compare, write_result

    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no_compile", action="store_true", help="skip torch.compile")
    p.add_argument("--first_call_child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--training_only", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.first_call_child:
        return first_call_child(a.first_call_child, a.training_only)
    print(f"digits CNN, batch 32, {a.steps} steps, {a.repeats} interleaved rounds; load {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    ours, first, cost = make_ours(a.steps)
    fns = {"ours": ours}
    extra = {"ours_first_call_s": first, "cost_analysis": cost}
    first_str = f"{first['training_only']:.2f} s training only, {first['with_evaluation']:.2f} s with evaluation"
    try:
        import torch  # noqa: F401
        fns["torch eager"], _ = make_torch(a.steps)
        if not a.no_compile:
            fns["torch.compile"], extra["torch_compile_first_s"] = make_torch(a.steps, compiled=True)
    except ImportError:
        print("PyTorch not installed: ours only (pip install -e '.[bench]')")
    cmp = compare(fns, repeats=a.repeats)
    images = a.steps * 32
    ips = {n: images / t for n, t in cmp["median_s"].items()}
    peak = matmul_peak()
    flops = cost.get("flops_per_step")
    frac = flops * a.steps / cmp["median_s"]["ours"] / 1e9 / peak if flops else None
    print("images/s: " + ", ".join(f"{n} {v:,.0f}" for n, v in ips.items())
          + f"; ours' first call (compile included) {first_str}; XLA cost analysis {cost}; "
          + (f"ours at {100 * frac:.1f}% of the {peak:.0f} GFLOP/s matmul peak" if frac else ""))
    fresh = first_calls()
    rng = {k: f"{min(v):.2f}–{max(v):.2f}" for k, v in fresh["runs"].items()}
    print(f"first call in a fresh process (evaluation compiled in): {fresh['no_cache']:.2f} s without a "
          f"compilation cache (range {rng['no_cache']}; {fresh['no_cache_training_only']:.2f} s training only, "
          f"range {rng['no_cache_training_only']}), {fresh['warm_cache']:.2f} s with the cache a previous run "
          f"filled (medians of {len(fresh['runs']['no_cache'])})")
    extra["fresh_process_first_call_s"] = fresh
    write_result("cnn", {"steps": a.steps, "batch": 32, "comparison": cmp, "images_per_s": ips,
                         "matmul_peak_gflops": peak, "fraction_of_peak": frac, **extra})


if __name__ == "__main__":
    main()
