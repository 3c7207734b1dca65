"""word2vec's skip-gram with negative sampling (Mikolov et al. 2013), and how to read its embeddings.

Each word w has an input vector u_w (the embedding) and an output vector v_w. For a (center c,
context o) pair and k negatives n_1 … n_k drawn from the unigram distribution to the 3/4::

    loss = −log σ(u_c·v_o) − Σ_i log σ(−u_c·v_{n_i})

Init as in word2vec.c: u ~ U(−0.5/d, 0.5/d), v = 0. Words that appear in the same contexts get
similar u even if they never appear together.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from dlnotes.models.base import functional


def sgns_loss(u, v_pos, v_neg):
    """Per-pair loss. u (B, d) centers, v_pos (B, d) contexts, v_neg (B, k, d) negatives -> (B,)."""
    pos = jax.nn.log_sigmoid(jnp.sum(u * v_pos, -1))
    neg = jax.nn.log_sigmoid(-jnp.einsum("bd,bkd->bk", u, v_neg)).sum(-1)
    return -(pos + neg)


class SkipGram(nnx.Module):
    """``__call__({"center": (B,), "context": (B,), "negatives": (B, k)})`` -> per-pair loss (B,)."""

    def __init__(self, vocab: int, dim: int, *, rngs: nnx.Rngs):
        self.inp = nnx.Param(jax.random.uniform(rngs.params(), (vocab, dim), jnp.float32, -0.5 / dim, 0.5 / dim))
        self.out = nnx.Param(jnp.zeros((vocab, dim), jnp.float32))

    def __call__(self, batch, *, train: bool = False, key=None):
        u = self.inp[...][batch["center"]]
        return sgns_loss(u, self.out[...][batch["context"]], self.out[...][batch["negatives"]])

    def embeddings(self):
        return self.inp[...]


def make_skipgram(vocab: int, dim: int):
    """Pure init/apply of ``SkipGram``."""
    return functional(lambda rngs, hp=None: SkipGram(vocab, dim, rngs=rngs))


def cosine_matrix(emb) -> np.ndarray:
    """(V, V) cosine similarities of the rows of emb."""
    e = np.asarray(emb, np.float64)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    return e @ e.T


def nearest_neighbours(emb, word: int, k: int = 5) -> list[tuple[int, float]]:
    """The k words with the highest cosine to ``word`` (itself excluded)."""
    c = cosine_matrix(emb)[word]
    c[word] = -np.inf
    idx = np.argsort(-c)[:k]
    return [(int(i), float(c[i])) for i in idx]


def class_separation(emb, word_class) -> dict:
    """How well cosine separates same-class from different-class word pairs (i < j):
    ``auc`` (P[cos same > cos different], ties ½), ``same``/``different`` mean cosines, ``gap``."""
    c = cosine_matrix(emb)
    cls = np.asarray(word_class)
    iu = np.triu_indices(len(cls), 1)
    s, same = c[iu], cls[iu[0]] == cls[iu[1]]
    ranks = _ranks(s)
    n1, n0 = same.sum(), (~same).sum()
    auc = (ranks[same].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)
    return {"auc": float(auc), "same": float(s[same].mean()), "different": float(s[~same].mean()),
            "gap": float(s[same].mean() - s[~same].mean())}


def _ranks(x):
    """Average ranks (1-based, ties averaged) — the Mann–Whitney U statistic's ranks."""
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x))
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        r[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return r
