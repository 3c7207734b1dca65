"""Graphs as pytrees and message passing by segment ops (jraph-style), as pure functions.

A batch of graphs is one big graph with no edges between its parts (``GraphsTuple``):

    nodes (N, F)   edges (E, F_e) or None   senders, receivers (E,) int   n_node, n_edge (G,) int
    globals (G, F_g) or None

Edge k carries a message from ``senders[k]`` to ``receivers[k]``; an undirected graph lists
both directions. ``batch`` concatenates graphs and offsets their node indices; ``pad_to`` adds
dummy nodes/edges (all in one trailing padding graph, edges from a padding node to itself) up
to a size budget (``budget``: powers of two by default), so a stream of differently sized
batches compiles once per budget, not once per batch. ``node_mask``/``edge_mask``/``graph_mask``
tell the real entries from the padding; padding never reaches a real node (its edges stay
inside the padding graph).

The notes' layer (``message_passing``):

    h_i' = f(h_i, AGG_{j→i} s(h_i, h_j) · g(h_j), u_graph(i))

with AGG one of ``AGGREGATORS`` (``aggregate``), every one symmetric in the neighbours and
safe on a node with no neighbours (value 0; product: 1).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes.errors import ConfigError
from dlnotes.nn import norm as _norm

AGGREGATORS = ("sum", "mean", "max", "min", "product", "softmax", "variance")
READOUTS = ("sum", "mean", "max")
_IN_BOUNDS = jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS    # no clamping/masking selects around gathers, scatters


class GraphsTuple(NamedTuple):
    """A batch of graphs (a pytree). See the module docstring for shapes."""

    nodes: jax.Array | None
    edges: jax.Array | None
    senders: jax.Array
    receivers: jax.Array
    n_node: jax.Array
    n_edge: jax.Array
    globals: jax.Array | None = None


def graph(nodes, senders, receivers, edges=None, globals=None) -> GraphsTuple:
    """One graph as a ``GraphsTuple`` (n_node = [N], n_edge = [E]); numpy arrays."""
    nodes = np.asarray(nodes)
    senders = np.asarray(senders, np.int32).reshape(-1)
    receivers = np.asarray(receivers, np.int32).reshape(-1)
    g = None if globals is None else np.asarray(globals).reshape(1, -1)
    return GraphsTuple(nodes, None if edges is None else np.asarray(edges), senders, receivers,
                       np.array([len(nodes)], np.int32), np.array([len(senders)], np.int32), g)


def _cat(parts):
    if any(p is None for p in parts):
        if not all(p is None for p in parts):
            raise ConfigError("graphs", "some graphs have this field and others do not")
        return None
    return np.concatenate([np.asarray(p) for p in parts], axis=0)


def batch(graphs: Sequence[GraphsTuple]) -> GraphsTuple:
    """Concatenate graphs into one ``GraphsTuple``; node indices of graph k shift by the nodes before it."""
    if not graphs:
        raise ConfigError("graphs", "nothing to batch")
    offsets = np.cumsum([0] + [int(np.sum(g.n_node)) for g in graphs[:-1]])
    return GraphsTuple(
        nodes=_cat([g.nodes for g in graphs]), edges=_cat([g.edges for g in graphs]),
        senders=np.concatenate([np.asarray(g.senders) + o for g, o in zip(graphs, offsets)]).astype(np.int32),
        receivers=np.concatenate([np.asarray(g.receivers) + o for g, o in zip(graphs, offsets)]).astype(np.int32),
        n_node=np.concatenate([np.asarray(g.n_node) for g in graphs]).astype(np.int32),
        n_edge=np.concatenate([np.asarray(g.n_edge) for g in graphs]).astype(np.int32),
        globals=_cat([g.globals for g in graphs]))


def unbatch(g: GraphsTuple) -> list[GraphsTuple]:
    """The graphs of a batch, node indices back to 0-based (inverse of ``batch``)."""
    n_node, n_edge = np.asarray(g.n_node), np.asarray(g.n_edge)
    no = np.concatenate([[0], np.cumsum(n_node)])
    eo = np.concatenate([[0], np.cumsum(n_edge)])
    out = []
    for k in range(len(n_node)):
        e = slice(eo[k], eo[k + 1])
        out.append(GraphsTuple(
            None if g.nodes is None else np.asarray(g.nodes)[no[k]:no[k + 1]],
            None if g.edges is None else np.asarray(g.edges)[e],
            np.asarray(g.senders)[e] - no[k], np.asarray(g.receivers)[e] - no[k],
            n_node[k:k + 1], n_edge[k:k + 1], None if g.globals is None else np.asarray(g.globals)[k:k + 1]))
    return out


def _round_up(n: int, multiple) -> int:
    if multiple == "pow2":
        return 1 << max(0, int(n - 1).bit_length())
    m = int(multiple)
    return -(-n // m) * m


def budget(g: GraphsTuple, *, nodes="pow2", edges="pow2", graphs=None) -> tuple[int, int, int]:
    """Padded sizes (n_node, n_edge, n_graph) for ``g``: room for ≥ 1 padding node and one
    padding graph, rounded up to a power of two ("pow2") or a multiple of an int; graphs
    rounds only if asked (default: exactly one padding graph)."""
    n, e, k = int(np.sum(g.n_node)), int(np.sum(g.n_edge)), len(np.asarray(g.n_node))
    return (_round_up(n + 1, nodes), _round_up(max(e, 1), edges),
            k + 1 if graphs is None else _round_up(k + 1, graphs))


def pad_to(g: GraphsTuple, n_node: int, n_edge: int, n_graph: int) -> GraphsTuple:
    """Pad to exactly (n_node, n_edge, n_graph): zero features; empty graphs, then one last
    padding graph holding every padding node and edge (each padding edge joins the first
    padding node to itself). Needs n_node > N, n_edge ≥ E, n_graph > G."""
    n, e, k = int(np.sum(g.n_node)), int(np.sum(g.n_edge)), len(np.asarray(g.n_node))
    if n_node <= n or n_edge < e or n_graph <= k:
        raise ConfigError("budget", f"({n_node}, {n_edge}, {n_graph}) cannot hold {n} nodes + 1 padding node, "
                                    f"{e} edges, {k} graphs + 1 padding graph")

    def pad_rows(x, rows):
        if x is None:
            return None
        x = np.asarray(x)
        return np.concatenate([x, np.zeros((rows,) + x.shape[1:], x.dtype)], axis=0)

    fill = np.full(n_edge - e, n, np.int32)
    return GraphsTuple(
        nodes=pad_rows(g.nodes, n_node - n), edges=pad_rows(g.edges, n_edge - e),
        senders=np.concatenate([np.asarray(g.senders, np.int32), fill]),
        receivers=np.concatenate([np.asarray(g.receivers, np.int32), fill]),
        n_node=np.concatenate([np.asarray(g.n_node, np.int32), np.zeros(n_graph - k - 1, np.int32),
                               [n_node - n]]).astype(np.int32),
        n_edge=np.concatenate([np.asarray(g.n_edge, np.int32), np.zeros(n_graph - k - 1, np.int32),
                               [n_edge - e]]).astype(np.int32),
        globals=pad_rows(g.globals, n_graph - k))


def pad_with_budget(g: GraphsTuple, **rounding) -> GraphsTuple:
    """``pad_to(g, *budget(g, **rounding))``."""
    return pad_to(g, *budget(g, **rounding))


# ------------------------------------------------------------------------------- indices and masks
def _static_rows(g):
    if g.nodes is not None:
        return g.nodes.shape[0]
    raise ConfigError("nodes", "a graph without node features needs an explicit node count")


def node_graph_index(g: GraphsTuple, num_nodes: int | None = None) -> jax.Array:
    """(N,) the graph each node belongs to."""
    n = num_nodes or _static_rows(g)
    k = g.n_node.shape[0]
    return jnp.repeat(jnp.arange(k), jnp.asarray(g.n_node), total_repeat_length=n)


def edge_graph_index(g: GraphsTuple) -> jax.Array:
    """(E,) the graph each edge belongs to."""
    k = g.n_node.shape[0]
    return jnp.repeat(jnp.arange(k), jnp.asarray(g.n_edge), total_repeat_length=g.senders.shape[0])


def graph_mask(g: GraphsTuple) -> jax.Array:
    """(G,) bool: real graphs of a batch padded by ``pad_to`` (padding = the last graph and
    the empty graphs before it; a real graph with no nodes counts as padding too)."""
    k = g.n_node.shape[0]
    return (jnp.arange(k) < k - 1) & (jnp.asarray(g.n_node) > 0)


def node_mask(g: GraphsTuple) -> jax.Array:
    """(N,) bool: nodes of real graphs of a padded batch (padding nodes all sit in the last graph)."""
    return node_graph_index(g) < g.n_node.shape[0] - 1


def edge_mask(g: GraphsTuple) -> jax.Array:
    """(E,) bool: edges of real graphs."""
    return edge_graph_index(g) < g.n_node.shape[0] - 1


# ------------------------------------------------------------------------------- aggregation
def segment_softmax(scores: jax.Array, segment_ids: jax.Array, num_segments: int) -> jax.Array:
    """Softmax of ``scores`` (E, ...) within each segment: exp(s − max_seg s) / Σ_seg exp(s − max_seg s)."""
    m = jax.ops.segment_max(scores, segment_ids, num_segments)
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    z = jnp.exp(scores - jax.lax.stop_gradient(m)[segment_ids])
    den = jax.ops.segment_sum(z, segment_ids, num_segments)
    return z / den[segment_ids]


def _bcast(count, like):
    return count.reshape(count.shape + (1,) * (like.ndim - 1))


def aggregate(messages: jax.Array, receivers: jax.Array, num_nodes: int, kind: str = "sum", *,
              scores: jax.Array | None = None) -> jax.Array:
    """AGG over each node's incoming ``messages`` (E, F) → (N, F); every kind is symmetric and
    gives a defined value on a node with no incoming edge.

    sum       Σ m                                         (empty: 0)
    mean      Σ m / max(count, 1)                         (empty: 0)
    max, min  segment max/min, masked by count > 0        (empty: 0, never ±inf)
    product   Π sigmoid(m) = exp(−Σ softplus(−m))         (empty: 1; messages squashed into (0, 1))
    softmax   Σ α m, α = softmax over the node's edges of ``scores`` (E,) or (E, F)
              (default: scores = m), per-node max subtracted   (empty: 0)
    variance  Σ (m − mean)² / max(count, 1), two-pass     (empty: 0; ≥ 0 by construction)
    """
    ones = jnp.ones(messages.shape[:1], messages.dtype)
    count = _bcast(jax.ops.segment_sum(ones, receivers, num_nodes), messages)
    if kind == "sum":
        return jax.ops.segment_sum(messages, receivers, num_nodes)
    if kind == "mean":
        return jax.ops.segment_sum(messages, receivers, num_nodes) / jnp.maximum(count, 1.0)
    if kind in ("max", "min"):
        op = jax.ops.segment_max if kind == "max" else jax.ops.segment_min
        return jnp.where(count > 0, op(messages, receivers, num_nodes), 0.0)
    if kind == "product":
        return jnp.exp(-jax.ops.segment_sum(jax.nn.softplus(-messages), receivers, num_nodes))
    if kind == "softmax":
        s = messages if scores is None else scores
        if s.ndim < messages.ndim:
            s = _bcast(s, messages)
        alpha = segment_softmax(s, receivers, num_nodes)
        return jax.ops.segment_sum(alpha * messages, receivers, num_nodes)
    if kind == "variance":
        mean = jax.ops.segment_sum(messages, receivers, num_nodes) / jnp.maximum(count, 1.0)
        dev = jnp.square(messages - mean[receivers])
        return jax.ops.segment_sum(dev, receivers, num_nodes) / jnp.maximum(count, 1.0)
    raise ConfigError("aggregator", f"unknown aggregator {kind!r}; choose from {AGGREGATORS}")


def aggregate_by_index(messages: jax.Array, receivers: jax.Array, num_nodes: int, index, *,
                       scores: jax.Array | None = None, weights: jax.Array | None = None) -> jax.Array:
    """``aggregate`` with the kind chosen by a (traced) integer ``index`` into ``AGGREGATORS``
    (``lax.switch``): a grid of aggregators trains in one compiled call (under ``vmap`` every branch
    runs and one is selected). ``weights`` multiply the messages of every kind but softmax."""
    wm = messages if weights is None else messages * weights

    def branch(kind):
        if kind == "softmax":
            return lambda: aggregate(messages, receivers, num_nodes, "softmax", scores=scores)
        return lambda: aggregate(wm, receivers, num_nodes, kind)

    idx = jnp.clip(jnp.round(jnp.asarray(index)).astype(jnp.int32), 0, len(AGGREGATORS) - 1)
    return jax.lax.switch(idx, [branch(k) for k in AGGREGATORS])


def message_passing(h: jax.Array, senders: jax.Array, receivers: jax.Array, *, message: Callable,
                    update: Callable, aggregator: str = "sum", similarity: Callable | None = None,
                    node_globals: jax.Array | None = None, edges: jax.Array | None = None,
                    aggregator_index=None) -> jax.Array:
    """The notes' layer  h_i' = f(h_i, AGG_{j→i} s(h_i, h_j)·g(h_j), u_i).

    message: g(h_j) (E, F) → (E, F') (or g(h_j, e_ij) when ``edges`` (E, F_e) is given), row by row (without
      edges and with E ≥ N it is applied to the N node rows and then gathered);
    similarity: a score σ(h_i, h_j) → (E,) or (E, F'); the weight is s = sigmoid(σ) ∈ (0, 1), and for
      ``aggregator="softmax"`` σ are the attention logits (softmax over each node's edges) instead.
      None: s = 1 (softmax: per-feature softmax of the messages themselves).
    update: f(h_i, agg, u_i) → (N, F''); u_i = the node's graph's globals (N, F_g) or None.
    aggregator: a name of ``AGGREGATORS``, or "any" with a (traced) ``aggregator_index``.
    """
    n = h.shape[0]
    if edges is None and senders.shape[0] >= n:   # g acts row by row: g(h)[senders] = g(h[senders]), on fewer rows
        m = message(h)[senders]
    else:
        m = message(h[senders]) if edges is None else message(h[senders], edges)
    scores = weights = None
    if similarity is not None:
        scores = similarity(h[receivers], h[senders])
        scores = scores[:, None] if scores.ndim == 1 else scores
        weights = jax.nn.sigmoid(scores)
    if aggregator == "any":
        agg = aggregate_by_index(m, receivers, n, aggregator_index, scores=scores, weights=weights)
    elif aggregator == "softmax":
        agg = aggregate(m, receivers, n, "softmax", scores=scores)
    else:
        agg = aggregate(m if weights is None else m * weights, receivers, n, aggregator)
    return update(h, agg, node_globals)


def linear_message_passing(h: jax.Array, senders: jax.Array, receivers: jax.Array, w_message, b_message,
                           w_update, b_update, *, aggregator: str = "sum", edges: jax.Array | None = None,
                           node_globals: jax.Array | None = None) -> jax.Array:
    """``message_passing`` with linear g and f and a linear AGG (sum, mean), in one matmul per layer:

        z_i = [h_i, AGG_{j→i}([h_j, e_ij] W_m + b_m), u_i] W_u + b_u
            = [h_i, AGG_{j→i}[h_j, e_ij, 1], u_i] W' + b_u,    W' = [W_u,h; [W_m; b_m] W_u,agg; W_u,u]

    (AGG commutes with an affine message; the column of ones aggregates to the in-degree (sum) or to
    1[degree > 0] (mean), so an empty neighbourhood still contributes exactly 0). Shapes: h (N, F),
    w_message (F + F_e, F'), w_update (F + F' + F_g, F'') → (N, F''). Gathers and segment sums run on
    F + F_e + 1 columns, the dense layers on the N nodes only. Every sender and receiver must be a node
    (0 ≤ index < N, as ``batch``/``pad_to`` make them): out-of-range indices are not checked.
    """
    if aggregator not in ("sum", "mean"):
        raise ConfigError("aggregator", f"linear_message_passing needs a linear aggregator (sum, mean), got {aggregator!r}")
    n, f = h.shape
    fm = w_message.shape[1]
    x = jnp.concatenate([h, jnp.ones((n, 1), h.dtype)], -1).at[senders].get(mode=_IN_BOUNDS)   # (E, F + 1): [h_j, 1]
    if edges is not None:
        x = jnp.concatenate([x, edges.astype(h.dtype)], -1)                     # [h_j, 1, e_ij]
    agg = jax.ops.segment_sum(x, receivers, n, mode=_IN_BOUNDS)                 # [Σ h_j, deg, Σ e_ij]
    if aggregator == "mean":
        agg = agg / jnp.maximum(agg[:, f:f + 1], 1.0)
    w_msg = jnp.concatenate([w_message[:f], b_message[None, :], w_message[f:]], 0)   # rows in x's order
    w = jnp.concatenate([w_update[:f], w_msg @ w_update[f:f + fm], w_update[f + fm:]], 0)
    parts = [h, agg] + ([] if node_globals is None else [node_globals])
    return jnp.concatenate(parts, -1) @ w + b_update


def readout(nodes: jax.Array, g: GraphsTuple, kind: str = "sum", mask: jax.Array | None = None) -> jax.Array:
    """Per-graph pooling of node vectors (N, F) → (G, F): sum, mean or max (empty graph: 0).
    ``mask`` (N,) drops nodes (padding) before pooling."""
    k = g.n_node.shape[0]
    gid = node_graph_index(g, nodes.shape[0])
    if mask is not None:
        nodes = jnp.where(mask[:, None], nodes, 0.0)
        gid = jnp.where(mask, gid, k - 1)
    if kind == "sum":
        return jax.ops.segment_sum(nodes, gid, k)
    if kind == "mean":
        return aggregate(nodes, gid, k, "mean")
    if kind == "max":
        return aggregate(nodes, gid, k, "max")
    raise ConfigError("readout", f"unknown readout {kind!r}; choose from {READOUTS}")


def broadcast_globals(g: GraphsTuple, num_nodes: int | None = None) -> jax.Array | None:
    """(N, F_g): each node's graph's globals (None if the batch has none)."""
    if g.globals is None:
        return None
    return jnp.asarray(g.globals)[node_graph_index(g, num_nodes)]


def edge_features(h: jax.Array, g: GraphsTuple) -> jax.Array:
    """(E, 2F [+ F_e]): [h_sender, h_receiver, edge features] for edge-level outputs."""
    parts = [h[g.senders], h[g.receivers]] + ([] if g.edges is None else [jnp.asarray(g.edges)])
    return jnp.concatenate(parts, axis=-1)


# ------------------------------------------------------------------------------- GCN
def gcn_normalize(senders, receivers, num_nodes: int, *, self_loops: bool = True, edge_weight=None):
    """Edges and weights of Â = D̃^{-1/2}(A + I)D̃^{-1/2} (Kipf & Welling), D̃ = in-degree + 1.

    Returns (senders, receivers, weights) with the self-loops appended when ``self_loops``.
    ``edge_weight`` (E,) masks edges (0 for padding), default 1.
    """
    w = jnp.ones(senders.shape, jnp.float32) if edge_weight is None else jnp.asarray(edge_weight, jnp.float32)
    if self_loops:
        loop = jnp.arange(num_nodes, dtype=senders.dtype)
        senders = jnp.concatenate([senders, loop])
        receivers = jnp.concatenate([receivers, loop])
        w = jnp.concatenate([w, jnp.ones((num_nodes,), w.dtype)])
    deg = jax.ops.segment_sum(w, receivers, num_nodes)
    inv = jnp.where(deg > 0, jax.lax.rsqrt(jnp.maximum(deg, 1e-12)), 0.0)
    return senders, receivers, w * inv[senders] * inv[receivers]


def gcn_propagate(x: jax.Array, senders, receivers, weights, num_nodes: int) -> jax.Array:
    """Σ_j Â_ij x_j by gather + segment_sum (weights from ``gcn_normalize``)."""
    return jax.ops.segment_sum(weights[:, None] * x[senders], receivers, num_nodes)


# ------------------------------------------------------------------------------- norms on graphs
def masked_batch_norm(x: jax.Array, mask: jax.Array, scale=None, bias=None, *, running_mean, running_var,
                      train: bool, momentum=0.9, eps=1e-5):
    """Batch norm over the real nodes of a batch: μ, σ² over rows with ``mask`` (padding excluded),
    then ``dlnotes.nn.norm.batch_norm``'s formula (eval mode with these statistics).
    Returns (y, (new_mean, new_var)) like ``batch_norm``."""
    if train:
        w = mask.astype(x.dtype)[:, None]
        n = jnp.maximum(jnp.sum(w), 1.0)
        mean = jnp.sum(w * x, axis=0) / n
        var = jnp.sum(w * jnp.square(x - mean), axis=0) / n
        y, _ = _norm.batch_norm(x, scale, bias, running_mean=mean, running_var=var, train=False, eps=eps)
        new = ((momentum * running_mean + (1 - momentum) * mean).astype(running_mean.dtype),
               (momentum * running_var + (1 - momentum) * var).astype(running_var.dtype))
        return y, new
    return _norm.batch_norm(x, scale, bias, running_mean=running_mean, running_var=running_var,
                            train=False, eps=eps)


# ------------------------------------------------------------------------------- pooling
def cluster_pool(x: jax.Array, assignment: jax.Array, num_clusters: int) -> jax.Array:
    """Mean of the node vectors in each cluster: (…, N, F) → (…, K, F) (a signal (N,) → (K,); for a
    batch of signals (B, N) pass x[..., None]). ``assignment`` (N,) int in [0, K) (``spectral_clustering``)."""
    if x.ndim == 1:
        return cluster_pool(x[:, None], assignment, num_clusters)[:, 0]
    moved = jnp.moveaxis(x, -2, 0)                     # (N, ..., F)
    pooled = aggregate(moved.reshape(moved.shape[0], -1), assignment, num_clusters, "mean")
    return jnp.moveaxis(pooled.reshape((num_clusters,) + moved.shape[1:]), 0, -2)


def pooling_matrix(assignment, num_clusters: int) -> np.ndarray:
    """(K, N) row-stochastic P with P[k, i] = 1/|cluster k| if i ∈ k: cluster_pool(x) = P x."""
    a = np.asarray(assignment)
    p = np.zeros((num_clusters, len(a)), np.float32)
    p[a, np.arange(len(a))] = 1.0
    return p / np.maximum(p.sum(1, keepdims=True), 1.0)


def coarsen_adjacency(adj: jax.Array, assignment: jax.Array, num_clusters: int) -> jax.Array:
    """(K, K) edge weights between clusters: Sᵀ A S with the hard assignment S (N, K) one-hot."""
    s = jax.nn.one_hot(assignment, num_clusters, dtype=adj.dtype)
    return s.T @ adj @ s


def soft_cluster_pool(x: jax.Array, adj: jax.Array, logits: jax.Array):
    """A learnable soft clustering (DiffPool): S = softmax(logits) (N, K) row-wise;
    returns (Sᵀ X (K, F), Sᵀ A S (K, K), S). With one-hot S it is sum-pooling + ``coarsen_adjacency``."""
    s = jax.nn.softmax(logits, axis=-1)
    return s.T @ x, s.T @ adj @ s, s
