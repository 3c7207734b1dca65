"""Models of models/cnn.py, resnet.py, convnext.py against independent computations."""
import jax
import jax.numpy as jnp
import ml_collections as mc
import numpy as np
import pytest
from flax import nnx

from dlnotes.errors import ConfigError
from dlnotes.models import cnn, convnext, resnet
from dlnotes.models.base import count_params
from dlnotes.nn.conv import conv2d, depthwise_conv2d, num_conv_params


def _cfg(**model):
    return mc.ConfigDict({"model": model})


def _x(n=6, seed=0, size=8, c=1):
    return jax.random.uniform(jax.random.key(seed), (n, size, size, c))


def _ln(h, scale, bias, eps=1e-5):
    m = h.mean(-1, keepdims=True)
    v = ((h - m) ** 2).mean(-1, keepdims=True)
    return (h - m) / np.sqrt(v + eps) * scale + bias


# ----------------------------------------------------------------------------- parameter counts


@pytest.mark.parametrize("kw", [
    dict(channels=[16, 32]),
    dict(channels=[16, 32], dense=32, dense_norm="layer"),
    dict(channels=[8, 16], norm="group", groups=4, pool="subsample"),
    dict(channels=[8], norm="batch", pool="none", kernel_size=5, dense=16, dense_norm="batch"),
    dict(channels=[16, 32], pool_layers=[1]),
])
def test_cnn_param_count_matches_formula(kw):
    f = cnn.make_cnn(_cfg(**kw))
    params, _ = f.init(jax.random.key(0))
    expected = cnn.cnn_num_params(1, kw["channels"], 10, kernel_size=kw.get("kernel_size", 3),
                                  pool=kw.get("pool", "max"), norm=kw.get("norm", "none"),
                                  dense=kw.get("dense", 0), dense_norm=kw.get("dense_norm", "none"),
                                  pool_layers=kw.get("pool_layers"))
    # by hand for the first: (9·1+1)·16 + (9·16+1)·32 + (2·2·32+1)·10
    if kw == dict(channels=[16, 32]):
        assert expected == 160 + 4640 + 1290
    if kw.get("pool_layers") == [1]:          # C23's CNN: one pool after the 2nd conv, 4·4·32 → 10
        assert expected == 160 + 4640 + (4 * 4 * 32 + 1) * 10 == 9930
    assert count_params(params) == expected


def test_mlp_matched_width_and_count():
    w = cnn.mlp_width_for(9900, 64, 10)
    assert abs(cnn.mlp_num_params(64, w, 10) - 9900) <= 75 // 2 + 1
    f = cnn.make_mlp_classifier(_cfg(match_params=9900))
    params, _ = f.init(jax.random.key(0))
    assert count_params(params) == 65 * w + (w + 1) * 10


def test_depthwise_is_K2C_vs_K2C2():
    for c, k in [(8, 3), (32, 7), (5, 5)]:
        dw = nnx.eval_shape(lambda: __import__("dlnotes.nn.layers", fromlist=["x"]).DepthwiseConv(
            c, k, use_bias=False, rngs=nnx.Rngs(0)))
        full = nnx.eval_shape(lambda: __import__("dlnotes.nn.layers", fromlist=["x"]).Conv(
            c, c, k, use_bias=False, rngs=nnx.Rngs(0)))
        n_dw = count_params(nnx.state(dw, nnx.Param))
        n_full = count_params(nnx.state(full, nnx.Param))
        assert n_dw == k * k * c == num_conv_params(k, c, c, depthwise=True, bias=False)
        assert n_full == k * k * c * c
        assert n_full // n_dw == c and n_full % n_dw == 0


def test_convnext_and_resnet_block_counts():
    for c in (16, 32, 64):
        blk = nnx.eval_shape(lambda: convnext.ConvNeXtBlock(c, rngs=nnx.Rngs(0)))
        n = count_params(nnx.state(blk, nnx.Param))
        assert n == convnext.convnext_block_num_params(c) == 8 * c * c + (49 + 8) * c + c
        rb = nnx.eval_shape(lambda: resnet.ResNetBlock(c, norm="batch", rngs=nnx.Rngs(0)))
        assert count_params(nnx.state(rb, nnx.Param)) == resnet.resnet_block_num_params(c) == 18 * c * c + 6 * c
        assert count_params(nnx.state(blk, nnx.Param)) < count_params(nnx.state(rb, nnx.Param))


