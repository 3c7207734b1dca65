"""Hand-written backward passes (``jax.custom_vjp``) for the transformer's per-position layers.

Same functions as the plain formulas, with a cheaper backward than autodiff's on the CPU (fewer passes
over the activations, fewer reductions); tested against autodiff of the plain formulas.

    gelu(x) = x·Φ(x),  gelu'(x) = Φ(x) + x·φ(x)           (exact, erf-based; Φ, φ the normal cdf, pdf)
    layer_norm(x) = x̂·γ + β,  x̂ = (x − μ)·r,  r = 1/√(σ² + ε)     (statistics over the last axis)
    ∂x = r·(g − mean g − x̂·mean(g·x̂)),  g = ∂y·γ;   ∂γ = Σ ∂y·x̂,  ∂β = Σ ∂y

``gelu`` saves gelu'(x) in its forward pass (computed there with the erf it already needs), so its
backward is one multiply; ``layer_norm`` saves x̂ and r, so its backward needs two row means (autodiff
differentiates through the centring and the variance: more reductions and passes).
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu_parts(x):
    cdf = 0.5 + 0.5 * lax.erf(x * _SQRT_HALF)
    return x * cdf, cdf


@jax.custom_vjp
def gelu(x):
    """Exact GELU x·Φ(x) (``jax.nn.gelu(x, approximate=False)``, PyTorch's default ``F.gelu``)."""
    return _gelu_parts(x)[0]


def _gelu_fwd(x):
    y, cdf = _gelu_parts(x)
    return y, cdf + x * _INV_SQRT_2PI * jnp.exp(-0.5 * x * x)


def _gelu_bwd(slope, dy):
    return (dy * slope,)


gelu.defvjp(_gelu_fwd, _gelu_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def layer_norm(x, scale, bias, eps=1e-5):
    """LayerNorm over the last axis: (x − μ)/√(σ² + ε)·scale + bias (two-pass variance, biased).
    x (..., C), scale and bias (C,)."""
    return _layer_norm_fwd(x, scale, bias, eps)[0]


def _layer_norm_fwd(x, scale, bias, eps=1e-5):
    xc = x - jnp.mean(x, axis=-1, keepdims=True)
    r = lax.rsqrt(jnp.mean(jnp.square(xc), axis=-1, keepdims=True) + eps)
    xh = xc * r
    return xh * scale + bias, (xh, r, scale)


def _layer_norm_bwd(eps, res, dy):
    xh, r, scale = res
    g = dy * scale
    dx = r * (g - jnp.mean(g, axis=-1, keepdims=True) - xh * jnp.mean(g * xh, axis=-1, keepdims=True))
    lead = tuple(range(dy.ndim - 1))
    return dx, jnp.sum(dy * xh, axis=lead), jnp.sum(dy, axis=lead)


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)
