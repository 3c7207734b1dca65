"""Generated sequence tasks (nothing downloads): seq2seq copy / translation / reversal, and recall.

All generators are pure JAX: ``(key, n, length(s), ...) -> dict of arrays`` (``key`` a PRNG key or an
int seed), jit-able with static ``n`` and lengths, so a training step may also draw fresh batches; the
seq2seq ones run as one compiled program each (cached per static arguments). ``src_len=`` (n lengths)
replaces the drawn lengths: ``by_length`` draws a whole test set of several lengths that way, in one call.

**Token conventions for seq2seq tasks** (``copy_through_map``, ``translation``, ``reversal``)::

    PAD = 0, BOS = 1, EOS = 2, content tokens = NUM_SPECIAL + j for j in [0, vocab)
    vocab_size(vocab) = vocab + NUM_SPECIAL          # the embedding / output size

A batch of ``n`` pairs with source lengths in ``[min_len, max_len]`` (``lengths=L`` or ``(min, max)``),
padded to ``S = max_len``; here every target has its source's length ``L_i``, padded to ``T = max_len``::

    src      (n, S)    int32  content tokens, PAD after src_len
    src_mask (n, S)    bool   True on the L_i valid source positions
    src_len  (n,)      int32
    tgt      (n, T)    int32  the target tokens, PAD after tgt_len
    tgt_in   (n, T+1)  int32  BOS, tgt...     (decoder input under teacher forcing), PAD after
    tgt_out  (n, T+1)  int32  tgt..., EOS     (what the decoder must emit at each step), PAD after
    tgt_mask (n, T+1)  bool   True on the tgt_len + 1 positions of tgt_out (the tokens and EOS)
    tgt_len  (n,)      int32
    align    (n, T)    int32  source position that target position t comes from (−1 on padding):
                              the "true" attention map (identity for copy, swaps for translation)

``decoder_only(batch)`` packs a pair as one causal sequence ``src BOS tgt EOS PAD...`` with a loss
mask on the target part, for decoder-only transformers.

**Recall** (``recall_first_token``): ``x`` (n, T+1) tokens in ``[0, vocab)`` (no specials): the first
token is the one to remember, then ``T`` distractors drawn from the same vocabulary; ``y`` (n,) =
``x[:, 0]``. Read the answer from the state after the last token (chance = 1/vocab).
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

PAD, BOS, EOS = 0, 1, 2
NUM_SPECIAL = 3


def vocab_size(vocab: int) -> int:
    """Embedding / softmax size for ``vocab`` content tokens plus PAD, BOS, EOS."""
    return vocab + NUM_SPECIAL


def _key(key):
    return jax.random.key(key) if isinstance(key, int) else key


@functools.lru_cache(maxsize=None)
def _compiled(fn, n: int, lengths: tuple[int, int], src_len: tuple | None, settings: tuple):
    """``key -> fn(key, n, lengths, src_len, **settings)`` as one compiled program, cached per static
    arguments. Run eagerly, a generator dispatches its ~30 small ops one by one and compiles each anew
    for every new shape (C41's test set, one eager draw per length for 26 lengths, took 60 s)."""
    return jax.jit(lambda key: fn(key, n, lengths, src_len, **dict(settings)))


def _generate(fn, key, n, lengths, src_len, **settings):
    """Shared front of the seq2seq generators: static arguments checked and frozen, one compiled call."""
    if src_len is not None:
        src_len = tuple(int(v) for v in np.asarray(src_len).reshape(-1))
        if len(src_len) != n or min(src_len) < 1:
            raise ValueError(f"src_len must hold n={n} lengths >= 1, got {len(src_len)} (min {min(src_len)})")
        lengths = (min(src_len), max(src_len))
    return _compiled(fn, int(n), _length_range(lengths), src_len, tuple(sorted(settings.items())))(_key(key))


def _lengths(key, n, lengths, src_len):
    """(src_len (n,) int32, width): the given per-pair lengths, or uniform draws in lengths = (min, max)."""
    if src_len is not None:
        return jnp.asarray(src_len, jnp.int32), max(src_len)
    return sample_lengths(key, n, lengths), lengths[1]


def _length_range(lengths) -> tuple[int, int]:
    if isinstance(lengths, int):
        lo = hi = lengths
    else:
        lo, hi = (int(v) for v in lengths)
    if not 1 <= lo <= hi:
        raise ValueError(f"lengths must satisfy 1 <= min <= max, got {lengths!r}")
    return lo, hi


def sample_lengths(key, n: int, lengths) -> jax.Array:
    """(n,) int32 lengths uniform in ``[min, max]`` (``lengths`` an int or ``(min, max)``)."""
    lo, hi = _length_range(lengths)
    return jax.random.randint(_key(key), (n,), lo, hi + 1, dtype=jnp.int32)


def token_map(vocab: int, map_seed: int = 0) -> jax.Array:
    """A fixed permutation of the content tokens: ``(vocab_size(vocab),)`` int32 lookup table that
    maps content token ``c`` to ``perm[c]`` (also a content token) and PAD/BOS/EOS to themselves."""
    perm = jax.random.permutation(jax.random.key(map_seed), vocab) + NUM_SPECIAL
    return jnp.concatenate([jnp.arange(NUM_SPECIAL), perm]).astype(jnp.int32)


def _pairs(src, src_len, tgt, align, max_len):
    """Assemble the seq2seq dict from unpadded-by-mask src/tgt (n, max_len) and alignment."""
    n = src.shape[0]
    pos = jnp.arange(max_len)[None, :]
    valid = pos < src_len[:, None]
    src = jnp.where(valid, src, PAD).astype(jnp.int32)
    tgt = jnp.where(valid, tgt, PAD).astype(jnp.int32)
    align = jnp.where(valid, align, -1).astype(jnp.int32)
    pos1 = jnp.arange(max_len + 1)[None, :]
    tgt_in = jnp.concatenate([jnp.full((n, 1), BOS, jnp.int32), tgt], axis=1)
    tgt_out = jnp.concatenate([tgt, jnp.full((n, 1), PAD, jnp.int32)], axis=1)
    tgt_out = jnp.where(pos1 == src_len[:, None], EOS, tgt_out).astype(jnp.int32)
    return {"src": src, "src_mask": valid, "src_len": src_len, "tgt": tgt, "tgt_in": tgt_in,
            "tgt_out": tgt_out, "tgt_mask": pos1 <= src_len[:, None], "tgt_len": src_len, "align": align}


def copy_through_map(key, n: int, lengths=(5, 30), *, vocab: int = 10, map_seed: int = 0, src_len=None) -> dict:
    """C41's copy task: the target is the source with every token passed through a fixed map.

    src_t ~ U(content tokens), tgt_t = token_map(vocab, map_seed)[src_t]; lengths uniform in
    ``lengths`` (int or (min, max)), or ``src_len``: the n lengths given. Returns the seq2seq dict of
    the module docstring.
    """
    return _generate(_copy_through_map, key, n, lengths, src_len, vocab=int(vocab), map_seed=int(map_seed))


def _copy_through_map(key, n, lengths, src_len, *, vocab, map_seed):
    k_len, k_tok = jax.random.split(key)
    src_len, hi = _lengths(k_len, n, lengths, src_len)
    src = jax.random.randint(k_tok, (n, hi), NUM_SPECIAL, NUM_SPECIAL + vocab, dtype=jnp.int32)
    tgt = token_map(vocab, map_seed)[src]
    align = jnp.broadcast_to(jnp.arange(hi), (n, hi))
    return _pairs(src, src_len, tgt, align, hi)


def reversal(key, n: int, lengths=10, *, vocab: int = 10, src_len=None) -> dict:
    """Sequence reversal (C44/C45): tgt_t = src_{L−1−t} for each pair's own length L.

    ``lengths`` an int (every pair has length L) or (min, max), or ``src_len``: the n lengths given.
    Seq2seq dict of the module docstring.
    """
    return _generate(_reversal, key, n, lengths, src_len, vocab=int(vocab))


def _reversal(key, n, lengths, src_len, *, vocab):
    k_len, k_tok = jax.random.split(key)
    src_len, hi = _lengths(k_len, n, lengths, src_len)
    src = jax.random.randint(k_tok, (n, hi), NUM_SPECIAL, NUM_SPECIAL + vocab, dtype=jnp.int32)
    align = jnp.clip(src_len[:, None] - 1 - jnp.arange(hi)[None, :], 0, hi - 1)
    tgt = jnp.take_along_axis(src, align, axis=1)
    return _pairs(src, src_len, tgt, align, hi)


# word classes of the toy languages
NOUN, ADJ, OTHER = 0, 1, 2


def translation_vocab(n_nouns: int = 6, n_adjectives: int = 4, n_other: int = 6) -> dict:
    """Token ids of the toy language: ``{"noun": ids, "adj": ids, "other": ids}`` (content ids, in
    that order after the specials); total content vocabulary = their sum."""
    start = NUM_SPECIAL
    out = {}
    for name, k in (("noun", n_nouns), ("adj", n_adjectives), ("other", n_other)):
        out[name] = jnp.arange(start, start + k, dtype=jnp.int32)
        start += k
    return out


def translation(key, n: int, lengths=(4, 16), *, n_nouns: int = 6, n_adjectives: int = 4, n_other: int = 6,
                p_noun: float = 0.4, p_adj: float = 0.3, map_seed: int = 1, src_len=None) -> dict:
    """A toy translation whose word order changes: adjective–noun pairs swap ("green cat" → "chat vert").

    Each source word's class is drawn i.i.d. (noun p_noun, adjective p_adj, other word the rest), then
    a word of that class uniformly. The target translates word by word through a fixed dictionary
    (a class-preserving permutation, ``map_seed``) and every adjective directly followed by a noun
    swaps places with it (such pairs never overlap: a noun cannot start one). ``align`` records the
    swap. Content vocabulary = n_nouns + n_adjectives + n_other. Also returns ``swapped`` (n, T) bool:
    target positions that belong to a swapped pair.
    """
    return _generate(_translation, key, n, lengths, src_len, n_nouns=int(n_nouns), n_adjectives=int(n_adjectives),
                     n_other=int(n_other), p_noun=float(p_noun), p_adj=float(p_adj), map_seed=int(map_seed))


def _translation(key, n, lengths, src_len, *, n_nouns, n_adjectives, n_other, p_noun, p_adj, map_seed):
    k_len, k_cls, k_word = jax.random.split(key, 3)
    src_len, hi = _lengths(k_len, n, lengths, src_len)
    u = jax.random.uniform(k_cls, (n, hi))
    cls = jnp.where(u < p_noun, NOUN, jnp.where(u < p_noun + p_adj, ADJ, OTHER))
    sizes = jnp.array([n_nouns, n_adjectives, n_other])
    offsets = NUM_SPECIAL + jnp.array([0, n_nouns, n_nouns + n_adjectives])
    r = jax.random.uniform(k_word, (n, hi))
    src = (offsets[cls] + jnp.floor(r * sizes[cls]).astype(jnp.int32)).astype(jnp.int32)
    # a class-preserving dictionary
    keys = jax.random.split(jax.random.key(map_seed), 3)
    table = [jnp.arange(NUM_SPECIAL)]
    for k, size, off in zip(keys, (n_nouns, n_adjectives, n_other), (0, n_nouns, n_nouns + n_adjectives)):
        table.append(jax.random.permutation(k, size) + NUM_SPECIAL + off)
    table = jnp.concatenate(table).astype(jnp.int32)
    pos = jnp.arange(hi)[None, :]
    valid = pos < src_len[:, None]
    nxt_cls = jnp.concatenate([cls[:, 1:], jnp.full((n, 1), OTHER)], axis=1)
    nxt_valid = jnp.concatenate([valid[:, 1:], jnp.zeros((n, 1), bool)], axis=1)
    starts = (cls == ADJ) & (nxt_cls == NOUN) & nxt_valid            # adjective at t, noun at t+1
    prev_start = jnp.concatenate([jnp.zeros((n, 1), bool), starts[:, :-1]], axis=1)
    align = jnp.where(starts, pos + 1, jnp.where(prev_start, pos - 1, pos))
    tgt = table[jnp.take_along_axis(src, align, axis=1)]
    out = _pairs(src, src_len, tgt, align, hi)
    out["swapped"] = (starts | prev_start) & valid
    return out


def decoder_only(batch: dict) -> dict:
    """Pack a seq2seq batch as one causal sequence ``src BOS tgt EOS PAD…`` of length S + T + 2.

    Returns ``tokens`` (n, S+T+2), ``inputs`` = tokens[:, :-1], ``targets`` = tokens[:, 1:] and
    ``loss_mask`` (n, S+T+1): True where the target is a tgt token or the EOS (predicted after BOS).
    """
    src, tgt = batch["src"], batch["tgt"]
    ls, lt = batch["src_len"][:, None], batch["tgt_len"][:, None]
    s, t = src.shape[1], tgt.shape[1]
    p = jnp.arange(s + t + 2)[None, :]
    from_src = jnp.take_along_axis(src, jnp.clip(p, 0, s - 1), axis=1)
    from_tgt = jnp.take_along_axis(tgt, jnp.clip(p - ls - 1, 0, t - 1), axis=1)
    tokens = jnp.where(p < ls, from_src, jnp.where(p == ls, BOS, jnp.where(
        p <= ls + lt, from_tgt, jnp.where(p == ls + lt + 1, EOS, PAD)))).astype(jnp.int32)
    q = p[:, 1:]   # position of each target token
    return {"tokens": tokens, "inputs": tokens[:, :-1], "targets": tokens[:, 1:],
            "loss_mask": (q > ls) & (q <= ls + lt + 1)}


def recall_first_token(key, n: int, num_distractors: int, *, vocab: int = 8) -> dict:
    """Recall the first token after ``T = num_distractors`` distractors (C39, C40).

    x (n, T+1) int32 uniform in [0, vocab) (the first token, then T distractors from the same
    vocabulary), y (n,) = x[:, 0]. Chance accuracy = 1/vocab.
    """
    x = jax.random.randint(_key(key), (n, num_distractors + 1), 0, vocab, dtype=jnp.int32)
    return {"x": x, "y": x[:, 0]}


def pad_to(batch: dict, max_len: int) -> dict:
    """Pad a seq2seq batch (of width S = T ≤ max_len) to width ``max_len`` (targets max_len + 1) with
    PAD / False / −1, e.g. to stack test sets of several fixed lengths."""
    out = {}
    for name, v in batch.items():
        extra = max_len + (1 if name in ("tgt_in", "tgt_out", "tgt_mask") else 0) - (v.shape[1] if v.ndim > 1 else 0)
        if v.ndim < 2 or extra == 0:
            out[name] = v
            continue
        fill = False if v.dtype == jnp.bool_ else (-1 if name == "align" else PAD)
        out[name] = jnp.pad(v, ((0, 0), (0, extra)), constant_values=fill)
    return out


def by_length(key, generator, n_per_length: int, lengths: Sequence[int], **kwargs) -> dict:
    """A test set with ``n_per_length`` pairs of every length in ``lengths`` (in that order), padded to
    the longest: one draw ``generator(key, n, src_len=[L_1 × n_per_length, L_2 × …], **kwargs)``."""
    per_pair = np.repeat(np.asarray([int(L) for L in lengths]), n_per_length)
    return generator(key, len(per_pair), src_len=per_pair, **kwargs)


def exact_match(pred, target, mask) -> jax.Array:
    """(n,) bool: every masked position of ``pred`` equals ``target`` (a sequence is right or wrong)."""
    return jnp.all((pred == target) | ~mask, axis=-1)


def split(batch: dict, sizes: Sequence[int]) -> list[dict]:
    """Cut a batch dict along its leading axis into consecutive parts of the given sizes."""
    out, start = [], 0
    for k in sizes:
        out.append({name: v[start:start + k] for name, v in batch.items()})
        start += k
    return out
