"""Autoencoders (flax.nnx): linear x → BAx with a bottleneck k, and a nonlinear MLP one.

``LinearAutoencoder``: encoder A (k, d), decoder B (d, k), no biases (feed centred data);
``tied=True`` shares the weights, B = Aᵀ. Weight decay comes from the optimizer (both are
kernels: ``optimizer.weight_decay`` decays them). On centred data its minimizers of
mean‖x − BAx‖² have col(B) = the top-k PCA subspace.

``MLPAutoencoder``: x → [Dense → act] per ``hidden`` → Dense to the code (linear) →
[Dense → act] per reversed ``hidden`` → Dense to d (linear). Denoising and masked
reconstruction are the same model with a corrupted input (the task corrupts; see
``dlnotes.experiments.common_unsupervised``).

Both take flat inputs (N, d) and have ``encode(x)`` (the features a probe uses) and
``decode(z)``; ``__call__(x, *, train=False, key=None)`` reconstructs.

Config (``config.model``): ``input_dim`` (d), ``code`` (k), ``tied`` (linear; False),
``hidden`` (MLP; list of widths), ``activation`` ("relu" | "gelu" | "tanh").
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from dlnotes.errors import ConfigError
from dlnotes.models.base import functional

ACTIVATIONS = {"relu": jax.nn.relu, "gelu": lambda z: jax.nn.gelu(z, approximate=False), "tanh": jnp.tanh}


class LinearAutoencoder(nnx.Module):
    """x → B A x. A ~ N(0, 1/d), B ~ N(0, 1/k)."""

    def __init__(self, d: int, k: int, *, tied: bool = False, rngs: nnx.Rngs):
        self.tied = tied
        self.encoder = nnx.Param(jax.random.normal(rngs.params(), (k, d)) / math.sqrt(d))
        if not tied:
            self.decoder = nnx.Param(jax.random.normal(rngs.params(), (d, k)) / math.sqrt(k))

    @property
    def decoder_matrix(self) -> jax.Array:
        """B (d, k) (Aᵀ if tied)."""
        return self.encoder[...].T if self.tied else self.decoder[...]

    def encode(self, x):
        return x @ self.encoder[...].T

    def decode(self, z):
        return z @ self.decoder_matrix.T

    def __call__(self, x, *, train: bool = False, key=None):
        return self.decode(self.encode(x))


class MLPAutoencoder(nnx.Module):
    """x → enc → code (linear) → dec → x̂ (linear output)."""

    def __init__(self, d: int, hidden, code: int, *, activation: str = "relu", rngs: nnx.Rngs):
        if activation not in ACTIVATIONS:
            raise ConfigError("model.activation", f"unknown activation {activation!r}; choose from {tuple(ACTIVATIONS)}")
        self.activation = activation
        widths = [d, *[int(h) for h in hidden]]
        self.enc = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
        self.to_code = nnx.Linear(widths[-1], code, rngs=rngs)
        back = [code, *reversed(widths[1:])]
        self.dec = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(back[:-1], back[1:])])
        self.out = nnx.Linear(back[-1], d, rngs=rngs)

    def encode(self, x):
        act = ACTIVATIONS[self.activation]
        for layer in self.enc:
            x = act(layer(x))
        return self.to_code(x)

    def decode(self, z):
        act = ACTIVATIONS[self.activation]
        for layer in self.dec:
            z = act(layer(z))
        return self.out(z)

    def __call__(self, x, *, train: bool = False, key=None):
        return self.decode(self.encode(x))


def _check(m):
    for key in ("input_dim", "code"):
        if key not in m or int(m[key]) != m[key] or m[key] < 1:
            raise ConfigError(f"model.{key}", f"must be a positive int, got {m.get(key)!r}")


def make_linear_autoencoder(config):
    """Pure ``init``/``apply`` of ``LinearAutoencoder(model.input_dim, model.code, tied=model.tied)``."""
    m = config.model
    _check(m)
    if m.code > m.input_dim:
        raise ConfigError("model.code", f"the bottleneck k={m.code} exceeds the input dimension {m.input_dim}")
    tied = bool(m.get("tied", False))
    return functional(lambda rngs, hp: LinearAutoencoder(m.input_dim, m.code, tied=tied, rngs=rngs))


def make_mlp_autoencoder(config):
    """Pure ``init``/``apply`` of ``MLPAutoencoder(model.input_dim, model.hidden, model.code, model.activation)``."""
    m = config.model
    _check(m)
    hidden = tuple(m.get("hidden", ()))
    if any(int(h) != h or h < 1 for h in hidden):
        raise ConfigError("model.hidden", f"must be positive ints, got {list(hidden)}")
    act = m.get("activation", "relu")
    if act not in ACTIVATIONS:
        raise ConfigError("model.activation", f"unknown activation {act!r}; choose from {tuple(ACTIVATIONS)}")
    return functional(lambda rngs, hp: MLPAutoencoder(m.input_dim, hidden, m.code, activation=act, rngs=rngs))


def make_autoencoder(config):
    """``model.name``: "linear" or "mlp"."""
    name = config.model.get("name", "linear")
    if name == "linear":
        return make_linear_autoencoder(config)
    if name == "mlp":
        return make_mlp_autoencoder(config)
    raise ConfigError("model.name", f"must be 'linear' or 'mlp', got {name!r}")


def encode(model, params, model_state, x):
    """The model's features ``encode(x)`` through the pure boundary."""
    return model.module(params, model_state).encode(x)


def decoder_matrix(model, params, model_state):
    """A linear autoencoder's B (d, k)."""
    return model.module(params, model_state).decoder_matrix
