"""Recurrences as pure functions: FIR / IIR filters, RNN / LSTM / GRU cells, scans over time.

Every recurrence runs over time with one ``lax.scan`` (never a Python loop over time). Layout:
sequences are batch-first ``(N, T, D)``; a cell is ``cell(params, carry, x_t) -> (carry, y_t)`` on
one time step of a batch, ``params`` a dict of arrays. Weights multiply from the right
(``x @ w_ih``), gates are stacked along the last axis in **PyTorch's order**:

    RNN   h' = φ(x W_ih + h W_hh + b)                                   (φ = tanh or relu)
    LSTM  [i f g o] = x W_ih + h W_hh + b;  c' = σ(f)·c + σ(i)·tanh(g);  h' = σ(o)·tanh(c')
    GRU   [r z n]: r = σ(x W_ir + b_ir + h W_hr + b_hr), z likewise,
          n = tanh(x W_in + b_in + r·(h W_hn + b_hn));  h' = (1 − z)·n + z·h

(a ``torch.nn.LSTMCell``'s ``weight_ih`` is our ``w_ih.T``; its two biases sum to our ``b``).
Layer norm inside a cell (``ln=True``) normalizes the pre-activations before the nonlinearity:
each gate's block separately, ``LN(a) = γ·(a − mean)/std + β`` (Ba et al. 2016).

Masks: ``mask`` (N, T) bool marks valid steps; on a masked step the carry is kept and the output
is zero, so padding after a sequence never changes its valid outputs or its final state, and a
reversed scan starts at each sequence's own last valid step.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dlnotes.nn.conv import conv1d
from dlnotes.nn.norm import layer_norm

Cell = Callable  # (params, carry, x_t) -> (carry, y_t)


# --------------------------------------------------------------------------- filters
def fir_filter(x: jax.Array, h: jax.Array) -> jax.Array:
    """FIR filter y_t = Σ_{k=0}^{K−1} h_k x_{t−k} (x_t = 0 for t < 0): a causal 1-D convolution.

    x: (N, T) or (T,); h: (K,). Returns x's shape. (``conv1d`` correlates, so the taps are flipped
    and the sequence is padded with K − 1 zeros on the left.)
    """
    squeeze = x.ndim == 1
    x2 = x[None] if squeeze else x
    k = h.shape[0]
    y = conv1d(x2[..., None], h[::-1][:, None, None].astype(x2.dtype), padding=(k - 1, 0))[..., 0]
    return y[0] if squeeze else y


def iir_filter(x: jax.Array, b: jax.Array, a: jax.Array, *, y0: jax.Array | None = None) -> jax.Array:
    """IIR filter y_t = Σ_{i=1}^{p} a_i y_{t−i} + Σ_{j=0}^{q} b_j x_{t−j}: a linear state recurrence.

    x: (N, T) or (T,); b: (q+1,) feed-forward taps; a: (p,) feedback coefficients (p ≥ 1).
    The state is the last p outputs (y0: (N, p) = (y_{−1}, …, y_{−p}), default 0); one ``lax.scan``
    over time. Stable iff the roots of z^p − a_1 z^{p−1} − … − a_p lie inside the unit circle.
    """
    squeeze = x.ndim == 1
    x2 = x[None] if squeeze else x
    u = fir_filter(x2, b)                               # the feed-forward part
    p = a.shape[0]
    s0 = jnp.zeros((x2.shape[0], p), u.dtype) if y0 is None else y0.astype(u.dtype)

    def step(s, u_t):
        y = s @ a.astype(u.dtype) + u_t
        return jnp.concatenate([y[:, None], s[:, :-1]], axis=1), y

    _, ys = jax.lax.scan(step, s0, u.T)
    y = ys.T
    return y[0] if squeeze else y


def impulse_response(b: jax.Array, a: jax.Array, length: int) -> jax.Array:
    """The IIR filter's response to a unit impulse at t = 0, (length,). First order: b·a^t."""
    delta = jnp.zeros((length,), jnp.result_type(b, a)).at[0].set(1.0)
    return iir_filter(delta, b, a)


