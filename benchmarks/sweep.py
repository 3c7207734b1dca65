"""Sweep benchmark (issue 3): engine vs hand-written JAX vs PyTorch eager, side by side.

Problem: 256 points of y = sin(3x) + 0.05·noise on [−2, 2]; 1→64→1 ReLU MLP;
full-batch SGD; 2000 steps; grid = 8 seeds × 8 learning rates log-spaced 1e-3…1.

    .venv/bin/python benchmarks/sweep.py [--repeats=5] [--torch_runs=64]

Prints medians of wall time after compile and the ratios. The 64-point sweep is
timed several ways: one vmap (also with ``Runner(library_dots=True)``, the opt-in
YNNPACK dots; keys ``*_ynn_*``), lax.map over vmapped blocks, the grid sharded over
2 forced CPU devices (a subprocess), and 2 jax.distributed processes pinned one
per core (subprocesses; timed between barriers, after compiling).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

N, WIDTH, STEPS, SEEDS, LRS = 256, 64, 2000, 8, np.geomspace(1e-3, 1.0, 8)


def problem():
    import jax
    import jax.numpy as jnp
    import optax

    from dlnotes import losses
    from dlnotes.data.synthetic import sine_regression
    from dlnotes.train.loop import Task

    data = {"train": sine_regression(jax.random.key(0), N)}

    def init(key, hp):
        k1, k2, k3 = jax.random.split(key, 3)
        return {"w1": jax.random.normal(k1, (1, WIDTH)), "b1": jax.random.normal(k2, (WIDTH,)),
                "w2": jax.random.normal(k3, (WIDTH, 1)) / jnp.sqrt(WIDTH), "b2": jnp.zeros(1)}, {}

    def forward(p, x):
        return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def loss(p, ms, batch, key, hp):
        return losses.mse(forward(p, batch["x"]), batch["y"]), ({}, ms)

    task = Task(init=init, loss=loss, optimizer=lambda hp: optax.sgd(hp["lr"]), data=data,
                num_steps=STEPS, log_every=STEPS)
    return task, data, init, loss


def grid():
    import jax
    import jax.numpy as jnp
    lrs = jnp.asarray(np.repeat(LRS[None], SEEDS, 0).ravel(), jnp.float32)   # seed-major
    keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in range(SEEDS) for _ in LRS])
    return {"lr": lrs}, keys


def timeit(fn, repeats):
    import jax
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)), first


def raw_scan(data, init, loss):
    """What a researcher writes by hand: init + lax.scan of SGD steps in one jit."""
    import jax

    def train(lr, key):
        k_init, _ = jax.random.split(jax.random.wrap_key_data(key))
        p, _ = init(k_init, None)

        def step(p, _):
            l, g = jax.value_and_grad(lambda q: loss(q, {}, data["train"], None, None)[0])(p)
            return jax.tree.map(lambda a, b: a - lr * b, p, g), l
        return jax.lax.scan(step, p, None, length=STEPS)
    return jax.jit(train)


def main_bench(args):
    """In-process comparisons, interleaved round by round (``harness.compare``)."""
    import jax

    from harness import compare, timed
    from dlnotes.train.runner import Runner

    task, data, init, loss = problem()
    hp, keys = grid()
    r = args.repeats
    out, comparisons = {}, {}
    raw = raw_scan(data, init, loss)
    jax.block_until_ready(raw(hp["lr"][7], keys[7]))

    t0 = time.perf_counter()
    single = Runner(task)
    res = single.run({"lr": hp["lr"][7]}, keys[7])
    jax.block_until_ready(res.state.params)
    first = time.perf_counter() - t0
    one = lambda: jax.block_until_ready(single.run({"lr": hp["lr"][7]}, keys[7]).state.params)  # noqa: E731
    print("engine single run vs hand-written lax.scan:")
    comparisons["single"] = compare({"engine": lambda: timed(one),
                                     "raw scan": lambda: timed(lambda: jax.block_until_ready(
                                         raw(hp["lr"][7], keys[7])))}, repeats=r)
    out["engine_1"] = comparisons["single"]["median_s"]["engine"]
    out["raw_scan_1"] = comparisons["single"]["median_s"]["raw scan"]
    out["engine_1_compile"] = first - out["engine_1"]

    def sequential():
        return jax.block_until_ready([single.run({"lr": hp["lr"][i]}, keys[i]).state.params
                                      for i in range(len(keys))])
    runners = {"vmap": Runner(task, grid=True), "vmap_ynn": Runner(task, grid=True, library_dots=True)}
    for b in (8, 16):
        runners[f"map{b}"] = Runner(task, grid=True, map_batch_size=b)
    for rr in runners.values():
        jax.block_until_ready(rr.run(hp, keys).state.params)   # compile
    fns = {f"sweep {n}": (lambda rr=rr: timed(lambda: jax.block_until_ready(rr.run(hp, keys).state.params)))
           for n, rr in runners.items()}
    print("64-point sweep in one process vs 64 sequential engine runs:")
    comparisons["sweep_1proc"] = compare({**fns, "64 sequential": lambda: timed(sequential)}, repeats=r)
    med = comparisons["sweep_1proc"]["median_s"]
    out["engine_seq_64"] = med["64 sequential"]
    out["engine_vmap_64"] = med["sweep vmap"]
    out["engine_vmap_ynn_64"] = med["sweep vmap_ynn"]
    for b in (8, 16):
        out[f"engine_map{b}_64"] = med[f"sweep map{b}"]
    out["_comparisons"] = comparisons
    return out


def devices_bench(args):
    """In a subprocess with 2 forced CPU devices: the grid sharded over them."""
    from dlnotes.train.parallel import grid_sharding
    from dlnotes.train.runner import Runner
    task, *_ = problem()
    hp, keys = grid()
    out = {}
    for b in (0, 8):
        rr = Runner(task, grid=True, sharding=grid_sharding(), map_batch_size=b or None)
        out[f"engine_2dev{'_map' + str(b) if b else ''}_64"], _ = timeit(lambda: rr.run(hp, keys).state.params,
                                                                         args.repeats)
    print(json.dumps(out))


def worker_bench(args):
    """One of 2 jax.distributed processes: half the grid each, timed between barriers."""
    import jax

    from dlnotes.train import parallel
    parallel.initialize(args.coordinator, 2, args.process_id)
    from dlnotes.train.runner import Runner
    task, *_ = problem()
    hp, keys = grid()
    sl = parallel.process_slice(len(keys))
    mine = ({"lr": hp["lr"][sl]}, keys[sl])
    rr = Runner(task, grid=True, map_batch_size=args.map_batch_size or None, library_dots=args.library_dots)
    jax.block_until_ready(rr.run(*mine).state.params)   # compile
    ts = []
    for _ in range(args.repeats):
        parallel.barrier("start")
        t0 = time.perf_counter()
        jax.block_until_ready(rr.run(*mine).state.params)
        parallel.barrier("end")
        ts.append(time.perf_counter() - t0)
    if args.process_id == 0:
        ynn = "_ynn" if args.library_dots else ""
        print(json.dumps({f"engine_2proc_map{args.map_batch_size}{ynn}_64": float(np.median(ts))}))


def torch_bench(runs):
    try:
        import torch
    except ImportError:
        return None, "torch not installed (pip install -e '.[bench]')"
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    x = torch.linspace(-2, 2, N)[:, None]
    y = torch.sin(3 * x) + 0.05 * torch.randn(x.shape)
    t0 = time.perf_counter()
    for i in range(runs):
        torch.manual_seed(i)
        net = torch.nn.Sequential(torch.nn.Linear(1, WIDTH), torch.nn.ReLU(), torch.nn.Linear(WIDTH, 1))
        opt = torch.optim.SGD(net.parameters(), lr=float(LRS[i % len(LRS)]))
        for _ in range(STEPS):
            opt.zero_grad()
            loss = 0.5 * ((net(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
    return (time.perf_counter() - t0) * 64 / runs, f"torch {torch.__version__}, {runs} runs timed, scaled to 64"


def _sub(args_list, env_extra=None):
    env = dict(os.environ, JAX_PLATFORMS="cpu", **(env_extra or {}))
    p = subprocess.run([sys.executable, __file__, *args_list], env=env, capture_output=True, text=True,
                       timeout=1200)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode or not lines:
        print(f"  ({' '.join(args_list)} failed: {p.stderr.strip().splitlines()[-1:] })")
        return {}
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--torch_runs", type=int, default=64)
    ap.add_argument("--mode", default="main", choices=["main", "devices", "worker"])
    ap.add_argument("--process_id", type=int, default=0)
    ap.add_argument("--coordinator", default=None)
    ap.add_argument("--map_batch_size", type=int, default=0)
    ap.add_argument("--library_dots", action="store_true", help="workers: Runner(library_dots=True)")
    args = ap.parse_args()
    if args.mode == "devices":
        return devices_bench(args)
    if args.mode == "worker":
        from dlnotes.train.parallel import pin_from_env
        pin_from_env()
        return worker_bench(args)

    import jax

    from harness import OTHERS_MAX_CORES, load, others_cores_since, others_start, write_result
    load_start, start = load(), others_start()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}), "
          f"{os.cpu_count()} cores; medians of {args.repeats} after compile; load {load_start:.2f}")
    res = main_bench(args)
    comparisons = res.pop("_comparisons")
    if jax.default_backend() == "cpu":
        res.update(_sub(["--mode=devices", f"--repeats={args.repeats}"],
                        {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}))
        from dlnotes.train.parallel import free_port
        for b, ynn in ((0, False), (0, True), (1, False), (4, False), (8, False)):
            port = free_port()
            procs = [subprocess.Popen([sys.executable, __file__, "--mode=worker", f"--process_id={i}",
                                       f"--coordinator=127.0.0.1:{port}", f"--repeats={args.repeats}",
                                       f"--map_batch_size={b}"] + (["--library_dots"] if ynn else []),
                                      env=dict(os.environ, JAX_PLATFORMS="cpu", DLNOTES_CPU_CORE=str(i % os.cpu_count())),
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                     for i in range(2)]
            outs = [p.communicate(timeout=1200)[0] for p in procs]
            lines = [ln for ln in outs[0].splitlines() if ln.startswith("{")]
            if lines:
                res.update(json.loads(lines[-1]))
    t_torch, note = torch_bench(args.torch_runs) if args.torch_runs else (None, "skipped")

    for k, v in res.items():
        print(f"  {k:28s} {v * 1e3:10.1f} ms")
    load_end = load()
    sweeps = {k: v for k, v in res.items() if k.endswith("_64") and k != "engine_seq_64"}
    best = min(sweeps, key=sweeps.get)
    plain = {k: v for k, v in sweeps.items() if "ynn" not in k}          # without the opt-in library dots
    best_plain = min(plain, key=plain.get)
    print("ratios (lower is better for ours):")
    print(f"  engine single run / raw-JAX scan       {res['engine_1'] / res['raw_scan_1']:.2f}   (target ≤ 1.3)")
    print(f"  engine single-run compile              {res['engine_1_compile']:.2f} s (target ≤ 1.5 s)")
    print(f"  naive vmap sweep / 64 sequential       {res['engine_vmap_64'] / res['engine_seq_64']:.2f}")
    print(f"  best sweep ({best}) / 64 sequential   {sweeps[best] / res['engine_seq_64']:.2f}   (target ≤ 0.5)")
    print(f"  best default sweep ({best_plain}) / 64 sequential   {plain[best_plain] / res['engine_seq_64']:.2f}")
    if t_torch:
        print(f"  PyTorch eager 64 sequential            {t_torch:.1f} s  ({note})")
        print(f"  PyTorch eager / best sweep             {t_torch / sweeps[best]:.0f}×  (target ≥ 80×)")
        print(f"  PyTorch eager / best default sweep     {t_torch / plain[best_plain]:.0f}×")
    else:
        print(f"  PyTorch: {note}")
    others = others_cores_since(start)   # children's CPU counts as ours (they are waited for)
    is_noisy = others is None or others > OTHERS_MAX_CORES
    print(f"  other processes used {others if others is not None else float('nan'):.2f} cores on average "
          f"(load {load_start:.1f} -> {load_end:.1f})" + ("; NOISY: not a result to quote" if is_noisy else ""))
    write_result("sweep", {
        "problem": {"n": N, "width": WIDTH, "steps": STEPS, "seeds": SEEDS, "learning_rates": LRS.tolist()},
        "medians_s": res, "comparisons": comparisons, "torch_eager_64_s": t_torch, "torch_note": note,
        "best_sweep": best, "best_sweep_over_sequential": sweeps[best] / res["engine_seq_64"],
        "best_default_sweep": best_plain, "best_default_sweep_over_sequential": plain[best_plain] / res["engine_seq_64"],
        "torch_over_best_default_sweep": (t_torch / plain[best_plain]) if t_torch else None,
        "torch_over_best_sweep": (t_torch / sweeps[best]) if t_torch else None,
        "engine_over_raw_scan": res["engine_1"] / res["raw_scan_1"], "engine_compile_s": res["engine_1_compile"],
        "note": "subprocess layouts (2 devices, 2 processes) and PyTorch are timed after the in-process "
                "rounds, not interleaved with them",
        "load_start": load_start, "load_end": load_end, "others_cores": others, "noisy": is_noisy})


if __name__ == "__main__":
    main()
