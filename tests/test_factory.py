"""dlnotes.optim.factory: schedules, chains vs hand-built optax, decay mask, clipping, tracing, errors."""
import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from dlnotes.errors import ConfigError
from dlnotes.optim import factory as F
from dlnotes import hparams


def _config(name="sgd", num_steps=50, **opt):
    cfg = ml_collections.ConfigDict()
    cfg.num_steps = num_steps
    cfg.optimizer = F.default_optimizer_config()
    cfg.optimizer.name = name
    for k, v in opt.items():
        if k.startswith("schedule_"):
            cfg.optimizer.schedule[k.removeprefix("schedule_")] = v
        else:
            cfg.optimizer[k] = v
    return cfg


def _problem():
    kx, ky, kw = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (32, 4))
    y = 3.0 * jax.random.normal(ky, (32, 2))
    params = {"dense": {"kernel": jax.random.normal(kw, (4, 2)), "bias": jnp.ones((2,))}, "scale": jnp.ones((2,))}

    def loss(p):
        return 0.5 * jnp.mean(jnp.sum((x @ p["dense"]["kernel"] * p["scale"] + p["dense"]["bias"] - y) ** 2, -1))

    return params, loss


def _run(opt, params, loss, steps=30):
    def step(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(loss)(p), s, p)
        return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=steps)
    return p


# ---------------------------------------------------------------- schedules

T_STEPS = np.array([0, 1, 5, 9, 10, 11, 30, 49, 50, 80])


def _formula(name, t, eta=0.5, r=0.5, s=10, alpha=0.1, w=10, T=50, boundaries=()):
    t = t.astype(float)
    if name == "constant":
        return eta * np.ones_like(t)
    if name == "step":
        n = np.floor(t / s) if not boundaries else sum((t >= b) for b in boundaries)
        return eta * r**n
    if name == "inverse_time":
        return eta / (1 + r * t / s)
    if name == "exponential":
        return eta * r ** (t / s)
    cos = lambda u, L: alpha + (1 - alpha) * 0.5 * (1 + np.cos(np.pi * np.clip(u, 0, L) / L))  # noqa: E731
    if name == "cosine":
        return eta * cos(t, T)
    return np.where(t < w, eta * t / w, eta * cos(t - w, T - w))


@pytest.mark.parametrize("name", F.SCHEDULES)
def test_schedule_matches_formula_and_optax(name):
    cfg = _config(learning_rate=0.5, schedule_name=name, schedule_decay_rate=0.5, schedule_step_size=10,
                  schedule_alpha=0.1, schedule_warmup_steps=10)
    got = np.array([F.schedule_fn(cfg)(t) for t in T_STEPS])
    np.testing.assert_allclose(got, _formula(name, T_STEPS), rtol=1e-6, atol=1e-8)
    ref = {
        "constant": optax.constant_schedule(0.5),
        "step": optax.exponential_decay(0.5, 10, 0.5, staircase=True),
        "inverse_time": None,
        "exponential": optax.exponential_decay(0.5, 10, 0.5),
        "cosine": optax.cosine_decay_schedule(0.5, 50, alpha=0.1),
        "warmup_cosine": optax.warmup_cosine_decay_schedule(0.0, 0.5, 10, 50, end_value=0.05),
    }[name]
    if ref is not None:
        np.testing.assert_allclose(got, [ref(t) for t in T_STEPS], rtol=1e-5, atol=1e-7)


def test_step_schedule_with_boundaries():
    cfg = _config(learning_rate=0.5, schedule_name="step", schedule_decay_rate=0.1, schedule_boundaries=(10, 30))
    got = np.array([F.schedule_fn(cfg)(t) for t in T_STEPS])
    np.testing.assert_allclose(got, _formula("step", T_STEPS, r=0.1, boundaries=(10, 30)), rtol=1e-6)
    ref = optax.piecewise_constant_schedule(0.5, {10: 0.1, 30: 0.1})
    np.testing.assert_allclose(got, [ref(t) for t in T_STEPS], rtol=1e-6)


