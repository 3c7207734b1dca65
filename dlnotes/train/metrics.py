"""Evaluation metrics: accuracy and calibration (ECE, reliability diagram). Pure jnp, jittable.

``labels`` are int class indices ``(N,)`` or one-hot / soft labels ``(N, K)`` (argmax is the class).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _class_labels(labels, k_ndim: int):
    labels = jnp.asarray(labels)
    return jnp.argmax(labels, axis=-1) if labels.ndim == k_ndim else labels


def accuracy(logits, labels):
    """Fraction of rows with ``argmax(logits) == label``; ``logits`` ``(..., K)``, labels int ``(...)`` or one-hot."""
    logits = jnp.asarray(logits)
    y = _class_labels(labels, logits.ndim)
    return jnp.mean((jnp.argmax(logits, axis=-1) == y).astype(jnp.float32))


def _looks_like_probs(x):
    """True where every row is non-negative and sums to 1 (within 1e-4): a traced bool."""
    return jnp.all(x >= 0) & jnp.all(jnp.abs(jnp.sum(x, axis=-1) - 1) < 1e-4)


def to_probs(probs_or_logits, from_logits: bool | None = None):
    """Probabilities from probabilities or logits; ``from_logits=None`` decides by whether rows are
    already distributions (non-negative, summing to 1)."""
    x = jnp.asarray(probs_or_logits, jnp.result_type(probs_or_logits, jnp.float32))
    if from_logits is None:
        return jnp.where(_looks_like_probs(x), x, jax.nn.softmax(x, axis=-1))
    return jax.nn.softmax(x, axis=-1) if from_logits else x


def reliability_diagram(probs_or_logits, labels, n_bins: int = 15, from_logits: bool | None = None):
    """Per-bin data of a reliability diagram over confidence = max_k p_k, bins ``(b/B, (b+1)/B]``.

    Returns ``{"bin_edges": (B+1,), "confidence": (B,), "accuracy": (B,), "count": (B,), "ece": ()}``;
    empty bins have confidence = accuracy = 0 and count 0.
    ECE = sum_b (n_b / N) |acc_b - conf_b|  (Guo et al. 2017).
    """
    p = to_probs(probs_or_logits, from_logits)
    y = _class_labels(labels, p.ndim).reshape(-1)
    p = p.reshape(-1, p.shape[-1])
    conf = jnp.max(p, axis=-1)
    correct = (jnp.argmax(p, axis=-1) == y).astype(p.dtype)
    b = jnp.clip(jnp.ceil(conf * n_bins).astype(jnp.int32) - 1, 0, n_bins - 1)
    count = jax.ops.segment_sum(jnp.ones_like(conf), b, num_segments=n_bins)
    sum_conf = jax.ops.segment_sum(conf, b, num_segments=n_bins)
    sum_acc = jax.ops.segment_sum(correct, b, num_segments=n_bins)
    safe = jnp.maximum(count, 1)
    ece = jnp.sum(jnp.abs(sum_acc - sum_conf)) / conf.shape[0]
    return {"bin_edges": jnp.linspace(0.0, 1.0, n_bins + 1), "confidence": sum_conf / safe,
            "accuracy": sum_acc / safe, "count": count, "ece": ece}


def expected_calibration_error(probs_or_logits, labels, n_bins: int = 15, from_logits: bool | None = None):
    """ECE = sum_b (n_b / N) |acc_b - conf_b| over ``n_bins`` equal-width confidence bins (see ``reliability_diagram``)."""
    return reliability_diagram(probs_or_logits, labels, n_bins, from_logits)["ece"]


def confusion_matrix(logits, labels, num_classes: int):
    """``C[i, j]`` = number of examples of true class i predicted as j."""
    logits = jnp.asarray(logits)
    y = _class_labels(labels, logits.ndim).reshape(-1)
    pred = jnp.argmax(logits, axis=-1).reshape(-1)
    return jax.ops.segment_sum(jnp.ones_like(y), y * num_classes + pred,
                               num_segments=num_classes * num_classes).reshape(num_classes, num_classes)
