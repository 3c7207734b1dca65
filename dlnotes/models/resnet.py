"""Plain vs residual deep nets (C29), stochastic depth (C32) and a small conv ResNet (C22, C30).

On flattened inputs x (N, d): an input layer h₀ = W_in x + b_in to ``width``, then ``depth`` blocks
(stacked parameters, one ``lax.scan``: compile time does not grow with depth), then a LayerNorm
and the output layer.

    PlainNet     h ← act(LN(W h + b))                              (post-LN, no skip)
    ResidualNet  h ← h + sd(W₂ act(W₁ LN(h) + b₁) + b₂)            (pre-LN residual)

``sd`` is stochastic depth (``dlnotes.nn.regularize.stochastic_depth``, inverted convention):
in training each example's branch is dropped with probability ``drop_path`` (given at call
time, so it can be a traced hyperparameter) and kept branches are scaled by 1/(1 − p); at
eval the branch is used as is (its expectation), so eval output does not depend on p.
``hidden`` (default ``width``) is the inner width of a residual branch.

``ResNetBlock`` (conv, NHWC): the basic block y = act(x + norm(conv₃(act(norm(conv₃(x)))))),
2·(9C² + C) conv weights + 2 norms (2C each). ``ResNet``: stem conv → stages of blocks
(a stride-2 1×1 projection between stages) → global average pool → LayerNorm → dense.

Config (``config.model``): ``depth`` (blocks), ``width``, ``hidden`` (residual branch width, default
width), ``activation`` ("relu" | "gelu" | "tanh"), ``in_features`` (default: flattened image size
from ``image_size``/``in_channels``, else 64), ``num_classes`` (10), ``drop_path`` (float, traced,
passed at call time). ``make_resnet`` reads ``channels`` (list, one stage each), ``blocks`` (per
stage), ``norm`` ("batch" | "group" | "layer" | "none"), ``groups``, plus ``image_size``,
``in_channels``, ``num_classes``, ``impl``.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from dlnotes.errors import ConfigError
from dlnotes.models.base import functional, Functional
from dlnotes.models.cnn import ACTIVATIONS, NORMS, _apply, _choice, _get, _image_size, _int, make_norm, maybe_drop_path
from dlnotes.nn import layers as L


def _flatten(x):
    return x.reshape(x.shape[0], -1)


def block_key(key, i):
    """The key of block ``i`` (None stays None)."""
    return None if key is None else jax.random.fold_in(key, i)


class PlainBlock(nnx.Module):
    """h ← act(LN(W h + b))."""

    def __init__(self, width: int, *, activation: str = "relu", rngs: nnx.Rngs):
        self.linear = nnx.Linear(width, width, rngs=rngs)
        self.norm = L.LayerNorm(width)
        self.activation = activation

    def __call__(self, h, *, train: bool = False, key=None):
        return ACTIVATIONS[self.activation](self.norm(self.linear(h)))


class ResidualBlock(nnx.Module):
    """Pre-LN residual block h ← h + sd(W₂ act(W₁ LN(h) + b₁) + b₂)."""

    def __init__(self, width: int, hidden: int | None = None, *, activation: str = "relu", rngs: nnx.Rngs):
        hidden = hidden or width
        self.norm = L.LayerNorm(width)
        self.fc1 = nnx.Linear(width, hidden, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, width, rngs=rngs)
        self.activation = activation

    def branch(self, h):
        """The residual branch f(h) = W₂ act(W₁ LN(h) + b₁) + b₂."""
        return self.fc2(ACTIVATIONS[self.activation](self.fc1(self.norm(h))))

    def __call__(self, h, *, train: bool = False, key=None, drop_path=0.0):
        return h + maybe_drop_path(self.branch(h), drop_path, key, train)


def _stack(init, key, depth, shape):
    return nnx.Param(jax.vmap(lambda k: init(k, shape, jnp.float32))(jax.random.split(key, depth)))


class _DeepNet(nnx.Module):
    """Blocks are stored stacked (leading axis = depth) and applied with ``lax.scan``, so the
    program (and its compile time) does not grow with depth. ``block(i)`` gives block i as a
    stand-alone ``PlainBlock`` / ``ResidualBlock`` with the same parameters."""

    def _init_io(self, in_features, width, num_classes, depth, activation, rngs):
        self.inp = nnx.Linear(in_features, width, rngs=rngs)
        self.final_norm = L.LayerNorm(width)
        self.out = nnx.Linear(width, num_classes, rngs=rngs)
        self.depth, self.width, self.activation = depth, width, activation

    def _scan(self, h, train, key, drop_path):
        stacked = {k: getattr(self, k)[...] for k in self._names}
        act = ACTIVATIONS[self.activation]

        def step(h, xs):
            p, i = xs
            h = self._step(p, h, act, train, block_key(key, i), drop_path)
            return h, h
        return jax.lax.scan(step, h, (stacked, jnp.arange(self.depth)))

    def hidden_states(self, x, *, train: bool = False, key=None, drop_path=0.0):
        """(depth + 1, N, width): the input layer's output h₀ and every block's output h₁ … h_depth."""
        h0 = self.inp(_flatten(x))
        _, hs = self._scan(h0, train, key, drop_path)
        return jnp.concatenate([h0[None], hs], axis=0)

    def __call__(self, x, *, train: bool = False, key=None, drop_path=0.0):
        h, _ = self._scan(self.inp(_flatten(x)), train, key, drop_path)
        return self.out(self.final_norm(h))

    def block_kernels(self) -> tuple[str, ...]:
        """Names of the stacked weight matrices (for per-layer gradient norms)."""
        return tuple(n for n in self._names if n.startswith("kernel"))


def _ln(h, scale, bias, eps=1e-5):
    from dlnotes.nn.norm import layer_norm
    return layer_norm(h, scale, bias, eps=eps)


class PlainNet(_DeepNet):
    """in → width, ``depth`` × [h ← act(LN(W h + b))], LN, → num_classes."""

    _names = ("kernel", "bias", "ln_scale", "ln_bias")

    def __init__(self, in_features: int, depth: int, width: int, num_classes: int = 10, *,
                 activation: str = "relu", rngs: nnx.Rngs):
        self._init_io(in_features, width, num_classes, depth, activation, rngs)
        self.kernel = _stack(L.default_kernel_init, rngs.params(), depth, (width, width))
        self.bias = nnx.Param(jnp.zeros((depth, width)))
        self.ln_scale = nnx.Param(jnp.ones((depth, width)))
        self.ln_bias = nnx.Param(jnp.zeros((depth, width)))

    @staticmethod
    def _step(p, h, act, train, key, drop_path):
        return act(_ln(h @ p["kernel"] + p["bias"], p["ln_scale"], p["ln_bias"]))

    def block(self, i: int) -> PlainBlock:
        blk = PlainBlock(self.width, activation=self.activation, rngs=nnx.Rngs(0))
        blk.linear.kernel[...] = self.kernel[i]
        blk.linear.bias[...] = self.bias[i]
        blk.norm.scale[...] = self.ln_scale[i]
        blk.norm.bias[...] = self.ln_bias[i]
        return blk


class ResidualNet(_DeepNet):
    """in → width, ``depth`` × [h ← h + sd(W₂ act(W₁ LN(h) + b₁) + b₂)], LN, → num_classes."""

    _names = ("ln_scale", "ln_bias", "kernel1", "bias1", "kernel2", "bias2")

    def __init__(self, in_features: int, depth: int, width: int, num_classes: int = 10, *,
                 hidden: int | None = None, activation: str = "relu", zero_init_branch: bool = False,
                 rngs: nnx.Rngs):
        """``zero_init_branch``: W₂ = 0 at init, so every block starts as the identity
        (the "zero-init last layer of the residual branch" of Goyal et al. 2017 / Fixup)."""
        hidden = hidden or width
        self._init_io(in_features, width, num_classes, depth, activation, rngs)
        self.hidden = hidden
        self.ln_scale = nnx.Param(jnp.ones((depth, width)))
        self.ln_bias = nnx.Param(jnp.zeros((depth, width)))
        self.kernel1 = _stack(L.default_kernel_init, rngs.params(), depth, (width, hidden))
        self.bias1 = nnx.Param(jnp.zeros((depth, hidden)))
        self.kernel2 = _stack(L.default_kernel_init, rngs.params(), depth, (hidden, width))
        if zero_init_branch:
            self.kernel2[...] = jnp.zeros_like(self.kernel2[...])
        self.bias2 = nnx.Param(jnp.zeros((depth, width)))

    @staticmethod
    def _step(p, h, act, train, key, drop_path):
        r = act(_ln(h, p["ln_scale"], p["ln_bias"]) @ p["kernel1"] + p["bias1"]) @ p["kernel2"] + p["bias2"]
        return h + maybe_drop_path(r, drop_path, key, train)

    def block(self, i: int) -> ResidualBlock:
        blk = ResidualBlock(self.width, self.hidden, activation=self.activation, rngs=nnx.Rngs(0))
        blk.norm.scale[...] = self.ln_scale[i]
        blk.norm.bias[...] = self.ln_bias[i]
        blk.fc1.kernel[...] = self.kernel1[i]
        blk.fc1.bias[...] = self.bias1[i]
        blk.fc2.kernel[...] = self.kernel2[i]
        blk.fc2.bias[...] = self.bias2[i]
        return blk


# ---------------------------------------------------------------------------- conv ResNet


class ResNetBlock(nnx.Module):
    """Basic ResNet block (NHWC, C channels): y = act(x + sd(n₂(conv₂(act(n₁(conv₁(x))))))), 3×3 convs."""

    def __init__(self, channels: int, *, kernel_size: int = 3, norm: str = "batch", groups: int = 4,
                 activation: str = "relu", impl: str = "auto", rngs: nnx.Rngs):
        self.conv1 = L.Conv(channels, channels, kernel_size, impl=impl, rngs=rngs)
        self.norm1 = make_norm(norm, channels, groups=groups)
        self.conv2 = L.Conv(channels, channels, kernel_size, impl=impl, rngs=rngs)
        self.norm2 = make_norm(norm, channels, groups=groups)
        self.activation = activation

    def __call__(self, x, *, train: bool = False, key=None, drop_path=0.0):
        act = ACTIVATIONS[self.activation]
        r = act(_apply(self.norm1, self.conv1(x), train))
        r = _apply(self.norm2, self.conv2(r), train)
        return act(x + maybe_drop_path(r, drop_path, key, train))


def resnet_block_num_params(c: int, k: int = 3, norm: bool = True) -> int:
    """2·(K²C² + C) + (4C if normed: scale and bias of two norms)."""
    return 2 * (k * k * c * c + c) + (4 * c if norm else 0)


class ResNet(nnx.Module):
    """Stem conv 3×3 → stages (``blocks`` ResNetBlocks each; a 1×1 stride-2 projection into each
    later stage) → global average pool → LayerNorm → dense. Input NHWC."""

    def __init__(self, in_channels: int, channels: Sequence[int] = (32, 64), blocks: int = 1,
                 num_classes: int = 10, *, norm: str = "batch", groups: int = 4, activation: str = "relu",
                 impl: str = "auto", rngs: nnx.Rngs):
        channels = [int(c) for c in channels]
        self.stem = L.Conv(in_channels, channels[0], 3, impl=impl, rngs=rngs)
        self.stem_norm = make_norm(norm, channels[0], groups=groups)
        downs, stages = [], []
        for s, c in enumerate(channels):
            downs.append(None if s == 0 else L.Conv(channels[s - 1], c, 1, stride=2, impl=impl, rngs=rngs))
            stages.append(nnx.List([ResNetBlock(c, norm=norm, groups=groups, activation=activation, impl=impl,
                                                rngs=rngs) for _ in range(blocks)]))
        self.downs, self.stages = nnx.List(downs), nnx.List(stages)
        self.head_norm = L.LayerNorm(channels[-1])
        self.head = nnx.Linear(channels[-1], num_classes, rngs=rngs)
        self.activation = activation

    def __call__(self, x, *, train: bool = False, key=None, drop_path=0.0):
        h = ACTIVATIONS[self.activation](_apply(self.stem_norm, self.stem(x), train))
        i = 0
        for down, stage in zip(self.downs, self.stages):
            if down is not None:
                h = down(h)
            for blk in stage:
                h = blk(h, train=train, key=block_key(key, i), drop_path=drop_path)
                i += 1
        return self.head(self.head_norm(h.mean(axis=(1, 2))))


# ---------------------------------------------------------------------------- from config


def _in_features(config):
    v = _get(config, "in_features", None)
    if v is not None:
        return _int(config, "in_features", None)
    h, w = _image_size(config)
    return h * w * _int(config, "in_channels", 1)


def _deep_kwargs(config):
    return dict(in_features=_in_features(config), depth=_int(config, "depth", None),
                width=_int(config, "width", None), num_classes=_int(config, "num_classes", 10, 2),
                activation=_choice(config, "activation", "relu", tuple(ACTIVATIONS)))


def make_plain_net(config) -> Functional:
    """``Functional`` of a ``PlainNet`` from ``config.model`` (depth, width, activation, ...)."""
    kw = _deep_kwargs(config)
    return functional(lambda rngs, hp: PlainNet(rngs=rngs, **kw))


def make_residual_net(config) -> Functional:
    """``Functional`` of a ``ResidualNet`` from ``config.model`` (depth, width, hidden, activation, ...)."""
    kw = _deep_kwargs(config)
    hidden = _get(config, "hidden", 0) or None
    if hidden is not None:
        hidden = _int(config, "hidden", None)
    zero = _get(config, "zero_init_branch", False)
    if not isinstance(zero, bool):
        raise ConfigError("model.zero_init_branch", f"must be true or false, got {zero!r}")
    return functional(lambda rngs, hp: ResidualNet(hidden=hidden, zero_init_branch=zero, rngs=rngs, **kw))


def make_resnet(config) -> Functional:
    """``Functional`` of a conv ``ResNet`` from ``config.model`` (channels, blocks, norm, groups, ...)."""
    channels = _get(config, "channels", (32, 64))
    if isinstance(channels, (str, int)) or not len(channels) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in channels):
        raise ConfigError("model.channels", f"must be a non-empty list of positive ints, got {channels!r}")
    norm = _choice(config, "norm", "batch", NORMS)
    groups = _int(config, "groups", 4)
    if norm == "group" and any(c % groups for c in channels):
        raise ConfigError("model.groups", f"{groups} groups must divide every entry of channels {list(channels)}")
    kw = dict(in_channels=_int(config, "in_channels", 1), channels=tuple(channels),
              blocks=_int(config, "blocks", 1), num_classes=_int(config, "num_classes", 10, 2), norm=norm,
              groups=groups, activation=_choice(config, "activation", "relu", tuple(ACTIVATIONS)),
              impl=_choice(config, "impl", "auto", ("auto", "im2col", "xla")))
    return functional(lambda rngs, hp: ResNet(rngs=rngs, **kw))
