"""Pure losses. Shapes: predictions (..., K) or (...,), targets matching."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def mse(pred, target):
    """Mean squared error ½·mean((pred − target)²) — the ½ makes ∇ = residual."""
    return 0.5 * jnp.mean(jnp.square(pred - target))


def smooth_labels(labels, num_classes: int, epsilon=0.0):
    """Label smoothing: one-hot(y)·(1 − ε) + ε/K. ``labels`` int (...,) → (..., K)."""
    onehot = jax.nn.one_hot(labels, num_classes)
    return onehot * (1.0 - epsilon) + epsilon / num_classes


def cross_entropy(logits, labels, *, label_smoothing=0.0):
    """Mean softmax cross-entropy −Σ_k q_k log softmax(z)_k.

    ``labels`` are int class ids (...,) — smoothed to q = (1−ε)·onehot + ε/K —
    or soft labels (..., K) (e.g. from mixup), used as q directly.
    """
    logits = jnp.asarray(logits)
    k = logits.shape[-1]
    if jnp.issubdtype(jnp.asarray(labels).dtype, jnp.integer):
        q = smooth_labels(labels, k, label_smoothing)
    else:
        q = labels
    return -jnp.mean(jnp.sum(q * jax.nn.log_softmax(logits), axis=-1))