# ----------------------------------------------------------------------------- forward passes vs formulas


def test_residual_block_equals_formula():
    blk = resnet.ResidualBlock(12, 20, rngs=nnx.Rngs(3))
    # random (not default) norm params so the affine part is exercised
    blk.norm.scale[...] = jax.random.normal(jax.random.key(1), (12,))
    blk.norm.bias[...] = jax.random.normal(jax.random.key(2), (12,))
    h = np.asarray(jax.random.normal(jax.random.key(4), (5, 12)), np.float64)
    p = jax.tree.map(lambda v: np.asarray(v, np.float64), nnx.to_pure_dict(nnx.state(blk, nnx.Param)))
    z = _ln(h, p["norm"]["scale"], p["norm"]["bias"])
    expected = h + np.maximum(z @ p["fc1"]["kernel"] + p["fc1"]["bias"], 0) @ p["fc2"]["kernel"] + p["fc2"]["bias"]
    np.testing.assert_allclose(np.asarray(blk(jnp.asarray(h, jnp.float32))), expected, rtol=1e-4, atol=1e-4)


def test_convnext_block_equals_formula():
    c = 6
    blk = convnext.ConvNeXtBlock(c, layer_scale=0.5, rngs=nnx.Rngs(0))
    blk.dwconv.bias[...] = jax.random.normal(jax.random.key(7), (c,))
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, c))
    p = nnx.to_pure_dict(nnx.state(blk, nnx.Param))
    d = depthwise_conv2d(x, p["dwconv"]["kernel"], padding=3, impl="xla") + p["dwconv"]["bias"]
    z = _ln(np.asarray(d, np.float64), p["norm"]["scale"], p["norm"]["bias"])
    u = z @ np.asarray(p["pw1"]["kernel"], np.float64) + p["pw1"]["bias"]
    g = np.asarray(jax.nn.gelu(jnp.asarray(u), approximate=False), np.float64)
    expected = np.asarray(x) + 0.5 * (g @ np.asarray(p["pw2"]["kernel"], np.float64) + p["pw2"]["bias"])
    np.testing.assert_allclose(np.asarray(blk(x)), expected, rtol=1e-4, atol=1e-4)


def test_plain_and_residual_shapes():
    x = _x(3)
    for make in (resnet.make_plain_net, resnet.make_residual_net):
        f = make(_cfg(depth=4, width=16))
        params, ms = f.init(jax.random.key(0))
        out, _ = f.apply(params, ms, x)
        assert out.shape == (3, 10)
        m = f.module(params, ms)
        hs = m.hidden_states(x)
        assert hs.shape == (5, 3, 16) and m.depth == 4
        # the scan over stacked blocks equals applying the stand-alone blocks one after another
        h = m.inp(x.reshape(3, -1))
        for i in range(4):
            h = m.block(i)(h)
            np.testing.assert_allclose(np.asarray(hs[i + 1]), np.asarray(h), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(out), np.asarray(m.out(m.final_norm(h))), rtol=1e-5, atol=1e-5)


def test_plain_block_formula():
    blk = resnet.PlainBlock(8, rngs=nnx.Rngs(0))
    h = jax.random.normal(jax.random.key(1), (4, 8))
    p = nnx.to_pure_dict(nnx.state(blk, nnx.Param))
    expected = np.maximum(_ln(np.asarray(h @ p["linear"]["kernel"] + p["linear"]["bias"], np.float64),
                              p["norm"]["scale"], p["norm"]["bias"]), 0)
    np.testing.assert_allclose(np.asarray(blk(h)), expected, rtol=1e-4, atol=1e-5)


