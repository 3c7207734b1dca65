"""Transformers (flax.nnx): pre-norm blocks, an encoder–decoder for the generated sequence tasks, and
a decoder-only character language model with key–value-cached generation (after nanoGPT's model.py).

Block (pre-norm, weights shared across positions; a GNN on the complete — or causal — graph)::

    x ← x + SelfAttention(norm(x))                 (causal mask in decoders)
    x ← x + CrossAttention(norm(x), memory)        (decoder of an encoder–decoder only)
    x ← x + W₂·gelu(W₁·norm(x))                    (the MLP: per-position non-linearity; exact GELU x·Φ(x))

``norm``: "layer" (LayerNorm, centred, scale and bias; its backward and GELU's hand-written in
``dlnotes.nn.fused``) or "rms" (bias-free RMS norm, scale only), or
"switch": :class:`SwitchNorm`, either of the two chosen by the traced hyperparameter ``model.rms`` (0 or
1) held in ``model_state``, so LayerNorm and RMS-norm models share one compiled (vmapped) program.
Positions (``posenc``): "learned" (a table), "sinusoidal" (added, fixed), "rope" (rotary, in
attention), "none". Linear layers are bias-free unless ``use_bias``.

``make_lm(config)`` / ``make_seq2seq(config)`` give pure ``init``/``apply``
(``dlnotes.models.base.functional``); ``generate`` samples from an LM with a KV cache.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from dlnotes import hparams as hpmod
from dlnotes.errors import ConfigError, check
from dlnotes.models.base import functional
from dlnotes.nn import attention as att
from dlnotes.nn import fused
from dlnotes.nn import layers as L
from dlnotes.nn import posenc

NORMS = ("layer", "rms", "switch")
POSENCS = ("learned", "sinusoidal", "rope", "none")


class NormChoice(nnx.Variable):
    """Not trained: which norm a :class:`SwitchNorm` computes (0. LayerNorm, 1. RMS norm)."""


class SwitchNorm(nnx.Module):
    """LayerNorm (``rms`` = 0) or bias-free RMS norm (``rms`` = 1), the choice a number in ``model_state``.

    c = 1 − rms;  y = (x − c·mean x) / √(mean (x − c·mean x)² + ε_c) · γ + c·β,  ε_c = c·1e-5 + rms·1e-6

    At rms = 1 the centring and β vanish exactly (β gets zero gradient and stays 0): ``L.RMSNorm``;
    at rms = 0 it is ``L.LayerNorm`` (same ε). Shapes do not depend on the choice, so seeds × {LN,
    RMS} vmap in one compiled program.
    """

    def __init__(self, dim: int, rms=0.0):
        self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((dim,), jnp.float32))
        self.rms = NormChoice(jnp.asarray(rms, jnp.float32))

    def __call__(self, x):
        r = self.rms[...]
        c = 1.0 - r
        xc = x - c * jnp.mean(x, axis=-1, keepdims=True)
        y = xc * jax.lax.rsqrt(jnp.mean(jnp.square(xc), axis=-1, keepdims=True) + (c * 1e-5 + r * 1e-6))
        return y * self.scale[...] + c * self.bias[...]


class LayerNorm(L.LayerNorm):
    """``L.LayerNorm`` over the channel axis (same parameters) through ``fused.layer_norm``: the same
    function, with a hand-written backward (fewer passes over the activations than autodiff's)."""

    def __call__(self, x, *, train: bool = False, key=None):
        return fused.layer_norm(x, self.scale[...], self.bias[...], self.eps)


def make_norm(kind: str, dim: int, rms=0.0):
    """``rms``: the choice of a "switch" norm (a number, possibly traced; ignored by the others)."""
    if kind == "layer":
        return LayerNorm(dim)
    if kind == "rms":
        return L.RMSNorm(dim)
    if kind == "switch":
        return SwitchNorm(dim, rms)
    raise ConfigError("model.norm", f"must be one of {NORMS}, got {kind!r}")


class MLP(nnx.Module):
    """W₂·gelu(W₁·x): width → ratio·width → width; exact GELU x·Φ(x) (nanoGPT's and PyTorch's ``nn.GELU``)."""

    def __init__(self, dim: int, ratio: int = 4, *, use_bias: bool = False, rngs: nnx.Rngs):
        self.fc = nnx.Linear(dim, ratio * dim, use_bias=use_bias, rngs=rngs)
        self.proj = nnx.Linear(ratio * dim, dim, use_bias=use_bias, rngs=rngs)

    def __call__(self, x):
        return att.dense(self.proj, fused.gelu(att.dense(self.fc, x)))


class Block(nnx.Module):
    """Pre-norm transformer block; ``cross=True`` adds cross-attention to an encoder's memory."""

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: int = 4, norm: str = "layer", cross: bool = False,
                 rope: bool = False, use_bias: bool = False, rms=0.0, rngs: nnx.Rngs):
        self.norm1 = make_norm(norm, dim, rms)
        self.attn = att.MultiHeadAttention(dim, num_heads, use_bias=use_bias, rope=rope, rngs=rngs)
        self.cross = cross
        if cross:
            self.norm_c = make_norm(norm, dim, rms)
            self.cross_attn = att.MultiHeadAttention(dim, num_heads, use_bias=use_bias, rngs=rngs)
        self.norm2 = make_norm(norm, dim, rms)
        self.mlp = MLP(dim, mlp_ratio, use_bias=use_bias, rngs=rngs)

    def __call__(self, x, *, mask=None, memory=None, memory_mask=None, cache=None, index=None):
        """-> x, or (x, new_cache) when a KV ``cache`` is given (decoding at position ``index``)."""
        if cache is not None:
            a, cache = self.attn(self.norm1(x), cache=cache, index=index)
        else:
            a = self.attn(self.norm1(x), mask=mask)
        x = x + a
        if self.cross:
            x = x + self.cross_attn(self.norm_c(x), memory, mask=memory_mask)
        x = x + self.mlp(self.norm2(x))
        return x if cache is None else (x, cache)


