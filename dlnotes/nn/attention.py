"""Attention as a soft hash table: plain functions of arrays, and a thin multi-head ``nnx`` module.

Scaled dot-product attention with a temperature τ (layout of ``jax.nn.dot_product_attention``:
``q`` (..., T, H, D), ``k`` (..., S, H, D), ``v`` (..., S, H, Dv))::

    A = softmax_S(q·kᵀ · scale / τ  on allowed pairs),  out = A·v,   scale = 1/√D by default

``mask`` (bool, True = may attend) broadcasts to (..., H, T, S). A query row whose every key is
masked gets all-zero weights and a zero output, never NaN (and zero gradients).

The hash-table view (no 1/√D scaling): ``soft_lookup(q, K, V, τ) = softmax(K·q/τ)·V``; as τ → 0 it
becomes ``hard_lookup`` = V[argmax K·q] — a dictionary read with the query as the key.

``MultiHeadAttention`` projects queries, keys and values (bias-free by default), splits H heads,
optionally rotates q and k by their positions (RoPE, ``dlnotes.nn.posenc.rope``) and, for
generation, reads and writes a key–value cache so each new token costs one position.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from dlnotes.errors import ConfigError
from dlnotes.nn.init import lecun_normal
from dlnotes.nn.posenc import rope


def combine_masks(*masks):
    """Logical AND of the masks that are not None (None if all are)."""
    masks = [m for m in masks if m is not None]
    if not masks:
        return None
    out = masks[0]
    for m in masks[1:]:
        out = jnp.logical_and(out, m)
    return out


def causal_mask(num_queries: int, num_keys: int | None = None, offset=0) -> jax.Array:
    """(T, S) bool: query i (at absolute position offset + i) may see key j iff j ≤ offset + i."""
    s = num_queries if num_keys is None else num_keys
    return jnp.arange(s)[None, :] <= (offset + jnp.arange(num_queries))[:, None]


def padding_mask(valid_q, valid_k=None) -> jax.Array:
    """(B, 1, T, S) bool from per-position validity (B, T) of queries and (B, S) of keys:
    a pair is allowed iff both are valid. ``valid_q=None``: only keys are checked."""
    valid_k = valid_q if valid_k is None else valid_k
    m = valid_k[:, None, None, :]
    if valid_q is not None:
        m = jnp.logical_and(m, valid_q[:, None, :, None])
    return m


def attention_weights(q, k, *, mask=None, temperature=1.0, scale=None) -> jax.Array:
    """(..., H, T, S) softmax weights; rows with no allowed key are all zero."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return masked_softmax(jnp.einsum("...thd,...shd->...hts", q, k) * (scale / temperature), mask)


def masked_softmax(s, mask=None):
    """softmax over the last axis of scores s restricted to ``mask`` (True = allowed; broadcasts to
    s); rows with no allowed entry get all-zero weights (and zero gradients), never NaN."""
    if mask is None:
        return jax.nn.softmax(s, axis=-1)
    mask = jnp.broadcast_to(mask, s.shape)
    s = jnp.where(mask, s, -jnp.inf)
    m = jax.lax.stop_gradient(jnp.max(s, axis=-1, keepdims=True))
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    e = jnp.exp(s - m)                  # exp(−inf) = 0 on masked pairs (and a zero gradient there)
    den = jnp.sum(e, axis=-1, keepdims=True)
    return e / jnp.where(den > 0, den, 1.0)


def dot_product_attention(q, k, v, *, mask=None, temperature=1.0, scale=None, return_weights: bool = False):
    """softmax(q·kᵀ·scale/τ)·v per head. q (..., T, H, D), k (..., S, H, D), v (..., S, H, Dv) -> (..., T, H, Dv)."""
    w = attention_weights(q, k, mask=mask, temperature=temperature, scale=scale)
    out = jnp.einsum("...hts,...shd->...thd", w, v)
    return (out, w) if return_weights else out


