"""Graph data: the karate club, generated graph tasks with known answers, a user's graphs from ``.npz``,
and padded batches stacked for the engine.

- ``karate_club()``: Zachary's karate club from networkx (bundled, no download): 34 nodes, 78
  undirected edges (both directions listed), one-hot node features, label = the 'club' (0: Mr. Hi).
- ``random_graphs(task, n, seed, ...)``: Erdős–Rényi graphs of ``min_nodes``–``max_nodes`` nodes with a
  known graph label: "triangles" (number of triangles, clipped to ``num_classes − 1``), "distance"
  (shortest-path distance d between the two marked nodes: class min(d, num_classes) − 1, unreachable =
  the last class; the second mark is placed so that the classes are balanced), "connected" (1 if connected). Node features: [1, marked].
- ``block_signals(...)``: a fixed stochastic-block graph and signals on it whose class is the block
  carrying a bump (C37's coarsening task).
- ``load_graphs_npz(path)``: keys ``nodes`` (N, F) float, ``senders``/``receivers`` (E,) int,
  ``n_node``/``n_edge`` (G,) int; optional ``edges`` (E, F_e), ``globals`` (G, F_g), ``y`` (G,)
  graph labels, ``node_y`` (N,) node labels. A malformed file raises one ``ConfigError`` naming the key.
- ``stack_batches(graphs, labels, graphs_per_batch, budget)``: consecutive groups of graphs, each
  batched and padded to one common budget, stacked into a dict of arrays with a leading batch axis
  (what the engine samples from with ``batch_size=1``).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from dlnotes.errors import ConfigError
from dlnotes.nn import graph as G

TASKS = ("triangles", "distance", "connected")


# ------------------------------------------------------------------------------- karate
def karate_club(features: str = "onehot") -> dict:
    """{"graph": GraphsTuple (one graph), "y": (34,) club (0 = Mr. Hi, 1 = Officer), "adjacency": (34, 34),
    "positions": (34, 2) a fixed spring layout for drawing}. features: "onehot" (I₃₄) or "constant" (ones)."""
    import networkx as nx

    g = nx.karate_club_graph()
    n = g.number_of_nodes()
    und = np.array(sorted(g.edges()), np.int32)
    senders = np.concatenate([und[:, 0], und[:, 1]])
    receivers = np.concatenate([und[:, 1], und[:, 0]])
    if features == "onehot":
        x = np.eye(n, dtype=np.float32)
    elif features == "constant":
        x = np.ones((n, 1), np.float32)
    else:
        raise ConfigError("data.features", f"must be 'onehot' or 'constant', got {features!r}")
    y = np.array([0 if g.nodes[i]["club"] == "Mr. Hi" else 1 for i in range(n)], np.int32)
    adj = nx.to_numpy_array(g, nodelist=range(n), weight=None).astype(np.float32)
    pos = nx.spring_layout(g, seed=3)
    return {"graph": G.graph(x, senders, receivers), "y": y, "adjacency": adj,
            "positions": np.array([pos[i] for i in range(n)], np.float32)}


# ------------------------------------------------------------------------------- generated tasks
def _er_edges(rng, n, p):
    iu = np.triu_indices(n, 1)
    keep = rng.random(len(iu[0])) < p
    return np.stack([iu[0][keep], iu[1][keep]], 1)


def _label(task, n, und, marks, num_classes):
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from(und.tolist())
    if task == "triangles":
        return min(sum(nx.triangles(g).values()) // 3, num_classes - 1)
    if task == "connected":
        return int(nx.is_connected(g))
    if task == "distance":
        try:
            d = nx.shortest_path_length(g, int(marks[0]), int(marks[1]))
        except nx.NetworkXNoPath:
            return num_classes - 1
        return min(d, num_classes) - 1
    raise ConfigError("data.task", f"unknown task {task!r}; choose from {TASKS}")


def _balanced_partner(rng, n, und, source, num_classes, fallback):
    """A node whose distance class (min(d, K) − 1, unreachable = K − 1) from ``source`` is uniform over classes."""
    adj = [[] for _ in range(n)]
    for a, b in und:
        adj[a].append(b)
        adj[b].append(a)
    dist = np.full(n, -1)
    dist[source] = 0
    frontier = [source]
    while frontier:
        nxt = []
        for v in frontier:
            for w in adj[v]:
                if dist[w] < 0:
                    dist[w] = dist[v] + 1
                    nxt.append(w)
        frontier = nxt
    cls = np.where(dist < 0, num_classes - 1, np.minimum(dist, num_classes) - 1)
    cand = np.flatnonzero((cls == rng.integers(num_classes)) & (np.arange(n) != source))
    return int(rng.choice(cand)) if len(cand) else int(fallback)


def random_graphs(task: str, num_graphs: int, seed: int, *, min_nodes: int = 10, max_nodes: int = 40,
                  avg_degree: float = 2.0, num_classes: int = 3, with_labels: bool = True):
    """``num_graphs`` Erdős–Rényi graphs (n uniform in [min_nodes, max_nodes], p = avg_degree/(n − 1)),
    undirected (both directions), node features [1, marked] (two marked nodes, used by "distance").
    Returns (list of GraphsTuple, labels (num_graphs,) int32; all 0 unless ``with_labels``)."""
    if task not in TASKS:
        raise ConfigError("data.task", f"unknown task {task!r}; choose from {TASKS}")
    if not 2 <= min_nodes <= max_nodes:
        raise ConfigError("data.min_nodes", f"need 2 <= min_nodes <= max_nodes, got {min_nodes}, {max_nodes}")
    rng = np.random.default_rng(seed)
    graphs, labels = [], []
    for _ in range(num_graphs):
        n = int(rng.integers(min_nodes, max_nodes + 1))
        und = _er_edges(rng, n, min(1.0, avg_degree / (n - 1)))
        marks = rng.choice(n, 2, replace=False)
        if task == "distance":       # second mark at a distance of a uniformly drawn class (balanced labels)
            marks[1] = _balanced_partner(rng, n, und, int(marks[0]), num_classes, marks[1])
        x = np.zeros((n, 2), np.float32)
        x[:, 0] = 1.0
        x[marks, 1] = 1.0
        s = np.concatenate([und[:, 0], und[:, 1]]).astype(np.int32)
        r = np.concatenate([und[:, 1], und[:, 0]]).astype(np.int32)
        graphs.append(G.graph(x, s, r))
        labels.append(_label(task, n, und, marks, num_classes) if with_labels else 0)
    return graphs, np.array(labels, np.int32)


def stack_batches(graphs: Sequence[G.GraphsTuple], labels, graphs_per_batch: int, budget=None) -> dict:
    """Batches of ``graphs_per_batch`` consecutive graphs (the remainder dropped), each padded to the
    same ``budget`` (n_node, n_edge, n_graph) (default: the largest power-of-two budget among them).
    Returns {"nodes": (B, N, F), "senders", "receivers": (B, E), "n_node", "n_edge": (B, G), "y": (B, G)}
    (+ "edges", "globals" when present); padding graphs get label 0 and are masked by ``graph_mask``."""
    labels = np.asarray(labels)
    nb = len(graphs) // graphs_per_batch
    if nb < 1:
        raise ConfigError("batch_size", f"{graphs_per_batch} graphs per batch but only {len(graphs)} graphs")
    groups = [G.batch(graphs[i * graphs_per_batch:(i + 1) * graphs_per_batch]) for i in range(nb)]
    if budget is None:
        budgets = np.array([G.budget(b) for b in groups])
        budget = tuple(int(v) for v in budgets.max(0))
    padded = [G.pad_to(b, *budget) for b in groups]
    out = {k: np.stack([getattr(p, k) for p in padded]) for k in G.GraphsTuple._fields
           if getattr(padded[0], k) is not None}
    y = np.zeros((nb, budget[2]), labels.dtype)
    y[:, :graphs_per_batch] = labels[:nb * graphs_per_batch].reshape(nb, graphs_per_batch)
    out["y"] = y
    return out


def as_graphs_tuple(d: dict) -> G.GraphsTuple:
    """A ``GraphsTuple`` from one (unstacked) batch dict of ``stack_batches``."""
    return G.GraphsTuple(**{k: d.get(k) for k in G.GraphsTuple._fields})


# ------------------------------------------------------------------------------- C37's signals
def block_graph(sizes: Sequence[int], p_in: float, p_out: float, seed: int) -> np.ndarray:
    """Symmetric 0/1 adjacency of a stochastic block model (blocks of ``sizes`` consecutive nodes)."""
    rng = np.random.default_rng(seed)
    block = np.repeat(np.arange(len(sizes)), sizes)
    p = np.where(block[:, None] == block[None, :], p_in, p_out)
    upper = np.triu(rng.random(p.shape) < p, 1)
    return (upper | upper.T).astype(np.float32)


def block_signals(sizes: Sequence[int], num: int, seed: int, *, amplitude: float = 1.0, noise: float = 1.0):
    """Signals x (num, N) = amplitude·1[node in block y] + noise·N(0, 1), class y uniform over the blocks.
    Returns (x float32, y int32)."""
    rng = np.random.default_rng(seed)
    block = np.repeat(np.arange(len(sizes)), sizes)
    y = rng.integers(0, len(sizes), num)
    x = amplitude * (block[None, :] == y[:, None]) + noise * rng.standard_normal((num, len(block)))
    return x.astype(np.float32), y.astype(np.int32)


# ------------------------------------------------------------------------------- a user's graphs
NPZ_REQUIRED = ("nodes", "senders", "receivers", "n_node", "n_edge")
NPZ_OPTIONAL = ("edges", "globals", "y", "node_y")


def load_graphs_npz(path) -> tuple[G.GraphsTuple, dict]:
    """A batch of graphs from ``.npz`` (keys in the module docstring), checked: returns (GraphsTuple, labels)
    with labels = {"y": (G,), "node_y": (N,)} for those present. Any problem: ``ConfigError(key, ...)``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(path, "no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            arr = {k: np.asarray(f[k]) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 — not a zip, truncated, pickled objects
        raise ConfigError(path, f"cannot read as .npz ({type(e).__name__}: {e})") from None
    where = os.path.basename(path)

    def fail(key, msg):
        raise ConfigError(key, f"{msg} (in {where})")

    for k in NPZ_REQUIRED:
        if k not in arr:
            fail(k, f"missing (has: {', '.join(sorted(arr)) or 'nothing'})")
    for k, v in arr.items():
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
            fail(k, f"non-numeric dtype {v.dtype}")
        if np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(v)):
            fail(k, "contains NaN or inf")
    nodes = arr["nodes"]
    if nodes.ndim == 1:
        nodes = nodes[:, None]
    if nodes.ndim != 2:
        fail("nodes", f"must be (N, F), got shape {nodes.shape}")
    n = nodes.shape[0]
    ints = {}
    for k in ("senders", "receivers", "n_node", "n_edge"):
        v = arr[k]
        if v.ndim != 1 or not np.issubdtype(v.dtype, np.integer):
            fail(k, f"must be a 1-D integer array, got {v.dtype} of shape {v.shape}")
        ints[k] = v.astype(np.int64)
    s, r, nn, ne = ints["senders"], ints["receivers"], ints["n_node"], ints["n_edge"]
    if len(r) != len(s):
        fail("receivers", f"has {len(r)} entries but senders has {len(s)}")
    if len(ne) != len(nn):
        fail("n_edge", f"has {len(ne)} graphs but n_node has {len(nn)}")
    if len(nn) == 0:
        fail("n_node", "no graphs")
    if np.any(nn < 0) or nn.sum() != n:
        fail("n_node", f"sums to {nn.sum()} (entries must be ≥ 0) but nodes has {n} rows")
    if np.any(ne < 0) or ne.sum() != len(s):
        fail("n_edge", f"sums to {ne.sum()} (entries must be ≥ 0) but there are {len(s)} edges")
    for k, v in (("senders", s), ("receivers", r)):
        bad = np.flatnonzero((v < 0) | (v >= n))
        if len(bad):
            fail(k, f"edge {bad[0]} points to node {v[bad[0]]}, outside [0, {n})")
    node_gid = np.repeat(np.arange(len(nn)), nn)
    edge_gid = np.repeat(np.arange(len(ne)), ne)
    for k, v in (("senders", s), ("receivers", r)):
        cross = np.flatnonzero(node_gid[v] != edge_gid)
        if len(cross):
            fail(k, f"edge {cross[0]} of graph {edge_gid[cross[0]]} points to node {v[cross[0]]} of graph "
                    f"{node_gid[v[cross[0]]]}")
    edges = arr.get("edges")
    if edges is not None:
        edges = edges[:, None] if edges.ndim == 1 else edges
        if edges.ndim != 2 or edges.shape[0] != len(s):
            fail("edges", f"must be (E={len(s)}, F_e), got shape {arr['edges'].shape}")
    glob = arr.get("globals")
    if glob is not None:
        glob = glob[:, None] if glob.ndim == 1 else glob
        if glob.ndim != 2 or glob.shape[0] != len(nn):
            fail("globals", f"must be (G={len(nn)}, F_g), got shape {arr['globals'].shape}")
    labels = {}
    for k, size in (("y", len(nn)), ("node_y", n)):
        if k in arr:
            v = arr[k]
            if v.shape[:1] != (size,):
                fail(k, f"must have {size} rows, got shape {v.shape}")
            labels[k] = v
    g = G.GraphsTuple(nodes.astype(np.float32), None if edges is None else edges.astype(np.float32),
                      s.astype(np.int32), r.astype(np.int32), nn.astype(np.int32), ne.astype(np.int32),
                      None if glob is None else glob.astype(np.float32))
    return g, labels


def save_graphs_npz(path, g: G.GraphsTuple, **labels) -> None:
    """Write ``g`` (and labels such as ``y=...``) in the format ``load_graphs_npz`` reads."""
    arrays = {k: np.asarray(v) for k, v in g._asdict().items() if v is not None}
    np.savez(path, **arrays, **{k: np.asarray(v) for k, v in labels.items()})
