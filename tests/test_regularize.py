"""Dropout (C31) and stochastic depth (C32)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlnotes.errors import ConfigError
from dlnotes.nn.regularize import dropout, stochastic_depth


@pytest.fixture(scope="module")
def x():
    return jax.random.normal(jax.random.key(0), (8, 4, 4, 3)) + 1.0


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_monte_carlo_mean_equals_eval(x, rate):
    """C31: E[train output] = eval output (inverted scaling), MC with 20k draws, 1e-2."""
    keys = jax.random.split(jax.random.key(1), 20000)
    y = x[:2, :2, :2, :1]
    samples = jax.jit(jax.vmap(lambda k: dropout(y, rate, k, True)))(keys)
    ev = dropout(y, rate, None, False)
    # per-element MC error: |x|·sqrt(p/(1-p)/n) ≤ 3.3·2/141 ≈ 0.047 worst case, so compare relative to the
    # MC standard error, and the mean over elements within 1e-2
    err = np.abs(np.asarray(samples.mean(0) - ev))
    se = np.abs(np.asarray(y)) * np.sqrt(rate / (1 - rate) / len(keys))
    assert (err <= 4 * se + 1e-6).all()
    assert abs(float((samples.mean(0) - ev).mean())) <= 1e-2
    # kept values are exactly x/(1-p), dropped exactly 0, drop fraction ≈ p
    s = np.asarray(samples)
    kept = s != 0
    np.testing.assert_allclose(s[kept], np.broadcast_to(np.asarray(y) / (1 - rate), s.shape)[kept], rtol=1e-6)
    assert abs((~kept).mean() - rate) < 0.01


def test_dropout_eval_deterministic_and_identity(x):
    np.testing.assert_array_equal(dropout(x, 0.5, None, False), x)
    np.testing.assert_array_equal(dropout(x, 0.5, jax.random.key(3), False), x)
    a = dropout(x, 0.5, jax.random.key(3), True)
    b = dropout(x, 0.5, jax.random.key(3), True)
    c = dropout(x, 0.5, jax.random.key(4), True)
    np.testing.assert_array_equal(a, b)                   # same key, same mask
    assert not np.array_equal(a, c)


def test_dropout_rate_may_be_traced(x):
    f = jax.jit(lambda rate, k: dropout(x, rate, k, True))
    k = jax.random.key(0)
    np.testing.assert_array_equal(f(0.0, k), x)           # rate 0 keeps everything
    for rate in (0.25, 0.75):
        y = f(rate, k)
        frac = float((y == 0).mean())
        assert abs(frac - rate) < 0.08
    sweep = jax.vmap(lambda r: (f(r, k) == 0).mean())(jnp.array([0.1, 0.9]))
    assert sweep[0] < 0.3 < 0.7 < sweep[1]
    # a traced rate takes the same mask as a Python one (the cond only skips the draw at 0),
    # alone and vmapped over rates that include 0 (a select there)
    ref = dropout(x, 0.25, k, True)
    for y in (f(0.25, k), jax.vmap(lambda r: f(r, k))(jnp.array([0.0, 0.25]))[1]):
        np.testing.assert_array_equal(y == 0, ref == 0)
        np.testing.assert_allclose(y, ref, rtol=1e-6)
    np.testing.assert_array_equal(jax.vmap(lambda r: f(r, k))(jnp.array([0.0, 0.25]))[0], x)
    # a traced rate branches (the mask is drawn only in the taken branch); a Python rate does not need to
    traced = jax.jit(lambda k, r: dropout(x, r, k, True)).lower(k, jnp.float32(0.0)).as_text()
    static = jax.jit(lambda k: dropout(x, 0.25, k, True)).lower(k).as_text()
    assert "stablehlo.case" in traced and "stablehlo.case" not in static


def test_stochastic_depth_drops_whole_examples(x):
    """C32: per example the branch is either all zero or all r/(1-p)."""
    rate = 0.5
    keys = jax.random.split(jax.random.key(5), 4000)
    out = jax.jit(jax.vmap(lambda k: stochastic_depth(x, rate, k, True)))(keys)
    o = np.asarray(out).reshape(len(keys), x.shape[0], -1)
    xf = np.asarray(x).reshape(x.shape[0], -1)
    dropped = (o == 0).all(-1)
    kept = np.isclose(o, xf / (1 - rate), rtol=1e-6).all(-1)
    assert (dropped | kept).all()                          # never partially dropped
    assert abs(dropped.mean() - rate) < 0.02
    # examples are dropped independently: both kinds within one batch happen
    assert (dropped.any(1) & kept.any(1)).mean() > 0.9
    # eval = identity = the Monte Carlo expectation
    ev = stochastic_depth(x, rate, None, False)
    np.testing.assert_array_equal(ev, x)
    np.testing.assert_allclose(out.mean(0), ev, atol=0.2)  # 4000 draws, |x|·1/√4000 ≈ 0.05 s.e.
    assert abs(float((out.mean(0) - ev).mean())) < 1e-2


def test_residual_block_with_stochastic_depth_is_identity_when_dropped(x):
    f = lambda h: jnp.tanh(h) * 3
    block = lambda h, k: h + stochastic_depth(f(h), 0.5, k, True)
    y = block(x, jax.random.key(0))
    for n in range(x.shape[0]):
        assert np.allclose(y[n], x[n]) or np.allclose(y[n], x[n] + 2 * f(x[n]), rtol=1e-5)


def test_bad_arguments():
    with pytest.raises(ConfigError):
        dropout(jnp.ones(3), 1.0, jax.random.key(0), True)
    with pytest.raises(ConfigError):
        dropout(jnp.ones(3), 0.5, None, True)
    with pytest.raises(ConfigError):
        stochastic_depth(jnp.ones(3), -0.1, jax.random.key(0), True)
    with pytest.raises(ConfigError):
        dropout(jnp.ones(3), 0.5, jax.random.key(0), jnp.array(True))
