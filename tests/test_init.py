"""Initializers: empirical variance vs the formula, scale (traced), bias policies, lookups."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dlnotes.errors import ConfigError
from dlnotes.nn import init


@pytest.mark.parametrize(
    "name,shape",
    [
        ("xavier_normal", (300, 500)),
        ("xavier_uniform", (300, 500)),
        ("he_normal", (400, 200)),
        ("he_uniform", (400, 200)),
        ("lecun_normal", (250, 400)),
        ("lecun_uniform", (250, 400)),
        ("normal", (300, 300)),
        ("xavier_normal", (3, 3, 64, 128)),  # conv kernel: fans × receptive field 9
    ],
)
def test_empirical_variance_matches_formula(name, shape):
    fi, fo = init.fans(shape)
    expected = init.WEIGHT_VARIANCE[name](fi, fo)
    w = np.asarray(init.weight_init(name)(jax.random.key(0), shape, jnp.float32))
    assert w.shape == shape and w.dtype == np.float32
    # ≥ 7e4 samples: the relative standard error of the variance is ≤ 0.5%
    assert abs(w.var() / expected - 1) < 0.03
    assert abs(w.mean()) < 5 * np.sqrt(expected / w.size)
    if name.endswith("uniform"):
        bound = np.sqrt(3 * expected)
        assert w.max() <= bound and w.min() >= -bound and w.max() > 0.99 * bound


def test_explicit_xavier_numbers():
    assert init.fans((64, 32)) == (64, 32)
    assert init.fans((3, 3, 16, 32)) == (144, 288)
    w = init.xavier_normal(jax.random.key(1), (400, 600))
    assert abs(float(jnp.var(w)) / (2 / 1000) - 1) < 0.03


def test_matches_jax_initializers_variance():
    """Our He normal and jax's (untruncated) he_normal have the same variance."""
    shape = (512, 256)
    ours = init.he_normal(jax.random.key(2), shape)
    ref = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")(jax.random.key(2), shape)
    assert abs(float(jnp.var(ours) / jnp.var(ref)) - 1) < 0.03


def test_scale_multiplies_weights_and_can_be_traced():
    key = jax.random.key(3)
    base = init.xavier_uniform(key, (50, 40))
    f = jax.jit(lambda s: init.weight_init("xavier_uniform", s)(key, (50, 40), jnp.float32))
    for s in (0.5, 3.0):
        assert np.allclose(f(jnp.float32(s)), s * base, rtol=1e-6)
    assert f._cache_size() == 1
    # vmapped over scales
    ws = jax.vmap(lambda s: init.normal(key, (10,), jnp.float32, s))(jnp.asarray([1.0, 2.0]))
    assert np.allclose(ws[1], 2 * ws[0])


def test_float64_dtype():
    with jax.enable_x64(True):
        w = init.he_normal(jax.random.key(0), (4, 5), jnp.float64)
        assert w.dtype == jnp.float64


def test_usable_as_flax_initializers():
    lin = nnx.Linear(
        300, 400,
        kernel_init=init.weight_init("he_normal", 2.0),
        bias_init=init.bias_init("xavier_fan_in_plus_one", fan_in=300),
        rngs=nnx.Rngs(0),
    )
    assert abs(float(jnp.var(lin.kernel[...])) / (4.0 * 2 / 300) - 1) < 0.03
    # bias variance 2/(d + 1 + out) = 2/701 (400 samples: within ~20%)
    assert abs(float(jnp.var(lin.bias[...])) / (2 / 701) - 1) < 0.2


def test_bias_policies():
    key = jax.random.key(4)
    shape = (20000,)
    b = init.bias_init("xavier_fan_in_plus_one", fan_in=9, fan_out=10)(key, shape)
    assert abs(float(jnp.var(b)) / (2 / 20) - 1) < 0.03
    assert float(jnp.abs(init.bias_init("zeros")(key, shape)).max()) == 0.0
    c = init.bias_init("constant_0.01")(key, shape, jnp.float32)
    assert float(c.min()) == float(c.max()) == pytest.approx(0.01)
    s = init.bias_init("small_random")(key, shape)
    assert abs(float(jnp.std(s)) / 0.01 - 1) < 0.03
    n = init.bias_init("normal")(key, shape)
    assert abs(float(jnp.std(n)) - 1) < 0.03


def test_unknown_names_raise_config_error():
    with pytest.raises(ConfigError) as e:
        init.weight_init("xavir")
    assert e.value.key == "model.weight_init"
    with pytest.raises(ConfigError) as e:
        init.bias_init("ones")
    assert e.value.key == "model.bias_init"
    with pytest.raises(ConfigError):
        init.check_names("he_normal", "nope")
    init.check_names("he_normal", "xavier_fan_in_plus_one")
