"""Initialization: activation variance through depth, and bias initializations (C14, C15).

    python scripts/reproduce.py --only=C14,C15 --workdir=/tmp/initvar
    python scripts/train.py --config=configs/init_variance.py:fast --workdir=/tmp/initvar1 \
        --config.model.bias_init=small_random
    python scripts/sweep.py --config=configs/init_variance.py:fast --workdir=/tmp/initvars --sweep="seed=0:5"
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "init_variance"
    c.seed = 0
    # C15 (and the plain run of scripts/train.py): relu_elbows' elbow task with one bias policy
    c.num_steps = 2000 if fast else 5000
    c.log_every = 100
    c.batch_size = 0
    c.data = ml_collections.ConfigDict(dict(n=256, n_val=1001, lo=-2.0, hi=2.0, freq=3.0, noise=0.0))
    c.model = ml_collections.ConfigDict(dict(width=64, weight_init="xavier_normal", bias_init="zeros",
                                             init_scale=1.0))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 3e-3
    c.c14 = ml_collections.ConfigDict(dict(width=256, depth=50, batch=256, seeds=[0, 1, 2, 3, 4],
                                           he_width=2048, he_batch=64, he_seeds=[0, 1, 2] if fast else [0, 1, 2, 3, 4],
                                           tanh_fit_from=5))
    c.c15 = ml_collections.ConfigDict(dict(
        bias_inits=["xavier_fan_in_plus_one", "zeros", "constant_0.01", "small_random"], num_seeds=5))
    return c
