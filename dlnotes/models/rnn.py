"""Recurrent models (flax.nnx) over the pure cells of ``dlnotes.nn.recurrent``.

``RecurrentCell`` holds one cell's parameters (names and layout of ``dlnotes.nn.recurrent``) and
calls the pure cell inside one ``lax.scan`` (``Recurrent``); nothing nnx runs inside the scan.
``RecurrentClassifier`` reads a token sequence and classifies from the last hidden state (the recall
tasks); ``IIRFilter`` is a learnable IIR filter. ``make_*(config)`` return pure ``init``/``apply``
(``dlnotes.models.base.functional``).

Initialization: PyTorch's U(−1/√H, 1/√H) for every weight and bias (the two biases of
``torch.nn.RNN``/``LSTM`` summed into one), except the vanilla cell's W_hh = radius · Q with Q a random
orthogonal matrix, so its recurrent spectral radius is exactly ``radius`` (traced: ``model.radius``;
PyTorch's own uniform W_hh has radius ≈ 1/√3 ≈ 0.58), and the LSTM's forget-gate bias, which is
``forget_bias`` (traced: ``model.forget_bias``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from dlnotes import hparams
from dlnotes.errors import ConfigError, check
from dlnotes.models.base import Functional, functional
from dlnotes.nn import recurrent as rec

KINDS = ("rnn", "lstm", "gru")
ACTIVATIONS = ("tanh", "relu", "linear")
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class RecurrentCell(nnx.Module):
    """One recurrent cell's parameters; ``__call__(carry, x) -> (carry, y)`` is the pure cell."""

    def __init__(self, kind: str, in_features: int, hidden: int, *, rngs: nnx.Rngs, activation: str = "tanh",
                 ln: bool = False, radius=1.0, forget_bias=1.0, param_dtype=jnp.float32):
        if kind not in KINDS:
            raise ConfigError("model.cell", f"unknown cell {kind!r}; choose from {KINDS}")
        if activation not in ACTIVATIONS:
            raise ConfigError("model.activation", f"unknown activation {activation!r}; choose from {ACTIVATIONS}")
        self.kind, self.hidden, self.activation, self.ln = kind, hidden, activation, ln
        g = _GATES[kind]
        k1, k2, k3, k4 = jax.random.split(rngs.params(), 4)
        bound = 1.0 / jnp.sqrt(hidden)

        def u(k, shape):
            return jax.random.uniform(k, shape, param_dtype, -bound, bound)

        if kind == "rnn":
            q = jax.nn.initializers.orthogonal()(k2, (hidden, hidden), param_dtype)
            self.w_ih, self.w_hh = nnx.Param(u(k1, (in_features, hidden))), nnx.Param(radius * q)
            self.b = nnx.Param(u(k3, (hidden,)) + u(k4, (hidden,)))
        else:
            self.w_ih = nnx.Param(u(k1, (in_features, g * hidden)))
            self.w_hh = nnx.Param(u(k2, (hidden, g * hidden)))
            if kind == "lstm":
                b = u(k3, (g * hidden,)) + u(k4, (g * hidden,))
                self.b = nnx.Param(b.at[hidden:2 * hidden].set(forget_bias))
            else:
                self.b_ih, self.b_hh = nnx.Param(u(k3, (g * hidden,))), nnx.Param(u(k4, (g * hidden,)))
        if ln:
            self.ln_scale = nnx.Param(jnp.ones((g * hidden,), param_dtype))
            self.ln_bias = nnx.Param(jnp.zeros((g * hidden,), param_dtype))
            if kind == "gru":
                self.lnh_scale = nnx.Param(jnp.ones((g * hidden,), param_dtype))
                self.lnh_bias = nnx.Param(jnp.zeros((g * hidden,), param_dtype))

    def arrays(self) -> dict:
        """The parameters as a plain dict of arrays (the pure cell's ``params``)."""
        names = ("w_ih", "w_hh", "b", "b_ih", "b_hh", "ln_scale", "ln_bias", "lnh_scale", "lnh_bias")
        return {n: getattr(self, n)[...] for n in names if hasattr(self, n)}

    def pure(self):
        """The pure cell ``(params, carry, x) -> (carry, y)`` with this cell's static settings."""
        kw = {"ln": self.ln}
        if self.kind == "rnn":
            kw["activation"] = self.activation
        return rec.make_cell(self.kind, **kw)

    def initial_carry(self, batch: int, dtype=jnp.float32):
        return rec.initial_carry(self.kind, batch, self.hidden, dtype)

    def __call__(self, carry, x):
        return self.pure()(self.arrays(), carry, x)


