"""Training throughput of C23's digits CNN: the engine vs the same net in PyTorch eager.

Model (configs/digits_cnn.py): conv 3×3·16 → ReLU → conv 3×3·32 → ReLU → 2×2 max pool →
dense 10 (9,930 parameters) on 1,257 8×8 training digits; Adam 1e-3, batch 32, epochs
with reshuffling, no augmentation, the same number of steps on both sides.

    .venv/bin/python benchmarks/cnn.py [--steps=600] [--repeats=3]

Ours: ``digits_cnn.build_task`` through ``Runner`` (one compiled ``lax.scan``; evaluation only
at step 0 and the end), timed after a warm-up run that compiles, fresh seed key per repeat.
PyTorch: ``torch.nn`` eager loop on CPU tensors (default threads). Prints the median
images/s of ``repeats`` runs each and the ratio. Skips PyTorch with a message if it is missing.
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


def config(steps: int):
    from dlnotes.experiments import base
    from dlnotes import hparams as hpmod

    cfg = base.load_config("digits_cnn", "full")
    return hpmod.with_changes(cfg, **{"augment.enabled": False, "num_steps": steps, "log_every": steps})


def bench_ours(steps: int, repeats: int):
    import jax

    from dlnotes.experiments import digits_cnn
    from dlnotes import hparams as hpmod
    from dlnotes.train.runner import Runner

    cfg = config(steps)
    task = digits_cnn.build_task(cfg)
    runner = Runner(task)
    hp = hpmod.from_config(cfg)
    t0 = time.perf_counter()
    jax.block_until_ready(runner.run(hp, jax.random.key(100)).state.params)
    first = time.perf_counter() - t0
    times, acc = [], None
    for r in range(repeats):
        t0 = time.perf_counter()
        res = runner.run(hp, jax.random.key(r))
        jax.block_until_ready(res.state.params)
        times.append(time.perf_counter() - t0)
        acc = float(np.asarray(res.metrics["evals"]["test_acc"])[-1])
    return {"first_s": first, "times": times, "test_acc": acc, "batch": cfg.batch_size}


def bench_torch(steps: int, repeats: int):
    import torch
    from torch import nn

    from dlnotes.data.images import load_digits_split

    data = load_digits_split(0, n_val=180, n_test=360)
    x = torch.tensor(np.transpose(data["train"]["x"], (0, 3, 1, 2)))   # NCHW
    y = torch.tensor(data["train"]["y"]).long()
    xt = torch.tensor(np.transpose(data["test"]["x"], (0, 3, 1, 2)))
    yt = torch.tensor(data["test"]["y"]).long()
    batch = 32
    per_epoch = len(y) // batch

    def run(seed):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 32, 10))
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        t0 = time.perf_counter()
        perm = None
        for t in range(steps):
            if t % per_epoch == 0:
                perm = torch.randperm(len(y))
            idx = perm[(t % per_epoch) * batch:(t % per_epoch + 1) * batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
        elapsed = time.perf_counter() - t0
        with torch.no_grad():
            acc = float((net(xt).argmax(1) == yt).float().mean())
        return elapsed, acc, sum(p.numel() for p in net.parameters())

    run(100)  # warm-up
    out = [run(r) for r in range(repeats)]
    return {"times": [o[0] for o in out], "test_acc": out[-1][1], "params": out[-1][2], "batch": batch,
            "threads": torch.get_num_threads(), "version": torch.__version__}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"digits CNN, batch 32, {a.steps} steps, median of {a.repeats}; load average at start {load:.2f} "
          f"on {os.cpu_count()} CPUs")
    ours = bench_ours(a.steps, a.repeats)
    t_ours = statistics.median(ours["times"])
    ips_ours = a.steps * ours["batch"] / t_ours
    print(f"engine (one lax.scan): {t_ours:.3f} s  ({ips_ours:,.0f} images/s; runs "
          + ", ".join(f"{t:.3f}" for t in ours["times"]) + f"; first call incl. compile {ours['first_s']:.2f} s; "
          f"test acc {ours['test_acc']:.3f})")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch not installed: skipping the PyTorch side (pip install torch==2.13.0)")
        return
    tt = bench_torch(a.steps, a.repeats)
    t_torch = statistics.median(tt["times"])
    ips_torch = a.steps * tt["batch"] / t_torch
    print(f"PyTorch {tt['version']} eager ({tt['threads']} threads, {tt['params']} params): {t_torch:.3f} s  "
          f"({ips_torch:,.0f} images/s; runs " + ", ".join(f"{t:.3f}" for t in tt["times"])
          + f"; test acc {tt['test_acc']:.3f})")
    print(f"ratio engine / PyTorch throughput: {ips_ours / ips_torch:.2f}x")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at end {load:.2f}")


if __name__ == "__main__":
    main()