def _check_common(m, prefix="model"):
    check(m.norm in NORMS, f"{prefix}.norm", f"must be one of {NORMS}, got {m.norm!r}")
    if m.norm == "switch" and "rms" in m:
        check(float(m.rms) in (0.0, 1.0), f"{prefix}.rms", f"must be 0. (LayerNorm) or 1. (RMS norm), got {m.rms!r}")
    check(m.posenc in POSENCS, f"{prefix}.posenc", f"must be one of {POSENCS}, got {m.posenc!r}")
    check(m.width >= 2 and m.width % (2 * m.num_heads) == 0, f"{prefix}.width",
          f"must be a positive multiple of 2·num_heads = {2 * m.num_heads}, got {m.width}")
    check(m.num_heads >= 1, f"{prefix}.num_heads", "must be ≥ 1")
    check(m.num_layers >= 1, f"{prefix}.num_layers", "must be ≥ 1")


class _Positions(nnx.Module):
    """Adds learned or sinusoidal positions to token embeddings (rope/none: nothing here)."""

    def __init__(self, kind: str, max_len: int, dim: int, *, rngs: nnx.Rngs):
        self.kind = kind
        if kind == "learned":
            self.table = posenc.LearnedPositions(max_len, dim, rngs=rngs)

    def __call__(self, h, offset=0):
        t = h.shape[-2]
        if self.kind == "learned":
            return h + self.table(t, offset)
        if self.kind == "sinusoidal":
            return h + posenc.sinusoidal(offset + jnp.arange(t), h.shape[-1]).astype(h.dtype)
        return h


def _embed(vocab, dim, rngs, std=0.02):
    return nnx.Embed(vocab, dim, embedding_init=jax.nn.initializers.normal(std), rngs=rngs)


