"""Training throughput of the character LM at nanoGPT's small CPU configuration: ours vs PyTorch.

Model: 4 pre-norm blocks, 4 heads, width 128, context 64, batch 12, no dropout, bias-free linear
layers, tied embeddings, learned positions, GELU MLP ×4 (configs/char_lm.py); AdamW 1e-3 (β₂ 0.99,
weight decay 0.1). Data: the default corpus (standard-library docstrings), random windows.

    .venv/bin/python benchmarks/transformer.py [--steps=200] [--repeats=3] [--bpc_steps=0]

Ours: ``transformer.build_task`` (task char_lm) through ``Runner`` (one compiled ``lax.scan`` of
``steps`` AdamW steps; evaluation at step 0 and the end), timed after a compiling warm-up.
PyTorch: the same architecture (exact GELU, ``F.gelu``'s default, as ours) and optimizer, eager and
``torch.compile``d, same steps and batch, and the same work around them: the validation loss on the
same windows before the first step and after the last (under ``no_grad``), as the engine evaluates.
Rounds interleave (``harness.compare``); the median per-round ratio is the result. Also: tokens/s,
model FLOPs per step (6·N·tokens + attention), the fraction of the measured matmul peak
(164 GFLOP/s on the 2-core CPU this was written on; ``--peak`` to change), and with
``--bpc_steps=2000`` the validation bits per character ours reaches (from ``--bpc_workdir`` if it
holds a finished scripts/train.py run). Writes ``benchmarks/results/transformer.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

B, T, D, H, LAYERS = 12, 64, 128, 4, 4


def config(steps: int):
    from dlnotes.experiments import base
    from dlnotes import hparams as hpmod

    cfg = base.load_config("char_lm", "full")
    return hpmod.with_changes(cfg, **{"num_steps": steps, "log_every": steps,
                                      "optimizer.schedule.name": "constant"})


def model_flops(vocab: int) -> float:
    """Training FLOPs per step: 6·N·tokens for the matmuls + 6·(2·T·D per token per layer) for attention."""
    n = LAYERS * 12 * D * D + vocab * D          # blocks (attention 4D², MLP 8D²) + tied output projection
    return 6 * n * B * T + 6 * LAYERS * 2 * T * D * B * T / 2


def make_ours(steps: int):
    from harness import engine_timer
    from dlnotes import hparams as hpmod
    from dlnotes.experiments import transformer
    from dlnotes.train.runner import Runner

    cfg = config(steps)
    task = transformer.build_task(cfg)
    runner = Runner(task)
    hp = hpmod.from_config(cfg)
    once, first = engine_timer(runner, hp)
    vocab = int(task.data["train"]["x"].max()) + 1
    return once, first, np.asarray(task.data["train"]["x"]), np.asarray(task.data["val"]["x"]), vocab


def make_torch(steps: int, windows: np.ndarray, val: np.ndarray, vocab: int, compile_: bool):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(0)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
            self.qkv, self.proj = nn.Linear(D, 3 * D, bias=False), nn.Linear(D, D, bias=False)
            self.fc, self.out = nn.Linear(D, 4 * D, bias=False), nn.Linear(4 * D, D, bias=False)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
            q, k, v = (z.view(b, t, H, D // H).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, D))
            return x + self.out(F.gelu(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, D), nn.Embedding(T, D)
            self.blocks = nn.ModuleList([Block() for _ in range(LAYERS)])
            self.ln = nn.LayerNorm(D)

        def forward(self, idx):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            for blk in self.blocks:
                x = blk(x)
            return self.ln(x) @ self.tok.weight.T

    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    data = torch.from_numpy(windows.astype(np.int64))
    val_x = torch.from_numpy(val.astype(np.int64))

    def val_loss():
        with torch.no_grad():
            logits = model(val_x[:, :-1])
            return F.cross_entropy(logits.reshape(-1, vocab), val_x[:, 1:].reshape(-1)).item()

    def step(x):
        logits = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    fn = torch.compile(step) if compile_ else step
    g = torch.Generator().manual_seed(0)

    def run(n):
        val_loss()                          # the engine evaluates at step 0 and at the end
        for _ in range(n):
            fn(data[torch.randint(0, len(data), (B,), generator=g)])
        val_loss()

    t0 = time.perf_counter()
    run(3)                                  # warm-up (and compile)
    first = time.perf_counter() - t0

    def once():
        t0 = time.perf_counter()
        run(steps)
        return time.perf_counter() - t0
    return once, first


def bpc_after(steps: int, workdir: str):
    """Validation bits per character of ours after ``steps`` (a finished scripts/train.py run, or train one)."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(os.path.join(workdir, "DONE")):
        from dlnotes.experiments import base
        from dlnotes import hparams as hpmod
        from dlnotes.jobs import train_job
        cfg = hpmod.with_changes(base.load_config("char_lm", "full"), num_steps=steps)
        train_job(cfg, workdir, progress=False)
    rows = [json.loads(x) for x in open(path)]
    return {"steps": rows[-1]["step"], "val_bpc": rows[-1]["val_bpc"], "initial_val_bpc": rows[0]["val_bpc"]}


def main():
    from harness import compare, write_result

    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peak", type=float, default=164e9)
    ap.add_argument("--bpc_steps", type=int, default=0)
    ap.add_argument("--bpc_workdir", default="/tmp/dlnotes_bench_charlm")
    ap.add_argument("--no_compile", action="store_true")
    a = ap.parse_args()

    ours, first_ours, windows, val, vocab = make_ours(a.steps)
    eager, first_eager = make_torch(a.steps, windows, val, vocab, False)
    fns = {"ours (engine)": ours, "torch eager": eager}
    first = {"ours (engine)": first_ours, "torch eager": first_eager}
    if not a.no_compile:
        try:
            comp, first["torch.compile"] = make_torch(a.steps, windows, val, vocab, True)
            fns["torch.compile"] = comp
        except Exception as e:  # noqa: BLE001 — report without it
            print(f"torch.compile unavailable: {type(e).__name__}: {e}")
    cmp = compare(fns, repeats=a.repeats)
    flops = model_flops(vocab)
    per = {}
    for n, t in cmp["median_s"].items():
        step_s = t / a.steps
        per[n] = {"ms_per_step": 1e3 * step_s, "tokens_per_s": B * T / step_s,
                  "fraction_of_peak": flops / step_s / a.peak}
        print(f"{n}: {1e3 * step_s:.1f} ms/step, {B * T / step_s:,.0f} tokens/s, "
              f"{100 * per[n]['fraction_of_peak']:.0f}% of {a.peak / 1e9:.0f} GFLOP/s")
    payload = {"config": {"batch": B, "context": T, "width": D, "heads": H, "layers": LAYERS, "vocab": vocab,
                          "steps": a.steps}, "comparison": cmp, "first_call_s": first, "per_system": per,
               "model_gflop_per_step": flops / 1e9, "peak_gflops": a.peak / 1e9}
    if a.bpc_steps:
        payload["bpc"] = bpc_after(a.bpc_steps, a.bpc_workdir)
        print(f"ours after {payload['bpc']['steps']} steps: {payload['bpc']['val_bpc']:.3f} bits/char")
    write_result("transformer", payload)


if __name__ == "__main__":
    main()
