"""C41's copy task and GRU encoder–decoders, shared by ``seq2seq_attention`` (C41) and ``transformer``
(C44's comparison on the copy task): data, the training task, and one attention variant trained over
seeds (``train_variant``). See ``seq2seq_attention`` for the claim and ``configs/seq2seq_attention.py``
for the protocol."""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes import hparams as hpmod
from dlnotes.data import sequences as seq
from dlnotes.models.seq2seq import make_seq2seq, sequence_cross_entropy
from dlnotes.optim.factory import make_optimizer
from dlnotes.train.loop import Task
from dlnotes.train.sweep import run_points


def with_vocab(config):
    vocab = config.data.vocab if config.task == "copy" else sum(translation_sizes())
    return hpmod.with_changes(config, **{"model.vocab": vocab})


def translation_sizes():
    v = seq.translation_vocab()
    return len(v["noun"]), len(v["adj"]), len(v["other"])


def make_data(config):
    """{"train": pairs with lengths min_len…max_len, "test": n_per_length pairs of every length}."""
    d = config.data
    if config.task == "copy":
        train = seq.copy_through_map(d.seed, d.n_train, (d.min_len, d.max_len), vocab=d.vocab, map_seed=d.map_seed)
        test = seq.by_length(d.test_seed, seq.copy_through_map, d.n_per_length, range(d.min_len, d.max_len + 1),
                             vocab=d.vocab, map_seed=d.map_seed)
    else:
        t = config.translation
        train = seq.translation(d.seed, d.n_train, (t.min_len, t.max_len))
        test = seq.by_length(d.test_seed, seq.translation, d.n_per_length, range(t.min_len, t.max_len + 1))
    return {"train": train, "test": test}


def build_task(config, data=None) -> Task:
    data = data if data is not None else make_data(config)
    model = make_seq2seq(with_vocab(config))
    lengths = np.asarray(data["test"]["src_len"])
    lo, hi = int(lengths.min()), int(lengths.max())
    onehot = jnp.asarray(jax.nn.one_hot(lengths - lo, hi - lo + 1))          # (n_test, lengths)

    def loss(params, ms, batch, key, hp):
        out, ms = model.apply(params, ms, batch, train=True, key=key)
        ce = sequence_cross_entropy(out["logits"], batch["tgt_out"], batch["tgt_mask"])
        tok = jnp.sum((jnp.argmax(out["logits"], -1) == batch["tgt_out"]) * batch["tgt_mask"]) / jnp.sum(
            batch["tgt_mask"])
        return ce, ({"token_acc": tok}, ms)

    def evaluate(params, ms, d, hp):
        t = d["test"]
        out, _ = model.apply(params, ms, t, mode="greedy")
        em = seq.exact_match(out["tokens"], t["tgt_out"], t["tgt_mask"]).astype(jnp.float32)
        return {"exact_match": em.mean(), "exact_match_by_length": (em @ onehot) / onehot.sum(0)}

    steps = config.num_steps if config.task == "copy" else config.translation.num_steps
    return Task(init=model.init, loss=loss, optimizer=lambda hp: make_optimizer(config, hp), data=data,
                num_steps=steps, batch_size=config.batch_size, sampling=config.sampling,
                log_every=config.log_every if config.task == "copy" else steps, evaluate=evaluate)


def train_variant(config, data, attention: str, num_seeds: int):
    """Train C41's GRU encoder–decoder with ``attention`` (dot | additive | none) on ``data`` for seeds
    0…num_seeds−1 (one vmapped grid): -> (exact match by length (seeds, evaluations, lengths), the
    engine's result, seconds). Evaluations every ``log_every`` steps if that is < ``num_steps``; else
    only the final parameters are evaluated, here, once (no step-0 evaluation, and the greedy decoder
    compiles once instead of in both the engine's init and its training chunk). Also used by the
    transformer experiment (C44's comparison on the copy task)."""
    # the source EOS is a key for attention; without attention the decoder only gets the encoder's
    # final state, which has read the whole source anyway: that model stays the one without it
    cfg = hpmod.with_changes(config, **{"model.attention": attention,
                                        "model.source_eos": bool(config.model.source_eos) and attention != "none"})
    curve = config.log_every < config.num_steps
    points = [{"seed": s} for s in range(num_seeds)]
    t0 = time.perf_counter()
    task = build_task(cfg, data)
    _, res = run_points(task if curve else dataclasses.replace(task, evaluate=None), cfg, points,
                        progress=f"C41 {attention}")
    if curve:
        by_len = np.asarray(res.metrics["evals"]["exact_match_by_length"])        # (seeds, evals, lengths)
    else:
        final = jax.jit(jax.vmap(lambda p, ms: task.evaluate(p, ms, data, None)))
        by_len = np.asarray(final(res.state.params, res.state.model_state)["exact_match_by_length"])[:, None]
    return by_len, res, time.perf_counter() - t0
