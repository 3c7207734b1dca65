"""dlnotes.nn.fused (hand-written backward passes) and the heads-first self-attention against the
plain formulas: values and gradients in float32, and the transformer's layers built on them."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dlnotes.models import transformer as tr
from dlnotes.nn import attention as att
from dlnotes.nn import fused
from dlnotes.nn import norm as _norm


def _grads(f, *args):
    """f's value and the gradient of ⟨f, w⟩ (w a fixed random cotangent) w.r.t. every argument."""
    y = f(*args)
    w = jax.random.normal(jax.random.key(9), y.shape, y.dtype)
    return y, jax.grad(lambda *a: jnp.sum(f(*a) * w), argnums=tuple(range(len(args))))(*args)


def _close(a, b, tol=2e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol * float(jnp.max(jnp.abs(y)) + 1.0))


def test_gelu_matches_exact_gelu_and_its_autodiff():
    x = jnp.linspace(-8.0, 8.0, 2001).reshape(3, 667)
    y, g = _grads(fused.gelu, x)
    y_ref, g_ref = _grads(lambda x: jax.nn.gelu(x, approximate=False), x)
    _close((y, g), (y_ref, g_ref))
    # second-order too (custom_vjp's backward is itself differentiable)
    h = jax.grad(lambda x: jnp.sum(jax.grad(lambda x: jnp.sum(fused.gelu(x)))(x)))(x)
    h_ref = jax.grad(lambda x: jnp.sum(jax.grad(lambda x: jnp.sum(jax.nn.gelu(x, approximate=False)))(x)))(x)
    _close(h, h_ref, 1e-4)


@pytest.mark.parametrize("shape", [(6, 16), (2, 5, 32)])
def test_layer_norm_matches_autodiff_of_the_plain_formula(shape):
    r = np.random.default_rng(0)
    x = jnp.asarray(3.0 * r.normal(size=shape) + 1.5, jnp.float32)
    scale = jnp.asarray(1 + 0.3 * r.normal(size=shape[-1:]), jnp.float32)
    bias = jnp.asarray(0.3 * r.normal(size=shape[-1:]), jnp.float32)
    ours = _grads(fused.layer_norm, x, scale, bias)
    ref = _grads(lambda x, s, b: _norm.layer_norm(x, s, b), x, scale, bias)
    _close(ours, ref)


def test_transformer_layer_norm_is_the_plain_layer_norm_with_the_same_parameters():
    ln = tr.make_norm("layer", 8)
    _, params, _ = nnx.split(ln, nnx.Param, ...)
    assert sorted(k for k, _ in nnx.to_flat_state(params)) == [("bias",), ("scale",)]
    x = jax.random.normal(jax.random.key(0), (4, 8))
    _close(ln(x), _norm.layer_norm(x, ln.scale[...], ln.bias[...]))


def _plain_self_attention(mha, x, mask):
    """The (..., T, H, D) reference path: split heads, ``dot_product_attention``, merge."""
    q, k, v = (att.split_heads(att.dense(m, x), mha.num_heads) for m in (mha.wq, mha.wk, mha.wv))
    if mha.rope:
        pos = jnp.arange(x.shape[-2])
        q, k = att.rope(q, pos, mha.rope_base), att.rope(k, pos, mha.rope_base)
    return att.dense(mha.wo, att.merge_heads(att.dot_product_attention(q, k, v, mask=mask)))


@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize("masking", ["causal", "padding"])
def test_heads_first_self_attention_matches_the_split_heads_path(rope, masking):
    mha = att.MultiHeadAttention(16, 4, rope=rope, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (3, 7, 16))
    if masking == "causal":
        mask = att.causal_mask(7)
    else:   # key padding, with one example fully masked (zero output, finite gradients)
        valid = jnp.array([[True] * 7, [True] * 4 + [False] * 3, [False] * 7])
        mask = att.padding_mask(None, valid)
    graph, params = nnx.split(mha, nnx.Param)

    def run(f):
        return _grads(lambda p, x: f(nnx.merge(graph, p), x), params, x)
    ours = run(lambda m, x: m(x, mask=mask))
    ref = run(lambda m, x: _plain_self_attention(m, x, mask))
    _close(ours, ref)
    assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(ours))
    q, k = (att.split_heads(att.dense(m, x), 4) for m in (mha.wq, mha.wk))
    if rope:
        q, k = att.rope(q, jnp.arange(7)), att.rope(k, jnp.arange(7))
    _close(mha(x, mask=mask, return_weights=True)[1], att.attention_weights(q, k, mask=mask))
