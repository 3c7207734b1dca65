"""Normalization layers as pure functions over NHWC (or (N, C), (N, T, C)) arrays.

All share one formula, differing only in the set A of axes the statistics run over:

    y = (x − μ_A) / √(σ²_A + ε) · γ + β,   μ_A = mean_A x,  σ²_A = mean_A (x − μ_A)²

with per-channel γ (scale) and β (bias) of shape (C,) (both optional). Variances are
two-pass (mean first, then mean of squared deviations) and biased (÷ |A|).

    batch_norm     A = batch and spatial axes (N, H, W) — per channel, across examples
    layer_norm     A = ``axes`` of one example (default the channel axis; (1, 2, 3) = all of H, W, C)
    instance_norm  A = spatial axes (H, W) — per example and channel
    group_norm     A = spatial axes × the C/G channels of each group — per example and group
    rms_norm       y = x / √(mean_A x² + ε) · γ  (no centring, no bias)

GroupNorm with G = 1 is layer_norm(axes=(1, 2, 3)) and with G = C is instance_norm.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from dlnotes.errors import ConfigError


def _axes(axes, ndim: int) -> tuple[int, ...]:
    if isinstance(axes, int):
        axes = (axes,)
    return tuple(sorted(a % ndim for a in axes))


def _normalize(x, axes, eps):
    mean = jnp.mean(x, axis=axes, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)
    return (x - mean) * lax.rsqrt(var + eps)


def _affine(y, scale, bias):
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    return y


def batch_norm(x: jax.Array, scale=None, bias=None, *, running_mean: jax.Array, running_var: jax.Array,
               train: bool, momentum=0.9, eps=1e-5):
    """Batch normalization. x: (N, ..., C); running_mean, running_var: (C,).

    train: μ, σ² over all axes but the last (the batch and spatial positions); returns
      the running averages updated as  m ← momentum·m + (1 − momentum)·μ  (same for σ²,
      biased). eval: μ, σ² = the running averages, so each example's output depends on
      that example only; the running averages are returned unchanged.
    Returns (y, (new_mean, new_var)). ``momentum`` and ``eps`` may be traced.
    """
    if train:
        axes = tuple(range(x.ndim - 1))
        mean = jnp.mean(x, axis=axes)
        var = jnp.mean(jnp.square(x - mean), axis=axes)
        new_mean = momentum * running_mean + (1 - momentum) * mean
        new_var = momentum * running_var + (1 - momentum) * var
        new = (new_mean.astype(running_mean.dtype), new_var.astype(running_var.dtype))
    else:
        mean, var = running_mean, running_var
        new = (running_mean, running_var)
    y = (x - mean) * lax.rsqrt(var + eps)
    return _affine(y, scale, bias), new


def layer_norm(x: jax.Array, scale=None, bias=None, *, axes=-1, eps=1e-5) -> jax.Array:
    """Layer normalization: statistics per example over ``axes``.

    Default ``axes=-1``: over the features of each token/pixel (transformers, ConvNeXt).
    ``axes=(1, 2, 3)`` on NHWC: over the whole example (Ba et al.; = GroupNorm(1)).
    """
    return _affine(_normalize(x, _axes(axes, x.ndim), eps), scale, bias)


def instance_norm(x: jax.Array, scale=None, bias=None, *, eps=1e-5) -> jax.Array:
    """Instance normalization: per example and channel over the spatial axes. x: (N, ..., C), ndim ≥ 3."""
    if x.ndim < 3:
        raise ConfigError("instance_norm", f"needs spatial axes, got shape {x.shape}")
    return _affine(_normalize(x, tuple(range(1, x.ndim - 1)), eps), scale, bias)


def group_norm(x: jax.Array, groups: int, scale=None, bias=None, *, eps=1e-5) -> jax.Array:
    """Group normalization: channels split into ``groups`` consecutive blocks of C/G;
    statistics per example and group over the spatial axes and the block's channels.
    x: (N, ..., C) (2-D (N, C) allowed: over the C/G channels)."""
    c = x.shape[-1]
    if groups < 1 or c % groups:
        raise ConfigError("groups", f"{groups} groups must divide the {c} channels")
    xg = x.reshape(*x.shape[:-1], groups, c // groups)
    axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)
    y = _normalize(xg, axes, eps).reshape(x.shape)
    return _affine(y, scale, bias)


def rms_norm(x: jax.Array, scale=None, *, axes=-1, eps=1e-6) -> jax.Array:
    """RMS normalization (bias-free, no centring): y = x / √(mean_axes x² + ε) · γ."""
    axes = _axes(axes, x.ndim)
    y = x * lax.rsqrt(jnp.mean(jnp.square(x), axis=axes, keepdims=True) + eps)
    return _affine(y, scale, None)


def weight_standardize(w: jax.Array, *, axes=None, eps=1e-10) -> jax.Array:
    """Weight standardization: ŵ = (w − mean(w)) / √(var(w) + ε) per output unit.

    ``axes`` default: all but the last (HWIO kernels: over H, W, I for each output
    channel; (in, out) dense weights: over in). Invariant to w → a·w for a > 0 (up to ε).
    """
    axes = tuple(range(w.ndim - 1)) if axes is None else _axes(axes, w.ndim)
    return _normalize(w, axes, eps)
