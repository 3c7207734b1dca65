"""Training throughput (graphs/s) of a 3-layer message-passing net: the engine vs PyTorch Geometric (eager).

Data: 100 batches of 64 Erdős–Rényi graphs with 10–40 nodes (average degree 2, the 'distance' task of
``dlnotes.data.graphs``: 3 classes). Model on both sides: Linear(2 → 64) + ReLU, 3 residual message-passing
layers h ← h + ReLU(W_u [h_i, Σ_{j→i} (W_m h_j + b_m)] + b_u) (PyG: ``GraphConv``-style ``MessagePassing`` with the
same algebra), sum readout, Linear(64 → 64) + ReLU → Linear(64 → 3); Adam 1e-3; one pass over the 100 batches.

    .venv/bin/python benchmarks/gnn.py [--repeats=5] [--budget=tight|pow2]

Ours: ``experiments.gnn.build_task`` through ``Runner`` (the 100 batches padded to one common budget and
stacked; one compiled ``lax.scan``), timed after a warm-up that compiles. ``--budget``: "tight" = the largest
batch rounded up to 128 nodes / 256 edges, "pow2" = rounded up to powers of two. PyG: the batches collated
up front (``Batch.from_data_list``), eager training loop. Rounds interleave (``harness.compare``).
Also: the number of compilations of a jitted training step over a stream of 100 differently sized batches
(48–64 graphs each) padded to power-of-two budgets. Writes ``benchmarks/results/gnn.json``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

NUM_BATCHES, PER_BATCH, HIDDEN = 100, 64, 64


def graphs(seed=0, num=NUM_BATCHES * PER_BATCH):
    from dlnotes.data import graphs as D
    return D.random_graphs("distance", num, seed, min_nodes=10, max_nodes=40, avg_degree=2.0, num_classes=3)


def config():
    from dlnotes import hparams as hpmod
    from dlnotes.experiments import base
    c = base.load_config("gnn", "full")
    return hpmod.with_changes(c, **{
        "model.name": "mpnn", "model.hidden": [HIDDEN], "model.num_layers": 3, "model.aggregator": "sum",
        "model.norm": "none", "model.residual": True, "model.readout": "sum", "model.level": "graph",
        "model.num_classes": 3, "optimizer.name": "adam", "optimizer.learning_rate": 1e-3, "epochs": 1,
        "data.graphs_per_batch": PER_BATCH})


def make_ours(gs, y, budget_kind):
    import jax
    from dlnotes import hparams as hpmod
    from dlnotes.data import graphs as D
    from dlnotes.experiments import gnn
    from dlnotes.nn import graph as G
    from dlnotes.train.runner import Runner

    cfg = config()
    batches = [G.batch(gs[i * PER_BATCH:(i + 1) * PER_BATCH]) for i in range(NUM_BATCHES)]
    if budget_kind == "tight":
        budgets = [G.budget(b, nodes=128, edges=256) for b in batches]
    else:
        budgets = [G.budget(b) for b in batches]
    budget = tuple(int(v) for v in np.max(np.array(budgets), 0))
    train = D.stack_batches(gs, y, PER_BATCH, budget)
    test = {k: v[:2] for k, v in train.items()}
    task = gnn.build_task(cfg, {"train": train, "test": test})
    task = type(task)(**{**task.__dict__, "log_every": task.num_steps})
    runner = Runner(task)
    hp = hpmod.from_config(cfg)
    t0 = time.perf_counter()
    jax.block_until_ready(runner.run(hp, jax.random.key(100)).state.params)
    first = time.perf_counter() - t0
    seed = iter(range(10**6))

    def run_once():
        t0 = time.perf_counter()
        jax.block_until_ready(runner.run(hp, jax.random.key(next(seed))).state.params)
        return time.perf_counter() - t0
    return run_once, first, budget, task.num_steps


def make_pyg(gs, y):
    import torch
    from torch import nn
    from torch_geometric.data import Batch, Data
    from torch_geometric.nn import MessagePassing, global_add_pool

    class Layer(MessagePassing):
        def __init__(self, h):
            super().__init__(aggr="add")
            self.msg, self.upd = nn.Linear(h, h), nn.Linear(2 * h, h)

        def forward(self, x, edge_index):
            agg = self.propagate(edge_index, x=self.msg(x))
            return self.upd(torch.cat([x, agg], -1))

        def message(self, x_j):
            return x_j

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(2, HIDDEN)
            self.layers = nn.ModuleList([Layer(HIDDEN) for _ in range(3)])
            self.pre, self.out = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, 3)

        def forward(self, b):
            h = torch.relu(self.enc(b.x))
            for layer in self.layers:
                h = h + torch.relu(layer(h, b.edge_index))
            return self.out(torch.relu(self.pre(global_add_pool(h, b.batch, size=b.num_graphs))))

    data = [Data(x=torch.tensor(g.nodes), edge_index=torch.tensor(np.stack([g.senders, g.receivers])).long(),
                 y=torch.tensor([int(t)])) for g, t in zip(gs, y)]
    batches = [Batch.from_data_list(data[i * PER_BATCH:(i + 1) * PER_BATCH]) for i in range(NUM_BATCHES)]
    seed = iter(range(10**6))

    def run_once():
        torch.manual_seed(next(seed))
        net = Net()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        t0 = time.perf_counter()
        for b in batches:
            opt.zero_grad(set_to_none=True)
            loss_fn(net(b), b.y).backward()
            opt.step()
        return time.perf_counter() - t0

    run_once()   # warm-up
    return run_once


def count_compiles(seed=1):
    """Compilations of one jitted training step over 100 batches of 48–64 graphs, power-of-two budgets."""
    import jax
    import jax.numpy as jnp
    import optax
    from dlnotes.data import graphs as D
    from dlnotes.models.gnn import make_gnn
    from dlnotes.nn import graph as G

    cfg = config()
    model = make_gnn(cfg, 2)
    params, ms = model.init(jax.random.key(0))
    tx = optax.adam(1e-3)
    opt = tx.init(params)
    traces = []

    @jax.jit
    def step(params, opt, b, y):
        traces.append(1)
        g = D.as_graphs_tuple(b)

        def loss(p):
            logits = model.apply(p, ms, g, train=True, mask=G.node_mask(g))[0]
            w = G.graph_mask(g).astype(jnp.float32)
            nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], -1)[:, 0]
            return jnp.sum(w * nll) / jnp.sum(w)
        grads = jax.grad(loss)(params)
        upd, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, upd), opt

    rng = np.random.default_rng(seed)
    budgets = []
    t0 = time.perf_counter()
    for i in range(NUM_BATCHES):
        k = int(rng.integers(48, PER_BATCH + 1))
        gs, y = D.random_graphs("distance", k, 10_000 + i, min_nodes=10, max_nodes=40, avg_degree=2.0)
        b = G.batch(gs)
        bud = G.budget(b, graphs="pow2")
        budgets.append(bud)
        p = G.pad_to(b, *bud)
        yy = np.zeros(bud[2], np.int32)
        yy[:k] = y
        params, opt = step(params, opt, {f: v for f, v in p._asdict().items() if v is not None}, yy)
    jax.block_until_ready(params)
    return {"batches": NUM_BATCHES, "compilations": len(traces), "distinct_budgets": len(set(budgets)),
            "budgets": sorted({tuple(int(v) for v in b) for b in budgets}), "seconds": time.perf_counter() - t0}


def main(argv=None):
    from harness import compare, write_result

    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--budget", default="tight", choices=("tight", "pow2"))
    a = p.parse_args(argv)
    print(f"3-layer MPNN, {NUM_BATCHES} batches × {PER_BATCH} graphs (10–40 nodes), {a.repeats} interleaved rounds; "
          f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    gs, y = graphs()
    ours, first, budget, steps = make_ours(gs, y, a.budget)
    print(f"ours: first call (compile + run) {first:.2f} s; padding budget {budget} (nodes, edges, graphs)")
    fns = {"ours": ours}
    try:
        fns["pyg eager"] = make_pyg(gs, y)
    except ImportError as e:
        print(f"PyTorch Geometric unavailable ({e}); timing ours only")
    cmp = compare(fns, repeats=a.repeats)
    n_graphs = NUM_BATCHES * PER_BATCH
    throughput = {k: n_graphs / v for k, v in cmp["median_s"].items()}
    print("graphs/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in throughput.items()))
    compiles = count_compiles()
    print(f"stream of {compiles['batches']} differently sized batches: {compiles['compilations']} compilations "
          f"({compiles['distinct_budgets']} distinct budgets)")
    write_result("gnn", {"comparison": cmp, "graphs_per_s": throughput, "budget_kind": a.budget,
                         "budget": budget, "steps": steps, "ours_first_call_s": first, "compiles": compiles})


if __name__ == "__main__":
    main()
