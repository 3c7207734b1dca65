"""dlnotes.models.gnn and the gnn experiment's tasks: models against NumPy float64 and per-graph results."""
import ml_collections
import numpy as np
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from dlnotes.data import graphs as D
from dlnotes.errors import ConfigError
from dlnotes.experiments import base
from dlnotes.experiments import gnn as exp
from dlnotes.models.gnn import make_gnn
from dlnotes.nn import graph as G


def _cfg(**model):
    m = dict(name="mpnn", hidden=[8], num_layers=2, aggregator="sum", similarity="none", norm="none", groups=4,
             residual=True, readout="sum", level="graph", num_classes=3, bn_momentum=0.9, dropout=0.0)
    m.update(model)
    return ml_collections.ConfigDict(dict(model=m))


def _graphs(seed=0, sizes=(5, 8, 3)):
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        a = np.triu(rng.random((n, n)) < 0.4, 1)
        s, r = np.nonzero(a | a.T)
        out.append(G.graph(rng.standard_normal((n, 4)).astype(np.float32), s, r,
                           edges=rng.standard_normal((len(s), 2)).astype(np.float32),
                           globals=rng.standard_normal(3).astype(np.float32)))
    return out


def test_gcn_equals_numpy_float64_forward():
    g = _graphs(1, (7,))[0]
    model = make_gnn(_cfg(name="gcn", hidden=[5], level="node"), 4)
    params, ms = model.init(jax.random.key(0))
    out = np.asarray(model.apply(params, ms, g)[0])
    p = nnx.to_pure_dict(params)
    n = len(g.nodes)
    a = np.eye(n)
    a[g.receivers, g.senders] += 1
    d = a.sum(1)
    a_hat = a / np.sqrt(np.outer(d, d))
    w = [(np.asarray(p["layers"][i]["kernel"], np.float64), np.asarray(p["layers"][i]["bias"], np.float64))
         for i in range(2)]
    h = np.maximum(a_hat @ (g.nodes @ w[0][0] + w[0][1]), 0)
    ref = a_hat @ (h @ w[1][0] + w[1][1])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_mpnn_batched_and_padded_equal_per_graph(norm):
    graphs = _graphs(2)
    b = G.batch(graphs)
    p = G.pad_with_budget(b)
    for level, rows in (("node", len(b.nodes)), ("graph", len(graphs)), ("edge", len(b.senders))):
        model = make_gnn(_cfg(norm=norm, level=level, similarity="learned", aggregator="softmax"), 4,
                         edge_features=2, global_features=3)
        params, ms = model.init(jax.random.key(1))
        single = np.concatenate([np.asarray(model.apply(params, ms, g)[0]) for g in graphs])
        batched = np.asarray(model.apply(params, ms, b)[0])
        padded = np.asarray(model.apply(params, ms, p, mask=G.node_mask(p))[0])
        np.testing.assert_allclose(batched[:rows], single, atol=1e-5)
        np.testing.assert_allclose(padded[:rows], single, atol=1e-5)


def test_masked_batch_norm_in_training_ignores_padding_and_updates_running_stats():
    graphs = _graphs(3)
    b = G.batch(graphs)
    p = G.pad_to(b, 64, 128, 8)
    model = make_gnn(_cfg(norm="batch"), 4, edge_features=2, global_features=3)
    params, ms = model.init(jax.random.key(2))
    yb, msb = model.apply(params, ms, b, train=True)
    yp, msp = model.apply(params, ms, p, train=True, mask=G.node_mask(p))
    np.testing.assert_allclose(np.asarray(yp)[:3], np.asarray(yb), atol=1e-5)
    for u, v, w in zip(jax.tree.leaves(msb), jax.tree.leaves(msp), jax.tree.leaves(ms)):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=1e-6)
        assert not np.allclose(np.asarray(u), np.asarray(w))              # running stats moved


def test_node_mlp_ignores_edges_and_dropout_only_in_training():
    g = _graphs(4, (6,))[0]
    model = make_gnn(_cfg(name="mlp", level="node"), 4)
    params, ms = model.init(jax.random.key(0))
    a = np.asarray(model.apply(params, ms, g)[0])
    b = np.asarray(model.apply(params, ms, g._replace(senders=g.senders[:0], receivers=g.receivers[:0]))[0])
    np.testing.assert_array_equal(a, b)
    t = np.asarray(model.apply(params, ms, g, train=True, key=jax.random.key(1), dropout=0.5)[0])
    assert not np.allclose(t, a)


def test_bad_model_settings_name_the_key():
    for key, value in (("aggregator", "median"), ("norm", "instance"), ("level", "cluster"), ("readout", "prod")):
        with pytest.raises(ConfigError) as e:
            make_gnn(_cfg(**{key: value}), 4)
        assert e.value.key == f"model.{key}"


def test_draw_split_picks_k_labelled_nodes_per_class_among_real_nodes():
    y = jnp.array([0, 1, 0, 1, 0, 1, 0, 0, 1, 0])
    real = jnp.arange(10) < 8
    for s in range(5):
        m = np.asarray(exp.draw_split(jax.random.key(s), y, real, 2))
        assert m.sum() == 4 and not m[8:].any()
        assert np.sum(m & (np.asarray(y) == 0)) == 2


def test_experiment_config_validates_and_refuses_bad_values():
    c = base.load_config("gnn", "fast")
    exp.validate(c)
    for path, value, key in (("model.aggregator", "median", "model.aggregator"), ("task", "nodes", "task"),
                             ("data.graphs_per_batch", 5000, "data.num_train"), ("model.dropout", 1.0, "model.dropout"),
                             ("data.npz", "/nonexistent.npz", "/nonexistent.npz")):
        from dlnotes.hparams import with_changes
        with pytest.raises(ConfigError) as e:
            exp.validate(with_changes(c, **{path: value}))
        assert e.value.key == key, (path, e.value)


def test_graphs_task_trains_on_an_npz_file(tmp_path):
    graphs, y = D.random_graphs("connected", 24, 0, min_nodes=5, max_nodes=10)
    D.save_graphs_npz(tmp_path / "g.npz", G.batch(graphs), y=y)
    from dlnotes.hparams import from_config, with_changes
    from dlnotes.train.loop import make_train
    c = with_changes(base.load_config("gnn", "fast"), **{"data.npz": str(tmp_path / "g.npz"),
                                                          "data.graphs_per_batch": 6, "model.num_classes": 2,
                                                          "epochs": 2, "model.num_layers": 1, "model.hidden": [8]})
    exp.validate(c)
    task = exp.build_task(c)
    state, metrics = jax.jit(make_train(task))(from_config(c), jax.random.key_data(jax.random.key(0)))
    assert np.isfinite(np.asarray(metrics["steps"]["loss"])).all()
    assert task.num_steps == 2 * 3                                         # 18 training graphs / 6 per batch
