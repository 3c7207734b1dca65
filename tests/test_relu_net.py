"""ReLU nets as sums of elbows (float64), dead ReLUs, the configurable MLP."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats

from dlnotes.errors import ConfigError
from dlnotes.models import relu_net
from dlnotes import hparams


def _config(**model):
    base = dict(width=16, depth=1, activation="relu", weight_init="normal", bias_init="normal", init_scale=1.0)
    base.update(model)
    return ml_collections.ConfigDict({"model": base})


def _net64(seed=0, **model):
    """A float64 ReLU net: (functional, params, state, jitted apply)."""
    f = relu_net.make_relu_net(_config(**model), param_dtype=jnp.float64)
    params, state = jax.jit(f.init)(jax.random.key(seed))
    return f, params, state, jax.jit(f.apply)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def test_elbow_formula_equals_forward_pass():
    _, params, state, apply = _net64(seed=1, width=32, out_features=3)  # 1 → 32 → 3
    x = jnp.asarray(np.random.default_rng(0).uniform(-4, 4, size=(500, 1)))
    net, _ = apply(params, state, x)
    assert net.shape == (500, 3) and net.dtype == jnp.float64
    formula = jax.jit(relu_net.elbow_formula)(params, x[:, 0])
    assert float(jnp.max(jnp.abs(formula - net))) < 1e-12 * float(jnp.max(jnp.abs(net)))


def test_elbows_are_the_kinks_of_the_net():
    """C6: second differences on a fine float64 grid vanish away from −b/w, and their centroids are −b/w."""
    _, params, state, apply = _net64(seed=2, width=12)
    h = 1e-3
    grid = jnp.arange(-4000, 4001) * h
    out = np.asarray(apply(params, state, grid[:, None])[0][:, 0])
    d2 = out[2:] - 2 * out[1:-1] + out[:-2]  # at grid[1:-1]
    x = np.asarray(grid[1:-1])
    # 1 → H → 1: the sum-of-elbows formula is the net on the whole grid
    assert np.max(np.abs(np.asarray(relu_net.elbow_formula(params, grid))[:, 0] - out)) < 1e-12 * np.abs(out).max()
    e = np.asarray(relu_net.elbow_positions(params))
    inside = np.sort(e[(e > -3.99) & (e < 3.99)])
    assert inside.size >= 3  # N(0,1) elbows: several land in [-4, 4]
    near = np.min(np.abs(x[:, None] - e[None, :]), axis=1) < h
    # away from every elbow the net is exactly linear
    assert np.max(np.abs(d2[~near])) <= 1e-10
    # and the exact formula Σ aᵢ|wᵢ| max(0, h − |x − eᵢ|) gives every second difference
    formula = np.asarray(jax.jit(relu_net.elbow_second_differences)(params, x, h)[:, 0])
    assert np.max(np.abs(d2 - formula)) <= 1e-10
    # kinks found numerically: clusters of nonzero second differences, located by centroid
    nz = np.flatnonzero(np.abs(d2) > 1e-9)
    clusters = np.split(nz, np.flatnonzero(np.diff(nz) > 1) + 1)
    kinks = np.sort([np.sum(x[c] * d2[c]) / np.sum(d2[c]) for c in clusters])
    separated = np.all(np.diff(inside) > 3 * h)
    assert separated  # fixed seed: no two elbows within 3h
    assert kinks.size == inside.size
    assert np.max(np.abs(kinks - inside)) < 1e-8


def test_normal_init_elbows_are_cauchy():
    """C8's premise: with N(0,1) w and b, −b/w is standard Cauchy (KS test)."""
    _, params, _, _ = _net64(seed=3, width=4096)
    e = np.asarray(relu_net.elbow_positions(params))
    assert stats.kstest(e, "cauchy").pvalue > 0.01
    assert stats.kstest(e, "norm").pvalue < 1e-6  # and clearly not Gaussian


def test_dead_relus_have_zero_gradient():
    f, params, state, _ = _net64(seed=4, width=64)
    x = jnp.linspace(-0.5, 0.5, 101)[:, None]
    y = jnp.sin(3 * x)
    rep = jax.jit(relu_net.dead_relus)(params, x)
    dead = np.asarray(rep.dead)
    assert 0 < dead.sum() < 64  # some but not all
    assert float(rep.fraction) == pytest.approx(dead.mean())
    # the elbow description agrees with "max pre-activation ≤ 0"
    assert np.array_equal(dead, np.asarray(rep.elbow_outside))
    e = np.asarray(relu_net.elbow_positions(params))
    w = np.asarray(params["hidden"]["kernel"][...])[0]
    assert np.all((e[dead] >= 0.5) & (w[dead] > 0) | (e[dead] <= -0.5) & (w[dead] < 0))

    def loss(p):
        return jnp.mean((f.apply(p, state, x)[0] - y) ** 2)

    g = jax.jit(jax.grad(loss))(params)
    gk = np.asarray(g["hidden"]["kernel"][...])[0]
    gb = np.asarray(g["hidden"]["bias"][...])
    ga = np.asarray(g["out"]["kernel"][...])[:, 0]
    assert np.all(gk[dead] == 0) and np.all(gb[dead] == 0) and np.all(ga[dead] == 0)
    assert np.all(np.abs(ga[~dead]) > 0)  # live units do get gradient