# --------------------------------------------------------------------------- cells
def _ln_blocks(a, params, n_blocks, prefix="ln"):
    """Layer norm over each of the ``n_blocks`` equal gate blocks of ``a`` (..., n_blocks·H)."""
    h = a.shape[-1] // n_blocks
    a = a.reshape(a.shape[:-1] + (n_blocks, h))
    a = layer_norm(a, axes=-1)
    a = a.reshape(a.shape[:-2] + (n_blocks * h,))
    return a * params[f"{prefix}_scale"] + params[f"{prefix}_bias"]


def rnn_cell(params, h, x, *, activation: str = "tanh", ln: bool = False):
    """Vanilla RNN: h' = φ(x W_ih + h W_hh + b), or φ(LN(x W_ih + h W_hh)) with ``ln`` (γ, β replace b).

    params: w_ih (D, H), w_hh (H, H), b (H,) [, ln_scale, ln_bias (H,)]; h: (N, H); x: (N, D).
    ``activation``: "tanh", "relu" or "linear". Returns (h', h').
    """
    a = x @ params["w_ih"] + h @ params["w_hh"]
    a = _ln_blocks(a, params, 1) if ln else a + params["b"]
    h = {"tanh": jnp.tanh, "relu": jax.nn.relu, "linear": lambda v: v}[activation](a)
    return h, h


