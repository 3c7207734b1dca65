"""Thin ``flax.nnx`` modules over the pure functions of conv/norm/regularize.

Every module's ``__call__(x, *, train=False, key=None)`` computes exactly the pure
function on its variables (tests check equality), so models built from them go
through ``dlnotes.models.base.functional`` unchanged: kernels, scales and biases
are ``nnx.Param`` (→ ``params``); batch-norm running averages are ``nnx.BatchStat``
(→ ``model_state``), written only when ``train=True``. Randomness is explicit:
Dropout and StochasticDepth take ``key`` at call time, nothing is stored.

Layouts: NHWC activations, HWIO kernels (Conv1D: NWC, WIO). Conv layers default to
``padding='SAME'`` (the pure ``conv2d`` defaults to 0).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from dlnotes.errors import ConfigError
from dlnotes.nn import norm as _norm
from dlnotes.nn.init import lecun_normal
from dlnotes.nn.conv import _pair, conv1d, conv2d, resolve_impl
from dlnotes.nn.regularize import dropout, stochastic_depth

default_kernel_init = lecun_normal   # N(0, 1/fan_in), fan_in = K_h·K_w·C_in/groups
zeros = jax.nn.initializers.zeros


def _freeze(v):
    """Lists (e.g. from a config) as tuples, so they stay static module metadata."""
    return tuple(_freeze(a) for a in v) if isinstance(v, (list, tuple)) else v


def _check_rate(rate, key="rate"):
    if isinstance(rate, (int, float)) and not 0.0 <= rate < 1.0:
        raise ConfigError(key, f"a probability in [0, 1) is required, got {rate}")


class Conv(nnx.Module):
    """2-D convolution y = conv2d(x, kernel) + bias. kernel: (K_h, K_w, C_in/groups, C_out)."""

    def __init__(self, in_features: int, out_features: int, kernel_size, *, stride=1, padding="SAME",
                 padding_mode: str = "zeros", dilation=1, groups: int = 1, use_bias: bool = True,
                 impl: str = "auto", kernel_init: Callable = default_kernel_init, bias_init: Callable = zeros,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        if in_features % groups or out_features % groups:
            raise ConfigError("groups", f"{groups} must divide in_features={in_features} and "
                                        f"out_features={out_features}")
        resolve_impl(impl)  # validate early
        kh, kw = _pair(kernel_size, "kernel_size")
        self.kernel = nnx.Param(kernel_init(rngs.params(), (kh, kw, in_features // groups, out_features), dtype))
        self.bias = nnx.Param(bias_init(rngs.params(), (out_features,), dtype)) if use_bias else None
        self.stride, self.padding, self.padding_mode = _freeze(stride), _freeze(padding), padding_mode
        self.dilation, self.groups, self.impl = _freeze(dilation), groups, impl

    def _kernel(self):
        return self.kernel[...]

    def __call__(self, x, *, train: bool = False, key=None):
        y = conv2d(x, self._kernel(), stride=self.stride, padding=self.padding, padding_mode=self.padding_mode,
                   dilation=self.dilation, groups=self.groups, impl=self.impl)
        return y if self.bias is None else y + self.bias[...]


class WSConv(Conv):
    """Weight-standardized conv: conv2d(x, weight_standardize(kernel)) + bias; the
    output is invariant to scaling the kernel. Same arguments as Conv plus ``ws_eps``."""

    def __init__(self, in_features: int, out_features: int, kernel_size, *, ws_eps: float = 1e-10, **kwargs):
        super().__init__(in_features, out_features, kernel_size, **kwargs)
        self.ws_eps = ws_eps

    def _kernel(self):
        return _norm.weight_standardize(self.kernel[...], eps=self.ws_eps)


class DepthwiseConv(Conv):
    """Depthwise conv: each of ``features`` channels filtered by its own ``multiplier``
    filters. kernel: (K_h, K_w, 1, features·multiplier); K²·C·m weights (+ biases)."""

    def __init__(self, features: int, kernel_size, *, multiplier: int = 1, **kwargs):
        super().__init__(features, features * multiplier, kernel_size, groups=features, **kwargs)


class Conv1D(nnx.Module):
    """1-D convolution over NWC inputs. kernel: (K, C_in/groups, C_out)."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int, *, stride=1, padding="SAME",
                 padding_mode: str = "zeros", dilation=1, groups: int = 1, use_bias: bool = True,
                 impl: str = "auto", kernel_init: Callable = default_kernel_init, bias_init: Callable = zeros,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        if in_features % groups or out_features % groups:
            raise ConfigError("groups", f"{groups} must divide in_features and out_features")
        resolve_impl(impl)
        self.kernel = nnx.Param(kernel_init(rngs.params(), (kernel_size, in_features // groups, out_features), dtype))
        self.bias = nnx.Param(bias_init(rngs.params(), (out_features,), dtype)) if use_bias else None
        self.stride, self.padding, self.padding_mode = _freeze(stride), _freeze(padding), padding_mode
        self.dilation, self.groups, self.impl = _freeze(dilation), groups, impl

    def __call__(self, x, *, train: bool = False, key=None):
        y = conv1d(x, self.kernel[...], stride=self.stride, padding=self.padding, padding_mode=self.padding_mode,
                   dilation=self.dilation, groups=self.groups, impl=self.impl)
        return y if self.bias is None else y + self.bias[...]


def _scale_bias(num_features, use_scale, use_bias, dtype):
    scale = nnx.Param(jnp.ones((num_features,), dtype)) if use_scale else None
    bias = nnx.Param(jnp.zeros((num_features,), dtype)) if use_bias else None
    return scale, bias


def _value(v):
    return None if v is None else v[...]


class BatchNorm(nnx.Module):
    """Batch norm over all axes but the last. Running mean/var are ``nnx.BatchStat``
    (in ``model_state``), updated with ``momentum`` in training, used alone at eval."""

    def __init__(self, num_features: int, *, momentum=0.9, eps=1e-5, use_scale: bool = True,
                 use_bias: bool = True, dtype=jnp.float32, rngs: nnx.Rngs | None = None):
        _check_rate(momentum, "momentum")
        self.scale, self.bias = _scale_bias(num_features, use_scale, use_bias, dtype)
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), dtype))
        self.var = nnx.BatchStat(jnp.ones((num_features,), dtype))
        self.momentum, self.eps = momentum, eps

    def __call__(self, x, *, train: bool = False, key=None):
        y, (m, v) = _norm.batch_norm(x, _value(self.scale), _value(self.bias), running_mean=self.mean[...],
                                     running_var=self.var[...], train=train, momentum=self.momentum, eps=self.eps)
        if train:
            self.mean[...] = m
            self.var[...] = v
        return y