def heads_first_attention(q, k, v, *, mask=None, temperature=1.0, scale=None, return_weights: bool = False):
    """``dot_product_attention`` with the heads before the positions: q (..., H, T, D), k (..., H, S, D),
    v (..., H, S, Dv) -> (..., H, T, Dv). The per-head products are batched matmuls on this layout, so
    XLA feeds them to the dot without transposing q, k, v (or their gradients) per product."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    w = masked_softmax(jnp.einsum("...htd,...hsd->...hts", q, k) * (scale / temperature), mask)
    out = jnp.einsum("...hts,...hsd->...htd", w, v)
    return (out, w) if return_weights else out


def soft_lookup(query, keys, values, temperature=1.0):
    """The soft hash table: softmax(K·q/τ)·V. query (D,), keys (N, D), values (N, Dv) -> (Dv,)."""
    return jax.nn.softmax(keys @ query / temperature) @ values


def hard_lookup(query, keys, values):
    """The τ → 0 limit of ``soft_lookup``: the value of the best-matching key."""
    return values[jnp.argmax(keys @ query)]


def lookup_gap(keys, j: int):
    """K_j·K_j − max_{i≠j} K_i·K_j: how far the query K_j prefers its own key."""
    s = keys @ keys[j]
    return s[j] - jnp.max(jnp.where(jnp.arange(keys.shape[0]) == j, -jnp.inf, s))


def split_heads(x, num_heads: int):
    """(..., T, H·D) -> (..., T, H, D)."""
    return x.reshape(x.shape[:-1] + (num_heads, x.shape[-1] // num_heads))


def merge_heads(x):
    """(..., T, H, D) -> (..., T, H·D)."""
    return x.reshape(x.shape[:-2] + (x.shape[-2] * x.shape[-1],))


def dense(layer, x):
    """``layer`` (an ``nnx.Linear``) on x (..., D_in) as one 2-D matmul over the flattened leading axes.

    XLA lowers a dense layer on (B, T, D) to the same (B·T)×D matmul forward, but its weight gradient
    contracts B and T through a transposed copy of the activations; on (B·T, D) it needs none."""
    y = layer(x.reshape(-1, x.shape[-1]))
    return y.reshape(x.shape[:-1] + y.shape[-1:])


def init_cache(batch: int, max_len: int, num_heads: int, head_dim: int, dtype=jnp.float32) -> dict:
    """An empty key–value cache {"k", "v": (B, max_len, H, D)} for one attention layer."""
    z = jnp.zeros((batch, max_len, num_heads, head_dim), dtype)
    return {"k": z, "v": z}


class MultiHeadAttention(nnx.Module):
    """Multi-head attention: y = W_o · concat_h softmax(q_h k_hᵀ/√D) v_h.

    ``__call__(x, context=None, *, mask=None, ...)``: self-attention when ``context`` is None,
    cross-attention (queries from x, keys/values from ``context``) otherwise. ``rope=True`` rotates
    q and k by their positions (self-attention only). With ``cache`` (from :func:`init_cache`) and
    ``index`` (the absolute position of x's first token): writes x's keys/values at
    [index, index + T) and attends causally to every cached position ≤ its own; returns
    ``(y, new_cache)``.
    """

    def __init__(self, dim: int, num_heads: int, *, context_dim: int | None = None, use_bias: bool = False,
                 rope: bool = False, rope_base: float = 10000.0, dtype=jnp.float32, rngs: nnx.Rngs):
        if dim % num_heads:
            raise ConfigError("num_heads", f"{num_heads} heads must divide the width {dim}")
        cdim = dim if context_dim is None else context_dim

        def lin(i, o, out_scale=1.0):
            return nnx.Linear(i, o, use_bias=use_bias, kernel_init=_scaled(lecun_normal, out_scale),
                              bias_init=jax.nn.initializers.zeros, param_dtype=dtype, rngs=rngs)
        self.wq, self.wk, self.wv = lin(dim, dim), lin(cdim, dim), lin(cdim, dim)
        self.wo = lin(dim, dim)
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.rope, self.rope_base = rope, rope_base

    def qkv(self, x, context=None, positions=None):
        """Per-head (q, k, v), each (..., T, H, D); rotated by ``positions`` (T,) if rope.

        Self-attention projects once, x·[W_q W_k W_v] (the three kernels side by side: one matmul
        instead of three, same parameters); cross-attention projects x and the context separately."""
        if context is None:
            q, k, v = jnp.split(self._fused_qkv(x), 3, axis=-1)
        else:
            q, k, v = dense(self.wq, x), dense(self.wk, context), dense(self.wv, context)
        q, k, v = (split_heads(z, self.num_heads) for z in (q, k, v))
        if self.rope:
            pos = jnp.arange(x.shape[-2]) if positions is None else positions
            q, k = rope(q, pos, self.rope_base), rope(k, pos, self.rope_base)
        return q, k, v

    def heads_first_qkv(self, x):
        """Self-attention's (q, k, v), each (..., H, T, D): one fused projection, then one transpose
        (..., T, 3, H, D) -> (3, ..., H, T, D) for all three (rotated first if rope)."""
        y = self._fused_qkv(x)
        y = y.reshape(y.shape[:-1] + (3, self.num_heads, self.head_dim))          # (..., T, 3, H, D)
        if self.rope:
            pos = jnp.arange(x.shape[-2])
            q, k, v = (y[..., i, :, :] for i in range(3))
            y = jnp.stack([rope(q, pos, self.rope_base), rope(k, pos, self.rope_base), v], axis=-3)
        n = y.ndim
        y = y.transpose((n - 3,) + tuple(range(n - 4)) + (n - 2, n - 4, n - 1))   # (3, ..., H, T, D)
        return y[0], y[1], y[2]

    def _fused_qkv(self, x):
        """x·[W_q W_k W_v] (+ [b_q b_k b_v]): (..., dim) -> (..., 3·dim)."""
        lins = (self.wq, self.wk, self.wv)
        w = jnp.concatenate([m.kernel[...] for m in lins], axis=1)
        y = jnp.dot(x.reshape(-1, x.shape[-1]), w, precision=self.wq.precision)
        if self.wq.bias is not None:
            y = y + jnp.concatenate([m.bias[...] for m in lins])
        return y.reshape(x.shape[:-1] + y.shape[-1:])

    def __call__(self, x, context=None, *, mask=None, temperature=1.0, cache=None, index=None,
                 return_weights: bool = False):
        if cache is not None:
            return self.decode(x, cache, index)
        if self.rope and context is not None:
            raise ConfigError("rope", "rotary encodings apply to self-attention only")
        if context is None:       # self-attention: heads before positions (one transpose in, one out)
            out = heads_first_attention(*self.heads_first_qkv(x), mask=mask, temperature=temperature,
                                        return_weights=return_weights)
            out, w = out if return_weights else (out, None)
            out = jnp.swapaxes(out, -3, -2)
        else:
            q, k, v = self.qkv(x, context)
            out = dot_product_attention(q, k, v, mask=mask, temperature=temperature, return_weights=return_weights)
            out, w = out if return_weights else (out, None)
        y = dense(self.wo, merge_heads(out))
        return (y, w) if return_weights else y

    def decode(self, x, cache, index):
        """Causal self-attention of x (B, T, dim) at positions index..index+T−1 over the cache."""
        t = x.shape[-2]
        q, k, v = self.qkv(x, positions=index + jnp.arange(t))
        ck = jax.lax.dynamic_update_slice_in_dim(cache["k"], k.astype(cache["k"].dtype), index, axis=-3)
        cv = jax.lax.dynamic_update_slice_in_dim(cache["v"], v.astype(cache["v"].dtype), index, axis=-3)
        mask = causal_mask(t, ck.shape[-3], index)
        out = dot_product_attention(q, ck, cv, mask=mask)
        return dense(self.wo, merge_heads(out)), {"k": ck, "v": cv}


def _scaled(init, scale):
    if scale == 1.0:
        return init
    return lambda key, shape, dtype=jnp.float32: scale * init(key, shape, dtype)
