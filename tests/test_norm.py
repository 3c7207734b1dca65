"""norm.py against a two-pass float64 NumPy reference; C24, C27."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlnotes.errors import ConfigError
from dlnotes.nn import conv as C
from dlnotes.nn import norm as N


def np_norm(x, axes, eps, scale=None, bias=None):
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    return y


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = 3.0 + 2.0 * rng.normal(size=(4, 5, 6, 8))
    scale, bias = rng.normal(size=8), rng.normal(size=8)
    return x, scale, bias


def test_norms_match_float64_reference(data):
    x, g, b = data
    eps = 1e-5
    with jax.enable_x64(True):
        xj, gj, bj = map(jnp.asarray, (x, g, b))
        cases = [
            (N.layer_norm(xj, gj, bj, eps=eps), np_norm(x, (3,), eps, g, b)),
            (N.layer_norm(xj, gj, bj, axes=(1, 2, 3), eps=eps), np_norm(x, (1, 2, 3), eps, g, b)),
            (N.instance_norm(xj, gj, bj, eps=eps), np_norm(x, (1, 2), eps, g, b)),
            (N.group_norm(xj, 4, gj, bj, eps=eps),
             np_norm(x.reshape(4, 5, 6, 4, 2), (1, 2, 4), eps).reshape(x.shape) * g + b),
            (N.group_norm(xj[:, 0, 0], 2, gj, bj, eps=eps),
             np_norm(x[:, 0, 0].reshape(4, 2, 4), (2,), eps).reshape(4, 8) * g + b),
            (N.rms_norm(xj, gj, eps=eps), x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * g),
            (N.layer_norm(xj[:, 0], eps=eps), np_norm(x[:, 0], (2,), eps)),          # (N, T, C)
        ]
        for got, ref in cases:
            assert got.dtype == jnp.float64
            np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-12)
    # float32, the usual dtype
    np.testing.assert_allclose(N.group_norm(jnp.asarray(x, jnp.float32), 4),
                               np_norm(x.reshape(4, 5, 6, 4, 2), (1, 2, 4), 1e-5).reshape(x.shape),
                               rtol=1e-4, atol=1e-4)


def test_batch_norm_train_and_eval(data):
    x, g, b = data
    rm, rv = np.linspace(-1, 1, 8), np.linspace(0.5, 2, 8)
    with jax.enable_x64(True):
        y, (m, v) = N.batch_norm(*map(jnp.asarray, (x, g, b)), running_mean=jnp.asarray(rm),
                                 running_var=jnp.asarray(rv), train=True, momentum=0.9, eps=1e-5)
        np.testing.assert_allclose(np.asarray(y), np_norm(x, (0, 1, 2), 1e-5, g, b), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(m), 0.9 * rm + 0.1 * x.mean((0, 1, 2)), rtol=1e-12)
        np.testing.assert_allclose(np.asarray(v), 0.9 * rv + 0.1 * x.var((0, 1, 2)), rtol=1e-12)
        ye, (me, ve) = N.batch_norm(*map(jnp.asarray, (x, g, b)), running_mean=jnp.asarray(rm),
                                    running_var=jnp.asarray(rv), train=False)
        np.testing.assert_allclose(np.asarray(ye), (x - rm) / np.sqrt(rv + 1e-5) * g + b, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(np.asarray(me), rm)
        np.testing.assert_array_equal(np.asarray(ve), rv)
        # 2-D (N, C) input
        y2, _ = N.batch_norm(jnp.asarray(x[:, 0, 0]), running_mean=jnp.asarray(rm), running_var=jnp.asarray(rv),
                             train=True)
        np.testing.assert_allclose(np.asarray(y2), np_norm(x[:, 0, 0], (0,), 1e-5), rtol=1e-12, atol=1e-12)


def test_batch_norm_eval_independent_of_rest_of_batch(data):
    """C24: at eval an example's output does not depend on the other examples."""
    x, g, b = (jnp.asarray(a, jnp.float32) for a in data)
    stats = dict(running_mean=jnp.full(8, 0.3), running_var=jnp.full(8, 1.7))
    other = jax.random.normal(jax.random.key(0), x.shape) * 10 + 5
    mixed = x.at[1:].set(other[1:])
    for train, same in [(False, True), (True, False)]:
        y1, _ = N.batch_norm(x, g, b, train=train, **stats)
        y2, _ = N.batch_norm(mixed, g, b, train=train, **stats)
        assert bool(jnp.array_equal(y1[0], y2[0])) == same
    # and alone: a batch of one gives the same eval output
    y1, _ = N.batch_norm(x, g, b, train=False, **stats)
    y0, _ = N.batch_norm(x[:1], g, b, train=False, **stats)
    np.testing.assert_array_equal(y0[0], y1[0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_group_norm_limits_equal_layer_and_instance_norm(data, dtype):
    """C24: GroupNorm(1) = LayerNorm over (H, W, C); GroupNorm(C) = InstanceNorm."""
    x, g, b = data
    with jax.enable_x64(dtype == "float64"):
        xj, gj, bj = (jnp.asarray(a, dtype) for a in (x, g, b))
        gn1, ln = N.group_norm(xj, 1, gj, bj), N.layer_norm(xj, gj, bj, axes=(1, 2, 3))
        gnc, inn = N.group_norm(xj, 8, gj, bj), N.instance_norm(xj, gj, bj)
        tol = 1e-12 if dtype == "float64" else 1e-6
        np.testing.assert_allclose(np.asarray(gn1), np.asarray(ln), rtol=tol, atol=tol)
        np.testing.assert_allclose(np.asarray(gnc), np.asarray(inn), rtol=tol, atol=tol)


def test_weight_standardization_is_scale_invariant():
    """C27: a WS conv's output is invariant to scaling the weights."""
    w = jax.random.normal(jax.random.key(0), (3, 3, 4, 6)) * 0.1 + 0.02
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 4))
    ws = N.weight_standardize(w)
    np.testing.assert_allclose(ws.mean((0, 1, 2)), 0, atol=1e-6)
    np.testing.assert_allclose(ws.std((0, 1, 2)), 1, rtol=1e-5)
    y = C.conv2d(x, ws, padding=1)
    for a in (0.1, 0.5, 7.0, 1e3):   # invariance holds while a²·var(w) ≫ ε = 1e-10
        ya = C.conv2d(x, N.weight_standardize(a * w), padding=1)
        np.testing.assert_allclose(ya, y, rtol=1e-4, atol=1e-4)
    # scaling the raw weights changes a plain conv's output, of course
    assert not np.allclose(C.conv2d(x, 7.0 * w, padding=1), C.conv2d(x, w, padding=1))
    np.testing.assert_allclose(N.weight_standardize(w[0, 0]), (w[0, 0] - w[0, 0].mean(0)) / w[0, 0].std(0),
                               rtol=1e-4, atol=1e-5)                                  # dense (in, out)


def test_rms_norm_is_bias_free_and_scale_invariant(data):
    x = jnp.asarray(data[0], jnp.float32)
    np.testing.assert_allclose(N.rms_norm(5 * x), N.rms_norm(x), rtol=1e-5, atol=1e-6)
    y = N.rms_norm(x)
    np.testing.assert_allclose(jnp.sqrt(jnp.mean(y ** 2, -1)), 1, rtol=1e-4)


def test_bad_groups_raise():
    with pytest.raises(ConfigError):
        N.group_norm(jnp.ones((2, 4, 4, 6)), 4)
    with pytest.raises(ConfigError):
        N.instance_norm(jnp.ones((2, 6)))
