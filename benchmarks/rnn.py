"""LSTM training throughput: the engine vs ``torch.nn.LSTM`` and vs an LSTM cell looped in Python (PyTorch eager).

Problem (issue 11): one LSTM layer, T = 50, batch 32, input 32, H = 128, a linear readout of the last
hidden state to 10 classes, cross-entropy, Adam 1e-3; forward + backward + update per step.

    .venv/bin/python benchmarks/rnn.py [--steps=100] [--repeats=5]

Ours: ``dlnotes.models.rnn.Recurrent("lstm")`` + ``nnx.Linear`` through ``models.base.functional``
and the engine (``Task`` + ``Runner``: ``steps`` steps in one compiled ``lax.scan``, batches drawn
with replacement from 1024 fixed random sequences), timed after a warm-up run that compiles.
PyTorch: ``torch.nn.LSTM`` (fused C++ kernel) and a Python loop over ``torch.nn.LSTMCell``, same
sizes, same number of steps, CPU, default threads. Rounds are interleaved (``harness.compare``);
sequences/s = steps · 32 / time. Results: ``benchmarks/results/rnn.json``.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

T, B, D, H, C, N = 50, 32, 32, 128, 10, 1024


def make_ours(steps: int):
    import jax
    import optax
    from flax import nnx

    from dlnotes.models.base import functional
    from dlnotes.models.rnn import Recurrent
    from dlnotes.nn.recurrent import cell_hidden
    from dlnotes.train.loop import Task
    from dlnotes.train.runner import Runner

    class LSTMReadout(nnx.Module):
        def __init__(self, rngs):
            self.rnn = Recurrent("lstm", D, H, rngs=rngs)
            self.out = nnx.Linear(H, C, rngs=rngs)

        def __call__(self, x, *, train=False, key=None):
            carry, _ = self.rnn(x)
            return self.out(cell_hidden(carry))

    model = functional(lambda rngs, hp: LSTMReadout(rngs))
    kx, ky = jax.random.split(jax.random.key(0))
    data = {"train": {"x": jax.random.normal(kx, (N, T, D)), "y": jax.random.randint(ky, (N,), 0, C)}}

    def loss(params, ms, batch, key, hp):
        logits, ms = model.apply(params, ms, batch["x"])
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean(), ({}, ms)

    task = Task(init=model.init, loss=loss, optimizer=lambda hp: optax.adam(1e-3), data=data, num_steps=steps,
                batch_size=B, sampling="replacement", log_every=steps)
    runner = Runner(task)
    counter = iter(range(10 ** 6))

    def run():
        import time
        res = runner.run({}, jax.random.key(next(counter)))
        t0 = time.perf_counter()
        jax.block_until_ready(res.state.params)
        return time.perf_counter() - t0

    def timed():
        import time
        t0 = time.perf_counter()
        res = runner.run({}, jax.random.key(next(counter)))
        jax.block_until_ready(res.state.params)
        return time.perf_counter() - t0

    import time
    t0 = time.perf_counter()
    run()
    compile_s = time.perf_counter() - t0
    return timed, compile_s


def make_torch(steps: int, looped: bool):
    import time

    import torch

    torch.manual_seed(0)
    x_all, y_all = torch.randn(N, T, D), torch.randint(0, C, (N,))
    if looped:
        cell = torch.nn.LSTMCell(D, H)
    else:
        lstm = torch.nn.LSTM(D, H, batch_first=True)
    head = torch.nn.Linear(H, C)
    params = list(head.parameters()) + list((cell if looped else lstm).parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    lossf = torch.nn.CrossEntropyLoss()

    def step():
        idx = torch.randint(0, N, (B,))
        x, y = x_all[idx], y_all[idx]
        if looped:
            h = c = torch.zeros(B, H)
            for t in range(T):
                h, c = cell(x[:, t], (h, c))
        else:
            _, (h, _) = lstm(x)
            h = h[0]
        loss = lossf(head(h), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up

    def timed():
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        return time.perf_counter() - t0

    return timed


def step_flops() -> float:
    """Matmul FLOPs of one training step: forward 2·B·T·4H·(D + H) for the gates, backward twice that."""
    return 3 * 2 * B * T * 4 * H * (D + H) + 3 * 2 * B * H * C


def chain_floor(repeats: int = 20) -> float:
    """Seconds for the dependent chain a step cannot avoid: 2·T sequential (B, D+H) @ (D+H, 4H)
    matmuls + tanh in one compiled ``lax.scan`` — T for the forward recurrence ([x_t, h_{t−1}]·W per
    step) and T for the backward's dh_{t−1} = dgates_t·W_hhᵀ (the fused backward batches the weight
    and input gradients outside the chain) — median of ``repeats`` calls."""
    import time

    import jax
    import jax.numpy as jnp

    w = jax.random.normal(jax.random.key(1), (D + H, 4 * H)) / (D + H) ** 0.5

    @jax.jit
    def chain(x):
        def body(x, _):
            return jnp.tanh(x @ w)[:, :D + H], None
        return jax.lax.scan(body, x, None, length=2 * T)[0]

    x = jnp.ones((B, D + H))
    chain(x).block_until_ready()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        chain(x).block_until_ready()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--peak", type=float, default=164e9, help="matmul peak FLOP/s of this machine")
    args = ap.parse_args()
    from harness import compare, write_result

    ours, compile_s = make_ours(args.steps)
    fns = {"ours (engine, lax.scan)": ours}
    try:
        fns["torch.nn.LSTM"] = make_torch(args.steps, looped=False)
        fns["torch LSTMCell Python loop"] = make_torch(args.steps, looped=True)
    except ImportError:
        print("torch missing: baselines skipped")
    cmp = compare(fns, repeats=args.repeats)
    seq_per_s = {n: args.steps * B / t for n, t in cmp["median_s"].items()}
    ms_per_step = {n: 1000 * t / args.steps for n, t in cmp["median_s"].items()}
    for n in fns:
        print(f"{n}: {seq_per_s[n]:,.0f} sequences/s, {ms_per_step[n]:.2f} ms/step")
    print(f"ours: compile + first run {compile_s:.1f} s")
    flops = step_flops()
    frac = {n: flops / (ms / 1000) / args.peak for n, ms in ms_per_step.items()}
    floor_ms = 1000 * chain_floor()
    for n in fns:
        print(f"{n}: {100 * frac[n]:.0f}% of the {args.peak / 1e9:.0f} GFLOP/s matmul peak "
              f"({flops / 1e6:.0f} MFLOP/step)")
    print(f"dependent chain of 2·T = {2 * T} (B, D+H) @ (D+H, 4H) matmuls + tanh alone: {floor_ms:.2f} ms "
          f"({1000 * floor_ms / (2 * T):.0f} µs per matmul; at peak {1e6 * 2 * B * (D + H) * 4 * H / args.peak:.0f} µs)")
    write_result("rnn", {"problem": {"T": T, "batch": B, "input": D, "hidden": H, "classes": C, "optimizer": "adam 1e-3",
                                     "steps_per_run": args.steps},
                         "comparison": cmp, "sequences_per_s": seq_per_s, "ms_per_step": ms_per_step,
                         "compile_and_first_run_s": compile_s,
                         "mflop_per_step": flops / 1e6, "fraction_of_peak": frac, "peak_flops": args.peak,
                         "chain_floor_ms": floor_ms,
                         "targets": {"vs torch.nn.LSTM": ">= 1x", "vs torch Python loop": ">= 2x"}})


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