class TransformerLM(nnx.Module):
    """Decoder-only LM: tokens (B, T) -> next-token logits (B, T, V); output weights tied to the embedding."""

    def __init__(self, vocab: int, context: int, dim: int, num_heads: int, num_layers: int, *,
                 mlp_ratio: int = 4, norm: str = "layer", posenc: str = "learned", use_bias: bool = False,
                 rms=0.0, rngs: nnx.Rngs):
        self.embed = _embed(vocab, dim, rngs)
        self.positions = _Positions(posenc, context, dim, rngs=rngs)
        self.blocks = nnx.List([Block(dim, num_heads, mlp_ratio=mlp_ratio, norm=norm, rope=posenc == "rope",
                                      use_bias=use_bias, rms=rms, rngs=rngs) for _ in range(num_layers)])
        self.final_norm = make_norm(norm, dim, rms)
        self.context, self.num_heads, self.head_dim = context, num_heads, dim // num_heads

    def logits(self, h):
        """Tied output projection norm(h)·Eᵀ, as one 2-D matmul over the flattened leading axes."""
        y = self.embed.attend(self.final_norm(h).reshape(-1, h.shape[-1]))
        return y.reshape(h.shape[:-1] + y.shape[-1:])

    def __call__(self, tokens, *, train: bool = False, key=None, return_weights: bool = False):
        t = tokens.shape[-1]
        h = self.positions(self.embed(tokens))
        mask = att.causal_mask(t)
        maps = []
        for blk in self.blocks:
            if return_weights:
                a, w = blk.attn(blk.norm1(h), mask=mask, return_weights=True)
                maps.append(w)
                h = h + a
                h = h + blk.mlp(blk.norm2(h))
            else:
                h = blk(h, mask=mask)
        return (self.logits(h), maps) if return_weights else self.logits(h)

    def init_cache(self, batch: int, dtype=jnp.float32):
        return [att.init_cache(batch, self.context, self.num_heads, self.head_dim, dtype) for _ in self.blocks]

    def decode(self, tokens, caches, index):
        """Logits of tokens (B, T) at absolute positions index … index+T−1, reading and writing the caches."""
        h = self.positions(self.embed(tokens), index)
        new = []
        for blk, c in zip(self.blocks, caches):
            h, c = blk(h, cache=c, index=index)
            new.append(c)
        return self.logits(h), new


