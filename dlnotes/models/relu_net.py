"""One-hidden-layer ReLU nets as sums of elbows, and a configurable MLP (flax.nnx).

``ReLUNet``: d → H → k, ``f(x) = Σ_i a_i relu(w_iᵀx + b_i) + c``. For d = 1 each
hidden unit is an elbow at ``e_i = −b_i/w_i``:

    f(x) = Σ_i a_i |w_i| · max(0, sign(w_i)(x − e_i)) + c.

Functions on parameters (``elbow_positions``, ``elbow_formula``, ``dead_relus``,
``elbow_second_differences``) take the ``params`` of ``Functional.init`` (an
``nnx.State``) or the same nesting as plain arrays (``nnx.to_pure_dict``):
``params["hidden"]["kernel"]`` (d, H), ``["hidden"]["bias"]`` (H,),
``["out"]["kernel"]`` (H, k), ``["out"]["bias"]`` (k,). They are pure and jittable.

Config (``config.model``): ``width`` (H), ``depth`` (hidden layers; 1 for
``relu_net``), ``activation`` (relu, tanh, linear, gelu), ``weight_init`` and
``bias_init`` (names in ``dlnotes.nn.init``), ``init_scale`` (float → traced,
multiplies all weights, not biases), optional ``in_features``/``out_features``
(default 1). Inputs are ``(N, in_features)``, outputs ``(N, out_features)``.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from dlnotes.errors import ConfigError
from dlnotes.models.base import Functional, functional
from dlnotes.nn import init as nn_init
from dlnotes import hparams

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "linear": lambda z: z,
    "gelu": lambda z: jax.nn.gelu(z, approximate=False),
}


def _linear(fan_in, fan_out, weight_init, bias_init, scale, param_dtype, rngs):
    return nnx.Linear(
        fan_in,
        fan_out,
        kernel_init=nn_init.weight_init(weight_init, scale),
        bias_init=nn_init.bias_init(bias_init, fan_in=fan_in, fan_out=fan_out),
        param_dtype=param_dtype,
        rngs=rngs,
    )


class ReLUNet(nnx.Module):
    """``x (N, d) -> out(relu(hidden(x))) (N, k)``: one hidden layer of ``width`` ReLUs."""

    def __init__(self, in_features: int, width: int, out_features: int = 1, *, rngs: nnx.Rngs,
                 weight_init: str = "normal", bias_init: str = "normal", init_scale=1.0,
                 param_dtype=jnp.float32):
        self.hidden = _linear(in_features, width, weight_init, bias_init, init_scale, param_dtype, rngs)
        self.out = _linear(width, out_features, weight_init, bias_init, init_scale, param_dtype, rngs)

    def __call__(self, x, *, train: bool = False, key=None):
        del train, key
        return self.out(jax.nn.relu(self.hidden(x)))


class MLP(nnx.Module):
    """``depth`` hidden layers of ``width`` units with ``activation``, then a linear output layer.

    ``return_activations=True`` also returns ``{"pre": (z_1..z_L), "post": (h_1..h_L)}``
    (each (N, width)): pre-activations and activations of the hidden layers.
    """

    def __init__(self, in_features: int, width: int, depth: int, out_features: int = 1, *,
                 rngs: nnx.Rngs, activation: str = "relu", weight_init: str = "xavier_normal",
                 bias_init: str = "zeros", init_scale=1.0, param_dtype=jnp.float32):
        if activation not in ACTIVATIONS:
            raise ConfigError("model.activation", f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        self.activation = activation
        dims = [in_features] + [width] * depth
        self.layers = nnx.List([
            _linear(dims[i], dims[i + 1], weight_init, bias_init, init_scale, param_dtype, rngs)
            for i in range(depth)
        ])
        self.out = _linear(dims[-1], out_features, weight_init, bias_init, init_scale, param_dtype, rngs)

    def __call__(self, x, *, train: bool = False, key=None, return_activations: bool = False):
        del train, key
        act = ACTIVATIONS[self.activation]
        pre, post = [], []
        h = x
        for layer in self.layers:
            z = layer(h)
            h = act(z)
            pre.append(z)
            post.append(h)
        out = self.out(h)
        if return_activations:
            return out, {"pre": tuple(pre), "post": tuple(post)}
        return out


# ---------------------------------------------------------------------------
# constructors from config


def _model_cfg(config, key, default=None):
    m = config.model
    value = m.get(key, default) if hasattr(m, "get") else getattr(m, key, default)
    if value is None:
        raise ConfigError(f"model.{key}", "missing")
    return value


def _positive_int(config, key, default=None):
    v = _model_cfg(config, key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"model.{key}", f"must be a positive integer, got {v!r}")
    return v


def _check_common(config):
    width = _positive_int(config, "width")
    d_in = _positive_int(config, "in_features", 1)
    d_out = _positive_int(config, "out_features", 1)
    w_name = _model_cfg(config, "weight_init")
    b_name = _model_cfg(config, "bias_init")
    nn_init.weight_init(w_name)
    nn_init.bias_init(b_name, fan_in=1)
    scale = _model_cfg(config, "init_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ConfigError("model.init_scale", f"must be a positive number, got {scale!r}")
    return width, d_in, d_out, w_name, b_name


def _scale(hp, config):
    if hp is not None and "model.init_scale" in hp:
        return hparams.get(hp, config, "model.init_scale")
    return _model_cfg(config, "init_scale", 1.0)


def make_relu_net(config, param_dtype=jnp.float32) -> Functional:
    """``Functional`` of a ``ReLUNet`` (in_features → width → out_features) from ``config.model``.

    ``model.depth`` (if given) must be 1 and ``model.activation`` (if given) "relu".
    Bad values raise ``ConfigError`` naming the key, before anything is built.
    """
    width, d_in, d_out, w_name, b_name = _check_common(config)
    if _model_cfg(config, "depth", 1) != 1:
        raise ConfigError("model.depth", "relu_net has exactly one hidden layer (depth 1)")
    if _model_cfg(config, "activation", "relu") != "relu":
        raise ConfigError("model.activation", "relu_net uses relu; use make_mlp for other activations")

    def make(rngs, hp):
        return ReLUNet(d_in, width, d_out, rngs=rngs, weight_init=w_name, bias_init=b_name,
                       init_scale=_scale(hp, config), param_dtype=param_dtype)

    return functional(make)


def make_mlp(config, param_dtype=jnp.float32) -> Functional:
    """``Functional`` of an ``MLP`` with ``model.depth`` hidden layers of ``model.width`` units."""
    width, d_in, d_out, w_name, b_name = _check_common(config)
    depth = _positive_int(config, "depth")
    activation = _model_cfg(config, "activation", "relu")
    if activation not in ACTIVATIONS:
        raise ConfigError("model.activation", f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")

    def make(rngs, hp):
        return MLP(d_in, width, depth, d_out, rngs=rngs, activation=activation, weight_init=w_name,
                   bias_init=b_name, init_scale=_scale(hp, config), param_dtype=param_dtype)

    return functional(make)


# ---------------------------------------------------------------------------
# elbows


def _arr(params, *path) -> jax.Array:
    node: Any = params
    for p in path:
        node = node[p]
    if isinstance(node, nnx.Variable):
        node = node[...]
    return jnp.asarray(node)


def _one_d(params):
    w = _arr(params, "hidden", "kernel")
    if w.shape[0] != 1:
        raise ValueError(f"elbows are defined for 1-D inputs; hidden kernel has shape {w.shape}")
    return w[0], _arr(params, "hidden", "bias")


def elbow_positions(params) -> jax.Array:
    """``e_i = −b_i/w_i`` for each hidden unit of a 1-input net: (H,). ±inf/nan where w_i = 0."""
    w, b = _one_d(params)
    return -b / w


def elbow_formula(params, x) -> jax.Array:
    """``Σ_i a_i |w_i| max(0, sign(w_i)(x − e_i)) + c`` — the net as a sum of elbows.

    x: (N,) or (N, 1) -> (N, k), equal to the net's forward pass. A unit with
    w_i = 0 contributes the constant a_i·relu(b_i).
    """
    w, b = _one_d(params)
    a = _arr(params, "out", "kernel")  # (H, k)
    c = _arr(params, "out", "bias")  # (k,)
    x = jnp.reshape(x, (-1, 1))
    flat = w == 0
    e = -b / jnp.where(flat, 1.0, w)
    ramp = jnp.abs(w) * jax.nn.relu(jnp.sign(w) * (x - e))  # (N, H)
    ramp = jnp.where(flat, jax.nn.relu(b), ramp)
    return ramp @ a + c


def elbow_second_differences(params, x, h) -> jax.Array:
    """Exact second differences ``f(x+h) − 2f(x) + f(x−h)`` of the net: ``Σ_i a_i|w_i| max(0, h − |x − e_i|)``.

    Zero farther than h from every elbow. x: (N,) or (N,1) -> (N, k).
    """
    w, b = _one_d(params)
    a = _arr(params, "out", "kernel")
    x = jnp.reshape(x, (-1, 1))
    flat = w == 0
    e = -b / jnp.where(flat, 1.0, w)
    hat = jnp.where(flat, 0.0, jnp.abs(w) * jax.nn.relu(h - jnp.abs(x - e)))
    return hat @ a


class DeadReLUs(NamedTuple):
    """Which hidden units are dead on the data (zero activation, hence zero gradient, on every point).

    dead (H,) bool; fraction () of dead units; max_preactivation (H,) = max over data of wᵢᵀx + bᵢ;
    elbow_outside (H,) bool (1-D inputs only, else None): elbow outside [min x, max x]
    with the slope pointing away from the data.
    """

    dead: jax.Array
    fraction: jax.Array
    max_preactivation: jax.Array
    elbow_outside: jax.Array | None


def dead_relus(params, x_data) -> DeadReLUs:
    """Dead-ReLU report on ``x_data`` ((N,) or (N, d)): unit i is dead iff ``max_x (w_iᵀx + b_i) ≤ 0``.

    For d = 1 this is: elbow at or beyond the data's edge with the slope pointing away
    (w_i > 0 and e_i ≥ max x, or w_i < 0 and e_i ≤ min x), or w_i = 0 and b_i ≤ 0.
    """
    W = _arr(params, "hidden", "kernel")
    b = _arr(params, "hidden", "bias")
    x = jnp.reshape(x_data, (-1, W.shape[0]))
    zmax = jnp.max(x @ W + b, axis=0)
    dead = zmax <= 0
    outside = None
    if W.shape[0] == 1:
        w = W[0]
        e = -b / jnp.where(w == 0, 1.0, w)
        lo, hi = jnp.min(x), jnp.max(x)
        outside = jnp.where(w > 0, e >= hi, jnp.where(w < 0, e <= lo, b <= 0))
    return DeadReLUs(dead=dead, fraction=jnp.mean(dead.astype(jnp.float32)),
                     max_preactivation=zmax, elbow_outside=outside)
