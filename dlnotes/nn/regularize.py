"""Dropout and stochastic depth as pure functions with explicit keys.

Both use the *inverted* convention: scale the kept values by 1/(1 − p) in
training, so E[train output] = eval output and eval is the identity (no rescaling
at test time, nothing to remember about p at inference).

    dropout(x)           = m ⊙ x / (1 − p),         m_i ~ Bernoulli(1 − p) per element
    stochastic_depth(r)  = b_n · r_n / (1 − p),     b_n ~ Bernoulli(1 − p) per example n

Stochastic depth is applied to a residual branch r before the skip sum
(x + stochastic_depth(f(x))): a dropped example passes through the block as the
identity. Huang et al. (2016) instead keep r unscaled in training and multiply by
the survival probability 1 − p at test time; the two are equal in expectation and
differ only by where the constant factor sits (timm's ``DropPath`` uses ours).

``rate`` may be a traced value (a swept hyperparameter); it must lie in [0, 1).
``train`` is a Python bool (it decides the program); ``key`` is needed only in training.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from dlnotes.errors import ConfigError


def _check(rate, key, train):
    if isinstance(train, jax.Array):
        raise ConfigError("train", "must be a Python bool (it selects the program), got an array")
    if isinstance(rate, (int, float)) and not 0.0 <= rate < 1.0:
        raise ConfigError("rate", f"a drop probability must lie in [0, 1), got {rate}")
    if train and key is None:
        raise ConfigError("key", "training-mode dropout needs a PRNG key")


def dropout(x: jax.Array, rate, key: jax.Array | None, train: bool) -> jax.Array:
    """Inverted dropout: zero each element with probability ``rate``, scale the rest by
    1/(1 − rate); identity when ``train`` is False (or rate is a Python 0)."""
    _check(rate, key, train)
    if not bool(train) or (isinstance(rate, (int, float)) and rate == 0):
        return x

    def drop():
        keep_prob = 1.0 - jnp.asarray(rate, x.dtype)
        keep = jax.random.bernoulli(key, keep_prob, x.shape)
        return jnp.where(keep, x / keep_prob, jnp.zeros_like(x))
    return _unless_zero(rate, drop, x)


def stochastic_depth(residual: jax.Array, rate, key: jax.Array | None, train: bool) -> jax.Array:
    """Drop the whole residual branch of each example (axis 0) with probability ``rate``,
    scale kept branches by 1/(1 − rate); identity at eval (= the expectation)."""
    _check(rate, key, train)
    if not bool(train) or (isinstance(rate, (int, float)) and rate == 0):
        return residual

    def drop():
        keep_prob = 1.0 - jnp.asarray(rate, residual.dtype)
        shape = (residual.shape[0],) + (1,) * (residual.ndim - 1)
        keep = jax.random.bernoulli(key, keep_prob, shape)
        return jnp.where(keep, residual / keep_prob, jnp.zeros_like(residual))
    return _unless_zero(rate, drop, residual)


def _unless_zero(rate, drop, x):
    """``drop()`` if ``rate`` > 0 else ``x``. A traced rate (a float hyperparameter, so that sweeping it never
    recompiles) branches with ``lax.cond``, so a run at rate 0 draws no random bits (on a CPU the draw
    cost the digits CNN ~40% of its step); under ``vmap`` over a batched rate the cond is a select and
    both sides run. Same numbers either way: at rate 0 every element is kept and scaled by 1."""
    if isinstance(rate, (int, float)):
        return drop()
    return jax.lax.cond(jnp.asarray(rate) > 0, drop, lambda: x)
