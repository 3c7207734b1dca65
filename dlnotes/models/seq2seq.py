"""Encoder–decoder RNNs with and without attention (flax.nnx over ``dlnotes.nn.recurrent``).

Encoder: embed the source, one masked ``lax.scan`` of a GRU/LSTM/RNN cell -> states e_1..e_S and the
final state (at each sequence's last valid token); ``bidirectional`` adds a reversed scan and
e_j = [forward_j; backward_j] (attention models). The decoder starts from that final state:
without attention it is the only thing the decoder knows about the source (the bottleneck). Each
decoder step t, from the previous state s_{t−1} and previous token y_{t−1} (Bahdanau et al. 2015):

    α_t = softmax_j score(s_{t−1}, e_j) over valid j;  c_t = Σ_j α_tj e_j      (attention only)
    s_t = cell(s_{t−1}, [embed(y_{t−1}); c_t]);  logits_t = W_o [s_t; c_t] + b_o

    score = v·tanh(W_q s + W_k e + b)   ("additive")   or   (W_q s)·e / √H   ("dot")

Training uses teacher forcing (the decoder reads BOS, y_1, …, y_T); evaluation decodes greedily
inside one ``lax.scan`` that feeds back its own argmax (``mode="greedy"``). Both run the same step
(``decode_step`` = ``_step`` + the output layer); the token's input gates embed(y) W_ih[:E] are a
(V, G) lookup table (``token_gates``), and under teacher forcing they and the output layer leave the loop. Token conventions (PAD/BOS/EOS) are those of ``dlnotes.data.sequences``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from dlnotes.data.sequences import BOS, EOS, NUM_SPECIAL, PAD
from dlnotes.errors import check
from dlnotes.models.base import Functional, functional
from dlnotes.models.rnn import KINDS, RecurrentCell
from dlnotes.nn import recurrent as rec

ATTENTION = ("none", "additive", "dot")


# --------------------------------------------------------------------------- attention math
def additive_scores(q_proj: jax.Array, k_proj: jax.Array, v: jax.Array) -> jax.Array:
    """Bahdanau scores v·tanh(W_q s + W_k e_j + b): q_proj (N, A), k_proj (N, S, A), v (A,) -> (N, S)."""
    return jnp.tanh(q_proj[:, None, :] + k_proj) @ v


def dot_scores(q_proj: jax.Array, keys: jax.Array) -> jax.Array:
    """Scaled dot-product scores (W_q s)·e_j/√H: q_proj (N, H), keys (N, S, H) -> (N, S)."""
    return jnp.einsum("nh,nsh->ns", q_proj, keys) / jnp.sqrt(keys.shape[-1])


def attend(scores: jax.Array, values: jax.Array, mask: jax.Array):
    """Masked softmax over source positions and the context: (weights (N, S), context (N, H))."""
    scores = jnp.where(mask, scores, -jnp.inf)
    w = jax.nn.softmax(scores, axis=-1)
    w = jnp.where(mask, w, 0.0)
    return w, jnp.einsum("ns,nsh->nh", w, values)


def with_source_eos(src: jax.Array, src_mask: jax.Array):
    """Append EOS after each source's last valid token: (src (N, S+1), mask (N, S+1))."""
    n, s = src.shape
    length = jnp.sum(src_mask, axis=1)
    pos = jnp.arange(s + 1)[None, :]
    src = jnp.concatenate([jnp.where(src_mask, src, PAD), jnp.full((n, 1), PAD, src.dtype)], axis=1)
    src = jnp.where(pos == length[:, None], EOS, src).astype(src.dtype)
    return src, pos <= length[:, None]