def test_schedule_with_traced_peak_and_vmap():
    cfg = _config(schedule_name="warmup_cosine", schedule_warmup_steps=10)
    lrs = jnp.array([0.1, 1.0, 2.0])
    f = jax.vmap(lambda lr, a: F.schedule_fn(cfg, {"optimizer.learning_rate": lr, "optimizer.schedule.alpha": a})(20))
    got = f(lrs, jnp.array([0.0, 0.1, 0.0]))
    want = [_formula("warmup_cosine", np.array([20]), eta=e, alpha=a)[0] for e, a in [(0.1, 0), (1, 0.1), (2, 0)]]
    np.testing.assert_allclose(got, want, rtol=1e-6)


# ---------------------------------------------------------------- chains vs hand-built optax

def _mask(p):
    return jax.tree.map(lambda a: a.ndim >= 2, p)


SCHED = optax.exponential_decay(0.05, 10, 0.5)
CASES = {
    "sgd": (dict(learning_rate=0.05), optax.sgd(0.05)),
    "momentum": (dict(learning_rate=0.02, momentum=0.8), optax.sgd(0.02, momentum=0.8)),
    "nesterov": (dict(learning_rate=0.02, momentum=0.8), optax.sgd(0.02, momentum=0.8, nesterov=True)),
    "adam": (dict(learning_rate=0.01, b1=0.8, b2=0.99, eps=1e-6), optax.adam(0.01, 0.8, 0.99, 1e-6)),
    "adamw": (
        dict(learning_rate=0.01, weight_decay=0.1, clip_norm=1.0),
        optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(0.01, weight_decay=0.1, mask=_mask)),
    ),
    "sgd_wd_clip_sched": (
        dict(learning_rate=0.05, weight_decay=0.01, clip_norm=2.0, schedule_name="exponential",
             schedule_decay_rate=0.5, schedule_step_size=10),
        optax.chain(optax.clip_by_global_norm(2.0), optax.add_decayed_weights(0.01, mask=_mask), optax.sgd(SCHED)),
    ),
    "adam_l2": (
        dict(learning_rate=0.01, weight_decay=0.1),
        optax.chain(optax.add_decayed_weights(0.1, mask=_mask), optax.adam(0.01)),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_chain_matches_hand_built_optax(case):
    """Factory chains, with optax's and with our transforms (ours_*), vs the hand-built chain."""
    fields, ref = CASES[case]
    name = case.split("_")[0]
    params, loss = _problem()
    want = jax.jit(lambda p: _run(ref, p, loss))(params)
    for prefix in ("", "ours_"):
        cfg = _config(prefix + name, **fields)
        got = jax.jit(lambda p: _run(F.make_optimizer(cfg), p, loss))(params)
        chex.assert_trees_all_close(got, want, rtol=2e-5, atol=1e-6, custom_message=prefix + name)


def _one_update(opt, params, loss):
    g = jax.grad(loss)(params)
    return opt.update(g, opt.init(params), params)[0]


def test_aliases_build_the_same_chain():
    params, loss = _problem()
    for a, b in [("sgd", "gd"), ("momentum", "heavy_ball"), ("ours_sgd", "ours_gd")]:
        ua = _one_update(F.make_optimizer(_config(a)), params, loss)
        ub = _one_update(F.make_optimizer(_config(b)), params, loss)
        chex.assert_trees_all_equal(ua, ub)


def test_hp_from_config_equals_untraced():
    cfg = _config("adamw", learning_rate=0.01, weight_decay=0.1, schedule_name="cosine")
    hp = hparams.from_config(cfg)
    assert {"optimizer.learning_rate", "optimizer.schedule.alpha", "optimizer.weight_decay"} <= set(hp)
    params, loss = _problem()
    a = jax.jit(lambda p, hp: _run(F.make_optimizer(cfg, hp), p, loss))(params, hp)
    b = _run(F.make_optimizer(cfg), params, loss)
    chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-6)  # jit vs eager float32 rounding


# ---------------------------------------------------------------- decay mask, clipping

