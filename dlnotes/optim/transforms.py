"""From-scratch first-order optimizers in the notes' parametrization, as optax transforms.

Each factory returns an ``optax.GradientTransformation`` (pure ``init``/``update``,
NamedTuple state). Hyperparameters are closed over as array-likes, so they may be
traced: ``jax.vmap(lambda lr: run(heavy_ball(lr, 0.9)))(lrs)`` sweeps η. A
``learning_rate`` may also be a schedule ``count -> η_t`` (count = 0 on the first step).

Notes' form and its exact optax equivalent (g = gradient, x = parameters):

=============  ===========================================================  =======================================
name           update (notes)                                               optax
=============  ===========================================================  =======================================
``gd``         x ← x − η g                                                  ``optax.sgd(η)``
``heavy_ball`` m ← βm + (1−β)g  (EMA, low-pass filter);  x ← x − η m/(1−β)   ``optax.sgd(η, momentum=β)``
``nesterov``   m ← βm + (1−β)g;  x ← x − η (g + β m/(1−β))                  ``optax.sgd(η, momentum=β, nesterov=True)``
``adam``       m, v EMAs of g, g²;  x ← x − η m̂/(√v̂ + ε)                     ``optax.adam(η, b1, b2, eps)``
``adamw``      as adam, then x ← x − η λ x  (masked)                         ``optax.adamw(η, b1, b2, eps, weight_decay=λ, mask=...)``
=============  ===========================================================  =======================================

Mapping for momentum: optax keeps the *trace* t ← βt + g, so t = m/(1−β) exactly and the
step −η t is the same: η is Polyak's heavy-ball step (x_{t+1} = x_t − η g_t + β(x_t − x_{t−1})).
The step applied to the EMA itself is α = η/(1−β); optax's η = α(1−β).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

import jax
import jax.numpy as jnp
import optax

ArrayLike = jax.typing.ArrayLike
ScalarOrSchedule = Union[ArrayLike, Callable[[jax.Array], ArrayLike]]
MaskOrFn = Union[None, Any, Callable[[Any], Any]]


def _lr_at(learning_rate: ScalarOrSchedule, count: jax.Array):
    return learning_rate(count) if callable(learning_rate) else learning_rate


def _inc(count):
    return optax.safe_increment(count)


def _zeros_like(params):
    return jax.tree.map(jnp.zeros_like, params)


class GDState(NamedTuple):
    count: jax.Array  # steps taken, int32


class MomentumState(NamedTuple):
    count: jax.Array
    ema: Any  # m = EMA of gradients, same tree as params


class AdamState(NamedTuple):
    count: jax.Array
    mu: Any  # EMA of g
    nu: Any  # EMA of g²


def gd(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
    """Gradient descent: update = −η g. Equals ``optax.sgd(η)``."""

    def init(params):
        del params
        return GDState(count=jnp.zeros([], jnp.int32))

    def update(grads, state, params=None):
        del params
        lr = _lr_at(learning_rate, state.count)
        return jax.tree.map(lambda g: -lr * g, grads), GDState(_inc(state.count))

    return optax.GradientTransformation(init, update)


def ema_update(ema, value, beta: ArrayLike):
    """One low-pass-filter step on a tree: m ← β m + (1 − β) x."""
    return jax.tree.map(lambda m, x: beta * m + (1 - beta) * x, ema, value)


def momentum_as_ema(grads: jax.Array, beta: ArrayLike) -> jax.Array:
    """EMA of a gradient sequence, m_t = (1−β) Σ_{k≤t} β^{t−k} g_k (m_{−1} = 0).

    ``grads``: [T, ...] gradients g_0..g_{T−1}; returns [T, ...] filtered m_0..m_{T−1}.
    Claim C16: ``heavy_ball(η, β)``'s t-th update is exactly −η m_t/(1−β), and
    Polyak's x_{t+1} − x_t = −η Σ_k β^{t−k} g_k is the same number.
    """

    def step(m, g):
        m = beta * m + (1 - beta) * g
        return m, m

    _, ms = jax.lax.scan(step, jnp.zeros_like(grads[0]), grads)
    return ms


def heavy_ball(learning_rate: ScalarOrSchedule, beta: ArrayLike = 0.9) -> optax.GradientTransformation:
    """Heavy-ball momentum as a low-pass filter of the gradient.

    m ← β m + (1 − β) g;  update = −η m / (1 − β), β ∈ [0, 1).
    Equals ``optax.sgd(η, momentum=β)`` (its trace t ← βt + g is m/(1−β)).
    """

    def init(params):
        return MomentumState(count=jnp.zeros([], jnp.int32), ema=_zeros_like(params))

    def update(grads, state, params=None):
        del params
        lr = _lr_at(learning_rate, state.count)
        ema = ema_update(state.ema, grads, beta)
        upd = jax.tree.map(lambda m: -lr * m / (1 - beta), ema)
        return upd, MomentumState(_inc(state.count), ema)

    return optax.GradientTransformation(init, update)


def nesterov(learning_rate: ScalarOrSchedule, beta: ArrayLike = 0.9) -> optax.GradientTransformation:
    """Nesterov momentum: the gradient taken at the look-ahead point.

    Notes: v ← βv − η∇f(x + βv); x ← x + v. Tracking the look-ahead point y = x + βv instead,
    y ← y + βv_new − η g(y), which with m ← βm + (1−β)g (v = −η m/(1−β)) is
    update = −η (g + β m/(1−β)). Equals ``optax.sgd(η, momentum=β, nesterov=True)``;
    the parameters it returns are the look-ahead points y.
    """

    def init(params):
        return MomentumState(count=jnp.zeros([], jnp.int32), ema=_zeros_like(params))

    def update(grads, state, params=None):
        del params
        lr = _lr_at(learning_rate, state.count)
        ema = ema_update(state.ema, grads, beta)
        upd = jax.tree.map(lambda g, m: -lr * (g + beta * m / (1 - beta)), grads, ema)
        return upd, MomentumState(_inc(state.count), ema)

    return optax.GradientTransformation(init, update)


def _adam_direction(grads, state: AdamState, b1, b2, eps):
    """Shared Adam core: new state and m̂ / (√v̂ + ε)."""
    mu = ema_update(state.mu, grads, b1)
    nu = ema_update(state.nu, jax.tree.map(jnp.square, grads), b2)
    count = _inc(state.count)
    c1 = 1 - b1**count  # bias corrections, t = count ≥ 1
    c2 = 1 - b2**count
    direction = jax.tree.map(lambda m, v: (m / c1) / (jnp.sqrt(v / c2) + eps), mu, nu)
    return direction, AdamState(count, mu, nu)


def _adam_init(params):
    return AdamState(count=jnp.zeros([], jnp.int32), mu=_zeros_like(params), nu=_zeros_like(params))


def adam(
    learning_rate: ScalarOrSchedule, b1: ArrayLike = 0.9, b2: ArrayLike = 0.999, eps: ArrayLike = 1e-8
) -> optax.GradientTransformation:
    """Adam: m ← b1 m + (1−b1) g, v ← b2 v + (1−b2) g², m̂ = m/(1−b1^t), v̂ = v/(1−b2^t);
    update = −η m̂ / (√v̂ + ε). Equals ``optax.adam(η, b1, b2, eps)`` (eps_root = 0)."""

    def update(grads, state, params=None):
        del params
        lr = _lr_at(learning_rate, state.count)
        direction, state = _adam_direction(grads, state, b1, b2, eps)
        return jax.tree.map(lambda d: -lr * d, direction), state

    return optax.GradientTransformation(_adam_init, update)


def _resolve_mask(mask: MaskOrFn, params):
    if mask is None:
        return jax.tree.map(lambda _: True, params)
    return mask(params) if callable(mask) else mask


def adamw(
    learning_rate: ScalarOrSchedule,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    weight_decay: ArrayLike = 1e-4,
    mask: MaskOrFn = None,
) -> optax.GradientTransformation:
    """AdamW (decoupled decay): update = −η (m̂/(√v̂ + ε) + λ x) on masked leaves, Adam elsewhere.

    The decay never enters m, v (unlike L2 in the loss). ``mask``: None (all leaves), a
    bool tree, or ``params -> bool tree``. Equals
    ``optax.adamw(η, b1, b2, eps, weight_decay=λ, mask=mask)`` (λ is scaled by η, as in optax).
    """

    def update(grads, state, params=None):
        if params is None:
            raise ValueError("adamw needs params in update(grads, state, params)")
        lr = _lr_at(learning_rate, state.count)
        direction, state = _adam_direction(grads, state, b1, b2, eps)
        keep = _resolve_mask(mask, params)
        upd = jax.tree.map(
            lambda d, x, k: -lr * (d + weight_decay * x) if k else -lr * d, direction, params, keep
        )
        return upd, state

    return optax.GradientTransformation(_adam_init, update)


__all__ = [
    "AdamState",
    "GDState",
    "MomentumState",
    "adam",
    "adamw",
    "ema_update",
    "gd",
    "heavy_ball",
    "momentum_as_ema",
    "nesterov",
]
