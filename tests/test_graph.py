"""dlnotes.nn.graph, dlnotes.nn.spectral and dlnotes.data.graphs against independent computations
(NumPy float64 loops, networkx, per-graph results)."""
import networkx as nx
import numpy as np
import jax
import jax.numpy as jnp
import pytest

from dlnotes.data import graphs as D
from dlnotes.errors import ConfigError
from dlnotes.nn import conv1d
from dlnotes.nn import graph as G
from dlnotes.nn import spectral as S
from dlnotes.nn.norm import batch_norm


def _rand_graph(rng, n, p=0.3, f=3, isolated=True):
    """Random directed edges among nodes 0..n−2 (node n − 1 receives nothing when ``isolated``)."""
    m = n - 1 if isolated else n
    a = rng.random((m, m)) < p
    np.fill_diagonal(a, False)
    r, s = np.nonzero(a)
    return G.graph(rng.standard_normal((n, f)).astype(np.float32), s, r)


def _ref_aggregate(m, receivers, n, kind, scores=None):
    """NumPy float64, one node at a time."""
    m = np.asarray(m, np.float64)
    out = np.zeros((n, m.shape[1]))
    for i in range(n):
        mi = m[receivers == i]
        if kind == "product":
            out[i] = np.prod(1 / (1 + np.exp(-mi)), axis=0) if len(mi) else 1.0
            continue
        if not len(mi):
            continue
        if kind == "sum":
            out[i] = mi.sum(0)
        elif kind == "mean":
            out[i] = mi.mean(0)
        elif kind == "max":
            out[i] = mi.max(0)
        elif kind == "min":
            out[i] = mi.min(0)
        elif kind == "variance":
            out[i] = mi.var(0)
        elif kind == "softmax":
            si = np.asarray(scores, np.float64)[receivers == i]
            si = si[:, None] if si.ndim == 1 else si
            w = np.exp(si - si.max(0))
            out[i] = (w / w.sum(0) * mi).sum(0)
    return out


@pytest.mark.parametrize("kind", G.AGGREGATORS)
def test_aggregators_match_numpy_and_are_safe_on_empty_neighbourhoods(kind):
    rng = np.random.default_rng(0)
    g = _rand_graph(rng, 9)
    n = len(g.nodes)
    m = rng.standard_normal((len(g.senders), 4)).astype(np.float32)
    scores = (100 * rng.standard_normal(len(g.senders))).astype(np.float32)   # large: needs the max shift
    got = np.asarray(G.aggregate(jnp.asarray(m), jnp.asarray(g.receivers), n, kind, scores=jnp.asarray(scores)))
    want = _ref_aggregate(m, g.receivers, n, kind, scores)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    assert np.all(np.isfinite(got))
    assert np.all(got[n - 1] == (1.0 if kind == "product" else 0.0))      # no incoming edge
    # gradients exist and are finite (max/min masked, product in log space, softmax shifted)
    grad = jax.grad(lambda x: jnp.sum(G.aggregate(x, jnp.asarray(g.receivers), n, kind) ** 2))(jnp.asarray(m))
    assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("kind", G.AGGREGATORS)
def test_aggregators_are_permutation_equivariant(kind):
    rng = np.random.default_rng(1)
    g = _rand_graph(rng, 12)
    n = len(g.nodes)
    m = rng.standard_normal((len(g.senders), 3)).astype(np.float32)
    perm = rng.permutation(n)                 # new node k = old node perm[k]
    inv = np.argsort(perm)
    eperm = rng.permutation(len(g.senders))
    a = np.asarray(G.aggregate(jnp.asarray(m), jnp.asarray(g.receivers), n, kind))
    b = np.asarray(G.aggregate(jnp.asarray(m[eperm]), jnp.asarray(inv[g.receivers][eperm]), n, kind))
    np.testing.assert_allclose(b, a[perm], atol=1e-6)


