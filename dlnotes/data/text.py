"""Text for language models, built on the machine (nothing downloads, no text copied into the repo).

Character LM corpus:
  ``stdlib_corpus()`` the docstrings of a fixed list of pure-Python standard-library modules (module,
      then its public classes/functions/methods in sorted order; ``inspect.getdoc``), joined by blank
      lines — deterministic for a given Python version (~340k characters, ~100 symbols on 3.11);
  ``read_text_file(path)`` a user's UTF-8 file; missing, empty or non-UTF-8 → one-line ``ConfigError``.
  ``CharVocab`` (sorted characters ↔ ids), ``char_windows`` (training windows of context + 1).

word2vec corpus (C46): ``class_corpus`` — words in ``num_classes`` classes of ``words_per_class``
interchangeable words; a sentence is a walk over a fixed random successor graph of classes that never
revisits a class, each class emitting one of its words uniformly. Words of one class therefore share
every context distribution but never co-occur in a sentence. ``skipgram_pairs`` makes (center,
context) pairs with word2vec's reduced random window and subsampling of frequent words.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
from typing import Sequence

import numpy as np

from dlnotes.errors import ConfigError

DEFAULT_MODULES = (
    "abc", "argparse", "base64", "bisect", "calendar", "collections", "contextlib", "copy", "csv",
    "dataclasses", "datetime", "decimal", "difflib", "email.message", "enum", "fractions", "functools",
    "getopt", "gettext", "glob", "heapq", "html", "http.client", "inspect", "io", "ipaddress", "itertools",
    "json", "logging", "pathlib", "pickle", "pprint", "queue", "random", "re", "shlex", "shutil",
    "statistics", "string", "tarfile", "tempfile", "textwrap", "threading", "timeit", "typing", "unittest",
    "urllib.parse", "uuid", "warnings", "weakref", "zipfile",
)


def _docs_of(module) -> list[str]:
    docs = [inspect.getdoc(module) or ""]
    for name in sorted(vars(module)):
        obj = getattr(module, name)
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            docs.append(inspect.getdoc(obj) or "")
        if inspect.isclass(obj):
            for meth in sorted(vars(obj)):
                f = vars(obj)[meth]
                if not meth.startswith("_") and inspect.isfunction(f):
                    docs.append(inspect.getdoc(f) or "")
    return [d for d in docs if d]


def stdlib_corpus(modules: Sequence[str] = DEFAULT_MODULES) -> str:
    """The docstrings of ``modules`` (importable on every Python), in a fixed order."""
    return "\n\n".join("\n\n".join(_docs_of(importlib.import_module(m))) for m in modules) + "\n"


def read_text_file(path: str, key: str = "data.path") -> str:
    """A user's UTF-8 text file; ``ConfigError(key, ...)`` if missing, unreadable, empty or not UTF-8."""
    if not os.path.isfile(path):
        raise ConfigError(key, f"no such file: {path}")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(key, f"cannot read {path} ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(key, f"{path} is not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise ConfigError(key, f"{path} is empty")
    return text


def load_corpus(path: str = "") -> str:
    """The user's file if ``path`` else the standard-library docstrings."""
    return read_text_file(path) if path else stdlib_corpus()


@dataclasses.dataclass(frozen=True)
class CharVocab:
    """Characters ↔ ids (sorted characters of the corpus)."""

    chars: str

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.chars)}
        missing = sorted(set(text) - set(index))
        if missing:
            raise ConfigError("prompt", f"characters not in the model's vocabulary: {''.join(missing)!r}")
        return np.fromiter((index[c] for c in text), np.int32, len(text))

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in np.asarray(ids).ravel())


def char_windows(ids: np.ndarray, context: int, stride: int = 1) -> np.ndarray:
    """(n, context + 1) int32 windows starting every ``stride`` characters (input = [:, :-1], target = [:, 1:])."""
    n = (len(ids) - context - 1) // stride + 1
    if n < 1:
        raise ConfigError("data", f"the text ({len(ids)} characters) is shorter than context + 1 = {context + 1}")
    starts = np.arange(n) * stride
    return np.asarray(ids, np.int32)[starts[:, None] + np.arange(context + 1)[None, :]]


