"""Position encodings: clock hands at many speeds.

Sinusoidal (Vaswani et al.), frequencies ω_i = base^(−2i/d), i = 0 … d/2 − 1::

    PE(t)[2i] = sin(t·ω_i),  PE(t)[2i+1] = cos(t·ω_i)          ‖PE(t)‖ = √(d/2)

Shifting time is a rotation: PE(t + k) = R_k · PE(t) with R_k block-diagonal, one 2×2 block
[[cos kω_i, sin kω_i], [−sin kω_i, cos kω_i]] per frequency — the same R_k for every t.

Added (x + PE, same space) or concatenated ([x, PE], orthogonal subspaces). Rotary (RoPE):
rotate each (2i, 2i+1) pair of a query/key by angle t·ω_i, so q_m·k_n depends on m − n only.
Learned: a (T, d) table of parameters (``LearnedPositions``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from dlnotes.errors import ConfigError


def frequencies(dim: int, base: float = 10000.0, dtype=None) -> jax.Array:
    """(d/2,) angular speeds ω_i = base^(−2i/d)."""
    if dim % 2:
        raise ConfigError("dim", f"sinusoidal encodings need an even width, got {dim}")
    return jnp.power(jnp.asarray(base, dtype), -jnp.arange(0, dim, 2, dtype=dtype) / dim)


def sinusoidal(positions, dim: int, base: float = 10000.0, dtype=None) -> jax.Array:
    """PE at ``positions`` (an int T for 0 … T−1, or an array (..., )) -> (..., d), sin/cos interleaved."""
    t = jnp.arange(positions, dtype=dtype) if isinstance(positions, int) else jnp.asarray(positions, dtype)
    ang = t[..., None] * frequencies(dim, base, dtype)
    return jnp.stack([jnp.sin(ang), jnp.cos(ang)], axis=-1).reshape(ang.shape[:-1] + (dim,))


def rotation(shift, dim: int, base: float = 10000.0, dtype=None) -> jax.Array:
    """(d, d) R_k with PE(t + k) = R_k · PE(t) for every t: one 2×2 rotation per frequency."""
    a = jnp.asarray(shift, dtype) * frequencies(dim, base, dtype)
    c, s = jnp.cos(a), jnp.sin(a)
    blocks = jnp.stack([jnp.stack([c, s], -1), jnp.stack([-s, c], -1)], -2)      # (d/2, 2, 2)
    eye = jnp.eye(blocks.shape[0], dtype=blocks.dtype)
    # block-diagonal by one einsum (block_diag of d/2 arguments compiled for ~20 s at d = 512)
    return jnp.einsum("ij,iab->iajb", eye, blocks).reshape(dim, dim)


def add_positions(x, pe):
    """x + PE (same space). x (..., T, d), pe (T, d)."""
    return x + pe


def concat_positions(x, pe):
    """[x, PE] (orthogonal subspaces). x (..., T, d), pe (T, p) -> (..., T, d + p)."""
    return jnp.concatenate([x, jnp.broadcast_to(pe, x.shape[:-1] + pe.shape[-1:])], axis=-1)


def rope(x, positions, base: float = 10000.0):
    """Rotary encoding: each pair (x[2i], x[2i+1]) of x (..., T, H, D) rotated by angle t·ω_i,
    t = positions (T,). Then ⟨rope(q, m), rope(k, n)⟩ depends on m − n only."""
    d = x.shape[-1]
    ang = jnp.asarray(positions, jnp.result_type(x.dtype, jnp.float32))[:, None] * frequencies(d, base, x.dtype)
    c, s = jnp.cos(ang)[:, None, :], jnp.sin(ang)[:, None, :]    # (T, 1, D/2): same for every head
    x1, x2 = x[..., 0::2], x[..., 1::2]
    y = jnp.stack([x1 * c - x2 * s, x1 * s + x2 * c], axis=-1)
    return y.reshape(x.shape).astype(x.dtype)


class LearnedPositions(nnx.Module):
    """A learned (max_len, d) table; ``__call__(T)`` returns its first T rows (init N(0, 0.02²))."""

    def __init__(self, max_len: int, dim: int, *, std: float = 0.02, dtype=jnp.float32, rngs: nnx.Rngs):
        self.table = nnx.Param(std * jax.random.normal(rngs.params(), (max_len, dim), dtype))

    def __call__(self, length: int, offset=0):
        return jax.lax.dynamic_slice_in_dim(self.table[...], offset, length, axis=0)