class Seq2SeqTransformer(nnx.Module):
    """Encoder–decoder on the generated seq2seq tasks (``dlnotes.data.sequences``).

    ``__call__(batch)`` with batch["src"] (B, S), batch["src_mask"] (B, S), batch["tgt_in"] (B, T+1)
    returns teacher-forced logits (B, T+1, V) for batch["tgt_out"].
    """

    def __init__(self, vocab: int, max_len: int, dim: int, num_heads: int, num_layers: int, *,
                 mlp_ratio: int = 4, norm: str = "layer", posenc: str = "learned", use_bias: bool = False,
                 rms=0.0, rngs: nnx.Rngs):
        rope = posenc == "rope"
        self.embed = _embed(vocab, dim, rngs, std=1.0 / dim ** 0.5)
        self.src_pos = _Positions(posenc, max_len, dim, rngs=rngs)
        self.tgt_pos = _Positions(posenc, max_len + 1, dim, rngs=rngs)
        self.encoder = nnx.List([Block(dim, num_heads, mlp_ratio=mlp_ratio, norm=norm, rope=rope, use_bias=use_bias,
                                       rms=rms, rngs=rngs) for _ in range(num_layers)])
        self.decoder = nnx.List([Block(dim, num_heads, mlp_ratio=mlp_ratio, norm=norm, rope=rope, cross=True,
                                       use_bias=use_bias, rms=rms, rngs=rngs) for _ in range(num_layers)])
        self.enc_norm = make_norm(norm, dim, rms)
        self.dec_norm = make_norm(norm, dim, rms)

    def encode(self, src, src_mask):
        h = self.src_pos(self.embed(src))
        mask = att.padding_mask(src_mask)
        for blk in self.encoder:
            h = blk(h, mask=mask)
        return self.enc_norm(h)

    def decode(self, tgt_in, memory, src_mask):
        h = self.tgt_pos(self.embed(tgt_in))
        mask = att.causal_mask(tgt_in.shape[-1])
        mem_mask = att.padding_mask(None, src_mask)
        for blk in self.decoder:
            h = blk(h, mask=mask, memory=memory, memory_mask=mem_mask)
        return self.embed.attend(self.dec_norm(h))

    def __call__(self, batch, *, train: bool = False, key=None):
        memory = self.encode(batch["src"], batch["src_mask"])
        return self.decode(batch["tgt_in"], memory, batch["src_mask"])

    def greedy(self, src, src_mask, length: int, bos: int, *, cache: bool = True):
        """Greedy autoregressive decoding: (B, length) tokens, each step fed the previous argmax.

        ``cache=True``: one position per step through key–value caches of the decoder's
        self-attention (the encoder's memory is computed once); ``False``: the whole prefix is
        recomputed at every step (the reference the cache is tested against)."""
        memory = self.encode(src, src_mask)
        b = src.shape[0]
        if cache:
            mem_mask = att.padding_mask(None, src_mask)
            a0 = self.decoder[0].attn
            caches = [att.init_cache(b, length, a0.num_heads, a0.head_dim, memory.dtype) for _ in self.decoder]

            def one(carry, i):
                tok, caches = carry
                h = self.tgt_pos(self.embed(tok[:, None]), i)
                new = []
                for blk, c in zip(self.decoder, caches):
                    h, c = blk(h, memory=memory, memory_mask=mem_mask, cache=c, index=i)
                    new.append(c)
                nxt = jnp.argmax(self.embed.attend(self.dec_norm(h))[:, 0], -1).astype(jnp.int32)
                return (nxt, new), nxt

            _, toks = jax.lax.scan(one, (jnp.full((b,), bos, jnp.int32), caches), jnp.arange(length))
            return toks.T
        buf = jnp.zeros((b, length + 1), jnp.int32).at[:, 0].set(bos)

        def step(i, buf):
            logits = self.decode(buf[:, :-1], memory, src_mask)
            nxt = jnp.argmax(logits[:, i], -1).astype(jnp.int32)
            return buf.at[:, i + 1].set(nxt)
        return jax.lax.fori_loop(0, length, step, buf)[:, 1:]


def _rms(hp, config):
    """The "switch" norm's choice: traced ``model.rms`` if swept, else the config's (default 0.)."""
    if config.model.norm != "switch":
        return 0.0
    return hpmod.get(hp, config, "model.rms") if "rms" in config.model else 0.0


def validate_lm(m, vocab: int | None = None):
    _check_common(m)
    check(m.context >= 2, "model.context", "must be ≥ 2")


def make_lm(config, vocab: int):
    """Pure init/apply of ``TransformerLM`` from ``config.model`` (width, num_heads, num_layers, context,
    mlp_ratio, norm, posenc, use_bias)."""
    m = config.model
    validate_lm(m)

    def make(rngs, hp=None):
        return TransformerLM(vocab, m.context, m.width, m.num_heads, m.num_layers, mlp_ratio=m.mlp_ratio,
                             norm=m.norm, posenc=m.posenc, use_bias=m.use_bias, rms=_rms(hp, config), rngs=rngs)
    return functional(make)


def make_seq2seq(config, vocab: int, max_len: int):
    """Pure init/apply of ``Seq2SeqTransformer`` from ``config.model``."""
    m = config.model
    _check_common(m)

    def make(rngs, hp=None):
        return Seq2SeqTransformer(vocab, max_len, m.width, m.num_heads, m.num_layers, mlp_ratio=m.mlp_ratio,
                                  norm=m.norm, posenc=m.posenc, use_bias=m.use_bias, rms=_rms(hp, config), rngs=rngs)
    return functional(make)


