"""Attention, position encodings, transformers on generated sequence tasks (claims C42–C45).

    python scripts/reproduce.py --only=C42,C43,C44,C45 --workdir=/tmp/tf
    python scripts/train.py --config=configs/transformer.py:fast --workdir=/tmp/tf1                 # reversal 10
    python scripts/train.py --config=configs/transformer.py:fast --workdir=/tmp/tf2 --config.model.rms=1.0 \
        --config.data.lengths='(20, 20)' --config.data.max_len=20
    python scripts/train.py --config=configs/transformer.py:fast --workdir=/tmp/tf3 --config.task=copy \
        --config.data.lengths='(5, 30)' --config.data.max_len=30
    python scripts/sweep.py --config=configs/transformer.py:fast --workdir=/tmp/tfs --sweep="seed=0:3;model.rms=0.0,1.0"

``task``: "reversal" | "copy" (encoder–decoder, ``dlnotes.data.sequences``, padded to ``data.max_len``)
| "char_lm" (see configs/char_lm.py). The model: 2 + 2 pre-norm blocks, d = 64, 4 heads, sinusoidal
positions (added), bias-free linear layers; ``model.norm = "switch"`` with ``model.rms`` = 0. (LayerNorm)
or 1. (bias-free RMS norm), a traced number, so C45's two norms share one compiled program.
Adam 1e-3 (β₂ 0.98), gradient clip 1, 20 warm-up steps then constant (C45: cosine to 1e-5), batch 64
of 20,000 training pairs. C44's reversal 10: ``num_steps`` (300; fast 200) with an evaluation every
25 steps; C45's reversal 20: ``c45.steps`` (600; fast 400). In the full profile C44 also trains on
C41's copy task (lengths 5–30) and trains C41's GRUs (with and without attention) beside it.
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "transformer"
    c.task = "reversal"
    c.seed = 0
    c.num_steps = 200 if fast else 300          # C44's reversal 10 ("within 300 steps")
    c.log_every = 25
    c.batch_size = 64
    c.sampling = "replacement"
    c.data = ml_collections.ConfigDict(dict(seed=0, n_train=20000, n_val=256, lengths=(10, 10), max_len=10, vocab=10))
    c.model = ml_collections.ConfigDict(dict(width=64, num_heads=4, num_layers=2, mlp_ratio=4, norm="switch",
                                             rms=0.0, posenc="sinusoidal", use_bias=False))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.b2 = 0.98
    c.optimizer.clip_norm = 1.0
    c.optimizer.schedule.name = "warmup_cosine"
    c.optimizer.schedule.warmup_steps = 20
    c.optimizer.schedule.alpha = 1.0            # constant after the warm-up
    c.c42 = ml_collections.ConfigDict(dict(trials=10, num_keys=32, dim=16, value_dim=8, num_taus=40,
                                           tau_max_over_gap=10.0, tau_min_over_gap=1e-3))
    c.c43 = ml_collections.ConfigDict(dict(dim=512, positions=128, shifts=(1, 7, 50, 200), norm_ratio=1.0,
                                           ratio_grid=(0.25, 0.5, 1.0, 1.5, 2.0, 4.0), num_seeds=5))
    c.c44 = ml_collections.ConfigDict(dict(
        num_seeds=2 if fast else 5,
        # C41's copy task, full profile only: the transformer (``copy_seeds``) and C41's GRUs
        # (``gru_seeds`` each, configs/seq2seq_attention.py's full settings) on the same data and test set
        copy_seeds=0 if fast else 2, gru_seeds=0 if fast else 1, copy_lengths=(5, 30), copy_steps=600,
        copy_n_train=8192, copy_n_per_length=64, copy_test_seed=1))
    c.c45 = ml_collections.ConfigDict(dict(length=20, steps=400 if fast else 600, log_every=50, alpha=0.01,
                                           num_seeds=1 if fast else 5))
    return c
