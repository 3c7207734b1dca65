"""Attention, position encodings, transformers on generated sequence tasks (claims C42–C45).

    python scripts/reproduce.py --only=C42,C43,C44,C45 --workdir=/tmp/tf
    python scripts/train.py --config=configs/transformer.py:fast --workdir=/tmp/tf1                 # reversal 10
    python scripts/train.py --config=configs/transformer.py:fast --workdir=/tmp/tf2 --config.model.norm=rms \
        --config.data.lengths='(20, 20)'
    python scripts/train.py --config=configs/transformer.py:fast --workdir=/tmp/tf3 --config.task=copy \
        --config.data.lengths='(5, 30)' --config.data.max_len=30
    python scripts/sweep.py --config=configs/transformer.py:fast --workdir=/tmp/tfs --sweep="seed=0:3"

``task``: "reversal" | "copy" (encoder–decoder, ``dlnotes.data.sequences``, padded to ``data.max_len``)
| "char_lm" (see configs/char_lm.py). The model: 2 + 2 pre-norm blocks, d = 64, 4 heads, learned
positions, bias-free linear layers; Adam 3e-3 (β₂ 0.98, 20 warm-up steps, cosine to 3e-5), batch 64 of
20,000 training pairs, 1000 steps (C44's reversal 10: its own 300-step run, batch 128, constant 3e-3).
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "transformer"
    c.task = "reversal"
    c.seed = 0
    c.num_steps = 1000
    c.log_every = 100
    c.batch_size = 64
    c.sampling = "replacement"
    c.data = ml_collections.ConfigDict(dict(seed=0, n_train=20000, n_val=256, lengths=(10, 10), max_len=20, vocab=10))
    c.model = ml_collections.ConfigDict(dict(width=64, num_heads=4, num_layers=2, mlp_ratio=4, norm="layer",
                                             posenc="learned", use_bias=False))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 3e-3
    c.optimizer.b2 = 0.98
    c.optimizer.schedule.name = "warmup_cosine"
    c.optimizer.schedule.warmup_steps = 20
    c.optimizer.schedule.alpha = 0.01
    c.c42 = ml_collections.ConfigDict(dict(trials=10, num_keys=32, dim=16, value_dim=8, num_taus=40,
                                           tau_max_over_gap=10.0, tau_min_over_gap=1e-3))
    c.c43 = ml_collections.ConfigDict(dict(dim=512, positions=128, shifts=(1, 7, 50, 200), norm_ratio=1.0,
                                           ratio_grid=(0.25, 0.5, 1.0, 1.5, 2.0, 4.0), num_seeds=5))
    c.c44 = ml_collections.ConfigDict(dict(length=10, steps=300, log_every=50, batch_size=128, schedule="constant",
                                           copy_lengths=(5, 30),
                                           copy_seeds=0 if fast else 2))
    c.c45 = ml_collections.ConfigDict(dict(length=20))
    c.check = ml_collections.ConfigDict(dict(num_seeds=2 if fast else 5))
    return c