def lstm_cell(params, carry, x, *, ln: bool = False):
    """LSTM with gates [i f g o] (PyTorch's order); carry = (h, c), each (N, H).

    params: w_ih (D, 4H), w_hh (H, 4H), b (4H,) (the forget-gate bias is b[H:2H]);
    with ``ln``: layer norm over each gate's pre-activation block (``ln_scale``, ``ln_bias`` (4H,)),
    then the bias. Returns ((h', c'), h').
    """
    h, c = carry
    a = x @ params["w_ih"] + h @ params["w_hh"]
    if ln:
        a = _ln_blocks(a, params, 4)
    a = a + params["b"]
    i, f, g, o = jnp.split(a, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def gru_cell(params, h, x, *, ln: bool = False):
    """GRU with gates [r z n] (PyTorch's order); h: (N, H).

    params: w_ih (D, 3H), w_hh (H, 3H), b_ih (3H,), b_hh (3H,); with ``ln``: layer norm over each
    gate block of x W_ih and of h W_hh separately (``ln_scale``/``ln_bias`` and ``lnh_scale``/``lnh_bias``).
    Returns (h', h').
    """
    gi = x @ params["w_ih"]
    gh = h @ params["w_hh"]
    if ln:
        gi = _ln_blocks(gi, params, 3, "ln")
        gh = _ln_blocks(gh, params, 3, "lnh")
    gi = gi + params["b_ih"]
    gh = gh + params["b_hh"]
    ir, iz, in_ = jnp.split(gi, 3, axis=-1)
    hr, hz, hn = jnp.split(gh, 3, axis=-1)
    r = jax.nn.sigmoid(ir + hr)
    z = jax.nn.sigmoid(iz + hz)
    n = jnp.tanh(in_ + r * hn)
    h = (1.0 - z) * n + z * h
    return h, h


CELLS = {"rnn": rnn_cell, "lstm": lstm_cell, "gru": gru_cell}


def initial_carry(kind: str, batch: int, hidden: int, dtype=jnp.float32):
    """Zero carry: (h, c) for an LSTM, h otherwise."""
    z = jnp.zeros((batch, hidden), dtype)
    return (z, z) if kind == "lstm" else z


def cell_hidden(carry):
    """The hidden state h of a carry ((h, c) for an LSTM)."""
    return carry[0] if isinstance(carry, tuple) else carry


# --------------------------------------------------------------------------- scans
def scan_cell(cell: Cell, params, xs: jax.Array, carry0, *, mask: jax.Array | None = None,
              reverse: bool = False, perturb=None):
    """Run ``cell`` over time with one ``lax.scan``: xs (N, T, D) -> (final carry, ys (N, T, H)).

    mask (N, T) bool: on a masked step the carry is kept and y_t = 0 (padding never changes a
    valid step's output; with ``reverse`` each sequence starts at its last valid step).
    perturb: a pytree like the carry with a leading time axis T, added to the carry after each step
    (the derivative w.r.t. it at step t is the derivative w.r.t. the state h_t: ``jax.jacrev`` of
    the final state gives ∂h_T/∂h_t through the scan). The cells' output y_t is their hidden state.
    """
    m = jnp.ones(xs.shape[:2], bool) if mask is None else mask

    def step(carry, inp):
        x_t, m_t, d_t = inp
        new, y = cell(params, carry, x_t)
        if d_t is not None:
            new = jax.tree.map(jnp.add, new, d_t)
            y = cell_hidden(new)
        keep = m_t[:, None]
        new = jax.tree.map(lambda n_, o_: jnp.where(keep, n_, o_), new, carry)
        return new, jnp.where(keep, y, 0.0)

    carry, ys = jax.lax.scan(step, carry0, (jnp.swapaxes(xs, 0, 1), m.T, perturb), reverse=reverse)
    return carry, jnp.swapaxes(ys, 0, 1)


def make_cell(kind: str, **kwargs) -> Cell:
    """``rnn``/``lstm``/``gru`` cell with its keyword settings bound (activation, ln)."""
    fn = CELLS[kind]
    return lambda params, carry, x: fn(params, carry, x, **kwargs)


def bidirectional(cell_fwd: Cell, params_fwd, cell_bwd: Cell, params_bwd, xs, carry0_fwd, carry0_bwd,
                  *, mask=None):
    """Bidirectional encoding: a forward and a reversed scan, outputs concatenated (N, T, 2H).

    Returns ((final fwd carry, final bwd carry), ys). With a mask, the backward direction starts at
    each sequence's last valid step, so padding changes nothing.
    """
    cf, yf = scan_cell(cell_fwd, params_fwd, xs, carry0_fwd, mask=mask)
    cb, yb = scan_cell(cell_bwd, params_bwd, xs, carry0_bwd, mask=mask, reverse=True)
    return (cf, cb), jnp.concatenate([yf, yb], axis=-1)


def stacked(cells, params_list, xs, carries0, *, mask=None, residual: bool = True):
    """A stack of recurrent layers: layer l reads layer l−1's outputs; with ``residual`` the input is
    added to each layer's output where the widths match (vertical residual connections):
    x^{l+1}_t = h^l_t + x^l_t. Returns (final carries, top outputs (N, T, H))."""
    finals = []
    for cell, params, c0 in zip(cells, params_list, carries0):
        c, ys = scan_cell(cell, params, xs, c0, mask=mask)
        if residual and ys.shape[-1] == xs.shape[-1]:
            ys = ys + xs if mask is None else ys + jnp.where(mask[..., None], xs, 0.0)
        finals.append(c)
        xs = ys
    return finals, xs


def state_jacobian_norms(cell: Cell, params, xs, carry0) -> jax.Array:
    """‖∂s_T/∂s_{T−k}‖₂ for lags k = 0 … T−1 (spectral norm, batch 1) by ``jax.jacrev`` through the scan.

    s_t is the whole state: h_t, or (h_t, c_t) stacked for an LSTM. xs: (1, T, D); carry0 batch 1.
    The derivative is taken w.r.t. a perturbation added to the state after each step (``scan_cell``'s
    ``perturb``), which equals the derivative w.r.t. the state itself.
    """
    t = xs.shape[1]
    leaves, treedef = jax.tree.flatten(carry0)

    def final_state(d):
        carry, _ = scan_cell(cell, params, xs, carry0, perturb=d)
        return jnp.concatenate([c[0] for c in jax.tree.leaves(carry)])

    d0 = jax.tree.unflatten(treedef, [jnp.zeros((t,) + c.shape, c.dtype) for c in leaves])
    jac = jax.jacrev(final_state)(d0)                     # leaves (S, T, 1, H_leaf)
    jac = jnp.concatenate([j[:, :, 0, :] for j in jax.tree.leaves(jac)], axis=-1)   # (S, T, S)
    jac = jnp.moveaxis(jac, 1, 0)[::-1]                   # (T, S, S), index = lag k
    return jnp.linalg.norm(jac, ord=2, axis=(1, 2))