class Recurrent(nnx.Module):
    """A recurrent layer: ``(xs (N, T, D), mask) -> (final carry, ys (N, T, H))`` by one ``lax.scan``."""

    def __init__(self, kind: str, in_features: int, hidden: int, *, rngs: nnx.Rngs, **cell_kwargs):
        self.cell = RecurrentCell(kind, in_features, hidden, rngs=rngs, **cell_kwargs)

    def __call__(self, xs, *, mask=None, carry0=None, reverse: bool = False):
        carry0 = self.cell.initial_carry(xs.shape[0], xs.dtype) if carry0 is None else carry0
        return rec.scan_cell(self.cell.pure(), self.cell.arrays(), xs, carry0, mask=mask, reverse=reverse)


class RecurrentClassifier(nnx.Module):
    """Tokens (N, T) -> one-hot -> recurrent layer -> logits from the last hidden state (N, classes)."""

    def __init__(self, vocab: int, hidden: int, num_classes: int, *, rngs: nnx.Rngs, kind: str = "lstm",
                 **cell_kwargs):
        self.vocab = vocab
        self.rnn = Recurrent(kind, vocab, hidden, rngs=rngs, **cell_kwargs)
        self.out = nnx.Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, x, *, train: bool = False, key=None):
        del train, key
        carry, _ = self.rnn(jax.nn.one_hot(x, self.vocab))
        return self.out(rec.cell_hidden(carry))


def make_recurrent_classifier(config) -> Functional:
    """Config ``model``: cell (rnn|lstm|gru), hidden, activation, ln, radius (traced), forget_bias
    (traced), vocab, num_classes."""
    m = config.model
    check(m.cell in KINDS, "model.cell", f"must be one of {KINDS}, got {m.cell!r}")
    check(m.activation in ACTIVATIONS, "model.activation", f"must be one of {ACTIVATIONS}")
    check(m.hidden >= 1, "model.hidden", "must be >= 1")
    check(m.radius > 0, "model.radius", "must be > 0")

    def make(rngs, hp):
        return RecurrentClassifier(m.vocab, m.hidden, m.num_classes, rngs=rngs, kind=m.cell,
                                   activation=m.activation, ln=m.ln,
                                   radius=hparams.get(hp, config, "model.radius"),
                                   forget_bias=hparams.get(hp, config, "model.forget_bias"))

    return functional(make, None)


class IIRFilter(nnx.Module):
    """A learnable IIR filter y_t = Σ a_i y_{t−i} + Σ b_j x_{t−j} (``order`` = p feedback, q+1 taps);
    coefficients start at init_scale · N(0, 1)."""

    def __init__(self, order: int, num_taps: int = 1, *, rngs: nnx.Rngs, init_scale=0.0, param_dtype=jnp.float32):
        ka, kb = jax.random.split(rngs.params())
        self.a = nnx.Param(init_scale * jax.random.normal(ka, (order,), param_dtype))
        self.b = nnx.Param(init_scale * jax.random.normal(kb, (num_taps,), param_dtype))

    def __call__(self, x, *, train: bool = False, key=None):
        del train, key
        return rec.iir_filter(x, self.b[...], self.a[...])