class LayerNorm(nnx.Module):
    """Layer norm over ``axes`` (default the channel axis; (1, 2, 3) for the whole NHWC
    example), per-channel scale and bias of shape (num_features,)."""

    def __init__(self, num_features: int, *, axes=-1, eps=1e-5, use_scale: bool = True, use_bias: bool = True,
                 dtype=jnp.float32, rngs: nnx.Rngs | None = None):
        self.scale, self.bias = _scale_bias(num_features, use_scale, use_bias, dtype)
        self.axes, self.eps = _freeze(axes), eps

    def __call__(self, x, *, train: bool = False, key=None):
        return _norm.layer_norm(x, _value(self.scale), _value(self.bias), axes=self.axes, eps=self.eps)


class GroupNorm(nnx.Module):
    """Group norm with ``groups`` channel groups (1: LayerNorm over H, W, C; C: InstanceNorm)."""

    def __init__(self, num_features: int, groups: int, *, eps=1e-5, use_scale: bool = True,
                 use_bias: bool = True, dtype=jnp.float32, rngs: nnx.Rngs | None = None):
        if groups < 1 or num_features % groups:
            raise ConfigError("groups", f"{groups} groups must divide the {num_features} channels")
        self.scale, self.bias = _scale_bias(num_features, use_scale, use_bias, dtype)
        self.groups, self.eps = groups, eps

    def __call__(self, x, *, train: bool = False, key=None):
        return _norm.group_norm(x, self.groups, _value(self.scale), _value(self.bias), eps=self.eps)


class RMSNorm(nnx.Module):
    """Bias-free RMS norm over ``axes`` (default the channel axis) with a learned scale."""

    def __init__(self, num_features: int, *, axes=-1, eps=1e-6, use_scale: bool = True, dtype=jnp.float32,
                 rngs: nnx.Rngs | None = None):
        self.scale, _ = _scale_bias(num_features, use_scale, False, dtype)
        self.axes, self.eps = _freeze(axes), eps

    def __call__(self, x, *, train: bool = False, key=None):
        return _norm.rms_norm(x, _value(self.scale), axes=self.axes, eps=self.eps)


class Dropout(nnx.Module):
    """Inverted dropout with drop probability ``rate`` (a float, or an array to make it a
    traced hyperparameter, which then lives in ``model_state``). Needs ``key`` when training."""

    def __init__(self, rate=0.5):
        _check_rate(rate)
        self.rate = rate

    def __call__(self, x, *, train: bool = False, key=None):
        return dropout(x, self.rate, key, train)


class StochasticDepth(nnx.Module):
    """Drops a residual branch per example with probability ``rate`` in training
    (kept branches × 1/(1 − rate)); identity at eval. Apply to the branch: x + sd(f(x))."""

    def __init__(self, rate=0.1):
        _check_rate(rate)
        self.rate = rate

    def __call__(self, residual, *, train: bool = False, key=None):
        return stochastic_depth(residual, self.rate, key, train)