def test_stochastic_depth_eval_identity_and_train_per_example():
    """Eval: the branch at full weight whatever drop_path is (inverted convention: E[train] = eval).
    Train: each example is either h (dropped) or h + f(h)/(1 − p)."""
    blk = resnet.ResidualBlock(8, rngs=nnx.Rngs(0))
    h = jax.random.normal(jax.random.key(1), (64, 8))
    f = blk.branch(h)
    np.testing.assert_allclose(np.asarray(blk(h, drop_path=0.5)), np.asarray(h + f), rtol=1e-6)
    p = 0.5
    y = blk(h, train=True, key=jax.random.key(2), drop_path=p)
    dropped = np.all(np.isclose(np.asarray(y), np.asarray(h), atol=1e-6), axis=1)
    kept = np.all(np.isclose(np.asarray(y), np.asarray(h + f / (1 - p)), atol=1e-5), axis=1)
    assert np.all(dropped ^ kept) and 10 < dropped.sum() < 54
    # whole net: eval output independent of drop_path; train with p = 0 equals eval
    net = resnet.make_residual_net(_cfg(depth=3, width=8))
    params, ms = net.init(jax.random.key(0))
    x = _x(4)
    a, _ = net.apply(params, ms, x, drop_path=0.7)
    b, _ = net.apply(params, ms, x, train=True, key=jax.random.key(0), drop_path=0.0)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
    # traced rate: mean of train outputs over keys ≈ eval (ConvNeXt block, layer scale 1)
    cb = convnext.ConvNeXtBlock(4, layer_scale=1.0, rngs=nnx.Rngs(0))
    xc = jax.random.normal(jax.random.key(3), (1, 8, 8, 4))
    keys = jax.random.split(jax.random.key(4), 4000)
    outs = jax.jit(jax.vmap(lambda k, r: cb(xc, train=True, key=k, drop_path=r), (0, None)))(keys, jnp.float32(0.3))
    np.testing.assert_allclose(np.asarray(outs.mean(0)), np.asarray(cb(xc)), atol=0.05 * float(jnp.abs(cb.branch(xc)).max()))


def test_cnn_subsample_is_every_second_pixel():
    x = _x(3)
    sub = cnn.CNN(1, [4], 10, pool="subsample", rngs=nnx.Rngs(0))
    p = nnx.to_pure_dict(nnx.state(sub, nnx.Param))
    conv = jax.nn.relu(conv2d(x, p["convs"][0]["kernel"], padding="SAME", impl="xla") + p["convs"][0]["bias"])
    feats = conv[:, ::2, ::2, :].reshape(3, -1)
    np.testing.assert_allclose(np.asarray(sub.features(x)), np.asarray(feats), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(sub(x)), np.asarray(feats @ p["out"]["kernel"] + p["out"]["bias"]),
                               rtol=1e-5, atol=1e-5)
    # max pooling keeps the max of each 2×2 window instead
    mx = cnn.CNN(1, [4], 10, pool="max", rngs=nnx.Rngs(0))
    pooled = conv.reshape(3, 4, 2, 4, 2, 4).max(axis=(2, 4)).reshape(3, -1)
    np.testing.assert_allclose(np.asarray(mx.features(x)), np.asarray(pooled), rtol=1e-5, atol=1e-6)


def test_cnn_batch_norm_train_vs_eval():
    f = cnn.make_cnn(_cfg(channels=[4], norm="batch", dense=8, dense_norm="batch"))
    params, ms = f.init(jax.random.key(0))
    x = _x(8)
    before = [np.array(a) for a in jax.tree.leaves(ms)]
    y_train, ms2 = f.apply(params, ms, x, train=True)
    changed = [not np.allclose(a, b) for a, b in zip(before, jax.tree.leaves(ms2))]
    assert changed and all(changed)                    # every running average moved
    assert all(np.array_equal(a, b) for a, b in zip(before, jax.tree.leaves(ms)))   # caller's state untouched
    after = [np.array(a) for a in jax.tree.leaves(ms2)]
    y_eval, ms3 = f.apply(params, ms2, x)
    chex_same = [np.array_equal(a, b) for a, b in zip(after, jax.tree.leaves(ms3))]
    assert all(chex_same)                              # eval writes nothing
    assert not np.allclose(y_train, y_eval)            # batch vs running statistics
    # eval: an example's output does not depend on the rest of the batch; train does
    y1, _ = f.apply(params, ms2, x[:1])
    np.testing.assert_allclose(np.asarray(y1), np.asarray(y_eval[:1]), rtol=1e-5, atol=1e-6)
    t1, _ = f.apply(params, ms2, jnp.concatenate([x[:1], x[1:] * 0.1]), train=True)
    assert not np.allclose(t1[:1], y_train[:1])


