"""Graph nets (flax.nnx) over ``dlnotes.nn.graph.GraphsTuple`` batches.

``GCN`` (Kipf & Welling): h ← act(Â h W + b) per layer, Â = D̃^{-1/2}(A + I)D̃^{-1/2}; dropout before
each layer; node logits (``level="graph"``: then a per-graph readout of them).

``MPNN``: the notes' layer repeated ``num_layers`` times on ``hidden`` features,

    z_i = f(h_i, AGG_{j→i} s(h_i, h_j)·g(h_j[, e_ij]), u_i)       (``MessagePassing``)
    h_i ← h_i + dropout(act(norm(z_i)))  (``residual``) or  dropout(act(norm(z_i)))

with g, f linear, s = 1 ("none") or a learned similarity ("learned": sigmoid(q_i·k_j/√d); for the
"softmax" aggregator the raw q_i·k_j/√d are the attention scores), AGG any of
``dlnotes.nn.graph.AGGREGATORS`` — or "any": the one at index ``aggregator_index`` (a traced float
passed at call time, so a grid over aggregators is one compiled call), norm "none" | "layer" (per node) | "batch" (over the real nodes
of the batch, padding excluded; running statistics in ``model_state``) | "group" (per node,
``groups`` channel groups). Outputs by ``level``: "node" (N, out), "edge" (E, out) from
[h_s, h_r, e], "graph" (G, out) from a ``readout`` ("sum" | "mean" | "max") and a 2-layer head.

``NodeMLP``: the structure-blind baseline, the same per-node network with the edges ignored
(node logits, or a readout of them for graphs).

Every model is called as ``model(g, *, train, key, mask=None, dropout=0.0[, aggregator_index])``: ``mask`` (N,) marks the
real nodes of a padded batch (``dlnotes.nn.graph.node_mask``; None = all real), ``dropout`` may be a
traced hyperparameter.

Config (``config.model``) read by ``make_gnn(config, in_features, ...)``: ``name`` ("gcn" | "mpnn" |
"mlp"), ``hidden`` (list of widths for gcn/mlp; mpnn uses ``hidden[0]`` for every layer),
``num_layers`` (mpnn), ``aggregator``, ``similarity``, ``norm``, ``groups``, ``residual``, ``readout``,
``level``, ``num_classes``, ``bn_momentum``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from dlnotes.errors import check
from dlnotes.models.base import Functional, functional
from dlnotes.nn import graph as G
from dlnotes.nn import layers as L
from dlnotes.nn.regularize import dropout as _dropout

MODELS = ("gcn", "mpnn", "mlp")
NORMS = ("none", "layer", "batch", "group")
SIMILARITIES = ("none", "learned")
LEVELS = ("node", "edge", "graph")


def _drop(x, rate, key, train):
    if isinstance(rate, (int, float)) and rate == 0:
        return x
    return _dropout(x, rate, key, train)


def _keys(key, n):
    return [None] * n if key is None else list(jax.random.split(key, n))


class GraphBatchNorm(nnx.Module):
    """Batch norm over the real nodes of a batch (``nn.graph.masked_batch_norm``)."""

    def __init__(self, num_features: int, *, momentum=0.9, eps=1e-5):
        self.scale = nnx.Param(jnp.ones((num_features,)))
        self.bias = nnx.Param(jnp.zeros((num_features,)))
        self.mean = nnx.BatchStat(jnp.zeros((num_features,)))
        self.var = nnx.BatchStat(jnp.ones((num_features,)))
        self.momentum, self.eps = momentum, eps

    def __call__(self, x, mask, *, train: bool = False):
        y, (m, v) = G.masked_batch_norm(x, mask, self.scale[...], self.bias[...], running_mean=self.mean[...],
                                        running_var=self.var[...], train=train, momentum=self.momentum,
                                        eps=self.eps)
        if train:
            self.mean[...] = m
            self.var[...] = v
        return y


class NodeNorm(nnx.Module):
    """One of ``NORMS`` on node features (N, F), reusing ``dlnotes.nn.norm`` through ``nn.layers``."""

    def __init__(self, kind: str, features: int, *, groups: int = 4, momentum=0.9):
        check(kind in NORMS, "model.norm", f"unknown norm {kind!r}; choose from {NORMS}")
        self.kind = kind
        if kind == "layer":
            self.mod = L.LayerNorm(features)
        elif kind == "group":
            check(groups >= 1 and features % groups == 0, "model.groups",
                  f"{groups} groups must divide the {features} features")
            self.mod = L.GroupNorm(features, groups)
        elif kind == "batch":
            self.mod = GraphBatchNorm(features, momentum=momentum)
        else:
            self.mod = None

    def __call__(self, x, mask, *, train: bool = False):
        if self.kind == "none":
            return x
        if self.kind == "batch":
            return self.mod(x, mask, train=train)
        return self.mod(x)


class MessagePassing(nnx.Module):
    """z_i = f(h_i, AGG_{j→i} s(h_i, h_j)·g(h_j[, e_ij]), u_i) with linear g and f (``nn.graph.message_passing``;
    sum or mean with s = 1: ``nn.graph.linear_message_passing``, the same function in one matmul)."""

    def __init__(self, in_features: int, out_features: int, *, aggregator: str = "sum", similarity: str = "none",
                 edge_features: int = 0, global_features: int = 0, rngs: nnx.Rngs):
        check(aggregator in G.AGGREGATORS + ("any",), "model.aggregator",
              f"unknown aggregator {aggregator!r}; choose from {G.AGGREGATORS + ('any',)}")
        check(similarity in SIMILARITIES, "model.similarity",
              f"unknown similarity {similarity!r}; choose from {SIMILARITIES}")
        self.aggregator, self.similarity = aggregator, similarity
        self.message = nnx.Linear(in_features + edge_features, out_features, rngs=rngs)
        self.update = nnx.Linear(in_features + out_features + global_features, out_features, rngs=rngs)
        if similarity == "learned":
            self.query = nnx.Linear(in_features, out_features, rngs=rngs)
            self.key = nnx.Linear(in_features, out_features, rngs=rngs)
        self.d = out_features

    def _similarity(self, h_i, h_j):
        return jnp.sum(self.query(h_i) * self.key(h_j), -1) / math.sqrt(self.d)

    def __call__(self, h, g: G.GraphsTuple, u=None, aggregator_index=None):
        edges = None if g.edges is None else jnp.asarray(g.edges)
        if self.aggregator in ("sum", "mean") and self.similarity == "none":   # linear g, f, AGG: one matmul
            return G.linear_message_passing(h, g.senders, g.receivers, self.message.kernel[...],
                                            self.message.bias[...], self.update.kernel[...],
                                            self.update.bias[...], aggregator=self.aggregator, edges=edges,
                                            node_globals=u)

        def message(h_j, e=None):
            return self.message(h_j if e is None else jnp.concatenate([h_j, e], -1))

        def update(h, agg, u):
            return self.update(jnp.concatenate([h, agg] + ([] if u is None else [u]), -1))

        return G.message_passing(h, g.senders, g.receivers, message=message, update=update,
                                 aggregator=self.aggregator,
                                 similarity=self._similarity if self.similarity == "learned" else None,
                                 node_globals=u, edges=edges, aggregator_index=aggregator_index)


class _Heads(nnx.Module):
    """Node/edge/graph outputs from node features h (N, H)."""

    def __init__(self, hidden: int, out: int, level: str, readout: str, edge_features: int, rngs: nnx.Rngs):
        check(level in LEVELS, "model.level", f"unknown level {level!r}; choose from {LEVELS}")
        check(readout in G.READOUTS, "model.readout", f"unknown readout {readout!r}; choose from {G.READOUTS}")
        self.level, self.readout = level, readout
        if level == "edge":
            self.out = nnx.Linear(2 * hidden + edge_features, out, rngs=rngs)
        elif level == "graph":
            self.pre = nnx.Linear(hidden, hidden, rngs=rngs)
            self.out = nnx.Linear(hidden, out, rngs=rngs)
        else:
            self.out = nnx.Linear(hidden, out, rngs=rngs)

    def __call__(self, h, g, mask):
        if self.level == "node":
            return self.out(h)
        if self.level == "edge":
            return self.out(G.edge_features(h, g))
        r = G.readout(h, g, self.readout, mask)
        return self.out(jax.nn.relu(self.pre(r)))


class MPNN(nnx.Module):
    """Encoder → ``num_layers`` × (MessagePassing → norm → ReLU → dropout [+ residual]) → heads."""

    def __init__(self, in_features: int, hidden: int, out_features: int, *, num_layers: int = 3,
                 aggregator: str = "sum", similarity: str = "none", norm: str = "none", groups: int = 4,
                 residual: bool = True, readout: str = "sum", level: str = "graph", edge_features: int = 0,
                 global_features: int = 0, bn_momentum=0.9, rngs: nnx.Rngs):
        check(num_layers >= 1, "model.num_layers", f"must be ≥ 1, got {num_layers}")
        self.encoder = nnx.Linear(in_features, hidden, rngs=rngs)
        self.layers = nnx.List([MessagePassing(hidden, hidden, aggregator=aggregator, similarity=similarity,
                                               edge_features=edge_features, global_features=global_features,
                                               rngs=rngs) for _ in range(num_layers)])
        self.norms = nnx.List([NodeNorm(norm, hidden, groups=groups, momentum=bn_momentum)
                               for _ in range(num_layers)])
        self.residual = residual
        self.heads = _Heads(hidden, out_features, level, readout, edge_features, rngs)

    def node_features(self, g: G.GraphsTuple, *, train=False, key=None, mask=None, dropout=0.0,
                      aggregator_index=None):
        n = g.nodes.shape[0]
        mask = jnp.ones((n,), bool) if mask is None else mask
        u = G.broadcast_globals(g, n)
        h = jax.nn.relu(self.encoder(g.nodes))
        for layer, norm, k in zip(self.layers, self.norms, _keys(key, len(self.layers))):
            z = _drop(jax.nn.relu(norm(layer(h, g, u, aggregator_index), mask, train=train)), dropout, k, train)
            h = h + z if self.residual else z
        return h, mask

    def __call__(self, g: G.GraphsTuple, *, train: bool = False, key=None, mask=None, dropout=0.0,
                 aggregator_index=None):
        h, mask = self.node_features(g, train=train, key=key, mask=mask, dropout=dropout,
                                     aggregator_index=aggregator_index)
        return self.heads(h, g, mask)


class GCN(nnx.Module):
    """len(hidden) + 1 graph convolutions h ← Â h W + b (ReLU between, dropout before each)."""

    def __init__(self, in_features: int, hidden, out_features: int, *, level: str = "node", readout: str = "sum",
                 rngs: nnx.Rngs):
        dims = [in_features] + [int(h) for h in hidden] + [out_features]
        check(level in ("node", "graph"), "model.level", f"GCN outputs 'node' or 'graph', got {level!r}")
        self.layers = nnx.List([nnx.Linear(dims[i], dims[i + 1], rngs=rngs) for i in range(len(dims) - 1)])
        self.level, self.readout = level, readout

    def __call__(self, g: G.GraphsTuple, *, train: bool = False, key=None, mask=None, dropout=0.0):
        n = g.nodes.shape[0]
        s, r, w = G.gcn_normalize(g.senders, g.receivers, n)
        h = g.nodes
        for i, (layer, k) in enumerate(zip(self.layers, _keys(key, len(self.layers)))):
            h = _drop(h, dropout, k, train)
            h = G.gcn_propagate(layer(h), s, r, w, n)
            if i < len(self.layers) - 1:
                h = jax.nn.relu(h)
        return h if self.level == "node" else G.readout(h, g, self.readout, mask)


class NodeMLP(nnx.Module):
    """The structure-blind baseline: a per-node MLP (dropout before each layer); edges ignored."""

    def __init__(self, in_features: int, hidden, out_features: int, *, level: str = "node", readout: str = "sum",
                 rngs: nnx.Rngs):
        dims = [in_features] + [int(h) for h in hidden] + [out_features]
        self.layers = nnx.List([nnx.Linear(dims[i], dims[i + 1], rngs=rngs) for i in range(len(dims) - 1)])
        self.level, self.readout = level, readout

    def __call__(self, g, *, train: bool = False, key=None, mask=None, dropout=0.0):
        x = g.nodes if isinstance(g, G.GraphsTuple) else g
        h = x
        for i, (layer, k) in enumerate(zip(self.layers, _keys(key, len(self.layers)))):
            h = layer(_drop(h, dropout, k, train))
            if i < len(self.layers) - 1:
                h = jax.nn.relu(h)
        if self.level == "graph":
            return G.readout(h, g, self.readout, mask)
        return h


def validate_model(config) -> None:
    """ConfigError naming the bad ``model.*`` key."""
    m = config.model
    check(m.name in MODELS, "model.name", f"unknown model {m.name!r}; choose from {MODELS}")
    hidden = list(m.hidden)
    check(len(hidden) >= 1 and all(int(h) >= 1 for h in hidden), "model.hidden",
          f"must be a non-empty list of positive widths, got {hidden}")
    check(m.aggregator in G.AGGREGATORS + ("any",), "model.aggregator",
          f"unknown aggregator {m.aggregator!r}; choose from {G.AGGREGATORS + ('any',)}")
    if m.aggregator == "any":
        check(m.name == "mpnn" and 0 <= m.get("aggregator_index", 0.0) <= len(G.AGGREGATORS) - 1,
              "model.aggregator_index", f"'any' needs an mpnn and an index in [0, {len(G.AGGREGATORS) - 1}]")
    check(m.similarity in SIMILARITIES, "model.similarity", f"must be one of {SIMILARITIES}")
    check(m.norm in NORMS, "model.norm", f"unknown norm {m.norm!r}; choose from {NORMS}")
    check(m.readout in G.READOUTS, "model.readout", f"must be one of {G.READOUTS}")
    check(m.level in LEVELS, "model.level", f"must be one of {LEVELS}")
    check(m.num_layers >= 1, "model.num_layers", f"must be ≥ 1, got {m.num_layers}")
    check(m.num_classes >= 2, "model.num_classes", f"must be ≥ 2, got {m.num_classes}")
    if m.norm == "group":
        check(m.groups >= 1 and hidden[0] % m.groups == 0, "model.groups",
              f"{m.groups} groups must divide hidden[0]={hidden[0]}")
    if m.name == "gcn":
        check(m.level in ("node", "graph"), "model.level", "a GCN outputs 'node' or 'graph'")


def make_gnn(config, in_features: int, *, edge_features: int = 0, global_features: int = 0) -> Functional:
    """``Functional`` of the model named by ``config.model.name`` (fields in the module docstring)."""
    validate_model(config)
    m = config.model
    name, hidden, out = m.name, [int(h) for h in m.hidden], int(m.num_classes)

    def make(rngs, hp):
        if name == "gcn":
            return GCN(in_features, hidden, out, level=m.level, readout=m.readout, rngs=rngs)
        if name == "mlp":
            return NodeMLP(in_features, hidden, out, level=m.level, readout=m.readout, rngs=rngs)
        return MPNN(in_features, hidden[0], out, num_layers=int(m.num_layers), aggregator=m.aggregator,
                    similarity=m.similarity, norm=m.norm, groups=int(m.groups), residual=bool(m.residual),
                    readout=m.readout, level=m.level, edge_features=edge_features,
                    global_features=global_features, bn_momentum=float(m.bn_momentum), rngs=rngs)

    return functional(make)
