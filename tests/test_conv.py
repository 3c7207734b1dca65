"""conv.py against a direct float64 NumPy loop, against lax.conv_general_dilated,
and the geometry claims C19, C20, C22."""
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from dlnotes.errors import ConfigError
from dlnotes.nn import conv as C


def np_conv2d(x, w, stride=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1), groups=1, mode="zeros"):
    """Direct loop: y[n,i,j,o] = Σ x_pad[n, S i + D a, S j + D b, g(o) C_g + c] w[a,b,c,o]."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    widths = ((0, 0),) + tuple(pads) + ((0, 0),)
    x = np.pad(x, widths, mode="reflect" if mode == "reflect" else "constant")
    n, h, wd, c = x.shape
    kh, kw, cg, o = w.shape
    og = o // groups
    (sh, sw), (dh, dw) = stride, dilation
    ho = (h - (dh * (kh - 1) + 1)) // sh + 1
    wo = (wd - (dw * (kw - 1) + 1)) // sw + 1
    y = np.zeros((n, ho, wo, o))
    for oc in range(o):
        g = oc // og
        for i in range(ho):
            for j in range(wo):
                acc = np.zeros(n)
                for a in range(kh):
                    for b in range(kw):
                        for ci in range(cg):
                            acc += x[:, sh * i + dh * a, sw * j + dw * b, g * cg + ci] * w[a, b, ci, oc]
                y[:, i, j, oc] = acc
    return y


CASES = [  # (H, W, C, O, K, stride, pads, dilation, groups, mode)
    (9, 8, 2, 5, (3, 2), (2, 3), ((0, 1), (2, 0)), (1, 1), 1, "zeros"),
    (10, 9, 2, 3, (3, 3), (1, 2), ((2, 2), (1, 1)), (2, 3), 1, "zeros"),
    (8, 8, 4, 6, (3, 3), (2, 1), ((1, 1), (1, 1)), (1, 1), 2, "zeros"),
    (8, 7, 3, 6, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 2), 3, "zeros"),   # depthwise, multiplier 2
    (6, 7, 2, 3, (3, 3), (1, 1), ((1, 1), (2, 2)), (1, 1), 1, "reflect"),
    (6, 7, 4, 4, (3, 3), (1, 2), ((2, 1), (1, 2)), (1, 1), 4, "reflect"),
    (8, 8, 1, 16, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1, "zeros"),   # one channel: shift and add
    (9, 8, 1, 5, (3, 2), (2, 1), ((2, 1), (1, 1)), (1, 2), 1, "reflect"),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("impl", ["im2col", "xla"])
def test_conv2d_matches_numpy_loop(case, impl):
    h, wd, c, o, k, stride, pads, dil, groups, mode = case
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, h, wd, c))
    w = rng.normal(size=(*k, c // groups, o))
    ref = np_conv2d(x, w, stride, pads, dil, groups, mode)
    conv = jax.jit(functools.partial(C.conv2d, stride=stride, padding=pads, padding_mode=mode,
                                     dilation=dil, groups=groups, impl=impl))
    with jax.enable_x64(True):
        y = conv(jnp.asarray(x), jnp.asarray(w))
        assert y.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-12, atol=1e-12)
    if impl == "im2col":  # float32 too, the usual dtype
        y32 = conv(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32))
        np.testing.assert_allclose(np.asarray(y32), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding,stride,dilation",
                         [("SAME", 1, 1), ("SAME", 3, 2), ("VALID", 2, 1), (1, 2, 2), ((2, 0), 1, 1)])
def test_im2col_equals_lax_conv(padding, stride, dilation):
    x = jax.random.normal(jax.random.key(0), (3, 11, 10, 5))
    w = jax.random.normal(jax.random.key(1), (3, 3, 5, 7))
    conv = lambda x, impl: C.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, impl=impl)
    a = jax.jit(conv, static_argnums=1)(x, "im2col")
    pads = padding if isinstance(padding, str) else [(p, p) for p in ((padding,) * 2 if isinstance(padding, int) else padding)]
    ref = lax.conv_general_dilated(x, w, (stride,) * 2, pads, rhs_dilation=(dilation,) * 2,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert a.shape == ref.shape
    np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-5)
    # gradients agree too (both impls are differentiable)
    grad = jax.jit(jax.grad(lambda x, impl: (conv(x, impl) ** 2).sum()), static_argnums=1)
    ga, gb = grad(x, "im2col"), grad(x, "xla")
    np.testing.assert_allclose(ga, gb, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
def test_one_channel_conv_derivatives_match_lax_conv(stride, dilation):
    """The 1-channel input's shift-and-add forward carries the patch matmul's derivatives (custom_jvp):
    reverse mode for x and w, forward mode, and a Hessian-vector product all match XLA's conv."""
    x = jax.random.normal(jax.random.key(0), (3, 9, 8, 1))
    w = jax.random.normal(jax.random.key(1), (3, 3, 1, 6))
    v = jax.random.normal(jax.random.key(2), w.shape)

    def loss(x, w, impl):
        y = C.conv2d(x, w, stride=stride, padding="SAME", dilation=dilation, impl=impl)
        return (jnp.tanh(y) ** 2).sum()

    for f in (jax.grad(loss, argnums=(0, 1)),
              lambda x, w, impl: jax.jvp(lambda w: C.conv2d(x, w, stride=stride, padding="SAME",
                                                            dilation=dilation, impl=impl), (w,), (v,)),
              lambda x, w, impl: jax.jvp(lambda w: jax.grad(loss, argnums=1)(x, w, impl), (w,), (v,))[1]):
        a, b = jax.jit(f, static_argnums=2)(x, w, "im2col"), jax.jit(f, static_argnums=2)(x, w, "xla")
        for u, r in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(u, r, rtol=1e-4, atol=1e-4)


