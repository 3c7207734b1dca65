"""pool.py against NumPy loops over windows; C21's local-invariance mechanism."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlnotes.errors import ConfigError
from dlnotes.nn import pool as P


def np_pool(x, k, s, pads, reduce, pad_value=0.0):
    x = np.pad(np.asarray(x, np.float64), ((0, 0),) + tuple(pads) + ((0, 0),), constant_values=pad_value)
    n, h, w, c = x.shape
    ho, wo = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
    y = np.zeros((n, ho, wo, c))
    for i in range(ho):
        for j in range(wo):
            y[:, i, j] = reduce(x[:, s[0] * i:s[0] * i + k[0], s[1] * j:s[1] * j + k[1]])
    return y


CASES = [  # window, stride, padding (as pairs)
    ((2, 2), (2, 2), ((0, 0), (0, 0))),
    ((3, 3), (2, 2), ((1, 1), (1, 1))),
    ((3, 2), (1, 2), ((0, 2), (1, 0))),
    ((2, 3), (3, 1), ((1, 1), (0, 0))),
]


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(2, 9, 8, 3)).astype(np.float32)


@pytest.mark.parametrize("k,s,pads", CASES)
def test_avg_and_max_pool_match_loops(x, k, s, pads):
    np.testing.assert_allclose(P.avg_pool(x, k, s, pads), np_pool(x, k, s, pads, lambda v: v.mean((1, 2))),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(P.max_pool(x, k, s, pads),
                               np_pool(x, k, s, pads, lambda v: v.max((1, 2)), -np.inf), rtol=0, atol=0)
    # average over real pixels only
    ones = np.ones_like(x)
    cnt = np_pool(ones, k, s, pads, lambda v: v.sum((1, 2)))
    ref = np_pool(x, k, s, pads, lambda v: v.sum((1, 2))) / cnt
    np.testing.assert_allclose(P.avg_pool(x, k, s, pads, count_include_pad=False), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k,s,pads", CASES)
def test_pick_and_weighted_pool_match_loops(x, k, s, pads):
    a, b = k[0] - 1, 0
    np.testing.assert_array_equal(P.pick_pool(x, k, s, pads, pick=(a, b)),
                                  np_pool(x, k, s, pads, lambda v: v[:, a, b]).astype(np.float32))
    v = np.random.default_rng(1).uniform(size=k)
    v /= v.sum()
    ref = np_pool(x, k, s, pads, lambda win: np.einsum("nabc,ab->nc", win, v))
    for impl in ("im2col", "xla"):
        np.testing.assert_allclose(P.weighted_pool(x, jnp.asarray(v, jnp.float32), s, pads, impl=impl), ref,
                                   rtol=1e-5, atol=1e-5)


def test_defaults_and_special_cases(x):
    np.testing.assert_array_equal(P.subsample(x, 2), x[:, ::2, ::2])
    np.testing.assert_array_equal(P.subsample(x, (3, 2)), x[:, ::3, ::2])
    assert P.max_pool(x, 2).shape == (2, 4, 4, 3)                      # stride defaults to the window
    assert P.avg_pool(x, 3, 2, "SAME").shape == (2, 5, 4, 3)           # ⌈W/S⌉
    uniform = jnp.full((2, 2), 0.25)
    np.testing.assert_allclose(P.weighted_pool(x, uniform), P.avg_pool(x, 2), rtol=1e-6, atol=1e-6)
    with pytest.raises(ConfigError):
        P.pick_pool(x, 2, pick=(2, 0))
    with pytest.raises(ConfigError):
        P.max_pool(x, 10)


def test_max_pool_gradient_routes_to_the_max(x):
    g = jax.grad(lambda x: P.max_pool(x, 2).sum())(jnp.asarray(x))
    # exactly one 1 per 2×2 window (values are distinct), at the argmax
    win = np.asarray(g)[:, :8, :8].reshape(2, 4, 2, 4, 2, 3)
    assert (win.sum(axis=(2, 4)) == 1).all()


def test_max_pool_ties_share_the_gradient():
    """Tiles of equal values (zeros after a ReLU, a flat image region) split the window's gradient equally,
    so each window still passes on exactly its output's gradient."""
    x = jnp.zeros((1, 4, 6, 2)).at[0, 0, 0, 0].set(1.0)
    g = np.asarray(jax.grad(lambda x: (P.max_pool(x, 2) * jnp.arange(1.0, 13.0).reshape(1, 2, 3, 2)).sum())(x))
    win = g.reshape(1, 2, 2, 3, 2, 2)
    np.testing.assert_allclose(win.sum(axis=(2, 4)), np.arange(1.0, 13.0).reshape(1, 2, 3, 2), rtol=1e-6)
    assert g[0, 0, 0, 0] == 1.0 and (g[0, :2, :2, 0].ravel()[1:] == 0).all()     # a strict max takes it all
    np.testing.assert_allclose(g[0, :2, :2, 1], np.full((2, 2), 2.0 / 4))          # a tie of four: a quarter each


def test_max_pool_is_more_shift_invariant_than_subsampling():
    """C21 mechanism: among active units, 1-pixel shifts change a max-pooled map less."""
    rng = np.random.default_rng(0)
    img = np.maximum(rng.normal(size=(16, 32, 32, 8)), 0).astype(np.float32)  # sparse ReLU-like map
    big = jnp.asarray(img)
    crop = lambda a, dy, dx: a[:, 4 + dy:28 + dy, 4 + dx:28 + dx]

    def unchanged(f):
        base = f(crop(big, 0, 0))
        fr = []
        for dy, dx in [(0, 1), (1, 0)]:
            sh = f(crop(big, dy, dx))
            active = (base > 0) | (sh > 0)
            fr.append(float(((base == sh) & active).sum() / active.sum()))
        return np.mean(fr)

    pooled = unchanged(lambda a: P.max_pool(a, 2))
    sub = unchanged(lambda a: P.subsample(a, 2))
    assert pooled >= sub + 0.05, (pooled, sub)