@pytest.mark.parametrize("name", ["sgd", "adamw", "ours_adamw", "momentum"])
def test_decay_mask_kernels_only(name):
    """Zero gradient: only decay acts. Kernels move by −η λ w; biases and scales stay put."""
    cfg = _config(name, learning_rate=0.1, weight_decay=0.5)
    params, _ = _problem()
    zeros = jax.tree.map(jnp.zeros_like, params)
    opt = F.make_optimizer(cfg)
    u, _ = opt.update(zeros, opt.init(params), params)
    np.testing.assert_allclose(u["dense"]["kernel"], -0.05 * params["dense"]["kernel"], rtol=1e-5)
    np.testing.assert_array_equal(u["dense"]["bias"], 0.0)
    np.testing.assert_array_equal(u["scale"], 0.0)
    assert F.decay_mask(params) == {"dense": {"kernel": True, "bias": False}, "scale": False}


def test_clip_by_global_norm():
    params, _ = _problem()
    big = jax.tree.map(lambda p: 100.0 * jnp.ones_like(p), params)
    small = jax.tree.map(lambda p: 0.01 * jnp.ones_like(p), params)
    opt = F.make_optimizer(_config("sgd", learning_rate=1.0, clip_norm=2.0))
    u, _ = opt.update(big, opt.init(params), params)
    np.testing.assert_allclose(optax.tree.norm(u), 2.0, rtol=1e-6)
    u, _ = opt.update(small, opt.init(params), params)
    chex.assert_trees_all_close(u, jax.tree.map(lambda g: -g, small))
    # off by default: the big gradient passes unclipped
    opt = F.make_optimizer(_config("sgd", learning_rate=1.0))
    u, _ = opt.update(big, opt.init(params), params)
    np.testing.assert_allclose(optax.tree.norm(u), optax.tree.norm(big), rtol=1e-6)


# ---------------------------------------------------------------- tracing

def test_traced_lr_does_not_recompile():
    cfg = _config("ours_nesterov", schedule_name="warmup_cosine", schedule_warmup_steps=5, clip_norm=1.0)
    params, loss = _problem()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def train(lr, p):
        return _run(F.make_optimizer(cfg, {"optimizer.learning_rate": lr}), p, loss, 10)

    a = train(jnp.float32(0.01), params)
    b = train(jnp.float32(0.02), params)
    c = train(jnp.float32(0.03), params)
    assert train._cache_size() == 1
    assert not np.allclose(a["scale"], b["scale"]) and not np.allclose(b["scale"], c["scale"])


