"""Least squares and ridge: closed forms, minimum norm, early stopping as ridge (C9–C13).

    python scripts/reproduce.py --only=C9,C10,C11,C12,C13 --workdir=/tmp/ridge
    python scripts/train.py --config=configs/ridge.py:fast --workdir=/tmp/ridge1    # GD on the underdetermined problem
    python scripts/sweep.py --config=configs/ridge.py:fast --workdir=/tmp/ridges \
        --sweep="model.init_scale=0,1;seed=0:3"
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "ridge"
    c.seed = 0
    # the plain run (scripts/train.py): GD from w0 = init_scale·N(0, I) on an underdetermined problem (C11)
    c.num_steps = 1000
    c.log_every = 10
    c.batch_size = 0
    c.data = ml_collections.ConfigDict(dict(seed=0, n=20, d=50))
    c.model = ml_collections.ConfigDict(dict(init_scale=0.0))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 0.1   # < 2/λ_max(H) ≈ 0.3 here; run() uses η = 1/λ_max
    c.c9 = ml_collections.ConfigDict(dict(n=50, d=20, kappa=1e4, lambdas=[0.0, 1e-4, 1e-2, 1.0, 10.0, 1e3]))
    c.c11 = ml_collections.ConfigDict(dict(num_seeds=3 if fast else 5, eta_lam_max=1.0))
    # early stopping vs ridge: x ~ N(0, diag(s²)), s² log-spaced in [s2_min, 1], y = xᵀw + noise·ε
    c.c12 = ml_collections.ConfigDict(dict(n=60, n_val=2000, d=30, s2_min=1e-3, noise=1.0, data_seed=1,
                                           num_steps=20000, log_every=10, eta_lam_max=1.0, num_lambdas=200))
    c.c13 = ml_collections.ConfigDict(dict(n=50, d=10, noise=0.1, lam=1e-2, num_sigma=13, sigma_min_lo=1e-6,
                                           n_test=2000, input_noise=0.01, ridge_factor=2.0))
    return c
