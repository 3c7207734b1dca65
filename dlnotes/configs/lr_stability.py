"""GD's learning rate across the stability threshold (claims C1, C2, C5).

    python scripts/reproduce.py --only=C1,C2,C5 --workdir=/tmp/lr
    python scripts/train.py --config=configs/lr_stability.py:fast --workdir=/tmp/lr1 --config.optimizer.learning_rate=1.5
    python scripts/sweep.py --config=configs/lr_stability.py:fast --workdir=/tmp/lrs \
        --sweep="optimizer.learning_rate=0.1:2.4:12;seed=0:3"
"""
import ml_collections
import numpy as np

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "lr_stability"
    c.seed = 0
    c.num_steps = 200 if fast else 500
    c.log_every = 1
    c.batch_size = 0
    c.data = ml_collections.ConfigDict(dict(seed=0, n=200, d=20, kappa=1000.0, noise=0.5))
    c.model = ml_collections.ConfigDict(dict(init_scale=1.0))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 1.0
    ratios = np.concatenate([np.geomspace(0.02, 0.45, 8), np.linspace(0.5, 0.96, 8 if fast else 16),
                             [0.98, 1.0, 1.02], np.geomspace(1.04, 1.6, 4 if fast else 8)])
    c.sweep = ml_collections.ConfigDict(dict(eta_over_threshold=[float(r) for r in ratios],
                                             num_seeds=3 if fast else 5))
    return c
