"""Graph nets: symmetric aggregation, batching and padding, GCN vs MLP on the karate club, pooling by
spectral clustering (claims C34–C37).

C34  For every aggregator of ``dlnotes.nn.graph.AGGREGATORS``, a 3-layer MPNN (learned similarity /
     attention, edge features, globals, layer norm, residuals) on a batch of random graphs with
     isolated nodes: node outputs after permuting the nodes and the edge order equal the permuted
     outputs (max error ≤ 1e-5), sum readouts equal (≤ 5e-5); every output and gradient is finite and
     an empty neighbourhood aggregates to exactly 0 (product: 1). Figure: the errors, and the test
     accuracy of each aggregator on a generated graph task (trained through the engine, seeds vmapped).
C35  Node and graph outputs of a batch (concatenation + index offsets) and of the batch padded to a
     power-of-two budget equal the per-graph outputs (≤ 1e-5), for every aggregator; batch norm in
     training mode on the padded batch equals the unpadded batch's (padding excluded). A stream of
     differently sized batches compiles once per budget (count reported).
C36  Karate club, 2 labelled nodes per class drawn per split (= seed): 2-layer GCN vs per-node MLP on
     one-hot features over ``c36.num_splits`` splits in one compiled call each: GCN mean ≥ 0.85,
     GCN − MLP mean ≥ 0.25, GCN > MLP on every split; a GCN on constant features is shown.
C37  SBM signals whose class is the block carrying a bump: a linear classifier on the cluster means of
     a spectral clustering of the adjacency ≥ full signal − 0.02 and ≥ a random partition with the
     same cluster sizes + 0.25 (features standardized, mean over seeds).
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes import hparams as hpmod
from dlnotes.data import graphs as D
from dlnotes.errors import check
from dlnotes.experiments.base import claim
from dlnotes.models.base import functional
from dlnotes.models.gnn import NodeMLP, make_gnn, validate_model
from dlnotes.nn import graph as G
from dlnotes.nn import spectral as S
from dlnotes.optim.factory import make_optimizer, validate_optimizer_config
from dlnotes.train import plots
from dlnotes.train.loop import Task
from dlnotes.train.runner import Runner
from dlnotes.train.sweep import run_points
from dlnotes.train.tasks import classification_task

CLAIMS = ("C34", "C35", "C36", "C37")
DIFFERS = ()
TASKS = ("graphs", "karate")


# ------------------------------------------------------------------------------- validation
def validate(config):
    validate_optimizer_config(config)
    check(config.task in TASKS, "task", f"must be one of {TASKS}, got {config.task!r}")
    validate_model(config)
    d = config.data
    check(d.task in D.TASKS, "data.task", f"must be one of {D.TASKS}, got {d.task!r}")
    check(d.graphs_per_batch >= 1, "data.graphs_per_batch", "must be ≥ 1")
    check(d.num_train >= d.graphs_per_batch, "data.num_train",
          f"must be ≥ data.graphs_per_batch={d.graphs_per_batch} (one batch)")
    check(d.num_test >= d.graphs_per_batch, "data.num_test", f"must be ≥ data.graphs_per_batch={d.graphs_per_batch}")
    check(2 <= d.min_nodes <= d.max_nodes, "data.min_nodes", "need 2 <= data.min_nodes <= data.max_nodes")
    check(d.avg_degree > 0, "data.avg_degree", "must be > 0")
    check(d.features in ("onehot", "constant"), "data.features", "must be 'onehot' or 'constant'")
    check(1 <= d.labelled_per_class <= 16, "data.labelled_per_class", "must be in [1, 16] (the smaller club has 17)")
    if d.npz:
        g, labels = D.load_graphs_npz(d.npz)
        check("y" in labels, "y", f"{d.npz} has no graph labels 'y'")
        check(len(np.asarray(g.n_node)) >= 2 * d.graphs_per_batch, "data.graphs_per_batch",
              f"{d.npz} has fewer than 2 × {d.graphs_per_batch} graphs (a training and a test batch)")
    check(config.epochs >= 1, "epochs", "must be ≥ 1")
    check(config.karate_steps >= 1, "karate_steps", "must be ≥ 1")
    check(config.batch_size == 1, "batch_size", "must be 1 (one padded batch of data.graphs_per_batch graphs per step)")
    check(config.sampling in ("epoch", "replacement"), "sampling", "must be 'epoch' or 'replacement'")
    check(0 <= config.model.dropout < 1, "model.dropout", f"must be in [0, 1), got {config.model.dropout}")
    check(config.c36.num_splits >= 2, "c36.num_splits", "need ≥ 2 splits")
    check(config.c37.num_seeds >= 1, "c37.num_seeds", "need ≥ 1 seed")
    sbm = d.sbm
    check(sbm.blocks >= 2 and sbm.block >= 2, "data.sbm.blocks", "need ≥ 2 blocks of ≥ 2 nodes")
    check(0 <= sbm.p_out < sbm.p_in <= 1, "data.sbm.p_in", "need 0 <= p_out < p_in <= 1")


# ------------------------------------------------------------------------------- tasks
def _masked_ce(logits, y, mask):
    w = mask.astype(logits.dtype)
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[..., None].astype(jnp.int32), -1)[..., 0]
    return jnp.sum(w * nll) / jnp.maximum(jnp.sum(w), 1.0)


def _masked_acc(logits, y, mask):
    w = mask.astype(jnp.float32)
    return jnp.sum(w * (jnp.argmax(logits, -1) == y)) / jnp.maximum(jnp.sum(w), 1.0)


def graph_data(config) -> dict:
    """Train/test splits as stacked padded batches (``D.stack_batches``)."""
    d = config.data
    if d.npz:
        g, labels = D.load_graphs_npz(d.npz)
        graphs, y = G.unbatch(g), np.asarray(labels["y"]).astype(np.int32)
        order = np.random.default_rng(d.seed).permutation(len(graphs))
        n_test = max(d.graphs_per_batch, len(graphs) // 4)
        test, train = order[:n_test], order[n_test:]
        tr, te = ([graphs[i] for i in train], y[train]), ([graphs[i] for i in test], y[test])
    else:
        kw = dict(min_nodes=d.min_nodes, max_nodes=d.max_nodes, avg_degree=d.avg_degree, num_classes=d.num_classes)
        tr = D.random_graphs(d.task, d.num_train, d.seed, **kw)
        te = D.random_graphs(d.task, d.num_test, d.seed + 10_000, **kw)
    return {"train": D.stack_batches(*tr, d.graphs_per_batch), "test": D.stack_batches(*te, d.graphs_per_batch)}


def _steps(config, per_eval: int, total: int):
    """(num_steps, log_every): overrides win; log_every divides num_steps."""
    num_steps = int(config.num_steps) or total
    log_every = int(config.log_every) or per_eval
    if num_steps % log_every:
        log_every = num_steps
    return num_steps, log_every


def graphs_task(config, data=None) -> Task:
    """Graph classification: one padded batch per step, masked cross-entropy over the real graphs.
    Evaluation (eval mode, all test batches): ``test_acc``, ``test_loss`` (training accuracy: the steps'
    ``batch_acc``). ``model.aggregator="any"``: the aggregator is ``model.aggregator_index`` (traced)."""
    data = data if data is not None else graph_data(config)
    feats = data["train"]["nodes"].shape[-1]
    ef = data["train"]["edges"].shape[-1] if "edges" in data["train"] else 0
    gf = data["train"]["globals"].shape[-1] if "globals" in data["train"] else 0
    model = make_gnn(config, feats, edge_features=ef, global_features=gf)
    any_agg = config.model.aggregator == "any"

    def forward(params, ms, b, *, train, key=None, hp=None):
        g = D.as_graphs_tuple(b)
        kw = {"aggregator_index": hpmod.get(hp, config, "model.aggregator_index")} if any_agg else {}
        logits, ms = model.apply(params, ms, g, train=train, key=key, mask=G.node_mask(g),
                                 dropout=hpmod.get(hp, config, "model.dropout"), **kw)
        return logits, ms, G.graph_mask(g)

    def loss(params, ms, batch, key, hp):
        b = jax.tree.map(lambda x: x[0], batch)
        logits, ms, gm = forward(params, ms, b, train=True, key=key, hp=hp)
        return _masked_ce(logits, b["y"], gm), ({"batch_acc": _masked_acc(logits, b["y"], gm)}, ms)

    def evaluate(params, ms, d, hp):
        out = {}
        for split in ("test",):
            def one(b):
                logits, _, gm = forward(params, ms, b, train=False, hp=hp)
                w = gm.astype(jnp.float32)
                nll = _masked_ce(logits, b["y"], gm) * jnp.sum(w)
                return jnp.sum(w * (jnp.argmax(logits, -1) == b["y"])), nll, jnp.sum(w)
            correct, nll, n = jax.lax.map(one, d[split])
            out[f"{split}_acc"] = jnp.sum(correct) / jnp.sum(n)
            out[f"{split}_loss"] = jnp.sum(nll) / jnp.sum(n)
        return out

    nb = data["train"]["nodes"].shape[0]
    num_steps, log_every = _steps(config, nb, config.epochs * nb)
    return Task(init=model.init, loss=loss, optimizer=lambda hp: make_optimizer(config, hp), data=data,
                num_steps=num_steps, batch_size=1, sampling=config.sampling, log_every=log_every,
                evaluate=evaluate)


def karate_data(config) -> dict:
    """The karate club padded to a power-of-two budget, with a leading axis of 1 (one full batch)."""
    k = D.karate_club(config.data.features)
    g = G.pad_with_budget(k["graph"])
    y = np.zeros(g.nodes.shape[0], np.int32)
    y[:len(k["y"])] = k["y"]
    b = {f: np.asarray(v)[None] for f, v in g._asdict().items() if v is not None}
    b["y"] = y[None]
    return {"train": b}


def draw_split(key, y, real, per_class: int, num_classes: int = 2):
    """(N,) bool: ``per_class`` nodes of each class drawn uniformly among the real nodes (a function of key)."""
    u = jax.random.uniform(key, y.shape)
    mask = jnp.zeros(y.shape, bool)
    for c in range(num_classes):
        order = jnp.argsort(jnp.where(real & (y == c), u, jnp.inf))
        mask = mask.at[order[:per_class]].set(True)
    return mask


def karate_task(config, data=None) -> Task:
    """Node classification on the karate club: cross-entropy on the labelled nodes, drawn by each run's seed
    at init (kept in ``model_state["train_mask"]``). Evaluation: ``train_acc``, ``test_acc`` (every other
    real node), ``pred`` (N,) predicted classes."""
    data = data if data is not None else karate_data(config)
    model = make_gnn(config, data["train"]["nodes"].shape[-1])
    per_class = int(config.data.labelled_per_class)

    def unbatched(d):
        b = jax.tree.map(lambda x: x[0], d["train"] if "train" in d else d)
        g = D.as_graphs_tuple(b)
        return g, b["y"], G.node_mask(g)

    def init(key, hp):
        k_net, k_split = jax.random.split(key)
        params, ms = model.init(k_net, hp)
        _, y, real = unbatched(data)
        return params, {"net": ms, "train_mask": draw_split(k_split, jnp.asarray(y), real, per_class)}

    def loss(params, ms, batch, key, hp):
        g, y, real = unbatched(batch)
        logits, net = model.apply(params, ms["net"], g, train=True, key=key, mask=real,
                                  dropout=hpmod.get(hp, config, "model.dropout"))
        return _masked_ce(logits, y, ms["train_mask"]), ({}, {"net": net, "train_mask": ms["train_mask"]})

    def evaluate(params, ms, d, hp):
        g, y, real = unbatched(d)
        logits, _ = model.apply(params, ms["net"], g, train=False, mask=real)
        return {"train_acc": _masked_acc(logits, y, ms["train_mask"]),
                "test_acc": _masked_acc(logits, y, real & ~ms["train_mask"]),
                "pred": jnp.argmax(logits, -1)}

    num_steps, log_every = _steps(config, 50, config.karate_steps)
    return Task(init=init, loss=loss, optimizer=lambda hp: make_optimizer(config, hp), data=data,
                num_steps=num_steps, batch_size=None, log_every=log_every, evaluate=evaluate)


def build_task(config, data=None) -> Task:
    return karate_task(config, data) if config.task == "karate" else graphs_task(config, data)


# ------------------------------------------------------------------------------- C34: equivariance
def _test_batch(rng, num_graphs, min_nodes, max_nodes, features, edge_features=3, global_features=2):
    """Random graphs (some nodes isolated: no incoming edge), random features, edges, globals."""
    graphs = []
    for _ in range(num_graphs):
        n = int(rng.integers(min_nodes, max_nodes + 1))
        und = D._er_edges(rng, n - 1, 3.0 / (n - 2))            # node n − 1 stays isolated
        s = np.concatenate([und[:, 0], und[:, 1]])
        r = np.concatenate([und[:, 1], und[:, 0]])
        graphs.append(G.graph(rng.standard_normal((n, features)).astype(np.float32), s, r,
                              edges=rng.standard_normal((len(s), edge_features)).astype(np.float32),
                              globals=rng.standard_normal(global_features).astype(np.float32)))
    return graphs


def _permute_within(g: G.GraphsTuple, rng):
    """Permute the nodes of each graph and the edge order of each graph. Returns (g', node_perm) with
    g'.nodes = g.nodes[node_perm]."""
    no = np.concatenate([[0], np.cumsum(g.n_node)])
    eo = np.concatenate([[0], np.cumsum(g.n_edge)])
    perm = np.concatenate([no[k] + rng.permutation(g.n_node[k]) for k in range(len(g.n_node))])
    eperm = np.concatenate([eo[k] + rng.permutation(g.n_edge[k]) for k in range(len(g.n_edge))])
    inv = np.argsort(perm)
    return g._replace(nodes=g.nodes[perm], edges=g.edges[eperm], senders=inv[g.senders][eperm].astype(np.int32),
                      receivers=inv[g.receivers][eperm].astype(np.int32)), perm


def _model_config(config, **changes):
    return hpmod.with_changes(config, **changes)


def check_equivariance(config, rng):
    """Per aggregator: (max node error, max sum-readout error, all finite, empty-neighbourhood exact)."""
    c = config.c34
    graphs = _test_batch(rng, c.num_graphs, c.min_nodes, c.max_nodes, c.features)
    g = G.batch(graphs)
    gp, perm = _permute_within(g, rng)
    iso = np.setdiff1d(np.arange(len(g.nodes)), g.receivers)
    cfg = _model_config(config, **{"model.name": "mpnn", "model.aggregator": "any", "model.similarity": "learned",
                                   "model.norm": "layer", "model.level": "node", "model.hidden": [16]})
    model = make_gnn(cfg, c.features, edge_features=g.edges.shape[1], global_features=g.globals.shape[1])
    params, ms = model.init(jax.random.key(0))

    @jax.jit
    def node_out(params, g, idx):     # one compile for every aggregator: the index is traced
        return model.apply(params, ms, g, aggregator_index=idx)[0]

    node_grad = jax.jit(jax.grad(lambda p, g, idx: jnp.sum(node_out(p, g, idx) ** 2)))
    gid, gidp = np.repeat(np.arange(len(g.n_node)), g.n_node), np.repeat(np.arange(len(g.n_node)), gp.n_node)
    out = {}
    for i, agg in enumerate(G.AGGREGATORS):
        idx = jnp.float32(i)
        y = np.asarray(node_out(params, g, idx), np.float64)
        yp = np.asarray(node_out(params, gp, idx), np.float64)
        node_err = float(np.max(np.abs(yp - y[perm])))
        ro = np.zeros((len(g.n_node), y.shape[1]))
        rop = np.zeros_like(ro)
        np.add.at(ro, gid, y)
        np.add.at(rop, gidp, yp)
        graph_err = float(np.max(np.abs(ro - rop)))
        grads = node_grad(params, g, idx)
        finite = bool(np.all(np.isfinite(y)) and all(np.all(np.isfinite(x)) for x in jax.tree.leaves(grads)))
        # an empty neighbourhood aggregates to exactly the documented value (raw aggregate, big messages)
        msgs = jnp.asarray(10 * rng.standard_normal((len(g.senders), 4)), jnp.float32)
        a = np.asarray(G.aggregate(msgs, jnp.asarray(g.receivers), len(g.nodes), agg, scores=msgs))
        empty = 1.0 if agg == "product" else 0.0
        exact = bool(np.all(np.isfinite(a)) and np.all(a[iso] == empty))
        out[agg] = (node_err, graph_err, finite, exact)
    return out, len(iso)


# ------------------------------------------------------------------------------- C35: batching and padding
def check_batching(config, rng):
    """Per aggregator: max |batched − per-graph| and |padded − per-graph| over node and graph outputs;
    plus the masked batch norm check (padded vs unpadded, training mode)."""
    c = config.c35
    graphs = _test_batch(rng, c.num_graphs - 1, 3, 12, 5)
    graphs.append(G.graph(np.ones((1, 5), np.float32), [], [], edges=np.zeros((0, 3), np.float32),
                          globals=np.zeros(2, np.float32)))     # a one-node graph with no edges
    b = G.batch(graphs)
    p = G.pad_with_budget(b)
    n_real, k_real = len(b.nodes), len(graphs)
    cfg = _model_config(config, **{"model.name": "mpnn", "model.aggregator": "any", "model.level": "node",
                                   "model.similarity": "learned", "model.norm": "layer", "model.hidden": [16]})
    model = make_gnn(cfg, 5, edge_features=3, global_features=2)
    params, ms = model.init(jax.random.key(1))

    @jax.jit
    def apply(g, idx, mask=None):     # node outputs and their mean readout; one compile per shape
        y = model.apply(params, ms, g, mask=mask, aggregator_index=idx)[0]
        return y, G.readout(y, g, "mean", mask)

    errs = {}
    for i, agg in enumerate(G.AGGREGATORS):
        idx = jnp.float32(i)
        per = [apply(g1, idx) for g1 in graphs]
        single = np.concatenate([np.asarray(a) for a, _ in per]), np.concatenate([np.asarray(r) for _, r in per])
        batched = apply(b, idx)
        padded = apply(p, idx, G.node_mask(p))
        worst = []
        for out in (batched, padded):
            worst.append(max(float(np.max(np.abs(np.asarray(out[0])[:n_real] - single[0]))),
                             float(np.max(np.abs(np.asarray(out[1])[:k_real] - single[1])))))
        errs[agg] = tuple(worst)
    # batch norm in training mode: statistics over the real nodes only
    cfg = _model_config(config, **{"model.name": "mpnn", "model.norm": "batch", "model.level": "graph",
                                   "model.hidden": [16]})
    model = make_gnn(cfg, 5, edge_features=3, global_features=2)
    params, ms = model.init(jax.random.key(2))
    yb, msb = model.apply(params, ms, b, train=True)
    yp, msp = model.apply(params, ms, p, train=True, mask=G.node_mask(p))
    bn_err = float(np.max(np.abs(np.asarray(yb) - np.asarray(yp)[:k_real])))
    bn_err = max(bn_err, max(float(np.max(np.abs(np.asarray(u) - np.asarray(v))))
                             for u, v in zip(jax.tree.leaves(msb), jax.tree.leaves(msp))))
    return errs, bn_err, (n_real, len(b.senders), k_real), tuple(int(x) for x in (len(p.nodes), len(p.senders),
                                                                               len(p.n_node)))


def compile_stream(config, rng):
    """A stream of differently sized batches through one jitted forward: (sizes, budgets, compiles)."""
    c = config.c35
    cfg = _model_config(config, **{"model.name": "mpnn", "model.level": "graph", "model.hidden": [8],
                                   "model.num_layers": 1})
    model = make_gnn(cfg, 2)
    params, ms = model.init(jax.random.key(0))
    traces = []

    @jax.jit
    def forward(g):
        traces.append(1)                      # runs once per compilation (trace)
        return model.apply(params, ms, g, mask=G.node_mask(g))[0]

    sizes, budgets = [], []
    for i in range(c.stream_batches):
        k = int(rng.integers(c.stream_min_graphs, c.stream_max_graphs + 1))
        gs, _ = D.random_graphs("connected", k, 1000 + i, min_nodes=10, max_nodes=40,
                                  avg_degree=config.data.avg_degree, with_labels=False)
        b = G.batch(gs)
        bud = G.budget(b, graphs="pow2")
        forward(G.pad_to(b, *bud)).block_until_ready()
        sizes.append((int(b.n_node.sum()), int(b.n_edge.sum()), k))
        budgets.append(bud)
    return np.array(sizes), np.array(budgets), len(traces)


# ------------------------------------------------------------------------------- C36: karate
def karate_runs(config):
    """GCN (one-hot), MLP (one-hot), GCN (constant features): per-split test accuracy over the splits."""
    c = config.c36
    base = {"task": "karate", "model.hidden": [c.hidden], "model.level": "node", "model.num_classes": 2,
            "model.dropout": c.dropout, "optimizer.name": "adam", "optimizer.learning_rate": c.learning_rate,
            "optimizer.weight_decay": c.weight_decay, "karate_steps": c.steps, "num_steps": 0, "log_every": 0}
    points = [{"seed": s} for s in range(c.num_splits)]
    out, runner = {}, None
    for label, name, feats in (("GCN", "gcn", "onehot"), ("MLP", "mlp", "onehot"), ("GCN, constant features", "gcn",
                                                                                   "constant")):
        cfg = _model_config(config, **base, **{"model.name": name, "data.features": "onehot"})
        data = karate_data(cfg)
        if feats == "constant":          # a constant feature, zero-padded to the one-hot width: one compile for both GCNs
            data["train"]["nodes"] = np.zeros_like(data["train"]["nodes"])
            data["train"]["nodes"][..., 0] = 1.0
        else:
            runner = Runner(build_task(cfg, data), grid=True)
        _, res = run_points(runner.task, cfg, points, runner=runner, data=data, progress=f"C36 {label}")
        ev = res.metrics["evals"]
        out[label] = {"test": np.asarray(ev["test_acc"])[:, -1], "train": np.asarray(ev["train_acc"])[:, -1],
                      "pred": np.asarray(ev["pred"])[:, -1], "mask": np.asarray(res.state.model_state["train_mask"])}
    return out


# ------------------------------------------------------------------------------- C37: pooling
def pooling_runs(config):
    """Accuracy of a linear classifier on the full signal, the spectral-cluster means and random-partition means."""
    s = config.data.sbm
    sizes = [s.block] * s.blocks
    adj = D.block_graph(sizes, s.p_in, s.p_out, s.graph_seed)
    clusters = S.spectral_clustering(adj, s.blocks, seed=s.graph_seed)
    rng = np.random.default_rng(s.graph_seed + 1)
    random_part = rng.permutation(clusters)               # same cluster sizes, random members
    x_tr, y_tr = D.block_signals(sizes, s.num_train, s.signal_seed, amplitude=s.amplitude, noise=s.noise)
    x_te, y_te = D.block_signals(sizes, s.num_test, s.signal_seed + 1, amplitude=s.amplitude, noise=s.noise)

    def features(assign):
        if assign is None:
            a, b = x_tr, x_te
        else:
            a = np.asarray(G.cluster_pool(jnp.asarray(x_tr)[..., None], jnp.asarray(assign), s.blocks))[..., 0]
            b = np.asarray(G.cluster_pool(jnp.asarray(x_te)[..., None], jnp.asarray(assign), s.blocks))[..., 0]
        mu, sd = a.mean(0), a.std(0) + 1e-6                # standardized with training statistics
        return {"train": {"x": jnp.asarray((a - mu) / sd), "y": jnp.asarray(y_tr)},
                "test": {"x": jnp.asarray((b - mu) / sd), "y": jnp.asarray(y_te)}}

    c = config.c37
    cfg = _model_config(config, **{"optimizer.name": "adam", "optimizer.learning_rate": c.learning_rate,
                                   "optimizer.weight_decay": 0.0, "num_steps": c.steps, "log_every": c.steps,
                                   "batch_size": 0})
    points = [{"seed": i} for i in range(c.num_seeds)]
    acc, runner = {}, None
    for label, assign in (("full signal", None), ("spectral clusters", clusters), ("random partition", random_part)):
        data = features(assign)
        d_in = data["train"]["x"].shape[1]
        model = functional(lambda rngs, hp, d_in=d_in: NodeMLP(d_in, [], s.blocks, rngs=rngs))
        task = classification_task(cfg, model, data, num_classes=s.blocks, eval_splits=("test",))
        if label != "random partition":
            runner = Runner(task, grid=True)              # the two pooled variants share one compile
        _, res = run_points(task, cfg, points, runner=runner, data=data)
        acc[label] = np.asarray(res.metrics["evals"]["test_acc"])[:, -1]
    return acc, adj, clusters, random_part


# ------------------------------------------------------------------------------- aggregators on a task
def aggregator_runs(config, data):
    """Test accuracy per aggregator × seed: one compiled grid (``model.aggregator="any"``, the index traced)."""
    a = config.aggregators
    cfg = _model_config(config, **{"task": "graphs", "model.name": "mpnn", "model.aggregator": "any",
                                   "model.level": "graph", "epochs": a.epochs, "num_steps": 0, "log_every": 0})
    points = [{"seed": s, "model.aggregator_index": float(i)} for i in range(len(G.AGGREGATORS))
              for s in range(a.num_seeds)]
    # lax.map over points (map_batch_size=1): each point's lax.switch runs only its own aggregator
    _, res = run_points(build_task(cfg, data), cfg, points, progress="C34 aggregators", map_batch_size=1)
    acc = np.asarray(res.metrics["evals"]["test_acc"])[:, -1].reshape(len(G.AGGREGATORS), a.num_seeds)
    return dict(zip(G.AGGREGATORS, acc))


# ------------------------------------------------------------------------------- run
def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    t0 = time.perf_counter()
    eq, n_iso = check_equivariance(config, rng)
    t_eq = time.perf_counter() - t0
    data = graph_data(_model_config(config, **{"data.npz": ""}))
    agg_acc = aggregator_runs(config, data)
    t_agg = time.perf_counter() - t0 - t_eq
    c34 = config.c34
    node_max = max(v[0] for v in eq.values())
    graph_max = max(v[1] for v in eq.values())
    ok34 = all(v[0] <= c34.atol_node and v[1] <= c34.atol_graph and v[2] and v[3] for v in eq.values())
    y_test = data["test"]["y"][:, :config.data.graphs_per_batch].ravel()
    majority = np.bincount(y_test).max() / len(y_test)
    fig34 = _figure_aggregators(eq, agg_acc, c34, config, majority, os.path.join(workdir, "gnn_aggregators.png"))
    claims = [claim(
        "C34", "a message-passing layer f(me, AGG_them s·g(them), global) is permutation-equivariant per node and "
               "invariant after a readout, for every aggregator, and every aggregator is safe on an empty "
               "neighbourhood",
        f"max node error {node_max:.2g}, max sum-readout error {graph_max:.2g} over {len(eq)} aggregators; "
        f"finite & exact on {n_iso} isolated nodes: {sum(v[2] and v[3] for v in eq.values())}/{len(eq)}",
        f"node ≤ {c34.atol_node:g}, readout ≤ {c34.atol_graph:g} (nodes and edge order permuted); outputs and "
        "gradients finite; empty neighbourhood = 0 (product 1) exactly", ok34, fig34,
        details="; ".join(f"{k}: node {v[0]:.1e}, readout {v[1]:.1e}{'' if v[2] and v[3] else ' NOT SAFE'}"
                          for k, v in eq.items())
                + f". Test accuracy on the generated '{config.data.task}' task ({config.aggregators.num_seeds} seeds, "
                  f"{config.aggregators.epochs} epochs; reported, not claimed): "
                + ", ".join(f"{k} {100 * v.mean():.1f}%" for k, v in agg_acc.items())
                + f" ({t_eq:.1f} s checks, {t_agg:.1f} s training)")]

    t0 = time.perf_counter()
    errs, bn_err, real, padded = check_batching(config, rng)
    sizes, budgets, compiles = compile_stream(config, rng)
    t35 = time.perf_counter() - t0
    c35 = config.c35
    worst_b = max(e[0] for e in errs.values())
    worst_p = max(e[1] for e in errs.values())
    ok35 = worst_b <= c35.atol and worst_p <= c35.atol and bn_err <= c35.atol
    fig35 = _figure_stream(sizes, budgets, compiles, os.path.join(workdir, "gnn_padding_stream.png"))
    claims.append(claim(
        "C35", "batching variable-size graphs by concatenation with index offsets, and padding to a size budget "
               "with masked dummy nodes/edges, both equal per-graph results",
        f"max |batched − per graph| {worst_b:.2g}, max |padded − per graph| {worst_p:.2g}, masked batch norm "
        f"padded vs unpadded {bn_err:.2g}", f"all ≤ {c35.atol:g}", ok35, fig35,
        details=f"{real[2]} graphs ({real[0]} nodes, {real[1]} edges, one graph without edges) padded to {padded}; "
                + "; ".join(f"{k}: {v[0]:.1e} / {v[1]:.1e}" for k, v in errs.items())
                + f". A stream of {len(sizes)} batches of {c35.stream_min_graphs}–{c35.stream_max_graphs} graphs "
                  f"({sizes[:, 0].min()}–{sizes[:, 0].max()} nodes) padded to power-of-two budgets compiled "
                  f"{compiles} times ({len({tuple(b) for b in budgets})} distinct budgets; reported) ({t35:.1f} s)"))

    t0 = time.perf_counter()
    kr = karate_runs(config)
    t36 = time.perf_counter() - t0
    c36 = config.c36
    gcn, mlp, const = kr["GCN"]["test"], kr["MLP"]["test"], kr["GCN, constant features"]["test"]
    gap = gcn - mlp
    ok36 = gcn.mean() >= c36.min_gcn and gap.mean() >= c36.min_gap and bool(np.all(gap > 0))
    fig36 = _figure_karate(kr, config, os.path.join(workdir, "gnn_karate.png"))
    claims.append(claim(
        "C36", f"on the karate club with {config.data.labelled_per_class} labelled nodes per class a 2-layer GCN "
               "beats a structure-blind MLP; with constant features a GCN cannot separate the clubs",
        f"GCN {gcn.mean():.3f}, MLP {mlp.mean():.3f}, GCN − MLP {gap.mean():+.3f} (min {gap.min():+.3f}); "
        f"GCN with constant features {const.mean():.3f}",
        f"GCN mean ≥ {c36.min_gcn:g}, GCN − MLP mean ≥ {c36.min_gap:g}, GCN > MLP on every split "
        f"({c36.num_splits} splits)", ok36, fig36,
        details=f"test accuracy on the 34 − {2 * config.data.labelled_per_class} unlabelled nodes per split: GCN "
                + ", ".join(f"{v:.2f}" for v in gcn) + "; MLP " + ", ".join(f"{v:.2f}" for v in mlp)
                + "; GCN constant " + ", ".join(f"{v:.2f}" for v in const)
                + f". Kipf's protocol: hidden {c36.hidden}, dropout {c36.dropout:g}, Adam {c36.learning_rate:g}, "
                  f"weight decay {c36.weight_decay:g}, {c36.steps} full-batch steps; splits vmapped in one compile "
                  f"per model ({t36:.1f} s). Constant features are shown, not thresholded: a GCN then sees only "
                  f"degrees"))

    t0 = time.perf_counter()
    acc37, adj, clusters, random_part = pooling_runs(config)
    t37 = time.perf_counter() - t0
    c37 = config.c37
    full, spec, rand = (acc37[k] for k in ("full signal", "spectral clusters", "random partition"))
    ok37 = spec.mean() >= full.mean() - c37.full_margin and spec.mean() >= rand.mean() + c37.random_margin
    blocks = np.repeat(np.arange(config.data.sbm.blocks), config.data.sbm.block)
    fig37 = _figure_pooling(adj, clusters, random_part, acc37, os.path.join(workdir, "gnn_pooling.png"))
    claims.append(claim(
        "C37", "coarsening a fixed topology by spectral clustering, then mean-pooling per cluster, keeps what a "
               "classifier needs",
        f"accuracy: spectral clusters {spec.mean():.3f}, full signal {full.mean():.3f}, random partition "
        f"{rand.mean():.3f}",
        f"spectral ≥ full − {c37.full_margin:g} and ≥ random + {c37.random_margin:g} (means over "
        f"{c37.num_seeds} seeds)", ok37, fig37,
        details=f"SBM {config.data.sbm.blocks} × {config.data.sbm.block} nodes (p_in {config.data.sbm.p_in:g}, "
                f"p_out {config.data.sbm.p_out:g}); spectral clusters match the blocks on "
                f"{_agreement(clusters, blocks):.0%} of nodes; signals amplitude {config.data.sbm.amplitude:g} on "
                f"the class's block + N(0, {config.data.sbm.noise:g}²) noise; linear softmax, Adam "
                f"{c37.learning_rate:g}, {c37.steps} full-batch steps, features standardized with training "
                f"statistics ({t37:.1f} s)"))
    return claims


def _agreement(pred, truth) -> float:
    """Fraction of nodes whose cluster maps to their block under the best one-to-one relabelling."""
    from itertools import permutations
    k = int(max(pred.max(), truth.max())) + 1
    if k > 7:
        return float("nan")
    return max(np.mean(np.array(p)[pred] == truth) for p in permutations(range(k)))


# ------------------------------------------------------------------------------- figures
def _figure_aggregators(eq, acc, c34, config, majority, path):
    import matplotlib.pyplot as plt
    names = list(eq)
    xs = np.arange(len(names))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    floor = 1e-9
    a1.bar(xs - 0.2, [max(eq[k][0], floor) for k in names], 0.4, label="node outputs")
    a1.bar(xs + 0.2, [max(eq[k][1], floor) for k in names], 0.4, label="sum readout")
    a1.axhline(c34.atol_node, color="C0", ls="--", lw=1, label=f"node tolerance {c34.atol_node:g}")
    a1.axhline(c34.atol_graph, color="C1", ls="--", lw=1, label=f"readout tolerance {c34.atol_graph:g}")
    a1.set_yscale("log")
    a1.set_xticks(xs, names, rotation=30)
    a1.set(ylabel=f"max |f(Πx) − Πf(x)| (0 shown at {floor:g})",
           title="permuting nodes and edge order (float32)")
    a1.legend(fontsize=7)
    m = [100 * acc[k].mean() for k in names]
    a2.bar(xs, m, 0.6, color="C2")
    for s in range(len(next(iter(acc.values())))):
        a2.plot(xs, [100 * acc[k][s] for k in names], "k.", ms=4)
    for x, v in zip(xs, m):
        a2.text(x, v + 1, f"{v:.0f}", ha="center", fontsize=8)
    a2.axhline(100 * majority, color="gray", ls=":", lw=1, label="majority class")
    a2.set_xticks(xs, names, rotation=30)
    a2.set(ylim=(0, 105), ylabel="test accuracy (%) — bar: mean, dots: seeds",
           title=f"generated task '{config.data.task}' ({config.data.min_nodes}–{config.data.max_nodes} nodes,\n"
                 "node features [1, marked]), one compiled grid")
    a2.legend(fontsize=7, loc="lower right")
    return plots.save(fig, path)


def _figure_stream(sizes, budgets, compiles, path):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 3.6))
    t = np.arange(len(sizes))
    ax.plot(t, sizes[:, 0], "C0.", label="real nodes per batch")
    ax.step(t, budgets[:, 0], "C0-", where="mid", lw=1, label="node budget (power of 2)")
    ax.plot(t, sizes[:, 1], "C1.", label="real edges per batch")
    ax.step(t, budgets[:, 1], "C1-", where="mid", lw=1, label="edge budget (power of 2)")
    ax.set_yscale("log", base=2)
    ax.set(xlabel="batch in the stream", ylabel="count",
           title=f"{len(sizes)} differently sized batches → {compiles} compilations")
    ax.legend(fontsize=7, ncol=2)
    return plots.save(fig, path)