def sequence_cross_entropy(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean token cross-entropy over the valid (mask) positions: logits (N, T, V), targets (N, T)."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    return jnp.sum(nll * mask) / jnp.maximum(jnp.sum(mask), 1)


# --------------------------------------------------------------------------- model
class Seq2Seq(nnx.Module):
    """Encoder–decoder over token ids of ``vocab_size`` (content + PAD/BOS/EOS).

    ``__call__(batch, mode="teacher")`` -> {"logits" (N, T+1, V), "attention" (N, T+1, S)} from
    ``batch["src"], batch["src_mask"], batch["tgt_in"]``; ``mode="greedy"`` decodes ``tgt_in``'s length
    steps from BOS and also returns ``tokens`` (N, T+1).
    """

    def __init__(self, vocab_size: int, embed: int, hidden: int, *, rngs: nnx.Rngs, cell: str = "gru",
                 attention: str = "none", bidirectional: bool = False, source_eos: bool = False):
        self.attention, self.hidden, self.kind = attention, hidden, cell
        self.bidirectional, self.source_eos = bidirectional, source_eos
        self.src_embed = nnx.Embed(vocab_size, embed, rngs=rngs)
        self.tgt_embed = nnx.Embed(vocab_size, embed, rngs=rngs)
        self.encoder = RecurrentCell(cell, embed, hidden, rngs=rngs)
        if bidirectional:
            self.encoder_bwd = RecurrentCell(cell, embed, hidden, rngs=rngs)
        enc = 2 * hidden if bidirectional else hidden          # width of the encoder states e_j
        ctx = enc if attention != "none" else 0
        self.decoder = RecurrentCell(cell, embed + ctx, hidden, rngs=rngs)
        if attention == "additive":
            self.att_q = nnx.Linear(hidden, hidden, use_bias=False, rngs=rngs)
            self.att_k = nnx.Linear(enc, hidden, rngs=rngs)
            self.att_v = nnx.Param(jax.random.normal(rngs.params(), (hidden,)) / jnp.sqrt(hidden))
        elif attention == "dot":
            self.att_q = nnx.Linear(hidden, enc, use_bias=False, rngs=rngs)
        self.out = nnx.Linear(hidden + ctx, vocab_size, rngs=rngs)

    # pieces usable step by step (tests, inspection)
    def encode(self, src, src_mask):
        """-> (decoder initial carry, memory) where memory = (states (N, S, H), keys, mask).

        With ``source_eos`` the encoder reads the source followed by EOS (S + 1 positions), as in
        Sutskever et al. / Bahdanau et al.: the end of the sentence is a token it sees and can attend to."""
        if self.source_eos:
            src, src_mask = with_source_eos(src, src_mask)
        x = self.src_embed(src)
        carry0 = self.encoder.initial_carry(src.shape[0], x.dtype)
        carry, states = rec.scan_cell(self.encoder.pure(), self.encoder.arrays(), x, carry0, mask=src_mask)
        if self.bidirectional:     # states [forward; backward]; the decoder starts from the forward final state
            _, bwd = rec.scan_cell(self.encoder_bwd.pure(), self.encoder_bwd.arrays(), x, carry0, mask=src_mask,
                                   reverse=True)
            states = jnp.concatenate([states, bwd], axis=-1)
        keys = self.att_k(states) if self.attention == "additive" else states
        return carry, (states, keys, src_mask)

    def token_gates(self):
        """embed(y) W_ih[:E] for every token y: the (V, G) table the decoder reads its input gates from.

        The decoder's input is [embed(y_{t−1}); c_t], so its input projection splits into this lookup
        and c_t W_ih[E:]: the token's part costs no matmul inside the decoder loop."""
        return self.tgt_embed.embedding[...] @ self.decoder.w_ih[...][:self.tgt_embed.embedding.shape[1]]

    def _step(self, carry, x_gates, memory):
        """One decoder step given the previous token's input gates x_gates (N, G): -> (carry, s_t,
        context c_t (N, H) or (N, 0) without attention, weights (N, S))."""
        states, keys, mask = memory
        if self.attention == "none":
            w, c = jnp.zeros(states.shape[:2], states.dtype), jnp.zeros(states.shape[:1] + (0,), states.dtype)
        else:
            q = self.att_q(rec.cell_hidden(carry))
            scores = additive_scores(q, keys, self.att_v[...]) if self.attention == "additive" else dot_scores(q, keys)
            w, c = attend(scores, states, mask)
        # the cell on c_t with W_ih[E:], the token's gates entering as a per-example bias (b_ih + x_gates)
        p = self.decoder.arrays()
        bias = "b_ih" if self.kind == "gru" else "b"
        p = {**p, "w_ih": p["w_ih"][p["w_ih"].shape[0] - c.shape[1]:], bias: p[bias] + x_gates}
        carry, s = self.decoder.pure()(p, carry, c)
        return carry, s, c, w

    def decode_step(self, carry, token, memory):
        """One decoder step from the previous carry and token: -> (carry, logits (N, V), weights (N, S))."""
        carry, s, c, w = self._step(carry, self.token_gates()[token], memory)
        return carry, self.out(jnp.concatenate([s, c], axis=-1)), w

    def __call__(self, batch, *, train: bool = False, key=None, mode: str = "teacher"):
        del train, key
        carry0, memory = self.encode(batch["src"], batch["src_mask"])
        steps = batch["tgt_in"].shape[1]
        table = self.token_gates()

        if mode == "teacher":       # the tokens are known: their gates and the output layer leave the loop
            def body(carry, x_gates):
                carry, s, c, w = self._step(carry, x_gates, memory)
                return carry, (s, c, w)

            _, (s, c, w) = jax.lax.scan(body, carry0, table[batch["tgt_in"].T])
            logits = self.out(jnp.concatenate([s, c], axis=-1))
            return {"logits": jnp.swapaxes(logits, 0, 1), "attention": jnp.swapaxes(w, 0, 1)}
        if mode != "greedy":
            raise ValueError(f"mode must be 'teacher' or 'greedy', got {mode!r}")

        def greedy(cr, _):          # reads the parameters only: safe inside lax.scan
            carry, token = cr
            carry, s, c, w = self._step(carry, table[token], memory)
            logits = self.out(jnp.concatenate([s, c], axis=-1))
            nxt = jnp.argmax(logits, axis=-1).astype(token.dtype)
            return (carry, nxt), (logits, w, nxt)

        bos = jnp.full(batch["src"].shape[:1], BOS, batch["tgt_in"].dtype)
        _, (logits, w, tokens) = jax.lax.scan(greedy, (carry0, bos), None, length=steps)
        return {"logits": jnp.swapaxes(logits, 0, 1), "attention": jnp.swapaxes(w, 0, 1),
                "tokens": tokens.T}


def make_seq2seq(config) -> Functional:
    """Config ``model``: cell (gru|lstm|rnn), embed, hidden, attention (none|additive|dot), bidirectional
    (encoder states [forward; backward], used only with attention: without, the decoder sees only the
    forward final state either way), vocab (content tokens; the vocabulary adds PAD/BOS/EOS)."""
    m = config.model
    check(m.cell in KINDS, "model.cell", f"must be one of {KINDS}, got {m.cell!r}")
    check(m.attention in ATTENTION, "model.attention", f"must be one of {ATTENTION}, got {m.attention!r}")
    check(m.hidden >= 1 and m.embed >= 1, "model.hidden", "hidden and embed must be >= 1")

    def make(rngs, hp):
        return Seq2Seq(m.vocab + NUM_SPECIAL, m.embed, m.hidden, rngs=rngs, cell=m.cell, attention=m.attention,
                       bidirectional=bool(m.get("bidirectional", False)) and m.attention != "none",
                       source_eos=bool(m.get("source_eos", False)))

    return functional(make, None)
