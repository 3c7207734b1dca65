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

import dataclasses
import functools
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


_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "linear": lambda v: v}


def _rnn_pointwise(params, gi, gh, h, *, activation: str = "tanh", ln: bool = False):
    """The vanilla cell after its two projections gi = x W_ih, gh = h W_hh: (h', h')."""
    a = gi + gh
    a = _ln_blocks(a, params, 1) if ln else a + params["b"]
    h = _ACTIVATIONS[activation](a)
    return h, h


def _lstm_pointwise(params, gi, gh, carry, *, ln: bool = False):
    """The LSTM cell after its two projections gi = x W_ih, gh = h W_hh: ((h', c'), h')."""
    h, c = carry
    a = gi + gh
    if ln:
        a = _ln_blocks(a, params, 4)
    a = a + params["b"]
    i, f, g, o = jnp.split(a, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h


def _gru_pointwise(params, gi, gh, h, *, ln: bool = False):
    """The GRU cell after its two projections gi = x W_ih, gh = h W_hh: (h', h')."""
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


def rnn_cell(params, h, x, *, activation: str = "tanh", ln: bool = False):
    """Vanilla RNN: h' = φ(x W_ih + h W_hh + b), or φ(LN(x W_ih + h W_hh)) with ``ln`` (γ, β replace b).

    params: w_ih (D, H), w_hh (H, H), b (H,) [, ln_scale, ln_bias (H,)]; h: (N, H); x: (N, D).
    ``activation``: "tanh", "relu" or "linear". Returns (h', h').
    """
    return _rnn_pointwise(params, x @ params["w_ih"], h @ params["w_hh"], h, activation=activation, ln=ln)


def lstm_cell(params, carry, x, *, ln: bool = False):
    """LSTM with gates [i f g o] (PyTorch's order); carry = (h, c), each (N, H).

    params: w_ih (D, 4H), w_hh (H, 4H), b (4H,) (the forget-gate bias is b[H:2H]);
    with ``ln``: layer norm over each gate's pre-activation block (``ln_scale``, ``ln_bias`` (4H,)),
    then the bias. Returns ((h', c'), h').
    """
    return _lstm_pointwise(params, x @ params["w_ih"], carry[0] @ params["w_hh"], carry, ln=ln)


def gru_cell(params, h, x, *, ln: bool = False):
    """GRU with gates [r z n] (PyTorch's order); h: (N, H).

    params: w_ih (D, 3H), w_hh (H, 3H), b_ih (3H,), b_hh (3H,); with ``ln``: layer norm over each
    gate block of x W_ih and of h W_hh separately (``ln_scale``/``ln_bias`` and ``lnh_scale``/``lnh_bias``).
    Returns (h', h').
    """
    return _gru_pointwise(params, x @ params["w_ih"], h @ params["w_hh"], h, ln=ln)


CELLS = {"rnn": rnn_cell, "lstm": lstm_cell, "gru": gru_cell}


def initial_carry(kind: str, batch: int, hidden: int, dtype=jnp.float32):
    """Zero carry: (h, c) for an LSTM, h otherwise."""
    z = jnp.zeros((batch, hidden), dtype)
    return (z, z) if kind == "lstm" else z


def cell_hidden(carry):
    """The hidden state h of a carry ((h, c) for an LSTM)."""
    return carry[0] if isinstance(carry, tuple) else carry


# --------------------------------------------------------------------------- scans
_POINTWISE = {"rnn": _rnn_pointwise, "lstm": _lstm_pointwise, "gru": _gru_pointwise}
# The cells whose training step the fused scan makes faster (benchmarks/rnn.py's LSTM step: 0.71× the
# plain scan's time, GRU 0.76–0.82×, interleaved probes); the vanilla cell's step got slower
# (1.2–1.4× plain, 1.06× with LN: its in-loop weight gradients are small), so it keeps the plain scan.
_FUSED = ("lstm", "gru")
# ... and only at small batches: there the loop's per-step weight-gradient matmuls are tiny and the fused
# rule wins; at larger ones autodiff's per-step matmuls are efficient and the fused rule's stacked
# cotangents cost more than they save. Measured 2026-12-01 (idle, T = 31, D = 64, H = 128, masked,
# interleaved, fused ÷ plain time of the gradient): GRU 0.75 / 0.90 / 0.94 / 1.20 / 1.18 / 1.21 at
# batch 16 / 32 / 64 / 96 / 128 / 512; LSTM 0.59 / 0.72 / 1.00 / 0.98 / 1.13 / 1.12.
FUSED_MAX_BATCH = 64


@dataclasses.dataclass(frozen=True)
class BoundCell:
    """A named cell with its keyword settings bound (``make_cell``); calls like the cell.

    ``scan_cell`` recognizes it and takes the fused path (``_scan_fused``) instead of autodiff of a
    scan of an opaque function."""
    kind: str
    settings: tuple = ()                  # sorted (name, value) pairs: activation, ln

    def __call__(self, params, carry, x):
        return CELLS[self.kind](params, carry, x, **dict(self.settings))

    def pointwise(self, params, gi, gh, carry):
        return _POINTWISE[self.kind](params, gi, gh, carry, **dict(self.settings))


def scan_cell(cell: Cell, params, xs: jax.Array, carry0, *, mask: jax.Array | None = None,
              reverse: bool = False, perturb=None, fused: bool | None = None):
    """Run ``cell`` over time with one ``lax.scan``: xs (N, T, D) -> (final carry, ys (N, T, H)).

    mask (N, T) bool: on a masked step the carry is kept and y_t = 0 (padding never changes a
    valid step's output; with ``reverse`` each sequence starts at its last valid step).
    perturb: a pytree like the carry with a leading time axis T, added to the carry after each step
    (the derivative w.r.t. it at step t is the derivative w.r.t. the state h_t: ``jax.jacrev`` of
    the final state gives ∂h_T/∂h_t through the scan). The cells' output y_t is their hidden state.

    An LSTM or GRU from ``make_cell`` without ``perturb`` takes ``_scan_fused`` when ``fused`` is True,
    or by default (None) when the batch N ≤ ``FUSED_MAX_BATCH`` (where it is the faster one): the same
    function with a hand-written reverse-mode rule (one reverse scan for the carry's cotangent; the
    weight gradients as single matmuls after it). It has no forward-mode rule: ``jax.jvp`` /
    ``jax.jacfwd`` through it need ``fused=False``, the plain scan.
    """
    if fused is None:
        fused = xs.shape[0] <= FUSED_MAX_BATCH
    if fused and perturb is None and isinstance(cell, BoundCell) and cell.kind in _FUSED and xs.shape[1] > 0:
        w = {k: params[k] for k in ("w_ih", "w_hh")}
        rest = {k: v for k, v in params.items() if k not in w}
        carry, ys = _scan_fused(cell, reverse, w["w_ih"], w["w_hh"], rest, jnp.swapaxes(xs, 0, 1), carry0,
                                None if mask is None else mask.T)
        return carry, jnp.swapaxes(ys, 0, 1)
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


# The fused scan: time-major xs (T, N, D), m (T, N) or None. Its forward is the reference scan's (same
# operations in the same order, so the same values), keeping what the reverse pass needs. Its
# reverse-mode rule is one reverse scan that carries the carry's cotangent and emits each step's
# cotangents of the two projections, dgi_t (of x_t W_ih) and dgh_t (of h_{t−1} W_hh); then
# dW_ih = Σ_t x_tᵀ dgi_t, dW_hh = Σ_t h_{t−1}ᵀ dgh_t and dxs = dgi W_ihᵀ are single matmuls after the
# loop (as cuDNN and PyTorch do), instead of autodiff's small weight-gradient matmuls and their
# accumulation inside the loop. The plain LSTM's step derivative is written out from its saved
# activated gates; the other cells' comes from autodiff of their pointwise part per step.
def _lstm_plain(cell: BoundCell) -> bool:
    return cell.kind == "lstm" and not dict(cell.settings).get("ln", False)


def _shift(after, carry0, reverse):
    """The carry before each step from the carries after each step (T, ...) and the initial one."""
    def one(a, c0):
        return jnp.concatenate([c0[None], a[:-1]]) if not reverse else jnp.concatenate([a[1:], c0[None]])
    return jax.tree.map(one, after, carry0)


def _where(m_t, a, b):
    """a where the step is valid (m_t (N,) True), b where masked; a when there is no mask."""
    return a if m_t is None else jax.tree.map(lambda a_, b_: jnp.where(m_t[:, None], a_, b_), a, b)


def _fused_forward(cell, reverse, w_ih, w_hh, rest, xs, carry0, m, save):
    plain = save and _lstm_plain(cell)

    def step(carry, inp):
        x_t, m_t = inp
        gi, gh = x_t @ w_ih, cell_hidden(carry) @ w_hh
        if plain:                                   # _lstm_pointwise, keeping the activated gates
            i, f, g, o = jnp.split(gi + gh + rest["b"], 4, axis=-1)
            i, f, g, o = jax.nn.sigmoid(i), jax.nn.sigmoid(f), jnp.tanh(g), jax.nn.sigmoid(o)
            c = f * carry[1] + i * g
            new, extra = (o * jnp.tanh(c), c), jnp.concatenate([i, f, g, o], axis=-1)
        else:
            new, _ = cell.pointwise(rest, gi, gh, carry)
            extra = gh
        new = _where(m_t, new, carry)
        return new, ((new, extra) if save else cell_hidden(new))

    carry, out = jax.lax.scan(step, carry0, (xs, m), reverse=reverse)
    hs = cell_hidden(out[0]) if save else out
    ys = hs if m is None else jnp.where(m[..., None], hs, 0.0)
    return (carry, ys), out


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _scan_fused(cell, reverse, w_ih, w_hh, rest, xs, carry0, m):
    return _fused_forward(cell, reverse, w_ih, w_hh, rest, xs, carry0, m, save=False)[0]


def _scan_fused_fwd(cell, reverse, w_ih, w_hh, rest, xs, carry0, m):
    out, (after, extra) = _fused_forward(cell, reverse, w_ih, w_hh, rest, xs, carry0, m, save=True)
    return out, (w_ih, w_hh, rest, xs, carry0, m, after, extra)


def _scan_fused_bwd(cell, reverse, res, ct):
    w_ih, w_hh, rest, xs, carry0, m, after, extra = res
    dcarry, dys = ct
    prev = _shift(after, carry0, reverse)
    w_hh_t = w_hh.T
    if _lstm_plain(cell):
        tcs = jnp.tanh(after[1])                    # tanh(c_t) where the step is valid

        def step(dc, inp):
            gates, tc, c_prev, m_t, dy = inp
            dh_n, dc_n = dc
            i, f, g, o = jnp.split(gates, 4, axis=-1)
            dh = _where(m_t, dh_n + dy, 0.0)
            dcc = _where(m_t, dc_n, 0.0) + dh * o * (1.0 - tc * tc)
            da = jnp.concatenate([dcc * g * i * (1.0 - i), dcc * c_prev * f * (1.0 - f),
                                  dcc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=-1)
            d_prev = (da @ w_hh_t, dcc * f)
            if m_t is not None:                     # a masked step passes the cotangent through
                d_prev = jax.tree.map(lambda a_, d_: a_ + _where(m_t, 0.0, d_), d_prev, dc)
            return d_prev, da

        dc0, da = jax.lax.scan(step, dcarry, (extra, tcs, prev[1], m, dys), reverse=not reverse)
        dgi = dgh = da
        drest = {k: da.sum((0, 1)) if k == "b" else jnp.zeros_like(v) for k, v in rest.items()}
    else:
        gi = xs @ w_ih
        # without layer norm the biases are added to a projection: their gradients are sums of dgi / dgh
        # after the loop (no per-step reductions); with it, autodiff of the pointwise part gives them
        ln = dict(cell.settings).get("ln", False)

        def step(dc, inp):
            gi_t, gh_t, prev_t, m_t, dy = inp
            ct_t = (_where(m_t, dc, jax.tree.map(jnp.zeros_like, dc)), _where(m_t, dy, 0.0))
            if ln:
                _, vjp = jax.vjp(cell.pointwise, rest, gi_t, gh_t, prev_t)
                drest_t, dgi_t, dgh_t, d_prev = vjp(ct_t)
            else:
                _, vjp = jax.vjp(lambda a_, b_, c_: cell.pointwise(rest, a_, b_, c_), gi_t, gh_t, prev_t)
                (dgi_t, dgh_t, d_prev), drest_t = vjp(ct_t), None
            if m_t is not None:
                d_prev = jax.tree.map(lambda a_, d_: a_ + _where(m_t, 0.0, d_), d_prev, dc)
            dh = cell_hidden(d_prev) + dgh_t @ w_hh_t
            d_prev = (dh,) + tuple(d_prev[1:]) if isinstance(d_prev, tuple) else dh
            return d_prev, (dgi_t, dgh_t, drest_t)

        dc0, (dgi, dgh, drest) = jax.lax.scan(step, dcarry, (gi, extra, prev, m, dys), reverse=not reverse)
        if ln:
            drest = jax.tree.map(lambda v: v.sum(0), drest)
        else:
            sums = {"b": dgi, "b_ih": dgi, "b_hh": dgh}
            drest = {k: sums[k].sum((0, 1)) if k in sums else jnp.zeros_like(v) for k, v in rest.items()}
    dw_hh = jnp.einsum("tnh,tng->hg", cell_hidden(prev), dgh)
    dw_ih = jnp.einsum("tnd,tng->dg", xs, dgi)
    return dw_ih, dw_hh, drest, dgi @ w_ih.T, dc0, None


_scan_fused.defvjp(_scan_fused_fwd, _scan_fused_bwd)


def make_cell(kind: str, **kwargs) -> Cell:
    """``rnn``/``lstm``/``gru`` cell with its keyword settings bound (activation, ln)."""
    if kind not in CELLS:
        raise KeyError(kind)
    return BoundCell(kind, tuple(sorted(kwargs.items())))


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