def test_cnn_dropout_at_call_time():
    f = cnn.make_cnn(_cfg(channels=[4], dense=16))
    params, ms = f.init(jax.random.key(0))
    x = _x(4)
    a, _ = f.apply(params, ms, x, dropout=0.5)
    b, _ = f.apply(params, ms, x, dropout=0.0)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))     # eval ignores the rate

    @jax.jit
    def train_out(rate, key):
        return f.apply(params, ms, x, train=True, key=key, dropout=rate)[0]
    np.testing.assert_allclose(np.asarray(train_out(0.0, jax.random.key(0))), np.asarray(b), rtol=1e-6, atol=1e-6)
    assert not np.allclose(train_out(0.5, jax.random.key(0)), b)


def test_group_and_layer_norm_cnn_run():
    x = _x(2)
    for kw in (dict(norm="group", groups=2), dict(norm="layer"), dict(dense=8, dense_norm="group", groups=4)):
        f = cnn.make_cnn(_cfg(channels=[4, 8], **kw))
        params, ms = f.init(jax.random.key(0))
        out, _ = f.apply(params, ms, x, train=True, key=jax.random.key(0))
        assert out.shape == (2, 10) and np.all(np.isfinite(out))


@pytest.mark.parametrize("kw,key", [
    (dict(channels=[4], pool="median"), "model.pool"),
    (dict(channels=[4], norm="weird"), "model.norm"),
    (dict(channels=[]), "model.channels"),
    (dict(channels=[6], norm="group", groups=4), "model.groups"),
    (dict(channels=[4], dense_norm="batch"), "model.dense_norm"),
    (dict(channels=[4, 4, 4, 4], pool="max"), "model.channels"),
    (dict(channels=[4, 4], pool_layers=[2]), "model.pool_layers"),
])
def test_cnn_config_errors_name_the_key(kw, key):
    with pytest.raises(ConfigError) as e:
        cnn.make_cnn(_cfg(**kw))
    assert e.value.args[0] == key or key in str(e.value)


def test_resnet_and_convnext_nets_run():
    x = _x(2)
    for f in (resnet.make_resnet(_cfg(channels=[8, 16], norm="group", groups=4)),
              convnext.make_convnext(_cfg(dims=[8, 16], depths=[1, 2]))):
        params, ms = f.init(jax.random.key(0))
        out, _ = f.apply(params, ms, x, train=True, key=jax.random.key(1), drop_path=0.1)
        assert out.shape == (2, 10) and np.all(np.isfinite(out))


def test_batch_norm_models_train_under_grad():
    """The engine differentiates the loss w.r.t. params only; batch norm still writes its running
    averages (nnx would raise TraceContextError if merge reused variables from outside the grad)."""
    x = _x(4)
    for f in (cnn.make_cnn(_cfg(channels=[4], norm="batch")), resnet.make_resnet(_cfg(channels=[4, 8]))):
        params, ms = f.init(jax.random.key(0))

        def loss(p, ms):
            out, new = f.apply(p, ms, x, train=True)
            return jnp.sum(out ** 2), new
        g, new = jax.jit(jax.grad(loss, has_aux=True))(params, ms)
        assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(g))
        assert not all(np.allclose(a, b) for a, b in zip(jax.tree.leaves(ms), jax.tree.leaves(new)))


def test_depthwise_dense_equals_conv():
    for size in (8, 4, 5):
        x = jax.random.normal(jax.random.key(size), (2, size, size, 3))
        k = jax.random.normal(jax.random.key(1), (7, 7, 1, 3))
        np.testing.assert_allclose(np.asarray(convnext.depthwise_conv2d_dense(x, k)),
                                   np.asarray(depthwise_conv2d(x, k, padding="SAME", impl="xla")), rtol=1e-5, atol=1e-5)


def test_zero_init_branch_makes_every_residual_block_the_identity():
    ResidualNet = resnet.ResidualNet
    net = ResidualNet(16, depth=6, width=8, num_classes=3, zero_init_branch=True, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (5, 16))
    hs = np.asarray(net.hidden_states(x))
    assert hs.shape == (7, 5, 8)
    np.testing.assert_array_equal(hs[1:], np.broadcast_to(hs[:1], hs[1:].shape))
    other = ResidualNet(16, depth=6, width=8, num_classes=3, rngs=nnx.Rngs(0))
    assert np.abs(np.asarray(other.hidden_states(x))[-1] - hs[0]).max() > 1e-3