def train_val_split(ids: np.ndarray, val_fraction: float, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved split: the text cut into blocks of ``block`` characters, every round(1/f)-th block held
    out for validation (so both splits see every part of the corpus); each split is its blocks joined."""
    every = max(2, int(round(1.0 / val_fraction)))
    block = max(1, min(block, len(ids) // (4 * every)))       # short texts: smaller blocks, ≥ 4 held out
    starts = np.arange(0, len(ids), block)
    is_val = (np.arange(len(starts)) % every) == every - 1
    train = [ids[s:s + block] for s, v in zip(starts, is_val) if not v]
    val = [ids[s:s + block] for s, v in zip(starts, is_val) if v]
    empty = np.zeros(0, np.asarray(ids).dtype)
    return (np.concatenate(train) if train else empty), (np.concatenate(val) if val else empty)


# ---------------------------------------------------------------- word2vec's generated corpus

def class_corpus(seed: int, num_sentences: int, *, num_classes: int = 16, words_per_class: int = 8,
                 sentence_len: int = 6, branching: int = 3) -> dict:
    """A corpus with known interchangeable word classes.

    Class graph: each class has ``branching`` random successor classes (fixed by ``seed``). A sentence
    is a walk of ``sentence_len`` distinct classes (start uniform, next uniform over unvisited
    successors; stuck walks are redrawn); each class emits one of its words uniformly. Word w belongs to
    class w // words_per_class. Returns ``{"sentences": (S, L) int32, "word_class": (V,), "words": names,
    "successors": (K, branching)}``.
    """
    if sentence_len > num_classes:
        raise ConfigError("data.sentence_len", "must be ≤ num_classes (a class appears once per sentence)")
    rng = np.random.default_rng(seed)
    succ = np.stack([rng.choice(np.delete(np.arange(num_classes), c), branching, replace=False)
                     for c in range(num_classes)])
    walks = np.zeros((num_sentences, sentence_len), np.int64)
    i = 0
    while i < num_sentences:
        c = int(rng.integers(num_classes))
        walk = [c]
        while len(walk) < sentence_len:
            options = [s for s in succ[walk[-1]] if s not in walk]
            if not options:
                break
            walk.append(int(rng.choice(options)))
        if len(walk) == sentence_len:
            walks[i] = walk
            i += 1
    words = walks * words_per_class + rng.integers(words_per_class, size=walks.shape)
    v = num_classes * words_per_class
    return {"sentences": words.astype(np.int32), "word_class": np.arange(v) // words_per_class,
            "words": [f"c{w // words_per_class}w{w % words_per_class}" for w in range(v)], "successors": succ}


def keep_probability(counts: np.ndarray, threshold: float) -> np.ndarray:
    """word2vec's subsampling: P(keep w) = min(1, (√(f/t) + 1)·t/f), f = count/total (t = 0: keep all)."""
    if threshold <= 0:
        return np.ones(len(counts))
    f = counts / counts.sum()
    with np.errstate(divide="ignore"):
        p = (np.sqrt(f / threshold) + 1.0) * threshold / f
    return np.minimum(1.0, np.nan_to_num(p, nan=1.0, posinf=1.0))


def skipgram_pairs(seed: int, sentences: Sequence[Sequence[int]], vocab_size: int, *, window: int = 2,
                   subsample: float = 1e-3) -> dict:
    """(center, context) pairs: frequent words dropped with ``keep_probability`` first, then for each
    center a reduced window b ~ U{1 … window} (word2vec), contexts at distance ≤ b in its sentence.
    Returns ``{"center": (P,), "context": (P,)}`` int32 and ``counts`` (V,) of the raw corpus."""
    rng = np.random.default_rng(seed)
    flat = np.concatenate([np.asarray(s) for s in sentences]).astype(np.int64)
    sid = np.repeat(np.arange(len(sentences)), [len(s) for s in sentences])
    counts = np.bincount(flat, minlength=vocab_size)
    kept = rng.random(len(flat)) < keep_probability(counts.astype(np.float64), subsample)[flat]
    flat, sid = flat[kept], sid[kept]
    b = rng.integers(1, window + 1, size=len(flat))        # each center's reduced window
    centers, contexts = [], []
    for off in range(1, window + 1):
        i = np.arange(len(flat) - off)
        same = (sid[i] == sid[i + off])
        for c, o in ((i, i + off), (i + off, i)):          # right and left neighbours
            ok = same & (b[c] >= off)
            centers.append(flat[c[ok]])
            contexts.append(flat[o[ok]])
    return {"center": np.concatenate(centers).astype(np.int32),
            "context": np.concatenate(contexts).astype(np.int32), "counts": counts}


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """Negative-sampling distribution ∝ count^power (word2vec: 3/4)."""
    p = np.asarray(counts, np.float64) ** power
    return p / p.sum()