def _draw_graph(ax, pos, senders, receivers, colors, title, *, marked=None, cmap="coolwarm", vmax=1):
    for s, r in zip(senders, receivers):
        if s < r:
            ax.plot(pos[[s, r], 0], pos[[s, r], 1], color="0.75", lw=0.6, zorder=1)
    ax.scatter(pos[:, 0], pos[:, 1], c=colors, cmap=cmap, vmin=0, vmax=vmax, s=90, edgecolors="k",
               linewidths=0.5, zorder=2)
    if marked is not None:
        ax.scatter(pos[marked, 0], pos[marked, 1], s=260, facecolors="none", edgecolors="k", linewidths=1.8,
                   zorder=3)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _figure_karate(kr, config, path):
    import matplotlib.pyplot as plt
    k = D.karate_club()
    g, y, pos = k["graph"], k["y"], k["positions"]
    n = len(y)
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), gridspec_kw={"width_ratios": [1, 1, 1, 1.1]})
    _draw_graph(axes[0], pos, g.senders, g.receivers, y, "truth: the two clubs")
    mask = kr["GCN"]["mask"][0][:n]
    for ax, label in zip(axes[1:3], ("GCN", "MLP")):
        pred = kr[label]["pred"][0][:n]
        _draw_graph(ax, pos, g.senders, g.receivers, pred, f"{label} prediction, split 0 "
                    f"(test acc {kr[label]['test'][0]:.2f}; ringed = labelled)", marked=np.flatnonzero(mask))
    ax = axes[3]
    labels = list(kr)
    for i, lab in enumerate(labels):
        v = kr[lab]["test"]
        ax.plot(np.full(len(v), i) + np.linspace(-0.15, 0.15, len(v)), v, "o", ms=4, alpha=0.8)
        ax.plot([i - 0.25, i + 0.25], [v.mean()] * 2, "k-", lw=2)
    for s in range(len(kr["GCN"]["test"])):
        ax.plot([0 + np.linspace(-0.15, 0.15, len(kr["GCN"]["test"]))[s], 1 + np.linspace(-0.15, 0.15,
                len(kr["GCN"]["test"]))[s]], [kr["GCN"]["test"][s], kr["MLP"]["test"][s]], color="0.8", lw=0.7)
    ax.axhline(0.5, color="gray", ls=":", lw=1)
    ax.set_xticks(range(len(labels)), [lab.replace(", ", "\n") for lab in labels], fontsize=8)
    ax.set(ylim=(0, 1.02), ylabel="test accuracy (unlabelled nodes)",
           title=f"{len(kr['GCN']['test'])} random splits, {config.data.labelled_per_class} labels per class")
    return plots.save(fig, path)


