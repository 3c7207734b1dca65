"""Standardization, and the notes' four ways of estimating the expectation for images.

``fit_standardizer`` takes statistics from the training set only; ``standardize``
reuses them for validation/test data. Pure, jittable functions.

Image arrays are NHWC ``(N, H, W, C)``. Each ``expectation_*`` returns an array
that broadcasts against the images it centres: ``x - expectation_*(...)``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def fit_standardizer(x_train, axis=0):
    """Per-feature ``(mean, std)`` over the sample ``axis`` of the training set (keepdims=False).

    x_train (N, ...) -> mean, std of shape (...). Population std (ddof=0).
    """
    mean = jnp.mean(x_train, axis=axis)
    std = jnp.std(x_train, axis=axis)
    return mean, std


def standardize(x, mean, std, eps=0.0):
    """``(x − mean)/std`` with the training statistics; a feature with std ≤ eps is only centred (÷1)."""
    std = jnp.asarray(std)
    safe = jnp.where(std > eps, std, jnp.ones_like(std))
    return (x - mean) / safe


def unstandardize(z, mean, std, eps=0.0):
    """Inverse of ``standardize``: ``z·std + mean`` (std ≤ eps treated as 1)."""
    std = jnp.asarray(std)
    safe = jnp.where(std > eps, std, jnp.ones_like(std))
    return z * safe + mean


# ---------------------------------------------------------------------------
# estimating E[x] for images (NHWC)


def expectation_per_position(x_train):
    """Mean of each pixel position and channel across the data set: (N,H,W,C) -> (H,W,C)."""
    return jnp.mean(x_train, axis=0)


def expectation_range_midpoint(x, lo=None, hi=None):
    """Midpoint of the value range ``(lo + hi)/2`` (e.g. 127.5 for 8-bit pixels): a scalar.

    ``lo``/``hi`` default to the data's min/max.
    """
    lo = jnp.min(x) if lo is None else jnp.asarray(lo, x.dtype)
    hi = jnp.max(x) if hi is None else jnp.asarray(hi, x.dtype)
    return 0.5 * (lo + hi)


def expectation_per_image(x):
    """Mean of each image's channel over its positions: (N,H,W,C) -> (N,1,1,C)."""
    return jnp.mean(x, axis=(1, 2), keepdims=True)


def expectation_local_patch(x, k: int):
    """Mean over the k×k window centred at each pixel, per image and channel: (N,H,W,C) -> (N,H,W,C).

    Windows are clipped at the borders (the mean over the pixels inside the image).
    For even k the window covers k//2 pixels before and k//2 − 1 after the centre.
    """
    if k < 1:
        raise ValueError(f"window k must be ≥ 1, got {k}")
    before, after = k // 2, k - 1 - k // 2
    pad = ((0, 0), (before, after), (before, after), (0, 0))
    dims, strides = (1, k, k, 1), (1, 1, 1, 1)
    sums = jax.lax.reduce_window(x, jnp.zeros((), x.dtype), jax.lax.add, dims, strides, pad)
    ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
    counts = jax.lax.reduce_window(ones, jnp.zeros((), x.dtype), jax.lax.add, dims, strides, pad)
    return sums / counts


def center_images(x, method: str, *, x_train=None, k: int = 3, lo=None, hi=None):
    """``x − E[x]`` with E estimated by ``method``: "per_position" (needs x_train),
    "range_midpoint", "per_image", or "local_patch" (window k)."""
    if method == "per_position":
        return x - expectation_per_position(x if x_train is None else x_train)
    if method == "range_midpoint":
        return x - expectation_range_midpoint(x if x_train is None else x_train, lo, hi)
    if method == "per_image":
        return x - expectation_per_image(x)
    if method == "local_patch":
        return x - expectation_local_patch(x, k)
    raise ValueError(f"unknown centring method {method!r}")