@pytest.mark.parametrize("kind", ["sum", "mean"])
@pytest.mark.parametrize("extras", [False, True])
def test_linear_message_passing_equals_the_plain_layer_values_and_gradients(kind, extras):
    """The folded one-matmul layer against ``message_passing`` with g, f as plain affine maps (an isolated
    node included; with edge features and globals when ``extras``)."""
    rng = np.random.default_rng(5)
    g = _rand_graph(rng, 11, f=4)
    n, e, f, fe, fg, fo = len(g.nodes), len(g.senders), 4, 2, 3, 5
    s, r = jnp.asarray(g.senders), jnp.asarray(g.receivers)
    edges = jnp.asarray(rng.standard_normal((e, fe)), jnp.float32) if extras else None
    u = jnp.asarray(rng.standard_normal((n, fg)), jnp.float32) if extras else None
    ein, uin = (fe, fg) if extras else (0, 0)
    p = {"h": jnp.asarray(g.nodes), "wm": jnp.asarray(rng.standard_normal((f + ein, fo)), jnp.float32),
         "bm": jnp.asarray(rng.standard_normal(fo), jnp.float32),
         "wu": jnp.asarray(rng.standard_normal((f + fo + uin, 6)), jnp.float32),
         "bu": jnp.asarray(rng.standard_normal(6), jnp.float32)}

    def plain(p):
        def message(h_j, e=None):
            return (h_j if e is None else jnp.concatenate([h_j, e], -1)) @ p["wm"] + p["bm"]

        def update(h, agg, u):
            return jnp.concatenate([h, agg] + ([] if u is None else [u]), -1) @ p["wu"] + p["bu"]
        return G.message_passing(p["h"], s, r, message=message, update=update, aggregator=kind,
                                 node_globals=u, edges=edges)

    def folded(p):
        return G.linear_message_passing(p["h"], s, r, p["wm"], p["bm"], p["wu"], p["bu"], aggregator=kind,
                                        edges=edges, node_globals=u)

    np.testing.assert_allclose(folded(p), plain(p), rtol=1e-5, atol=1e-5)
    t = jnp.asarray(rng.standard_normal((n, 6)), jnp.float32)
    gp, gf = (jax.grad(lambda p, fn=fn: jnp.sum(jnp.tanh(fn(p)) * t))(p) for fn in (plain, folded))
    for k in p:
        np.testing.assert_allclose(gf[k], gp[k], rtol=1e-4, atol=1e-5, err_msg=k)
    with pytest.raises(ConfigError):
        G.linear_message_passing(p["h"], s, r, p["wm"], p["bm"], p["wu"], p["bu"], aggregator="max")