def sample_logits(key, logits, temperature=1.0, top_k: int = 0):
    """A token per row of logits (..., V): argmax if temperature == 0, else softmax(logits/τ)
    restricted to the ``top_k`` largest (0 = all)."""
    if top_k:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits >= kth, logits, -jnp.inf)
    greedy = jnp.argmax(logits, -1)
    t = jnp.maximum(jnp.asarray(temperature, logits.dtype), 1e-6)
    drawn = jax.random.categorical(key, logits / t, axis=-1)
    return jnp.where(jnp.asarray(temperature) > 0, drawn, greedy).astype(jnp.int32)


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("top_k",))
def _fill_window(graphdef, params, model_state, buf, p, key, temperature, top_k=0):
    """buf (B, context) whose first ``p`` tokens are given -> buf with positions p … context−1 sampled.

    One position per step through the KV caches: token t is read (the prompt's, or the one sampled
    at step t−1) and the logits at t give token t + 1. One compiled program for any ``p``.
    """
    model = nnx.merge(graphdef, params, model_state)
    caches = model.init_cache(buf.shape[0])

    def step(carry, t):
        caches, buf, key = carry
        logits, caches = model.decode(jax.lax.dynamic_slice_in_dim(buf, t, 1, axis=1), caches, t)
        key, sub = jax.random.split(key)
        tok = sample_logits(sub, logits[:, -1], temperature, top_k)
        nxt = jnp.minimum(t + 1, buf.shape[1] - 1)
        col = jnp.where(t + 1 >= p, tok, buf[:, nxt])
        buf = jax.lax.dynamic_update_slice_in_dim(buf, col[:, None], nxt, axis=1)
        return (caches, buf, key), None

    (_, buf, _), _ = jax.lax.scan(step, (caches, buf, key), jnp.arange(buf.shape[1] - 1))
    return buf


def generate(lm, params, model_state, prompt, num_new: int, key, *, temperature=1.0, top_k: int = 0):
    """prompt (B, P) followed by ``num_new`` sampled tokens: (B, P + num_new); P + num_new ≤ context.

    ``lm``: the ``Functional`` of :func:`make_lm`. Tokens go through ``TransformerLM.decode`` one
    position at a time, reading and writing the KV caches (each token costs one position).
    temperature 0 = greedy. Compiled once per model and batch size.
    """
    prompt = jnp.asarray(prompt, jnp.int32)
    ctx = lm.module(params, model_state).context
    p = prompt.shape[-1]
    if p < 1 or p + num_new > ctx:
        raise ConfigError("num_new", f"prompt ({p}) + new tokens ({num_new}) must be in [1, context = {ctx}] "
                                     "for one cached window")
    buf = jnp.zeros((prompt.shape[0], ctx), jnp.int32).at[:, :p].set(prompt)
    buf = _fill_window(lm.graphdef, params, model_state, buf, jnp.int32(p), key, jnp.asarray(temperature),
                       top_k=int(top_k))
    return buf[:, :p + num_new]


def generate_long(lm, params, model_state, prompt, num_new: int, key, *, temperature=1.0, top_k: int = 0):
    """Any number of new tokens: cached windows of the context; when one is full the last context/2
    tokens are re-read as the next window's prompt (positions restart, as in nanoGPT's cropping)."""
    ctx = lm.module(params, model_state).context
    out = jnp.asarray(prompt, jnp.int32)
    window_len = min(out.shape[-1], ctx - 1)          # the first window: the prompt's end
    remaining = num_new
    while remaining > 0:
        window = out[:, out.shape[-1] - window_len:]
        n = min(remaining, ctx - window_len)
        key, sub = jax.random.split(key)
        new = generate(lm, params, model_state, window, n, sub, temperature=temperature, top_k=top_k)
        out = jnp.concatenate([out, new[:, window_len:]], axis=1)
        remaining -= n
        window_len = max(1, ctx // 2)                 # later windows: the last context/2 tokens
    return out
