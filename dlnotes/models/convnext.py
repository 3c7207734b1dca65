"""ConvNeXt-style block and a small ConvNeXt for digits (C22, C30).

Block (Liu et al. 2022), NHWC with C channels:

    y = x + sd(γ ⊙ W₂ GELU(W₁ LN(dwconv₇ₓ₇(x)) + b₁) + b₂)

dwconv: depthwise K×K (K²C + C params); LN over channels (2C); W₁: 1×1 C → 4C (4C² + 4C);
W₂: 1×1 4C → C (4C² + C); γ: layer scale (C, init ``layer_scale`` e.g. 1e-6; None = off);
sd: stochastic depth with rate ``drop_path`` (at call time; identity at eval). 1×1 convs are
dense layers on the channel axis. Parameters: 8C² + (K² + 8)C (+ C with layer scale) —
``convnext_block_num_params`` — versus a basic ResNet block's 18C² + 6C.

``ConvNeXt``: stem conv (``stem_kernel``, stride 1) + LN → stages (``depths[s]`` blocks of
``dims[s]`` channels; between stages LN + a 2×2 stride-2 conv) → global average pool → LN → dense.

Config (``config.model``) for ``make_convnext``: ``dims`` ([32, 64]), ``depths`` ([1, 1]),
``kernel_size`` (7), ``expansion`` (4), ``layer_scale`` (float, 0 = off; default 1e-6),
``stem_kernel`` (3), ``image_size``/``in_channels``/``num_classes``, ``drop_path`` (float,
traced: pass at call time), ``impl``, ``depthwise`` ("auto": on a CPU and images of ≤ 256 pixels
the depthwise conv runs as one H·W × H·W matrix per channel, ``depthwise_conv2d_dense``; "conv":
``DepthwiseConv``; "dense").
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dlnotes.errors import ConfigError
from dlnotes.models.base import functional, Functional
from dlnotes.models.cnn import _choice, _get, _int, maybe_drop_path
from dlnotes.models.resnet import block_key
from dlnotes.nn import layers as L


@functools.lru_cache(maxsize=32)
def _same_shift_matrices(h: int, w: int, kh: int, kw: int) -> np.ndarray:
    """(K_h·K_w, H·W, H·W) 0/1 matrices: S_ab[p, q] = 1 iff input pixel q is at offset (a, b) of output
    pixel p's SAME-padded window (q = (i + a − P_h, j + b − P_w), inside the image)."""
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    s = np.zeros((kh * kw, h * w, h * w), np.float32)
    for a in range(kh):
        for b in range(kw):
            for i in range(h):
                for j in range(w):
                    r, c = i + a - ph, j + b - pw
                    if 0 <= r < h and 0 <= c < w:
                        s[a * kw + b, i * w + j, r * w + c] = 1.0
    return s