def _figure_pooling(adj, clusters, random_part, acc, path):
    import matplotlib.pyplot as plt
    import networkx as nx
    pos_d = nx.spring_layout(nx.from_numpy_array(adj), seed=0)
    pos = np.array([pos_d[i] for i in range(len(adj))])
    s, r = np.nonzero(adj)
    k = int(clusters.max()) + 1
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    _draw_graph(axes[0], pos, s, r, clusters, "spectral clustering of the adjacency (colour = cluster)",
                cmap="tab10", vmax=9)
    _draw_graph(axes[1], pos, s, r, random_part, "random partition, same cluster sizes", cmap="tab10", vmax=9)
    ax = axes[2]
    labels = list(acc)
    m = [100 * acc[lab].mean() for lab in labels]
    ax.bar(range(len(labels)), m, color=["C7", "C2", "C3"])
    for i, lab in enumerate(labels):
        ax.plot(np.full(len(acc[lab]), i), 100 * acc[lab], "k.", ms=4)
        ax.text(i, m[i] + 1.5, f"{m[i]:.1f}", ha="center", fontsize=8)
    ax.axhline(100 / k, color="gray", ls=":", lw=1, label="chance")
    ax.set_xticks(range(len(labels)), [f"{lab}\n({len(adj) if lab == 'full signal' else k} features)"
                                       for lab in labels], fontsize=8)
    ax.set(ylim=(0, 105), ylabel="test accuracy (%)", title="linear classifier on the (pooled) signal")
    ax.legend(fontsize=7)
    return plots.save(fig, path)
