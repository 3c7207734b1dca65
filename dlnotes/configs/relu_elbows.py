"""One-hidden-layer ReLU nets on a 1-D target: elbows, width, Cauchy elbows, dead ReLUs (C6, C7, C8).

    python scripts/reproduce.py --only=C6,C7,C8 --workdir=/tmp/elbows
    python scripts/train.py --config=configs/relu_elbows.py:fast --workdir=/tmp/elbows1 --config.model.width=32
    python scripts/sweep.py --config=configs/relu_elbows.py:fast --workdir=/tmp/elbowss \
        --sweep="optimizer.learning_rate=0.001:0.01:3:log;seed=0:3"
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    del arg   # fast and full are the same protocol (see num_steps)
    c = ml_collections.ConfigDict()
    c.experiment = "relu_elbows"
    c.seed = 0
    # C7's protocol: 10k full-batch Adam steps, in both profiles (41 s alone, 63 s beside another
    # job): its last-step verdict is
    # chaotic (relu_elbows.CHAOTIC), so a shorter fast profile could not promise the full one's verdict
    c.num_steps = 10000
    c.log_every = 100
    c.batch_size = 0
    # target y = sin(freq·x) on an even grid of [lo, hi]; validation on a finer grid of the same interval
    c.data = ml_collections.ConfigDict(dict(n=256, n_val=1001, lo=-2.0, hi=2.0, freq=3.0, noise=0.0))
    # N(0,1) weights and biases: the notes' setting, elbows −b/w are standard Cauchy
    c.model = ml_collections.ConfigDict(dict(width=64, weight_init="normal", bias_init="normal", init_scale=1.0))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 3e-3
    c.c6 = ml_collections.ConfigDict(dict(h=1e-3, half_width=4.0))   # second differences on a float64 grid
    c.c7 = ml_collections.ConfigDict(dict(widths=[4, 8, 16, 32, 64, 128, 256], num_seeds=5))
    c.c8 = ml_collections.ConfigDict(dict(
        ks_width=2000, ks_seeds=[0, 1, 2, 3, 4],
        # (weight init, bias init) schemes whose dead-ReLU fraction at init is reported
        schemes=["normal/normal", "he_normal/normal", "he_normal/zeros", "xavier_normal/small_random",
                 "xavier_normal/xavier_fan_in_plus_one", "he_normal/constant_0.01"],
        scheme_width=256, scheme_seeds=20))
    return c
