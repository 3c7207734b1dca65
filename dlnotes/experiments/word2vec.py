"""Skip-gram with negative sampling finds interchangeable words it never saw together (C46).

Corpus: ``dlnotes.data.text.class_corpus`` (classes of interchangeable words that never co-occur in a
sentence). ``num_seeds`` init/sampling seeds trained in one compiled call (``run_points``). Checks
(CLAIMS.md), on every seed: AUC of same- vs different-class cosine ≥ 0.99; two words of one class
(c0w0, c0w1, verified never to co-occur) at cosine ≥ 0.9; mean same-class − different-class cosine ≥ 0.5.
Figure: a 2-D PCA projection of the embeddings coloured by class; nearest-neighbour table in details.
"""
from __future__ import annotations

import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes.data import text as textdata
from dlnotes.errors import check
from dlnotes.experiments.base import claim
from dlnotes.models.word2vec import class_separation, make_skipgram, nearest_neighbours
from dlnotes.optim.factory import make_optimizer, validate_optimizer_config
from dlnotes.train import plots
from dlnotes.train.loop import Task
from dlnotes.train.sweep import run_points

CLAIMS = ("C46",)
DIFFERS = ()
MIN_AUC, MIN_PAIR_COS, MIN_GAP = 0.99, 0.9, 0.5


def validate(config):
    validate_optimizer_config(config)
    d = config.data
    check(d.window >= 1, "data.window", "must be ≥ 1")
    check(0 <= d.subsample < 1, "data.subsample", "must be in [0, 1)")
    check(d.noise_power >= 0, "data.noise_power", "must be ≥ 0")
    check(config.model.dim >= 1, "model.dim", "must be ≥ 1")
    check(config.model.negatives >= 1, "model.negatives", "must be ≥ 1")
    check(config.batch_size >= 1, "batch_size", "must be ≥ 1 (pairs per step)")
    check(config.check.num_seeds >= 1, "check.num_seeds", "must be ≥ 1")
    if not d.path:
        check(2 <= d.sentence_len <= d.num_classes, "data.sentence_len", "must be in [2, data.num_classes]")
        check(1 <= d.branching < d.num_classes, "data.branching", "must be in [1, data.num_classes)")
        check(d.words_per_class >= 2, "data.words_per_class", "must be ≥ 2")


def text_sentences(path: str, min_count: int):
    """Sentences (one per line) of lower-cased words from a UTF-8 file; rare words dropped."""
    lines = textdata.read_text_file(path).lower().splitlines()
    toks = [re.findall(r"[a-z0-9']+", ln) for ln in lines]
    counts = {}
    for t in toks:
        for w in t:
            counts[w] = counts.get(w, 0) + 1
    words = sorted(w for w, n in counts.items() if n >= min_count)
    check(len(words) >= 2, "data.path", f"{path} has fewer than 2 words seen ≥ {min_count} times")
    index = {w: i for i, w in enumerate(words)}
    sents = [[index[w] for w in t if w in index] for t in toks]
    return [s for s in sents if len(s) >= 2], words


def make_data(config):
    """``(task data, corpus info)``: pairs for training plus the corpus the checks read."""
    d = config.data
    if d.path:
        sents, words = text_sentences(d.path, d.min_count)
        info = {"sentences": sents, "words": words, "word_class": None}
    else:
        corpus = textdata.class_corpus(d.seed, d.num_sentences, num_classes=d.num_classes,
                                       words_per_class=d.words_per_class, sentence_len=d.sentence_len,
                                       branching=d.branching)
        info = {"sentences": corpus["sentences"], "words": corpus["words"], "word_class": corpus["word_class"]}
    v = len(info["words"])
    pairs = textdata.skipgram_pairs(d.pair_seed, info["sentences"], v, window=d.window, subsample=d.subsample)
    info["counts"] = pairs.pop("counts")
    info["noise"] = textdata.noise_distribution(info["counts"], d.noise_power)
    return {"train": {k: jnp.asarray(x) for k, x in pairs.items()}}, info


