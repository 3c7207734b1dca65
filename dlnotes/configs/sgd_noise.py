"""SGD's noise ball and sampling schemes (claims C3, C4).

    python scripts/reproduce.py --only=C3,C4 --workdir=/tmp/sgd
    python scripts/train.py --config=configs/sgd_noise.py:fast --workdir=/tmp/sgd1 --config.batch_size=1
    python scripts/sweep.py --config=configs/sgd_noise.py:fast --workdir=/tmp/sgds \
        --sweep="optimizer.learning_rate=0.002:0.08:6:log;seed=0:4"
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "sgd_noise"
    c.seed = 0
    # the plain run of scripts/train.py: minibatch SGD on the noisy regression
    c.num_steps = 2000
    c.log_every = 10
    c.batch_size = 1
    c.sampling = "replacement"
    # data.npz: a user's own regression data (arrays x (n, d), y (n,)) for scripts/train.py;
    # the claims C3/C4 always use the generated problem.
    c.data = ml_collections.ConfigDict(dict(seed=0, n=2000, d=5, noise=0.5, npz=""))
    c.model = ml_collections.ConfigDict(dict(init_scale=0.0))
    c.optimizer = default_optimizer_config()
    c.optimizer.learning_rate = 0.02
    c.c3 = ml_collections.ConfigDict(dict(
        eta_fractions=[0.0125, 0.025, 0.05, 0.1, 0.2], num_seeds=4 if fast else 8,
        num_steps=20000 if fast else 40000, log_every=10, decay_steps=100))
    c.c4 = ml_collections.ConfigDict(dict(
        n=4096, batch_size=16, epochs=10 if fast else 30, learning_rate=0.05, num_seeds=3 if fast else 5,
        log_every=32))
    return c
