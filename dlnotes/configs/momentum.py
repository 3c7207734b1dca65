"""Momentum as a low-pass filter; heavy ball vs Nesterov on quadratics (claims C16, C17).

    python scripts/reproduce.py --only=C16,C17 --workdir=/tmp/mom
    python scripts/train.py --config=configs/momentum.py:fast --workdir=/tmp/mom1 --config.optimizer.name=nesterov
    python scripts/sweep.py --config=configs/momentum.py:fast --workdir=/tmp/moms \
        --sweep="optimizer.learning_rate=0.2:4:12:log;optimizer.momentum=0,0.3,0.6,0.8,0.9"

η is in units of 1/λ_max (the quadratics have λ_max = 1).
"""
import ml_collections
import numpy as np

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "momentum"
    c.seed = 0
    # the plain run of scripts/train.py: heavy ball at the untuned default on the κ = 100 quadratic
    c.num_steps = 1500 if fast else 6000
    c.log_every = 1
    c.batch_size = 0
    c.data = ml_collections.ConfigDict(dict(seed=0, dim=20, kappa=100.0, rotate=True))
    c.model = ml_collections.ConfigDict(dict(init_scale=1.0))  # x0 = init_scale · N(0, I) per seed
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "momentum"
    c.optimizer.learning_rate = 1.0  # 1/λ_max
    c.optimizer.momentum = 0.9
    gd_etas = np.concatenate([np.geomspace(0.05, 1.5, 16), np.linspace(1.55, 1.99, 12)])
    etas = np.geomspace(0.25, 4.0, 22 if fast else 36)
    betas = 1.0 - np.geomspace(1.0, 0.04, 18 if fast else 30)  # 0 ... 0.96, denser near 1
    c.sweep = ml_collections.ConfigDict(dict(
        kappas=[10.0, 30.0, 100.0, 300.0] + ([] if fast else [1000.0]),
        gd_learning_rates=[float(v) for v in gd_etas],
        learning_rates=[float(v) for v in etas],
        momenta=[float(v) for v in betas],
        num_seeds=2 if fast else 5,
        gd_num_steps=1000 if fast else 4000,       # GD's tuned steps grow ∝ κ (≈ 740 at κ = 300)
        momentum_num_steps=400 if fast else 1000,  # heavy ball / Nesterov: ∝ √κ
        # reached tolerance at step t: (f(x_s) − f*) ≤ tol · (f(x_0) − f*) for every s ≥ t
        tolerance=1e-8,
    ))
    # C17: our transforms vs optax's through the engine (short runs, x as a (dim, 1) kernel so AdamW decays it)
    c.match = ml_collections.ConfigDict(dict(num_steps=100, adam_learning_rate=0.05, weight_decay=0.1))
    # the 2-D trajectory figure
    c.picture = ml_collections.ConfigDict(dict(kappa=20.0, num_steps=60, gd_learning_rate=1.9, momentum=0.5))
    return c