def build_task(config, data=None, info=None):
    if data is None:
        data, info = make_data(config)
    v = len(info["words"])
    model = make_skipgram(v, config.model.dim)
    cdf = jnp.asarray(np.cumsum(info["noise"]), jnp.float32)
    k = config.model.negatives

    def loss(params, ms, batch, key, hp):
        # negatives by inverse CDF (jax.random.categorical draws V Gumbels per sample: 80× slower here)
        u = jax.random.uniform(key, batch["center"].shape + (k,)) * cdf[-1]
        neg = jnp.minimum(jnp.searchsorted(cdf, u, side="right"), v - 1)
        per, ms = model.apply(params, ms, {**batch, "negatives": neg})
        return jnp.mean(per), ({}, ms)

    return Task(init=model.init, loss=loss, optimizer=lambda hp: make_optimizer(config, hp), data=data,
                num_steps=config.num_steps, batch_size=config.batch_size, sampling=config.sampling,
                log_every=config.log_every)


def cooccurrences(sentences, a: int, b: int) -> int:
    """Sentences holding both words a and b."""
    s = np.asarray(sentences)
    return int(np.sum(np.any(s == a, 1) & np.any(s == b, 1)))


def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    check(not config.data.path, "data.path", "the C46 checks need the generated corpus (leave data.path empty)")
    data, info = make_data(config)
    task = build_task(config, data, info)
    points = [{"seed": s} for s in range(config.check.num_seeds)]
    _, res = run_points(task, config, points, progress="C46 skip-gram")
    emb = np.asarray(res.state.params["inp"][...])                      # (seeds, V, d)
    words, cls = info["words"], info["word_class"]
    a, b = 0, 1                                                         # c0w0, c0w1
    together = cooccurrences(info["sentences"], a, b)
    seps = [class_separation(e, cls) for e in emb]
    from dlnotes.models.word2vec import cosine_matrix
    pair_cos = np.array([cosine_matrix(e)[a, b] for e in emb])
    auc = np.array([s["auc"] for s in seps])
    gap = np.array([s["gap"] for s in seps])
    ok = (auc.min() >= MIN_AUC) and (pair_cos.min() >= MIN_PAIR_COS) and (gap.min() >= MIN_GAP) and together == 0
    fig = _figure_projection(emb[0], cls, words, os.path.join(workdir, "word2vec_projection.png"))
    loss = np.asarray(res.metrics["steps"]["loss"])
    nn_rows = []
    for w in (0, 8, 17, 42):
        if w < len(words):
            nn_rows.append(f"{words[w]}: " + ", ".join(f"{words[i]} {c:.2f}" for i, c in nearest_neighbours(emb[0], w, 5)))
    return [claim(
        "C46", "skip-gram with negative sampling gives interchangeable words that never co-occur nearly the same "
               "embedding; cosine separates word classes",
        f"AUC same vs different class {auc.min():.4f} (min over {len(emb)} seeds); cos({words[a]}, {words[b]}) "
        f"{pair_cos.min():.3f} (min; co-occur in {together} sentences); mean same − different cosine "
        f"{gap.min():.3f} (min)",
        f"AUC ≥ {MIN_AUC}, pair cosine ≥ {MIN_PAIR_COS}, gap ≥ {MIN_GAP} on every seed; the pair never co-occurs",
        ok, fig,
        details=f"{len(words)} words in {config.data.num_classes} classes, {len(info['sentences'])} sentences, "
                f"{len(data['train']['center'])} pairs (window {config.data.window}, subsample "
                f"{config.data.subsample:g}), d = {config.model.dim}, {config.model.negatives} negatives "
                f"(unigram^{config.data.noise_power:g}), Adam {config.optimizer.learning_rate:g}, batch "
                f"{config.batch_size}, {config.num_steps} steps; final loss per seed "
                + ", ".join(f"{x:.3f}" for x in loss[:, -50:].mean(1))
                + "; same / different mean cosine per seed "
                + ", ".join(f"{s['same']:.2f}/{s['different']:.2f}" for s in seps)
                + ". Nearest neighbours (seed 0): " + "; ".join(nn_rows))]


def _figure_projection(emb, cls, words, path):
    import matplotlib.pyplot as plt
    x = emb - emb.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    p = x @ vt[:2].T
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    k = int(np.max(cls)) + 1
    cmap = plt.get_cmap("tab20")
    for c in range(k):
        m = cls == c
        ax.scatter(p[m, 0], p[m, 1], s=18, color=cmap(c % 20), label=f"class {c}")
        ax.annotate(f"c{c}", p[m].mean(0), fontsize=8, weight="bold")
    ax.set(title="skip-gram embeddings, first two principal components (seed 0)", xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=6, ncol=2, loc="best")
    return plots.save(fig, path)