def test_dead_relus_multi_input():
    f = relu_net.make_relu_net(_config(width=8, in_features=3))
    params, _ = jax.jit(f.init)(jax.random.key(0))
    x = np.random.default_rng(1).normal(size=(50, 3))
    rep = jax.jit(relu_net.dead_relus)(params, x)
    W = np.asarray(params["hidden"]["kernel"][...])
    b = np.asarray(params["hidden"]["bias"][...])
    assert np.array_equal(np.asarray(rep.dead), (x @ W + b).max(0) <= 0)
    assert rep.elbow_outside is None
    with pytest.raises(ValueError):
        relu_net.elbow_positions(params)


def _np_mlp(params, x, act, depth):
    h = np.asarray(x, float)
    for i in range(depth):
        layer = params["layers"][i]
        h = act(h @ np.asarray(layer["kernel"][...]) + np.asarray(layer["bias"][...]))
    return h @ np.asarray(params["out"]["kernel"][...]) + np.asarray(params["out"]["bias"][...])


def test_mlp_forward_matches_numpy():
    from scipy.special import erf

    acts = {
        "relu": lambda z: np.maximum(z, 0),
        "tanh": np.tanh,
        "linear": lambda z: z,
        "gelu": lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2))),
    }
    x = np.random.default_rng(2).normal(size=(20, 3))
    params = state = None
    for name, act in acts.items():
        cfg = _config(width=10, depth=3, activation=name, weight_init="xavier_normal",
                      bias_init="small_random", in_features=3, out_features=2)
        f = relu_net.make_mlp(cfg, param_dtype=jnp.float64)
        if params is None:  # same parameter structure for every activation
            params, state = jax.jit(f.init)(jax.random.key(5))
        out, _ = jax.jit(f.apply)(params, state, jnp.asarray(x))
        assert out.shape == (20, 2)
        assert np.max(np.abs(np.asarray(out) - _np_mlp(params, x, act, 3))) < 1e-12, name
    apply = jax.jit(lambda p, s, x: f.apply(p, s, x, return_activations=True))
    (out2, acts_), _ = apply(params, state, jnp.asarray(x))
    assert len(acts_["pre"]) == 3 and acts_["post"][1].shape == (20, 10)
    assert np.allclose(acts_["post"][0], 0.5 * acts_["pre"][0] * (1 + erf(acts_["pre"][0] / np.sqrt(2))))
    assert np.allclose(out2, out)


def test_init_scale_is_traced_and_scales_weights():
    cfg = _config(width=8, depth=2, weight_init="he_normal", bias_init="zeros")
    f = relu_net.make_mlp(cfg)
    hp = hparams.from_config(cfg)
    assert "model.init_scale" in hp
    init = jax.jit(f.init)
    p1, _ = init(jax.random.key(0), {"model.init_scale": jnp.float32(1.0)})
    p3, _ = init(jax.random.key(0), {"model.init_scale": jnp.float32(3.0)})
    assert init._cache_size() == 1
    k1 = np.asarray(p1["layers"][1]["kernel"][...])
    assert np.allclose(np.asarray(p3["layers"][1]["kernel"][...]), 3 * k1, rtol=1e-6)
    assert abs(np.var(np.asarray(p1["layers"][0]["kernel"][...])) - 2.0) < 1.5  # fan_in 1: var 2, 8 samples
    # vmapped over seeds × scales in one call
    keys = jax.random.split(jax.random.key(1), 4)
    ps, _ = jax.jit(jax.vmap(f.init))(keys, {"model.init_scale": jnp.asarray([1.0, 2.0, 1.0, 2.0])})
    assert ps["out"]["kernel"][...].shape == (4, 8, 1)


def test_bias_policy_and_config_errors():
    f = relu_net.make_relu_net(_config(width=2000, weight_init="xavier_normal", bias_init="xavier_fan_in_plus_one"))
    params, _ = jax.jit(f.init)(jax.random.key(0))
    b = np.asarray(params["hidden"]["bias"][...])
    assert abs(b.var() / (2 / (1 + 1 + 2000)) - 1) < 0.1  # bias as input: fan-in d+1 = 2
    c = jax.jit(relu_net.make_relu_net(_config(bias_init="constant_0.01")).init)(jax.random.key(0))[0]
    assert np.allclose(np.asarray(c["hidden"]["bias"][...]), 0.01)
    for bad, key in [(dict(weight_init="foo"), "model.weight_init"), (dict(bias_init="foo"), "model.bias_init"),
                     (dict(width=0), "model.width"), (dict(depth=2), "model.depth"),
                     (dict(activation="tanh"), "model.activation"), (dict(init_scale=-1.0), "model.init_scale")]:
        with pytest.raises(ConfigError) as err:
            relu_net.make_relu_net(_config(**bad))
        assert err.value.key == key
    with pytest.raises(ConfigError) as err:
        relu_net.make_mlp(_config(depth=2, activation="swish"))
    assert err.value.key == "model.activation"
