"""Standardized vs raw inputs for GD on linear regression (C26).

    python scripts/reproduce.py --only=C26 --workdir=/tmp/std
    python scripts/train.py --config=configs/standardization.py:fast --workdir=/tmp/std1
    python scripts/train.py --config=configs/standardization.py:fast --workdir=/tmp/std2 \
        --config.data.standardize=False --config.optimizer.learning_rate=1e-4
"""
import ml_collections
import numpy as np

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "standardization"
    c.seed = 0
    c.num_steps = 10000          # the claim's budget for raw inputs (cheap: d = 6)
    c.log_every = 100
    c.batch_size = 0
    # raw features x = offset + scale·N(0, 1); y = z·w + intercept + noise·ε (z the unscaled draw);
    # the model is linear in [x, 1] (the intercept is a constant feature)
    c.data = ml_collections.ConfigDict(dict(seed=0, n=200, n_val=200, d=5, offset=100.0, scale=50.0,
                                            intercept=1.0, noise=0.1, standardize=True))
    c.model = ml_collections.ConfigDict(dict(init_scale=0.0))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 0.5   # < 2/λ_max ≈ 1 for standardized inputs
    n_eta = 8 if fast else 16
    c.sweep = ml_collections.ConfigDict(dict(
        eta_fractions=[float(f) for f in np.concatenate([np.geomspace(0.05, 0.9, n_eta - 2), [0.95, 0.99]])],
        target=1e-3, budget_standardized=100))
    return c
