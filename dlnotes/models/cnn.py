"""A configurable conv stack for NHWC images, and an MLP classifier of matched size (flax.nnx).

``CNN``: for each entry c of ``channels``

    h ← pool(act(norm(conv_K(h))))        conv: K×K, SAME padding, c filters

(``pool_layers``: only after the convs with these indices; default every conv),
then flatten, an optional hidden dense layer ``h ← act(dense_norm(W h + b))`` of width
``dense``, inverted dropout (rate given at call time) and the output layer
``logits = W_out h + b_out``. ``pool`` (2×2, stride 2, after every conv):
"max", "avg", "subsample" (keep every 2nd pixel, x[:, ::2, ::2]) or "none".
``norm`` / ``dense_norm``: "none", "batch" (running statistics in ``model_state``),
"group" (``groups`` groups), "layer" (conv: over H, W, C of each example = GroupNorm(1);
dense: over the features).

``MLPClassifier``: flatten → ``depth`` hidden layers of ``width`` ReLUs → output; dropout
before the output layer as in ``CNN``. ``mlp_width_for(n_params, ...)`` picks the width
whose parameter count is closest to a target (a CNN's), for C23's matched comparison.

Config (``config.model``) read by ``make_cnn``:
  ``image_size`` [H, W] (default [8, 8]), ``in_channels`` (1), ``channels`` (list of ints),
  ``kernel_size`` (3), ``pool`` ("max"), ``pool_layers`` (None = after every conv), ``norm`` ("none"), ``groups`` (4; group norm),
  ``dense`` (0 = no hidden dense layer), ``dense_norm`` ("none"), ``activation`` ("relu"),
  ``num_classes`` (10), ``dropout`` (float, traced; pass it at call time with
  ``call_kwargs=lambda hp: {"dropout": hparams.get(hp, config, "model.dropout")}``),
  ``bn_momentum`` (0.9), ``impl`` ("auto": im2col on CPU, XLA elsewhere).
``make_mlp_classifier`` reads ``image_size``, ``in_channels``, ``num_classes``, ``width``
(or ``match_params``: a parameter count to match, e.g. the CNN's) and ``depth`` (1).
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from dlnotes.errors import ConfigError
from dlnotes.models.base import Functional, count_params, functional  # noqa: F401  (Functional, count_params re-exported)
from dlnotes.nn import layers as L
from dlnotes.nn.pool import avg_pool, max_pool
from dlnotes.nn.regularize import dropout as _dropout


POOLS = ("max", "avg", "subsample", "none")
NORMS = ("none", "batch", "group", "layer")
ACTIVATIONS = {"relu": jax.nn.relu, "gelu": lambda z: jax.nn.gelu(z, approximate=False), "tanh": jnp.tanh}


def pool2x2(x: jax.Array, kind: str) -> jax.Array:
    """2×2 pooling with stride 2 on NHWC: max, avg, subsample (x[:, ::2, ::2]) or none."""
    if kind == "max":
        return max_pool(x, 2)
    if kind == "avg":
        return avg_pool(x, 2)
    if kind == "subsample":
        return x[:, ::2, ::2, :]
    if kind == "none":
        return x
    raise ConfigError("model.pool", f"unknown pool {kind!r}; choose from {POOLS}")


def _pool_layers(pool_layers, n: int) -> tuple[int, ...]:
    """Indices of the conv layers followed by a pool (None: every layer)."""
    if pool_layers is None:
        return tuple(range(n))
    out = tuple(int(i) for i in pool_layers)
    if any(not 0 <= i < n for i in out):
        raise ConfigError("model.pool_layers", f"indices must lie in [0, {n}), got {list(out)}")
    return out


def _pooled(size: int, kind: str) -> int:
    return size if kind == "none" else (size + 1) // 2 if kind == "subsample" else size // 2


def make_norm(kind: str, features: int, *, groups: int = 4, spatial: bool = True, momentum=0.9,
              key: str = "model.norm"):
    """A norm module (or None for "none") over NHWC (``spatial``) or (N, F) activations."""
    if kind == "none":
        return None
    if kind == "batch":
        return L.BatchNorm(features, momentum=momentum)
    if kind == "group":
        if groups < 1 or features % groups:
            raise ConfigError("model.groups", f"{groups} groups must divide the {features} channels")
        return L.GroupNorm(features, groups)
    if kind == "layer":
        return L.LayerNorm(features, axes=(1, 2, 3) if spatial else -1)
    raise ConfigError(key, f"unknown norm {kind!r}; choose from {NORMS}")


def _apply(mod, x, train):
    return x if mod is None else mod(x, train=train)


def _is_zero(rate) -> bool:
    return isinstance(rate, (int, float)) and rate == 0


def maybe_dropout(x, rate, key, train):
    """Inverted dropout, skipped (no key needed) when ``rate`` is a Python 0."""
    return x if _is_zero(rate) else _dropout(x, rate, key, train)


def maybe_drop_path(residual, rate, key, train):
    """Stochastic depth on a residual branch, skipped (no key needed) when ``rate`` is a Python 0."""
    from dlnotes.nn.regularize import stochastic_depth
    return residual if _is_zero(rate) else stochastic_depth(residual, rate, key, train)


class CNN(nnx.Module):
    """Conv stack → flatten → [dense] → dropout → output. Input (N, H, W, C_in), output (N, num_classes)."""

    def __init__(self, in_channels: int, channels: Sequence[int], num_classes: int = 10, *, rngs: nnx.Rngs,
                 image_size=(8, 8), kernel_size: int = 3, pool: str = "max", norm: str = "none",
                 groups: int = 4, dense: int = 0, dense_norm: str = "none", activation: str = "relu",
                 bn_momentum=0.9, impl: str = "auto", pool_layers: Sequence[int] | None = None):
        if pool not in POOLS:
            raise ConfigError("model.pool", f"unknown pool {pool!r}; choose from {POOLS}")
        for k, v in (("model.norm", norm), ("model.dense_norm", dense_norm)):
            if v not in NORMS:
                raise ConfigError(k, f"unknown norm {v!r}; choose from {NORMS}")
        if activation not in ACTIVATIONS:
            raise ConfigError("model.activation", f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
        channels = [int(c) for c in channels]
        if not channels or min(channels) < 1:
            raise ConfigError("model.channels", f"must be a non-empty list of positive ints, got {channels}")
        self.pool, self.activation = pool, activation
        self.pool_layers = _pool_layers(pool_layers, len(channels))
        convs, norms = [], []
        c_in = in_channels
        h, w = int(image_size[0]), int(image_size[1])
        for i, c in enumerate(channels):
            convs.append(L.Conv(c_in, c, kernel_size, padding="SAME", impl=impl, rngs=rngs))
            norms.append(make_norm(norm, c, groups=groups, momentum=bn_momentum))
            c_in = c
            if i in self.pool_layers:
                h, w = _pooled(h, pool), _pooled(w, pool)
        if h < 1 or w < 1:
            raise ConfigError("model.channels", f"{len(channels)} pooled layers shrink {tuple(image_size)} to nothing")
        self.convs = nnx.List(convs)
        self.norms = nnx.List(norms)
        flat = h * w * c_in
        self.flat_features = flat
        if dense:
            self.dense = nnx.Linear(flat, dense, rngs=rngs)
            self.dense_norm = make_norm(dense_norm, dense, groups=groups, spatial=False, momentum=bn_momentum,
                                        key="model.dense_norm")
            flat = dense
        else:
            self.dense, self.dense_norm = None, None
        self.out = nnx.Linear(flat, num_classes, rngs=rngs)

    def features(self, x, *, train: bool = False):
        """The flattened conv features (N, flat_features)."""
        act = ACTIVATIONS[self.activation]
        h = x
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = act(_apply(norm, conv(h), train))
            if i in self.pool_layers:
                h = pool2x2(h, self.pool)
        return h.reshape(h.shape[0], -1)

    def __call__(self, x, *, train: bool = False, key=None, dropout=0.0):
        h = self.features(x, train=train)
        if self.dense is not None:
            h = ACTIVATIONS[self.activation](_apply(self.dense_norm, self.dense(h), train))
        h = maybe_dropout(h, dropout, key, train)
        return self.out(h)


class MLPClassifier(nnx.Module):
    """Flatten → ``depth`` hidden ReLU layers of ``width`` → dropout → output."""

    def __init__(self, in_features: int, width: int, num_classes: int = 10, *, depth: int = 1, rngs: nnx.Rngs):
        dims = [in_features] + [width] * depth
        self.layers = nnx.List([nnx.Linear(dims[i], dims[i + 1], rngs=rngs) for i in range(depth)])
        self.out = nnx.Linear(dims[-1], num_classes, rngs=rngs)

    def __call__(self, x, *, train: bool = False, key=None, dropout=0.0):
        h = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            h = jax.nn.relu(layer(h))
        h = maybe_dropout(h, dropout, key, train)
        return self.out(h)


def mlp_num_params(in_features: int, width: int, num_classes: int, depth: int = 1) -> int:
    """(d+1)W + (depth−1)(W+1)W + (W+1)k."""
    return (in_features + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * num_classes


def mlp_width_for(n_params: int, in_features: int, num_classes: int, depth: int = 1) -> int:
    """The hidden width whose ``mlp_num_params`` is closest to ``n_params``."""
    best, best_gap = 1, math.inf
    for w in range(1, 4 * n_params + 2):
        gap = abs(mlp_num_params(in_features, w, num_classes, depth) - n_params)
        if gap < best_gap:
            best, best_gap = w, gap
        elif mlp_num_params(in_features, w, num_classes, depth) > n_params:
            break
    return best


def cnn_num_params(in_channels: int, channels: Sequence[int], num_classes: int, *, image_size=(8, 8),
                   kernel_size: int = 3, pool: str = "max", norm: str = "none", dense: int = 0,
                   dense_norm: str = "none", pool_layers: Sequence[int] | None = None) -> int:
    """Closed-form parameter count: Σ (K²·C_in + 1)·C_out [+ 2·C_out per norm] + dense + output."""
    n, c_in, h, w = 0, in_channels, int(image_size[0]), int(image_size[1])
    pl = _pool_layers(pool_layers, len(channels))
    for i, c in enumerate(channels):
        n += (kernel_size * kernel_size * c_in + 1) * c + (2 * c if norm != "none" else 0)
        c_in = c
        if i in pl:
            h, w = _pooled(h, pool), _pooled(w, pool)
    flat = h * w * c_in
    if dense:
        n += (flat + 1) * dense + (2 * dense if dense_norm != "none" else 0)
        flat = dense
    return n + (flat + 1) * num_classes


# ---------------------------------------------------------------------------- from config


def _get(config, key, default):
    m = config.model
    v = m.get(key, default) if hasattr(m, "get") else getattr(m, key, default)
    return v


def _int(config, key, default, minimum=1):
    v = _get(config, key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ConfigError(f"model.{key}", f"must be an integer >= {minimum}, got {v!r}")
    return v


def _choice(config, key, default, choices):
    v = _get(config, key, default)
    if v not in choices:
        raise ConfigError(f"model.{key}", f"unknown value {v!r}; choose from {choices}")
    return v


def _image_size(config):
    size = _get(config, "image_size", (8, 8))
    try:
        size = tuple(int(s) for s in size)
    except TypeError:
        raise ConfigError("model.image_size", f"must be [H, W], got {size!r}") from None
    if len(size) != 2 or min(size) < 1:
        raise ConfigError("model.image_size", f"must be [H, W] of positive ints, got {size!r}")
    return size


def cnn_kwargs(config) -> dict:
    """Validated ``CNN`` constructor arguments from ``config.model`` (ConfigError naming the key)."""
    channels = _get(config, "channels", None)
    if channels is None or isinstance(channels, (str, int)) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in channels) or not len(channels):
        raise ConfigError("model.channels", f"must be a non-empty list of positive ints, got {channels!r}")
    kw = dict(
        in_channels=_int(config, "in_channels", 1), channels=tuple(channels),
        num_classes=_int(config, "num_classes", 10, 2), image_size=_image_size(config),
        kernel_size=_int(config, "kernel_size", 3), pool=_choice(config, "pool", "max", POOLS),
        norm=_choice(config, "norm", "none", NORMS), groups=_int(config, "groups", 4),
        dense=_int(config, "dense", 0, 0), dense_norm=_choice(config, "dense_norm", "none", NORMS),
        activation=_choice(config, "activation", "relu", tuple(ACTIVATIONS)),
        impl=_choice(config, "impl", "auto", ("auto", "im2col", "xla")),
    )
    pl = _get(config, "pool_layers", None)
    if pl is not None:
        if isinstance(pl, (str, bool)) or not all(isinstance(i, int) and not isinstance(i, bool) for i in pl):
            raise ConfigError("model.pool_layers", f"must be a list of conv-layer indices, got {pl!r}")
        kw["pool_layers"] = _pool_layers(pl, len(channels))
    mom = _get(config, "bn_momentum", 0.9)
    if not isinstance(mom, (int, float)) or isinstance(mom, bool) or not 0 <= mom < 1:
        raise ConfigError("model.bn_momentum", f"must be in [0, 1), got {mom!r}")
    kw["bn_momentum"] = float(mom)
    if kw["norm"] == "group" and any(c % kw["groups"] for c in channels):
        raise ConfigError("model.groups", f"{kw['groups']} groups must divide every entry of channels {list(channels)}")
    if kw["dense_norm"] == "group" and kw["dense"] % kw["groups"]:
        raise ConfigError("model.groups", f"{kw['groups']} groups must divide dense={kw['dense']}")
    if kw["dense_norm"] != "none" and not kw["dense"]:
        raise ConfigError("model.dense_norm", "needs a hidden dense layer (model.dense > 0)")
    return kw


def make_cnn(config) -> Functional:
    """``Functional`` of a ``CNN`` from ``config.model`` (fields in the module docstring)."""
    kw = cnn_kwargs(config)
    c_in, channels, k = kw.pop("in_channels"), kw.pop("channels"), kw.pop("num_classes")

    def make(rngs, hp):
        return CNN(c_in, channels, k, rngs=rngs, **kw)

    return functional(make)


def make_mlp_classifier(config) -> Functional:
    """``Functional`` of an ``MLPClassifier``: ``model.width`` hidden units, or the width whose
    parameter count is closest to ``model.match_params``; ``model.depth`` hidden layers (1)."""
    h, w = _image_size(config)
    d = h * w * _int(config, "in_channels", 1)
    k = _int(config, "num_classes", 10, 2)
    depth = _int(config, "depth", 1)
    target = _get(config, "match_params", 0)
    width = mlp_width_for(int(target), d, k, depth) if target else _int(config, "width", None)

    def make(rngs, hp):
        return MLPClassifier(d, width, k, depth=depth, rngs=rngs)

    return functional(make)
