"""Dropout, stochastic depth, label smoothing (claims C31, C32, C33).

    python scripts/reproduce.py --only=C31,C32,C33 --workdir=/tmp/reg
    python scripts/train.py --config=configs/regularization.py:fast --workdir=/tmp/reg1 --config.model.dropout=0.5
    python scripts/sweep.py --config=configs/regularization.py:fast --workdir=/tmp/regs \
        --sweep="model.dropout=0,0.25,0.5;seed=0:3"
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "regularization"
    c.seed = 0
    # the run of scripts/train.py: an MLP on 200 digits (or MNIST-1D) with traced dropout / label smoothing
    c.num_steps = 1500
    c.log_every = 100
    c.batch_size = 32
    c.sampling = "epoch"
    c.data = ml_collections.ConfigDict(dict(dataset="digits", seed=0, n_train=200, n_test=360,
                                            mnist1d_samples=4000))
    c.model = ml_collections.ConfigDict(dict(in_channels=1, num_classes=10, width=256, depth=1, dropout=0.0))
    c.train = ml_collections.ConfigDict(dict(label_smoothing=0.0))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    # C31: Monte Carlo ≤ 1e-2; train − test gap over rates × seeds (one grid per dataset), reported
    c.c31 = ml_collections.ConfigDict(dict(
        rates=[0.0, 0.25, 0.5], num_seeds=3 if fast else 5, mc_samples=100000, mc_rtol=1e-2,
        num_steps=dict(digits=800 if fast else 3000, mnist1d=1500 if fast else 4000)))
    # C32: a residual net at init, per-example block drops, block-wise Monte Carlo ≤ 1e-2
    c.c32 = ml_collections.ConfigDict(dict(seed=0, depth=8, width=64, batch=64, drop_path=0.3,
                                           mc_samples=30000, mc_rtol=1e-2))
    # C33: ε = 0.1 gap within 5% of log((1−ε+ε/K)/(ε/K)) after 2k steps; one-hot growth 8k/2k ≥ 1.2
    c.c33 = ml_collections.ConfigDict(dict(
        epsilon=0.1, n_train=500, batch_size=64, num_steps=8000, log_every=500, chunk_steps=500,
        early_step=2000, num_seeds=3 if fast else 5, target_rtol=0.05, min_growth=1.2))
    return c
