"""Pooling over NHWC feature maps as pure functions.

For a window K (K_h, K_w), stride S (default S = K) and padding P, every pool
reads the same windows as a conv: output (i, j) sees x_pad[S·i : S·i + K, S·j : S·j + K]
and the output size is ⌊(W − K + 2P)/S⌋ + 1.

    avg_pool        mean of the window
    max_pool        max of the window (padding counts as −∞)
    pick_pool       one fixed position of the window (K = 1: plain subsampling x[::S, ::S])
    weighted_pool   Σ_ab v[a, b]·window[a, b], one weight map shared by all channels:
                    a depthwise strided conv with the kernel v repeated over channels

All are shifted strided slices of the padded input combined elementwise (no
``reduce_window``), cheap on CPU inside ``lax.scan``, and differentiable — except a max pool
whose stride equals its window with no padding (the common 2×2 one): a reshape into tiles and one
reduction, which was faster still.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from dlnotes.errors import ConfigError
from dlnotes.nn.conv import _explicit_padding, _pair, conv2d, pad_spatial, shifted_views


def _geometry(x, window, stride, padding):
    if x.ndim != 4:
        raise ConfigError("pool", f"expected an NHWC input, got shape {x.shape}")
    k = _pair(window, "window")
    s = k if stride is None else _pair(stride, "stride")
    pads = _explicit_padding(padding, x.shape[1:3], k, s)
    return k, s, pads


def _views(x, k, s, pads, pad_value):
    xp = pad_spatial(x, pads, "zeros", value=pad_value)
    out = tuple((xp.shape[1 + i] - k[i]) // s[i] + 1 for i in range(2))
    if min(out) < 1:
        raise ConfigError("window", f"window {k} larger than padded input {xp.shape[1:3]}")
    return shifted_views(xp, k, s, (1, 1), out)


def _tiled_max(x, k):
    """Max over non-overlapping K_h×K_w tiles (stride = window, no padding): a crop to whole tiles,
    a reshape to (N, H/K_h, K_h, W/K_w, K_w, C) and one reduction. Same values as the max of the
    shifted views; its gradient is JAX's reduce-max rule: ties share it equally, where the chain of
    pairwise maxima split a 2×2 tie 1/8, 1/8, 1/4, 1/2 (values are exactly equal mostly by
    construction, e.g. zeros after a ReLU, whose gradient the ReLU then masks). The digits CNN's 600 training steps ran 1.07× faster
    than with the shifted views (12-02, each version in its own process, taking turns, 14 rounds), with
    the same trained bits."""
    n, h, w, c = x.shape
    ho, wo = h // k[0], w // k[1]
    if min(ho, wo) < 1:
        raise ConfigError("window", f"window {k} larger than padded input {(h, w)}")
    x = x[:, :ho * k[0], :wo * k[1]]
    return x.reshape(n, ho, k[0], wo, k[1], c).max(axis=(2, 4))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _pool(x, k, s, pads, kind, arg):
    """Jitted core (eager calls compile once; inlined under an outer jit)."""
    if kind == "max":
        if k == s and all(p == (0, 0) for p in pads):
            return _tiled_max(x, k)
        views = _views(x, k, s, pads, -jnp.inf)
        y = views[0]
        for v in views[1:]:
            y = jnp.maximum(y, v)
        return y
    if kind == "pick":
        return _views(x, k, s, pads, 0.0)[arg]
    total = sum(_views(x, k, s, pads, 0.0))
    if arg or all(p == (0, 0) for p in pads):          # arg = count_include_pad
        return total / (k[0] * k[1])
    ones = jnp.ones((1, *x.shape[1:3], 1), x.dtype)
    return total / sum(_views(ones, k, s, pads, 0.0))


def avg_pool(x: jax.Array, window, stride=None, padding=0, count_include_pad: bool = True) -> jax.Array:
    """Mean over each K_h×K_w window. x: (N, H, W, C) → (N, H_out, W_out, C).

    With padding, ``count_include_pad=True`` divides by K_h·K_w (zeros count),
    False by the number of real pixels in the window.
    """
    return _pool(x, *_geometry(x, window, stride, padding), "avg", bool(count_include_pad))


def max_pool(x: jax.Array, window, stride=None, padding=0) -> jax.Array:
    """Max over each K_h×K_w window (padding is −∞, never selected)."""
    return _pool(x, *_geometry(x, window, stride, padding), "max", None)


def pick_pool(x: jax.Array, window=1, stride=None, padding=0, pick=(0, 0)) -> jax.Array:
    """Pick one fixed position ``pick`` = (a, b) of each window: y[i, j] = x_pad[S·i + a, S·j + b].

    ``pick_pool(x, 1, S)`` is subsampling x[:, ::S, ::S] (a stride-S 1×1 layer).
    """
    k, s, pads = _geometry(x, window, stride, padding)
    a, b = _pair(pick, "pick")
    if not (0 <= a < k[0] and 0 <= b < k[1]):
        raise ConfigError("pick", f"position {(a, b)} outside window {k}")
    return _pool(x, k, s, pads, "pick", a * k[1] + b)


def subsample(x: jax.Array, stride) -> jax.Array:
    """x[:, ::S_h, ::S_w] — pick-one pooling with a 1×1 window."""
    return pick_pool(x, 1, stride)


def weighted_pool(x: jax.Array, weights: jax.Array, stride=None, padding=0, impl: str = "auto") -> jax.Array:
    """Weighted average y[i, j, c] = Σ_ab v[a, b]·x_pad[S·i + a, S·j + b, c] as a strided
    depthwise conv. ``weights``: (K_h, K_w) shared over channels (uniform 1/K² = avg_pool;
    e.g. a normalized binomial/Gaussian window for blur pooling). Stride defaults to K."""
    if weights.ndim != 2:
        raise ConfigError("weights", f"expected a (K_h, K_w) window, got shape {weights.shape}")
    c = x.shape[-1]
    k = weights.shape
    s = k if stride is None else stride
    w = jnp.broadcast_to(weights.astype(x.dtype)[:, :, None, None], (*k, 1, c))
    return conv2d(x, w, stride=s, padding=padding, groups=c, impl=impl)