def test_message_passing_applies_the_message_on_nodes_or_edges_alike():
    """g applied to the node rows then gathered (E ≥ N) equals g applied to the gathered rows (E < N)."""
    rng = np.random.default_rng(6)
    g = _rand_graph(rng, 10, p=0.5)
    h, s, r = jnp.asarray(g.nodes), jnp.asarray(g.senders), jnp.asarray(g.receivers)
    assert len(g.senders) >= len(g.nodes)
    w = jnp.asarray(rng.standard_normal((3, 3)), jnp.float32)

    def run(s, r):
        return G.message_passing(h, s, r, message=lambda x: jnp.tanh(x @ w), update=lambda h, a, u: a,
                                 aggregator="max")
    few = np.flatnonzero(np.asarray(r) != 0)[:len(g.nodes) - 1]          # E < N: the gathered rows
    want = G.aggregate(jnp.tanh(h[s] @ w), r, len(g.nodes), "max")
    np.testing.assert_allclose(run(s, r), want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(run(s[few], r[few]), G.aggregate(jnp.tanh(h[s[few]] @ w), r[few], len(g.nodes), "max"),
                               rtol=1e-6, atol=1e-6)


def test_segment_softmax_sums_to_one_per_node_and_survives_huge_scores():
    seg = jnp.array([0, 0, 0, 2, 2])
    p = np.asarray(G.segment_softmax(jnp.array([1e4, 1e4 - 1, -1e4, 3.0, 3.0]), seg, 3))
    np.testing.assert_allclose(np.bincount(np.asarray(seg), p, 3), [1, 0, 1], atol=1e-6)
    np.testing.assert_allclose(p[:2], np.exp([0, -1]) / np.exp([0, -1, -2e4]).sum(), rtol=1e-5)


def test_batch_unbatch_roundtrip_and_offsets():
    rng = np.random.default_rng(2)
    graphs = [_rand_graph(rng, n) for n in (4, 7, 1, 5)]
    b = G.batch(graphs)
    assert b.nodes.shape[0] == 17 and list(b.n_node) == [4, 7, 1, 5]
    assert b.senders[b.n_edge[0]:b.n_edge[:2].sum()].min() >= 4           # second graph offset by 4
    for g0, g1 in zip(graphs, G.unbatch(b)):
        for a, c in zip(g0, g1):
            if a is not None:
                np.testing.assert_array_equal(a, c)


def test_padding_budget_masks_and_padding_edges_stay_in_padding():
    rng = np.random.default_rng(3)
    b = G.batch([_rand_graph(rng, n) for n in (5, 9, 3)])
    n, e = len(b.nodes), len(b.senders)
    bud = G.budget(b)
    assert bud[0] == 32 and bud[0] > n and bud[1] >= e and bud[1] & (bud[1] - 1) == 0 and bud[2] == 4
    p = G.pad_to(b, *bud)
    assert p.nodes.shape[0] == bud[0] and p.senders.shape[0] == bud[1]
    np.testing.assert_array_equal(np.asarray(G.node_mask(p)), np.arange(bud[0]) < n)
    np.testing.assert_array_equal(np.asarray(G.edge_mask(p)), np.arange(bud[1]) < e)
    np.testing.assert_array_equal(np.asarray(G.graph_mask(p)), [True, True, True, False])
    assert np.all(p.senders[e:] >= n) and np.all(p.receivers[e:] >= n)
    p2 = G.pad_to(b, 64, 128, 8)                                          # extra empty graphs
    np.testing.assert_array_equal(np.asarray(G.graph_mask(p2)), [True] * 3 + [False] * 5)
    with pytest.raises(ConfigError):
        G.pad_to(b, n, e, 4)                                              # no room for a padding node


def test_readouts_match_per_graph_numpy_and_ignore_padding():
    rng = np.random.default_rng(4)
    graphs = [_rand_graph(rng, n) for n in (3, 6, 2)]
    p = G.pad_with_budget(G.batch(graphs))
    x = jnp.asarray(p.nodes)
    for kind, fn in (("sum", np.sum), ("mean", np.mean), ("max", np.max)):
        got = np.asarray(G.readout(x, p, kind, G.node_mask(p)))
        want = np.stack([fn(g.nodes, axis=0) for g in graphs])
        np.testing.assert_allclose(got[:3], want, rtol=1e-6, atol=1e-6)


def test_masked_batch_norm_equals_batch_norm_of_the_real_nodes():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((10, 4)).astype(np.float32)
    mask = np.arange(10) < 7
    x[7:] = 1e3                                                           # padding must not matter
    kw = dict(running_mean=jnp.zeros(4), running_var=jnp.ones(4), train=True, momentum=0.8)
    y, (m, v) = G.masked_batch_norm(jnp.asarray(x), jnp.asarray(mask), jnp.full(4, 2.0), jnp.ones(4), **kw)
    y0, (m0, v0) = batch_norm(jnp.asarray(x[:7]), jnp.full(4, 2.0), jnp.ones(4), **kw)
    np.testing.assert_allclose(np.asarray(y)[:7], np.asarray(y0), atol=1e-5)
    np.testing.assert_allclose(m, m0, atol=1e-6)
    np.testing.assert_allclose(v, v0, atol=1e-6)


def test_gcn_propagation_equals_dense_normalized_adjacency():
    rng = np.random.default_rng(6)
    g = _rand_graph(rng, 8, isolated=False)
    n = len(g.nodes)
    a = np.zeros((n, n))
    a[g.receivers, g.senders] = 1.0
    a_t = a + np.eye(n)
    d = a_t.sum(1)
    ref = (a_t / np.sqrt(np.outer(d, a_t.sum(1)))) @ g.nodes.astype(np.float64)
    s, r, w = G.gcn_normalize(jnp.asarray(g.senders), jnp.asarray(g.receivers), n)
    np.testing.assert_allclose(np.asarray(G.gcn_propagate(jnp.asarray(g.nodes), s, r, w, n)), ref, rtol=1e-5,
                               atol=1e-6)


# ------------------------------------------------------------------------------- pooling
def test_cluster_pool_is_the_pooling_matrix_and_soft_pool_with_hard_assignment():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((9, 3)).astype(np.float32)
    assign = np.array([0, 1, 2, 0, 1, 2, 0, 0, 1])
    want = np.stack([x[assign == k].mean(0) for k in range(3)])
    np.testing.assert_allclose(np.asarray(G.cluster_pool(jnp.asarray(x), jnp.asarray(assign), 3)), want, rtol=1e-5)
    np.testing.assert_allclose(G.pooling_matrix(assign, 3) @ x, want, rtol=1e-5)
    adj = (rng.random((9, 9)) < 0.4).astype(np.float32)
    xs, adj_s, s = G.soft_cluster_pool(jnp.asarray(x), jnp.asarray(adj), 1e4 * jax.nn.one_hot(assign, 3))
    onehot = np.eye(3)[assign]
    np.testing.assert_allclose(np.asarray(xs), onehot.T @ x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(adj_s), np.asarray(G.coarsen_adjacency(jnp.asarray(adj),
                                                                                  jnp.asarray(assign), 3)), atol=1e-4)
    np.testing.assert_allclose(np.asarray(s).sum(1), 1.0, rtol=1e-6)


def test_spectral_clustering_recovers_sbm_blocks():
    adj = D.block_graph([12, 12, 12], 0.6, 0.03, seed=0)
    lab = S.spectral_clustering(adj, 3)
    blocks = np.repeat(np.arange(3), 12)
    # same partition up to relabelling: each block maps to one cluster
    assert all(len(set(lab[blocks == b])) == 1 for b in range(3)) and len(set(lab)) == 3


# ------------------------------------------------------------------------------- spectral identities
def test_laplacian_matches_networkx_and_its_spectrum():
    g = nx.karate_club_graph()
    a = nx.to_numpy_array(g, weight=None)
    lap = np.asarray(S.laplacian(jnp.asarray(a, jnp.float32)))
    np.testing.assert_allclose(lap, nx.normalized_laplacian_matrix(g, weight=None).toarray(), atol=1e-6)
    lam, u = S.fourier_basis(jnp.asarray(lap))
    lam, u = np.asarray(lam), np.asarray(u)
    assert abs(lam[0]) < 1e-5 and lam[-1] <= 2 + 1e-5                    # spectrum of L in [0, 2]
    x = np.random.default_rng(0).standard_normal(34).astype(np.float32)
    np.testing.assert_allclose(np.asarray(S.igft(S.gft(jnp.asarray(x), jnp.asarray(u)), jnp.asarray(u))), x,
                               atol=1e-4)


def test_polynomial_filter_commutes_with_adjacency_and_is_permutation_equivariant():
    rng = np.random.default_rng(8)
    a = (rng.random((10, 10)) < 0.3).astype(np.float64)
    a = np.triu(a, 1) + np.triu(a, 1).T
    c = [0.5, -1.0, 0.25, 0.1]
    with jax.enable_x64(True):
        p = np.asarray(S.polynomial_matrix(jnp.asarray(a), c))
        np.testing.assert_allclose(p @ a, a @ p, atol=1e-10)
        ref = sum(ck * np.linalg.matrix_power(a, k) for k, ck in enumerate(c))
        np.testing.assert_allclose(p, ref, atol=1e-10)
        lam, u = np.linalg.eigh(a)                                       # diagonal in A's eigenbasis
        np.testing.assert_allclose(u.T @ p @ u, np.diag(np.asarray(S.spectral_response(jnp.asarray(lam), c))),
                                   atol=1e-9)
        perm = np.eye(10)[rng.permutation(10)]
        x = rng.standard_normal(10)
        y = np.asarray(S.polynomial_filter(jnp.asarray(perm @ a @ perm.T), c, jnp.asarray(perm @ x)))
        np.testing.assert_allclose(y, perm @ (p @ x), atol=1e-10)


def test_polynomial_in_the_cycle_shift_is_a_circular_conv1d():
    n, c = 16, np.array([0.3, -1.2, 0.7, 2.0], np.float32)
    x = np.random.default_rng(9).standard_normal(n).astype(np.float32)
    shift = S.shift_operator(n)
    np.testing.assert_allclose(np.asarray(shift @ jnp.asarray(x)), np.roll(x, 1))   # (Sx)_i = x_{i−1}
    y_graph = np.asarray(S.polynomial_filter(shift, c, jnp.asarray(x)))
    k = len(c)
    xpad = np.concatenate([x[-(k - 1):], x])                               # wrap-around padding
    y_conv = np.asarray(conv1d(jnp.asarray(xpad)[None, :, None], jnp.asarray(S.circular_conv_kernel(c)),
                               padding="VALID"))[0, :, 0]
    y_ref = sum(c[j] * np.roll(x, j) for j in range(k))
    np.testing.assert_allclose(y_graph, y_ref, atol=1e-5)
    np.testing.assert_allclose(y_conv, y_ref, atol=1e-5)


def test_cycle_eigenbasis_is_the_discrete_fourier_basis():
    n = 12
    f = S.dft_matrix(n)
    shift = np.asarray(S.shift_operator(n), np.float64)
    d = f.conj().T @ shift @ f                                             # diagonal: Fourier modes are eigenvectors
    np.testing.assert_allclose(d, np.diag(np.exp(-2j * np.pi * np.arange(n) / n)), atol=1e-12)
    s, r = S.cycle_edges(n, directed=False)
    with jax.enable_x64(True):
        lap = np.asarray(S.laplacian(S.adjacency_matrix(s, r, n, dtype=jnp.float64)))
        lam, u = np.linalg.eigh(lap)
    want = np.sort(1 - np.cos(2 * np.pi * np.arange(n) / n))              # normalized: (2 − 2cos)/2
    np.testing.assert_allclose(lam, want, atol=1e-12)
    # each eigenspace of the Laplacian = the span of the Fourier modes with that frequency (projectors agree)
    for value in np.unique(np.round(want, 9)):
        cols = np.abs(lam - value) < 1e-8
        ks = np.flatnonzero(np.abs(1 - np.cos(2 * np.pi * np.arange(n) / n) - value) < 1e-8)
        np.testing.assert_allclose(u[:, cols] @ u[:, cols].T, (f[:, ks] @ f[:, ks].conj().T).real, atol=1e-10)


# ------------------------------------------------------------------------------- data
def test_karate_club():
    k = D.karate_club()
    g = k["graph"]
    assert g.nodes.shape == (34, 34) and len(g.senders) == 2 * 78
    assert np.bincount(k["y"]).tolist() == [17, 17]
    a = np.zeros((34, 34))
    a[g.receivers, g.senders] = 1
    np.testing.assert_array_equal(a, k["adjacency"])
    assert D.karate_club("constant")["graph"].nodes.shape == (34, 1)


def test_random_graph_labels_match_independent_counts():
    graphs, y = D.random_graphs("triangles", 20, 0, min_nodes=6, max_nodes=12, avg_degree=4.0, num_classes=4)
    for g, label in zip(graphs, y):
        n = len(g.nodes)
        a = np.zeros((n, n))
        a[g.receivers, g.senders] = 1
        assert label == min(int(round(np.trace(a @ a @ a) / 6)), 3)
    graphs, y = D.random_graphs("connected", 20, 1, min_nodes=6, max_nodes=12, avg_degree=1.5, num_classes=2)
    for g, label in zip(graphs, y):
        n = len(g.nodes)
        a = np.eye(n)
        a[g.receivers, g.senders] = 1
        reach = np.linalg.matrix_power(a, n) > 0
        assert label == int(reach.all())
    graphs, y = D.random_graphs("distance", 20, 2, min_nodes=6, max_nodes=12, avg_degree=2.0, num_classes=3)
    for g, label in zip(graphs, y):
        i, j = np.flatnonzero(g.nodes[:, 1])
        nxg = nx.Graph(list(zip(g.senders.tolist(), g.receivers.tolist())))
        nxg.add_nodes_from(range(len(g.nodes)))
        d = nx.shortest_path_length(nxg, i, j) if nx.has_path(nxg, i, j) else 99
        assert label == min(d, 3) - 1


def test_stack_batches_shapes_labels_and_masks():
    graphs, y = D.random_graphs("connected", 10, 0, min_nodes=4, max_nodes=9)
    d = D.stack_batches(graphs, y, 4)
    assert d["nodes"].shape[0] == 2 and d["y"].shape == (2, 5)
    b1 = D.as_graphs_tuple({k: v[1] for k, v in d.items()})
    np.testing.assert_array_equal(d["y"][1, :4], y[4:8])
    assert int(np.sum(G.graph_mask(b1))) == 4
    assert int(np.sum(G.node_mask(b1))) == sum(len(g.nodes) for g in graphs[4:8])


def test_npz_roundtrip_and_refusals(tmp_path):
    rng = np.random.default_rng(10)
    b = G.batch([_rand_graph(rng, n) for n in (4, 6)])
    good = tmp_path / "good.npz"
    D.save_graphs_npz(good, b, y=np.array([0, 1]))
    g, labels = D.load_graphs_npz(good)
    np.testing.assert_array_equal(g.senders, b.senders)
    np.testing.assert_array_equal(labels["y"], [0, 1])

    def refused(key, **changes):
        arrays = {k: np.asarray(v) for k, v in b._asdict().items() if v is not None}
        arrays.update(y=np.array([0, 1]))
        arrays.update(changes)
        arrays = {k: v for k, v in arrays.items() if v is not None}
        path = tmp_path / f"bad_{key}.npz"
        np.savez(path, **arrays)
        with pytest.raises(ConfigError) as e:
            D.load_graphs_npz(path)
        assert e.value.key == key and "\n" not in str(e.value), str(e.value)

    s = b.senders.copy()
    s[0] = 10                                            # node 10 does not exist
    refused("senders", senders=s)
    s = b.senders.copy()
    s[0] = 5                                             # an edge of graph 0 to a node of graph 1
    refused("senders", senders=s)
    refused("receivers", receivers=b.receivers[:-1])
    refused("n_node", n_node=np.array([4, 5]))
    refused("n_edge", n_edge=np.array([b.n_edge[0], b.n_edge[1] + 1]))
    x = b.nodes.copy()
    x[2, 1] = np.nan
    refused("nodes", nodes=x)
    refused("y", y=np.array([0, 1, 1]))
    refused("n_node", n_node=None)                       # missing
    with pytest.raises(ConfigError):
        D.load_graphs_npz(tmp_path / "missing.npz")


def test_a_stream_of_differently_sized_batches_compiles_once_per_budget():
    traces = []

    @jax.jit
    def f(g):
        traces.append(1)
        h = G.aggregate(g.nodes[g.senders], g.receivers, g.nodes.shape[0], "mean")
        return G.readout(h, g, "sum", G.node_mask(g))

    rng = np.random.default_rng(11)
    budgets = set()
    for i in range(20):
        gs, _ = D.random_graphs("connected", int(rng.integers(24, 41)), i, with_labels=False)
        b = G.batch(gs)
        bud = G.budget(b, graphs="pow2")
        budgets.add(bud)
        out = np.asarray(f(G.pad_to(b, *bud)))
        ref = [_ref_aggregate(g.nodes[g.senders], g.receivers, len(g.nodes), "mean").sum(0) for g in gs[:2]]
        np.testing.assert_allclose(out[:2], np.stack(ref), rtol=1e-5, atol=1e-5)
    assert len(traces) == len(budgets) <= 8, (len(traces), budgets)
