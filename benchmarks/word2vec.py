"""word2vec: our skip-gram (the engine) vs gensim's Word2Vec on C46's generated corpus, in one run.

Same corpus (60,000 sentences, 128 words in 16 interchangeable classes), same settings: skip-gram,
d = 16, window 2, 5 negatives from unigram^0.75, subsampling 1e-3, the same number of passes over
the corpus (ours: ``num_steps × batch`` pairs ÷ pairs per pass). Throughput = corpus words per
second × passes (gensim's convention), and C46's quality numbers for both embeddings (AUC same vs
different class, cosine of two never-co-occurring same-class words, same − different gap).

    .venv/bin/python benchmarks/word2vec.py [--repeats=3] [--workers=2]

Writes ``benchmarks/results/word2vec.json``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def quality(emb, word_class):
    from dlnotes.models.word2vec import class_separation, cosine_matrix
    s = class_separation(emb, word_class)
    return {"auc": s["auc"], "pair_cosine": float(cosine_matrix(emb)[0, 1]), "gap": s["gap"]}


def main():
    import jax

    from harness import compare, write_result

    from dlnotes import hparams as hpmod
    from dlnotes.experiments import base, word2vec
    from dlnotes.train.runner import Runner

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()

    cfg = base.load_config("word2vec", "fast")
    data, info = word2vec.make_data(cfg)
    task = word2vec.build_task(cfg, data, info)
    runner = Runner(task)
    hp = hpmod.from_config(cfg)
    n_words = int(np.asarray(info["sentences"]).size)
    passes = cfg.num_steps * cfg.batch_size / len(data["train"]["center"])
    epochs = max(1, int(round(passes)))
    t0 = time.perf_counter()
    res = runner.run(hp, jax.random.key(0))
    jax.block_until_ready(res.state.params)
    first = time.perf_counter() - t0
    last = {}

    def ours():
        t0 = time.perf_counter()
        r = runner.run(hp, jax.random.key(1))
        jax.block_until_ready(r.state.params)
        last["ours"] = np.asarray(r.state.params["inp"][...])
        return time.perf_counter() - t0

    from gensim.models import Word2Vec
    sentences = [[info["words"][w] for w in s] for s in np.asarray(info["sentences"])]

    def gensim():
        t0 = time.perf_counter()
        m = Word2Vec(sentences, vector_size=cfg.model.dim, window=cfg.data.window, negative=cfg.model.negatives,
                     ns_exponent=cfg.data.noise_power, sample=cfg.data.subsample, sg=1, min_count=1,
                     workers=a.workers, epochs=epochs, seed=1)
        last["gensim"] = np.stack([m.wv[w] for w in info["words"]])
        return time.perf_counter() - t0

    cmp = compare({"ours (engine)": ours, "gensim": gensim}, repeats=a.repeats)
    per = {}
    for name, n_passes in (("ours (engine)", passes), ("gensim", epochs)):
        t = cmp["median_s"][name]
        key = "ours" if name.startswith("ours") else "gensim"
        per[name] = {"seconds": t, "passes": n_passes, "words_per_s": n_words * n_passes / t,
                     **quality(last[key], info["word_class"])}
        q = per[name]
        print(f"{name}: {q['words_per_s']:,.0f} words/s ({n_passes:.1f} passes, {t:.2f} s); AUC {q['auc']:.4f}, "
              f"pair cosine {q['pair_cosine']:.3f}, gap {q['gap']:.3f}")
    write_result("word2vec", {"config": {"sentences": len(sentences), "words": n_words, "vocab": len(info["words"]),
                                         "dim": cfg.model.dim, "window": cfg.data.window,
                                         "negatives": cfg.model.negatives, "steps": cfg.num_steps,
                                         "batch": cfg.batch_size, "gensim_workers": a.workers},
                              "comparison": cmp, "first_call_s": {"ours (engine)": first}, "per_system": per,
                              "thresholds": {"auc": 0.99, "pair_cosine": 0.9, "gap": 0.5}})


if __name__ == "__main__":
    main()
