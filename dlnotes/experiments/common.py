"""Tasks that several experiments share (experiments never import each other).

The elbow task (``relu_elbows`` C6–C8, ``init_variance`` C15): fit y = sin(freq·x) on an even grid
of [lo, hi] with a 1 → H → 1 ReLU net by ``config.optimizer``.

The quadratic task (``momentum`` C16–C17, ``adaptive`` C18): minimize
f(x) − f* = ½(x − x*)ᵀA(x − x*) over x (full batch), one optimizer or several side by side.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from dlnotes import linear
from dlnotes.errors import check
from dlnotes.losses import mse
from dlnotes.models import relu_net
from dlnotes.optim.factory import make_optimizer, validate_optimizer_config
from dlnotes.train.loop import Task


# ---------------------------------------------------------------- the elbow task

def validate_elbows(config):
    validate_optimizer_config(config)
    relu_net.make_relu_net(config)  # model keys: ConfigError naming the key
    d = config.data
    check(d.n >= 2, "data.n", f"must be ≥ 2, got {d.n}")
    check(d.hi > d.lo, "data.hi", f"must exceed data.lo={d.lo}")
    check(config.batch_size == 0 or 0 < config.batch_size <= d.n, "batch_size",
          f"must be in [0, data.n={d.n}] (0 = full batch)")


def target(config, x):
    """The 1-D target sin(freq·x)."""
    return jnp.sin(config.data.freq * x)


def elbow_data(config):
    """Train: ``data.n`` even points of [lo, hi] (+ noise); val: ``data.n_val`` points, noise-free."""
    d = config.data
    x = jnp.linspace(d.lo, d.hi, d.n)[:, None]
    y = target(config, x)
    if d.noise:
        y = y + d.noise * jax.random.normal(jax.random.key(config.seed), y.shape)
    xv = jnp.linspace(d.lo, d.hi, d.n_val)[:, None]
    return {"train": {"x": x, "y": y}, "val": {"x": xv, "y": target(config, xv)}}


def elbow_task(config, data=None) -> Task:
    """The elbow task: ``make_relu_net(config)`` fitted by ``make_optimizer(config)`` with ½·MSE.

    Evaluations: ``val_mse``, ``train_mse``, the dead mask on the training inputs (H,) and
    the hidden weights and biases (H,) each (to check that dead units are never touched).
    """
    data = data if data is not None else elbow_data(config)
    net = relu_net.make_relu_net(config)

    def init(key, hp):
        return net.init(key, hp)

    def loss(params, ms, batch, key, hp):
        pred, ms = net.apply(params, ms, batch["x"])
        return mse(pred, batch["y"]), ({}, ms)

    def evaluate(params, ms, data, hp):
        p = nnx.to_pure_dict(params)
        out = {}
        for split in ("train", "val"):
            pred, _ = net.apply(params, ms, data[split]["x"])
            out[f"{split}_mse"] = mse(pred, data[split]["y"])
        out["dead"] = relu_net.dead_relus(p, data["train"]["x"]).dead
        out["hidden_w"] = p["hidden"]["kernel"][0]
        out["hidden_b"] = p["hidden"]["bias"]
        return out

    return Task(init=init, loss=loss, optimizer=lambda hp: make_optimizer(config, hp), data=data,
                num_steps=config.num_steps, batch_size=config.batch_size or None,
                sampling=config.get("sampling", "epoch"), log_every=config.log_every, evaluate=evaluate)


# ---------------------------------------------------------------- the quadratic task

def quadratic_data(q: linear.Quadratic):
    """Engine data of a quadratic: ``train = {"A": (d, d), "x_star": (d,)}`` (full batch only)."""
    return {"train": {"A": q.A, "x_star": q.x_star}, "eigenvalues": q.eigenvalues}


def quadratic_excess(A, x_star, x):
    """f(x) − f* = ½(x − x*)ᵀA(x − x*) (no cancellation; ∇ = A(x − x*))."""
    e = x.reshape(-1) - x_star
    return 0.5 * e @ (A @ e)


def evaluate_excess(params, model_state, data, hp):
    t = data["train"]
    return {"excess": quadratic_excess(t["A"], t["x_star"], params),
            "dist": jnp.linalg.norm(params.reshape(-1) - t["x_star"])}


def evaluate_path(params, model_state, data, hp):
    """As :func:`evaluate_excess`, plus the iterate itself (for trajectories)."""
    return {**evaluate_excess(params, model_state, data, hp), "x": params}


def quadratic_task(config, data, *, optimizer=None, evaluate=evaluate_excess, num_steps=None,
                   log_every=None, x0=None, kernel=False, init="normal") -> Task:
    """Task minimizing f(x) − f* = ½(x − x*)ᵀA(x − x*) over x (full batch).

    x0: the given array, else ``model.init_scale`` × (N(0, I) if ``init == "normal"``, random ±1 if
    ``"signs"``) from the seed key. ``kernel``: x has shape (d, 1), like a dense kernel, so that
    the optimizer's weight-decay mask (ndim ≥ 2) applies to it.
    """
    d = data["train"]["x_star"].shape[0]
    shape = (d, 1) if kernel else (d,)
    dtype = data["train"]["A"].dtype

    def init_fn(key, hp):
        if x0 is not None:
            return jnp.asarray(x0, dtype).reshape(shape), {}
        scale = hp["model.init_scale"] if "model.init_scale" in hp else config.model.init_scale
        z = (jax.random.normal(key, shape, dtype) if init == "normal"
             else jax.random.rademacher(key, shape, dtype))
        return scale * z, {}

    def loss(x, ms, batch, key, hp):
        return quadratic_excess(batch["A"], batch["x_star"], x), ({}, ms)

    return Task(init=init_fn, loss=loss, optimizer=optimizer or (lambda hp: make_optimizer(config, hp)),
                data=data, num_steps=num_steps or config.num_steps, batch_size=None,
                log_every=log_every or config.get("log_every", 1), evaluate=evaluate)


def side_by_side_task(configs, data, *, num_steps, x0=None, kernel=False, init="normal") -> Task:
    """One engine run of several optimizers at once: params ``{label: x}`` (same x0), loss the sum of
    the copies' f − f* (so each copy gets its own gradient), optimizer ``optax.multi_transform`` of
    ``make_optimizer(configs[label])`` (the configs' numbers, not traced). One compile for all.
    """
    import optax

    base = next(iter(configs.values()))
    one = quadratic_task(base, data, num_steps=num_steps, log_every=1, x0=x0, kernel=kernel, init=init)

    def init_fn(key, hp):
        x, ms = one.init(key, hp)
        return {n: x for n in configs}, ms

    def loss(params, ms, batch, key, hp):
        return sum(quadratic_excess(batch["A"], batch["x_star"], x) for x in params.values()), ({}, ms)

    def evaluate(params, ms, data, hp):
        t = data["train"]
        return {**{f"x/{n}": x for n, x in params.items()},
                **{f"excess/{n}": quadratic_excess(t["A"], t["x_star"], x) for n, x in params.items()}}

    def optimizer(hp):
        return optax.multi_transform({n: make_optimizer(c) for n, c in configs.items()}, {n: n for n in configs})

    return Task(init=init_fn, loss=loss, optimizer=optimizer, data=data, num_steps=num_steps, batch_size=None,
                log_every=1, evaluate=evaluate)