def test_auto_picks_im2col_on_cpu():
    assert jax.default_backend() == "cpu"
    assert C.resolve_impl("auto") == "im2col"
    with pytest.raises(ConfigError):
        C.resolve_impl("cudnn")


def test_conv1d_matches_numpy_loop():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 13, 3)), rng.normal(size=(4, 3, 5))
    for impl in ("im2col", "xla"):
        y = C.conv1d(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), stride=2, padding=(1, 2),
                     dilation=2, impl=impl)
        ref = np_conv2d(x[:, None], w[None], (1, 2), ((0, 0), (1, 2)), (1, 2))[:, 0]
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
        same = C.conv1d(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), padding="SAME", impl=impl)
        assert same.shape == (2, 13, 5)


def test_depthwise_conv2d_is_per_channel():
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(2, 7, 7, 3)), rng.normal(size=(3, 3, 1, 3))
    y = np.asarray(C.depthwise_conv2d(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), padding=1))
    for ch in range(3):
        ref = np_conv2d(x[..., ch:ch + 1], w[..., ch:ch + 1], pads=((1, 1), (1, 1)))
        np.testing.assert_allclose(y[..., ch:ch + 1], ref, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- C19: geometry
def test_conv_output_size_matches_actual_shapes():
    x_cache = {}
    for W, K, P, S, D in itertools.product([5, 12], [1, 2, 3, 5], [0, 1, 2], [1, 2, 3], [1, 2]):
        k_eff = D * (K - 1) + 1
        if W + 2 * P < k_eff:
            continue
        expected = C.conv_output_size(W, K, P, S, D)
        assert expected == (W - k_eff + 2 * P) // S + 1
        x = x_cache.setdefault(W, jnp.ones((1, W, W + 1, 1)))
        w = jnp.ones((K, K, 1, 1))
        for impl in ("im2col", "xla"):
            y = jax.eval_shape(lambda x: C.conv2d(x, w, stride=S, padding=P, dilation=D, impl=impl), x)
            assert y.shape[1:3] == (expected, C.conv_output_size(W + 1, K, P, S, D)), (W, K, P, S, D, impl)


def _empirical_rf(layers, size=64):
    """Bounding box of nonzero ∂y[centre]/∂x for a linear stack (1-D extent along H)."""
    keys = jax.random.split(jax.random.key(0), len(layers))
    ws = [jax.random.uniform(k, (K, K, 1, 1), minval=0.5, maxval=1.5) for k, (K, _, _) in zip(keys, layers)]

    def f(x):
        h = x
        for w, (K, S, D) in zip(ws, layers):
            h = C.conv2d(h, w, stride=S, dilation=D, padding="VALID")
        c = h.shape[1] // 2
        return h[0, c, c, 0]

    g = jax.jit(jax.grad(f))(jnp.ones((1, size, size, 1)))[0, :, :, 0]
    rows = np.nonzero(np.asarray(g).any(axis=1))[0]
    cols = np.nonzero(np.asarray(g).any(axis=0))[0]
    assert rows[0] > 0 and rows[-1] < size - 1, "input too small: borders clip"
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


@pytest.mark.parametrize("layers", [
    [(3, 1, 1)],
    [(3, 1, 1)] * 4,
    [(3, 2, 1), (3, 2, 1), (3, 1, 1)],
    [(2, 2, 1), (3, 1, 1), (2, 2, 1), (3, 1, 1)],   # conv/pool-like stack
    [(3, 1, 2), (3, 1, 4)],                        # dilated (holes inside the box)
    [(1, 3, 1), (3, 1, 1)],                        # K < S
    [(5, 3, 1), (3, 2, 2), (3, 1, 1)],
])
def test_receptive_field_equals_gradient_bounding_box(layers):
    rf = C.receptive_field(layers)
    assert _empirical_rf(layers) == (rf.size, rf.size)
    assert rf.jump == int(np.prod([s for _, s, _ in layers]))


def test_receptive_field_growth():
    sizes_conv = [C.receptive_field([(3, 1)] * n).size for n in range(1, 6)]
    assert sizes_conv == [3, 5, 7, 9, 11]                                   # linear: 2n + 1
    sizes_pool = [C.receptive_field([(3, 1), (2, 2)] * n).size for n in range(1, 6)]
    assert sizes_pool == [3 * 2 ** n - 2 for n in range(1, 6)]             # exponential
    assert C.receptive_field([(3,)]) == (3, 1)


# ---------------------------------------------------------------- C20: equivariance, padding
@pytest.mark.parametrize("impl", ["im2col", "xla"])
def test_translation_equivariance_and_padding_differs_only_at_borders(impl):
    x = jax.random.normal(jax.random.key(0), (2, 20, 20, 3))
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
    dy, dx = 3, 2

    @jax.jit
    def outputs(x):
        conv = lambda x, mode="zeros": C.conv2d(x, w, padding=1, padding_mode=mode, impl=impl)
        return conv(x), conv(jnp.roll(x, (dy, dx), axis=(1, 2))), conv(x, "reflect")

    y, ys, yr = outputs(x)
    # away from borders (and from the wrapped-around band) the shifted output is the shifted output
    np.testing.assert_array_equal(np.asarray(ys[:, dy + 1:-1, dx + 1:-1]),
                                  np.asarray(y[:, 1:-1 - dy, 1:-1 - dx]))
    diff = np.abs(np.asarray(yr - y)).max(axis=(0, 3))
    assert (diff[1:-1, 1:-1] == 0).all()
    border = np.ones_like(diff, bool)
    border[1:-1, 1:-1] = False
    assert (diff[border] > 0).all()


# ---------------------------------------------------------------- C22: depthwise parameters
@pytest.mark.parametrize("K,Cc", [(3, 8), (7, 96), (5, 17)])
def test_depthwise_params_ratio_is_C(K, Cc):
    dense = C.num_conv_params(K, Cc, Cc, bias=False)
    dw = C.num_conv_params(K, Cc, Cc, depthwise=True, bias=False)
    assert dense == K * K * Cc * Cc and dw == K * K * Cc
    assert dense == Cc * dw
    assert C.num_conv_params(K, Cc, Cc) == dense + Cc
    # the formula counts the actual kernels
    assert np.prod((K, K, 1, Cc)) == dw and np.prod((K, K, Cc, Cc)) == dense


def test_bad_arguments_raise_config_error():
    x, w = jnp.ones((1, 5, 5, 4)), jnp.ones((3, 3, 4, 2))
    with pytest.raises(ConfigError):
        C.conv2d(x, w, groups=3)
    with pytest.raises(ConfigError):
        C.conv2d(x, w, padding_mode="circular")
    with pytest.raises(ConfigError):
        C.conv2d(x, w, padding=5, padding_mode="reflect")
