"""nnx layers equal the pure functions; batch statistics live in model_state."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dlnotes.errors import ConfigError
from dlnotes.models.base import count_params, functional
from dlnotes.nn import conv as C
from dlnotes.nn import layers as L
from dlnotes.nn import norm as N
from dlnotes.nn.regularize import dropout, stochastic_depth


@pytest.fixture(scope="module")
def x():
    return jax.random.normal(jax.random.key(0), (3, 9, 8, 4)) * 2 + 0.5


def _randomize(module, seed=1):
    """Replace every Param by random values so scale/bias paths are exercised."""
    params = nnx.state(module, nnx.Param)
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)   # NumPy: no per-shape compile
    nnx.update(module, jax.tree.unflatten(tree, [jnp.asarray(rng.normal(size=a.shape), jnp.float32)
                                                 for a in leaves]))
    return module


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(stride=2, padding=1, dilation=(1, 2)),
    dict(groups=2, padding="VALID", padding_mode="zeros"),
    dict(padding=1, padding_mode="reflect", use_bias=False, impl="xla"),
])
def test_conv_layer_equals_conv2d(x, kwargs):
    layer = _randomize(L.Conv(4, 6, 3, rngs=nnx.Rngs(0), **kwargs))
    pure_kw = {k: v for k, v in kwargs.items() if k != "use_bias"}
    pure_kw.setdefault("padding", "SAME")
    ref = C.conv2d(x, layer.kernel[...], **pure_kw)
    if kwargs.get("use_bias", True):
        ref = ref + layer.bias[...]
    else:
        assert layer.bias is None
    np.testing.assert_array_equal(layer(x), ref)
    assert layer.kernel.shape == (3, 3, 4 // kwargs.get("groups", 1), 6)


def test_depthwise_ws_and_conv1d_layers(x):
    dw = _randomize(L.DepthwiseConv(4, 5, multiplier=2, rngs=nnx.Rngs(0)))
    assert dw.kernel.shape == (5, 5, 1, 8)
    np.testing.assert_array_equal(dw(x), C.depthwise_conv2d(x, dw.kernel[...], padding="SAME") + dw.bias[...])
    dense = nnx.eval_shape(lambda: L.Conv(4, 4, 5, rngs=nnx.Rngs(0)))
    dw1 = nnx.eval_shape(lambda: L.DepthwiseConv(4, 5, rngs=nnx.Rngs(0)))
    assert count_params(nnx.state(dense, nnx.Param)) == C.num_conv_params(5, 4, 4)
    assert count_params(nnx.state(dw1, nnx.Param)) == C.num_conv_params(5, 4, 4, depthwise=True)

    ws = _randomize(L.WSConv(4, 6, 3, rngs=nnx.Rngs(0)))
    y = ws(x)
    np.testing.assert_array_equal(y, C.conv2d(x, N.weight_standardize(ws.kernel[...]), padding="SAME") + ws.bias[...])
    ws.kernel[...] = ws.kernel[...] * 5.0
    np.testing.assert_allclose(ws(x), y, rtol=1e-4, atol=1e-4)            # C27 through the layer

    c1 = _randomize(L.Conv1D(4, 3, 3, stride=2, rngs=nnx.Rngs(0)))
    x1 = x[:, 0]
    np.testing.assert_array_equal(c1(x1), C.conv1d(x1, c1.kernel[...], stride=2, padding="SAME") + c1.bias[...])


def test_norm_layers_equal_pure_functions(x):
    cases = [
        (L.LayerNorm(4), lambda m: N.layer_norm(x, m.scale[...], m.bias[...])),
        (L.LayerNorm(4, axes=(1, 2, 3)), lambda m: N.layer_norm(x, m.scale[...], m.bias[...], axes=(1, 2, 3))),
        (L.GroupNorm(4, 2), lambda m: N.group_norm(x, 2, m.scale[...], m.bias[...])),
        (L.RMSNorm(4), lambda m: N.rms_norm(x, m.scale[...])),
    ]
    for layer, ref in cases:
        _randomize(layer)
        np.testing.assert_array_equal(layer(x), ref(layer))
    assert L.RMSNorm(4).__dict__.get("bias") is None
    with pytest.raises(ConfigError):
        L.GroupNorm(6, 4)


def test_batchnorm_layer_updates_running_stats_only_in_training(x):
    bn = _randomize(L.BatchNorm(4, momentum=0.8))
    m0, v0 = bn.mean[...], bn.var[...]
    y_eval = bn(x)
    ref_eval, _ = N.batch_norm(x, bn.scale[...], bn.bias[...], running_mean=m0, running_var=v0, train=False)
    np.testing.assert_array_equal(y_eval, ref_eval)
    np.testing.assert_array_equal(bn.mean[...], m0)                         # eval leaves stats alone
    y_tr = bn(x, train=True)
    ref_tr, (m1, v1) = N.batch_norm(x, bn.scale[...], bn.bias[...], running_mean=m0, running_var=v0,
                                    train=True, momentum=0.8)
    np.testing.assert_array_equal(y_tr, ref_tr)
    np.testing.assert_array_equal(bn.mean[...], m1)
    np.testing.assert_array_equal(bn.var[...], v1)


def test_batchnorm_through_functional_boundary(x):
    """Running averages are model_state (not params) and flow through init/apply under jit."""
    class Net(nnx.Module):
        def __init__(self, rngs, hp):
            self.conv = L.Conv(4, 8, 3, rngs=rngs)
            self.bn = L.BatchNorm(8, rngs=rngs)
            self.drop = L.Dropout(0.5)

        def __call__(self, x, *, train=False, key=None):
            h = self.bn(self.conv(x), train=train)
            return self.drop(jax.nn.relu(h), train=train, key=key)

    f = functional(lambda rngs, hp: Net(rngs, hp))
    params, state = f.init(jax.random.key(0))
    assert count_params(params) == C.num_conv_params(3, 4, 8) + 2 * 8
    assert count_params(state) == 2 * 8                                     # mean and var
    apply = jax.jit(f.apply, static_argnames="train")
    out_tr, state2 = apply(params, state, x, train=True, key=jax.random.key(1))
    h = C.conv2d(x, params["conv"]["kernel"][...], padding="SAME") + params["conv"]["bias"][...]
    np.testing.assert_allclose(state2["bn"]["mean"][...], 0.1 * h.mean((0, 1, 2)), rtol=1e-5, atol=1e-6)
    assert float((out_tr == 0).mean()) > 0.5                                 # ReLU zeros + dropped units
    out_ev, state3 = apply(params, state2, x, train=False)
    np.testing.assert_array_equal(state3["bn"]["mean"][...], state2["bn"]["mean"][...])
    out_ev2, _ = apply(params, state2, x, train=False)
    np.testing.assert_array_equal(out_ev, out_ev2)                           # eval deterministic


def test_dropout_and_stochastic_depth_layers(x):
    k = jax.random.key(3)
    np.testing.assert_array_equal(L.Dropout(0.3)(x, train=True, key=k), dropout(x, 0.3, k, True))
    np.testing.assert_array_equal(L.Dropout(0.3)(x), x)
    np.testing.assert_array_equal(L.StochasticDepth(0.3)(x, train=True, key=k), stochastic_depth(x, 0.3, k, True))
    np.testing.assert_array_equal(L.StochasticDepth(0.3)(x), x)
    for bad in (lambda: L.Dropout(1.0), lambda: L.StochasticDepth(-0.2), lambda: L.BatchNorm(4, momentum=1.5)):
        with pytest.raises(ConfigError):
            bad()
    # a traced rate: the layer built inside jit from a hyperparameter
    f = jax.jit(lambda r: L.Dropout(r)(x, train=True, key=k))
    np.testing.assert_allclose(f(0.3), dropout(x, jnp.float32(0.3), k, True), rtol=1e-6)  # jit may use x·(1/q)