@pytest.mark.parametrize("name", ["momentum", "ours_adamw"])
def test_vmap_over_learning_rates(name):
    cfg = _config(name, weight_decay=0.01, clip_norm=1.0, schedule_name="cosine")
    params, loss = _problem()

    def final(lr):
        return _run(F.make_optimizer(cfg, {"optimizer.learning_rate": lr}), params, loss, 10)

    lrs = jnp.array([0.001, 0.01, 0.05])
    batched = jax.jit(jax.vmap(final))(lrs)
    single = jax.jit(final)
    for i in range(len(lrs)):
        chex.assert_trees_all_close(jax.tree.map(lambda a: a[i], batched), single(lrs[i]), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- config and errors

def test_default_config_has_every_field():
    d = F.default_optimizer_config()
    assert set(d.keys()) == {"name", "learning_rate", "momentum", "b1", "b2", "eps", "weight_decay", "clip_norm",
                             "schedule"}
    assert set(d.schedule.keys()) == {"name", "decay_rate", "step_size", "boundaries", "warmup_steps", "alpha"}
    cfg = ml_collections.ConfigDict({"num_steps": 10})
    cfg.optimizer = F.default_optimizer_config()
    cfg.optimizer.learning_rate = 0.3
    F.validate_optimizer_config(cfg)
    assert F.default_optimizer_config().learning_rate == 0.1  # fresh copy each call


def test_partial_config_falls_back_to_defaults():
    cfg = ml_collections.ConfigDict({"optimizer": {"name": "adam", "learning_rate": 0.01}})
    params, loss = _problem()
    chex.assert_trees_all_close(_one_update(F.make_optimizer(cfg), params, loss),
                                _one_update(optax.adam(0.01), params, loss))


BAD = [
    (dict(name="lbfgs"), "optimizer.name"),
    (dict(learning_rate=0.0), "optimizer.learning_rate"),
    (dict(learning_rate=-0.1), "optimizer.learning_rate"),
    (dict(learning_rate=float("nan")), "optimizer.learning_rate"),
    (dict(momentum=1.0), "optimizer.momentum"),
    (dict(momentum=-0.1), "optimizer.momentum"),
    (dict(b1=1.0), "optimizer.b1"),
    (dict(b2=1.5), "optimizer.b2"),
    (dict(eps=0.0), "optimizer.eps"),
    (dict(weight_decay=-1e-4), "optimizer.weight_decay"),
    (dict(clip_norm=-1.0), "optimizer.clip_norm"),
    (dict(schedule_name="linear"), "optimizer.schedule.name"),
    (dict(schedule_name="step", schedule_decay_rate=0.0), "optimizer.schedule.decay_rate"),
    (dict(schedule_name="exponential", schedule_decay_rate=1.5), "optimizer.schedule.decay_rate"),
    (dict(schedule_name="inverse_time", schedule_decay_rate=-1.0), "optimizer.schedule.decay_rate"),
    (dict(schedule_name="step", schedule_step_size=0), "optimizer.schedule.step_size"),
    (dict(schedule_name="step", schedule_boundaries=(30, 10)), "optimizer.schedule.boundaries"),
    (dict(schedule_name="cosine", schedule_alpha=1.5), "optimizer.schedule.alpha"),
    (dict(schedule_name="warmup_cosine", schedule_warmup_steps=50), "optimizer.schedule.warmup_steps"),
    (dict(schedule_name="cosine", num_steps=0), "num_steps"),
]


@pytest.mark.parametrize("fields,key", BAD, ids=[k + ":" + repr(v) for v, k in BAD])
def test_bad_value_raises_config_error_naming_key(fields, key):
    fields = dict(fields)
    num_steps = fields.pop("num_steps", 50)
    cfg = _config(num_steps=num_steps)
    for k, v in fields.items():
        if k.startswith("schedule_"):
            cfg.optimizer.schedule[k.removeprefix("schedule_")] = v
        else:
            cfg.optimizer[k] = v
    with pytest.raises(ConfigError) as e:
        F.make_optimizer(cfg)
    assert e.value.key == key
    assert "\n" not in str(e.value) and str(e.value).startswith(key + ": ")


def test_other_config_errors():
    cfg = _config()
    cfg.optimizer.learning_rate_typo = 0.1
    with pytest.raises(ConfigError, match="^optimizer.learning_rate_typo: unknown key"):
        F.validate_optimizer_config(cfg)
    with pytest.raises(ConfigError, match="^optimizer: missing"):
        F.validate_optimizer_config(ml_collections.ConfigDict({"num_steps": 3}))
    cfg = _config(schedule_name="cosine")
    del cfg["num_steps"]
    with pytest.raises(ConfigError, match="^num_steps: required"):
        F.validate_optimizer_config(cfg)
    cfg = ml_collections.ConfigDict({"optimizer": {"name": "adam", "learning_rate": "fast"}})
    with pytest.raises(ConfigError, match="^optimizer.learning_rate: must be a number"):
        F.validate_optimizer_config(cfg)


def test_concrete_sweep_grid_is_validated():
    cfg = _config()
    F.validate_optimizer_config(cfg, {"optimizer.learning_rate": np.array([0.1, 0.2])})
    with pytest.raises(ConfigError, match="^optimizer.learning_rate: must be > 0"):
        F.validate_optimizer_config(cfg, {"optimizer.learning_rate": np.array([0.1, -0.2])})
    with pytest.raises(ConfigError, match="^optimizer.momentum"):
        F.make_optimizer(cfg, {"optimizer.momentum": jnp.array([0.5, 1.0])})
