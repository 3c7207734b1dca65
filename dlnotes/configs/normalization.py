"""Normalization: GN/LN/IN identities, BN at eval, BN vs GN across batch sizes, weight standardization
(claims C24, C25, C27).

    python scripts/reproduce.py --only=C24,C25,C27 --workdir=/tmp/norm
    python scripts/train.py --config=configs/normalization.py:fast --workdir=/tmp/norm1 --config.batch_size=2
    python scripts/sweep.py --config=configs/normalization.py:fast --workdir=/tmp/norms --sweep="seed=0:4"
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "normalization"
    c.seed = 0
    # the run of scripts/train.py: the BN digits CNN at batch 32
    c.num_steps = 600
    c.log_every = 100
    c.batch_size = 32
    c.sampling = "epoch"
    c.data = ml_collections.ConfigDict(dict(seed=0, n_train=0, n_val=180, n_test=360))  # n_train 0 = all the rest
    c.model = ml_collections.ConfigDict(dict(
        image_size=[8, 8], in_channels=1, channels=[16, 32], kernel_size=3, pool="max", norm="batch",
        groups=4, dense=64, dense_norm="batch", num_classes=10, bn_momentum=0.9))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.c24 = ml_collections.ConfigDict(dict(atol_float64=1e-12))
    # C25: same epochs at every batch size; BN gap ≥ 3 points per seed, |GN gap| ≤ 1, GN − BN at 2 ≥ 3
    c.c25 = ml_collections.ConfigDict(dict(
        batch_sizes=[2, 32] if fast else [2, 4, 8, 16, 32], epochs=10, n_train=1000,
        num_seeds=3 if fast else 5, points=3.0, gn_tolerance=1.0))
    c.c27 = ml_collections.ConfigDict(dict(scales=[0.1, 0.5, 2.0, 10.0, 1000.0], rtol=1e-6))
    return c