def depthwise_conv2d_dense(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Depthwise SAME conv, stride 1, as one (H·W × H·W) matrix per channel: T_c = Σ_ab w[a, b, c] S_ab,
    y[n, :, c] = T_c x[n, :, c]. x: (N, H, W, C); kernel: (K_h, K_w, 1, C). Equals
    ``depthwise_conv2d(x, kernel, padding='SAME')``; for small images it compiles and runs much faster on a
    CPU than K² shifted views (two einsums instead of K² slices and their transposes)."""
    n, h, w, c = x.shape
    kh, kw = kernel.shape[:2]
    t = jnp.einsum("kpq,kc->cpq", jnp.asarray(_same_shift_matrices(h, w, kh, kw), x.dtype),
                   kernel.reshape(kh * kw, c))
    return jnp.einsum("cpq,nqc->npc", t, x.reshape(n, h * w, c)).reshape(n, h, w, c)


class ConvNeXtBlock(nnx.Module):
    """y = x + sd(γ ⊙ pw₂(GELU(pw₁(LN(dwconv(x))))))."""

    def __init__(self, channels: int, *, kernel_size: int = 7, expansion: int = 4, layer_scale: float | None = 1e-6,
                 impl: str = "auto", depthwise: str = "auto", rngs: nnx.Rngs):
        self.dwconv = L.DepthwiseConv(channels, kernel_size, impl=impl, rngs=rngs)
        self.norm = L.LayerNorm(channels)
        self.pw1 = nnx.Linear(channels, expansion * channels, rngs=rngs)
        self.pw2 = nnx.Linear(expansion * channels, channels, rngs=rngs)
        self.gamma = nnx.Param(jnp.full((channels,), layer_scale, jnp.float32)) if layer_scale else None
        if depthwise not in ("auto", "conv", "dense"):
            raise ConfigError("model.depthwise", f"expected auto, conv or dense, got {depthwise!r}")
        self.depthwise = depthwise

    def _dw(self, x):
        dense = self.depthwise == "dense" or (self.depthwise == "auto" and jax.default_backend() == "cpu"
                                              and x.shape[1] * x.shape[2] <= 256)
        if not dense:
            return self.dwconv(x)
        return depthwise_conv2d_dense(x, self.dwconv.kernel[...]) + self.dwconv.bias[...]

    def branch(self, x):
        """The residual branch γ ⊙ pw₂(GELU(pw₁(LN(dwconv(x)))))."""
        r = self.pw2(jax.nn.gelu(self.pw1(self.norm(self._dw(x))), approximate=False))
        return r if self.gamma is None else r * self.gamma[...]

    def __call__(self, x, *, train: bool = False, key=None, drop_path=0.0):
        return x + maybe_drop_path(self.branch(x), drop_path, key, train)


def convnext_block_num_params(c: int, k: int = 7, expansion: int = 4, layer_scale: bool = True) -> int:
    """(K²C + C) + 2C + (C·eC + eC) + (eC·C + C) [+ C]: = 8C² + (K² + 8)C (+ C) for e = 4."""
    return (k * k * c + c) + 2 * c + (c * expansion * c + expansion * c) + (expansion * c * c + c) + (
        c if layer_scale else 0)


class ConvNeXt(nnx.Module):
    """Stem → stages of ConvNeXtBlocks (LN + 2×2 stride-2 conv between stages) → mean pool → LN → dense."""

    def __init__(self, in_channels: int, dims: Sequence[int] = (32, 64), depths: Sequence[int] = (1, 1),
                 num_classes: int = 10, *, kernel_size: int = 7, expansion: int = 4,
                 layer_scale: float | None = 1e-6, stem_kernel: int = 3, impl: str = "auto",
                 depthwise: str = "auto", rngs: nnx.Rngs):
        dims, depths = [int(d) for d in dims], [int(d) for d in depths]
        if len(dims) != len(depths):
            raise ConfigError("model.depths", f"needs one entry per stage of dims {dims}, got {depths}")
        self.stem = L.Conv(in_channels, dims[0], stem_kernel, impl=impl, rngs=rngs)
        self.stem_norm = L.LayerNorm(dims[0])
        downs, stages = [], []
        for s, (c, n) in enumerate(zip(dims, depths)):
            downs.append(None if s == 0 else nnx.List([
                L.LayerNorm(dims[s - 1]), L.Conv(dims[s - 1], c, 2, stride=2, padding="VALID", impl=impl,
                                                 rngs=rngs)]))
            stages.append(nnx.List([ConvNeXtBlock(c, kernel_size=kernel_size, expansion=expansion,
                                                  layer_scale=layer_scale, impl=impl, depthwise=depthwise,
                                                  rngs=rngs) for _ in range(n)]))
        self.downs, self.stages = nnx.List(downs), nnx.List(stages)
        self.head_norm = L.LayerNorm(dims[-1])
        self.head = nnx.Linear(dims[-1], num_classes, rngs=rngs)

    def __call__(self, x, *, train: bool = False, key=None, drop_path=0.0):
        h = self.stem_norm(self.stem(x))
        i = 0
        for down, stage in zip(self.downs, self.stages):
            if down is not None:
                h = down[1](down[0](h))
            for blk in stage:
                h = blk(h, train=train, key=block_key(key, i), drop_path=drop_path)
                i += 1
        return self.head(self.head_norm(h.mean(axis=(1, 2))))


def _int_list(config, key, default):
    v = _get(config, key, default)
    if isinstance(v, (str, int)) or not len(v) or not all(
            isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in v):
        raise ConfigError(f"model.{key}", f"must be a non-empty list of positive ints, got {v!r}")
    return tuple(v)


def make_convnext(config) -> Functional:
    """``Functional`` of a ``ConvNeXt`` from ``config.model`` (fields in the module docstring)."""
    dims, depths = _int_list(config, "dims", (32, 64)), _int_list(config, "depths", (1, 1))
    if len(dims) != len(depths):
        raise ConfigError("model.depths", f"needs one entry per stage of dims {list(dims)}, got {list(depths)}")
    ls = _get(config, "layer_scale", 1e-6)
    if isinstance(ls, bool) or not isinstance(ls, (int, float)) or ls < 0:
        raise ConfigError("model.layer_scale", f"must be a number >= 0 (0 = off), got {ls!r}")
    kw = dict(in_channels=_int(config, "in_channels", 1), dims=dims, depths=depths,
              num_classes=_int(config, "num_classes", 10, 2), kernel_size=_int(config, "kernel_size", 7),
              expansion=_int(config, "expansion", 4), layer_scale=float(ls) or None,
              stem_kernel=_int(config, "stem_kernel", 3),
              impl=_choice(config, "impl", "auto", ("auto", "im2col", "xla")),
              depthwise=_choice(config, "depthwise", "auto", ("auto", "conv", "dense")))
    return functional(lambda rngs, hp: ConvNeXt(rngs=rngs, **kw))
