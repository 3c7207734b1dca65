"""dlnotes.optim.transforms: trajectories equal optax's (C17), heavy ball = EMA of gradients (C16)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlnotes.optim import transforms as T

STEPS = 100


def _problem(dtype):
    """Random least squares with a kernel and a bias: 0.5 mean ||X W + b − Y||²."""
    kx, ky, kw = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (64, 5), dtype)
    y = jax.random.normal(ky, (64, 3), dtype)
    params = {"w": 0.5 * jax.random.normal(kw, (5, 3), dtype), "b": jnp.ones((3,), dtype)}

    def loss(p):
        return 0.5 * jnp.mean(jnp.sum((x @ p["w"] + p["b"] - y) ** 2, -1))

    return params, loss


def _trajectory(opt, params, loss, steps=STEPS):
    """Parameters after each of ``steps`` updates, stacked on axis 0."""

    def step(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(loss)(p), s, p)
        p = optax.apply_updates(p, u)
        return (p, s), p

    _, traj = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return traj


def _mask(p):
    return jax.tree.map(lambda a: a.ndim >= 2, p)


# (ours, optax) pairs in the notes' parametrization vs optax's (the mapping is identity here).
PAIRS = {
    "gd": (lambda: T.gd(0.1), lambda: optax.sgd(0.1)),
    "heavy_ball": (lambda: T.heavy_ball(0.05, 0.9), lambda: optax.sgd(0.05, momentum=0.9)),
    "nesterov": (lambda: T.nesterov(0.05, 0.9), lambda: optax.sgd(0.05, momentum=0.9, nesterov=True)),
    "adam": (lambda: T.adam(0.01, 0.9, 0.99, 1e-8), lambda: optax.adam(0.01, 0.9, 0.99, 1e-8)),
    "adamw": (
        lambda: T.adamw(0.01, 0.9, 0.99, 1e-8, weight_decay=0.1, mask=_mask),
        lambda: optax.adamw(0.01, 0.9, 0.99, 1e-8, weight_decay=0.1, mask=_mask),
    ),
    "gd_schedule": (
        lambda: T.gd(optax.exponential_decay(0.2, 10, 0.5)),
        lambda: optax.sgd(optax.exponential_decay(0.2, 10, 0.5)),
    ),
    "adam_schedule": (
        lambda: T.adam(optax.cosine_decay_schedule(0.05, STEPS)),
        lambda: optax.adam(optax.cosine_decay_schedule(0.05, STEPS)),
    ),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_trajectory_matches_optax_float64(name):
    ours, ref = PAIRS[name]
    with jax.enable_x64(True):
        params, loss = _problem(jnp.float64)
        a = jax.jit(lambda p: _trajectory(ours(), p, loss))(params)
        b = jax.jit(lambda p: _trajectory(ref(), p, loss))(params)
        chex.assert_trees_all_close(a, b, rtol=1e-6, atol=1e-12)
        # the run actually moved: the comparison is not trivially of the start point
        assert float(jnp.max(jnp.abs(a["w"][-1] - params["w"]))) > 1e-2


@pytest.mark.parametrize("name", ["gd", "heavy_ball", "nesterov", "adam", "adamw"])
def test_trajectory_matches_optax_float32(name):
    ours, ref = PAIRS[name]
    params, loss = _problem(jnp.float32)
    a = jax.jit(lambda p: _trajectory(ours(), p, loss))(params)
    b = jax.jit(lambda p: _trajectory(ref(), p, loss))(params)
    chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-6)


def test_heavy_ball_update_is_ema_of_gradients():
    """C16 (exact part): update_t = −η m_t/(1−β) with m the EMA, = −η Σ β^{t−k} g_k (Polyak)."""
    with jax.enable_x64(True):
        eta, beta = 0.3, 0.8
        gs = jax.random.normal(jax.random.key(1), (20, 4), jnp.float64)  # arbitrary gradient stream
        opt = T.heavy_ball(eta, beta)

        def step(s, g):
            u, s = opt.update(g, s)
            return s, u

        _, updates = jax.lax.scan(step, opt.init(gs[0]), gs)
        ema = T.momentum_as_ema(gs, beta)
        np.testing.assert_allclose(updates, -eta * ema / (1 - beta), rtol=1e-12)
        t = np.arange(20)
        weights = np.where(t[:, None] >= t[None, :], beta ** (t[:, None] - t[None, :]), 0.0)
        np.testing.assert_allclose(updates, -eta * weights @ np.asarray(gs), rtol=1e-12)
        # the state of heavy_ball is that EMA
        _, s = opt.update(gs[0], opt.init(gs[0]))
        np.testing.assert_allclose(s.ema, ema[0], rtol=1e-12)


def test_beta_zero_is_gd():
    params, loss = _problem(jnp.float32)
    a = _trajectory(T.heavy_ball(0.1, 0.0), params, loss, 10)
    b = _trajectory(T.gd(0.1), params, loss, 10)
    chex.assert_trees_all_close(a, b, rtol=1e-6)


def test_adamw_mask_leaves_bias_undecayed():
    """With zero gradient only the decay acts: kernels shrink by (1 − ηλ), the bias is untouched."""
    params = {"w": jnp.ones((2, 2)), "b": jnp.ones((2,))}
    zeros = jax.tree.map(jnp.zeros_like, params)
    opt = T.adamw(0.1, weight_decay=0.5, mask=_mask)
    u, _ = opt.update(zeros, opt.init(params), params)
    np.testing.assert_allclose(u["w"], -0.05 * np.ones((2, 2)), rtol=1e-6)
    np.testing.assert_array_equal(u["b"], np.zeros(2))
    with pytest.raises(ValueError, match="params"):
        opt.update(zeros, opt.init(params))


@pytest.mark.parametrize("name", ["heavy_ball", "adamw"])  # gd, nesterov, adam share these code paths
def test_vmap_over_learning_rates(name):
    """Hyperparameters are array-likes: a vmapped η gives the per-η runs."""
    make = {
        "gd": lambda lr: T.gd(lr),
        "heavy_ball": lambda lr: T.heavy_ball(lr, 0.9),
        "nesterov": lambda lr: T.nesterov(lr, 0.9),
        "adam": lambda lr: T.adam(lr),
        "adamw": lambda lr: T.adamw(lr, weight_decay=0.01),
    }[name]
    params, loss = _problem(jnp.float32)

    def final(lr):
        return jax.tree.map(lambda a: a[-1], _trajectory(make(lr), params, loss, 20))

    lrs = jnp.array([0.01, 0.03, 0.1])
    batched = jax.jit(jax.vmap(final))(lrs)
    single = jax.jit(final)
    for i in range(len(lrs)):
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], batched), single(lrs[i]), rtol=1e-5, atol=1e-6)
