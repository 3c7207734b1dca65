"""Our own data generators (nothing downloads).

Least squares with a chosen Hessian spectrum: ``dlnotes.linear.make_least_squares``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def gaussian_regression(key, n: int, d: int, *, noise: float = 0.5, dtype=None):
    """x ~ N(0, I_d), y = xᵀw_true + noise·ε (so E‖x‖² = d, L* = noise²/2 in ½·MSE)."""
    k1, k2, k3 = jax.random.split(key, 3)
    dtype = dtype or jnp.zeros(()).dtype
    x = jax.random.normal(k1, (n, d), dtype)
    w_true = jax.random.normal(k2, (d,), dtype)
    y = x @ w_true + noise * jax.random.normal(k3, (n,), dtype)
    return {"x": x, "y": y, "w_true": w_true}


def sine_regression(key, n: int = 256, *, freq: float = 3.0, noise: float = 0.05, lo=-2.0, hi=2.0):
    """n points of y = sin(freq·x) + noise·ε on an even grid of [lo, hi]; x (n, 1), y (n, 1)."""
    x = jnp.linspace(lo, hi, n)[:, None]
    y = jnp.sin(freq * x) + noise * jax.random.normal(key, x.shape)
    return {"x": x, "y": y}
