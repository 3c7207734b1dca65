"""Adam's evenly sized steps on a badly scaled quadratic; AdamW vs L2; schedules (claim C18).

    python scripts/reproduce.py --only=C18 --workdir=/tmp/adam
    python scripts/train.py --config=configs/adaptive.py:fast --workdir=/tmp/adam1 --config.optimizer.name=sgd \
        --config.optimizer.learning_rate=1.0
    python scripts/sweep.py --config=configs/adaptive.py:fast --workdir=/tmp/adams \
        --sweep="optimizer.learning_rate=0.001:0.1:6:log;seed=0:2"

Problem: f(x) = ½ Σ λ_i (x_i − x*_i)², λ log-spaced over [λ_max/κ, λ_max], λ_max = 1; x is a
(dim, 1) kernel (so weight decay's mask applies); x0 = model.init_scale · (random ±1).
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "adaptive"
    c.seed = 0
    # the plain run of scripts/train.py: Adam from x0 = ±1 towards x* = 0
    c.num_steps = 2000 if fast else 5000
    c.log_every = 1
    c.batch_size = 0
    c.data = ml_collections.ConfigDict(dict(seed=0, dim=10, kappa=100.0))
    c.model = ml_collections.ConfigDict(dict(init_scale=1.0))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 0.01
    c.check = ml_collections.ConfigDict(dict(
        num_seeds=2 if fast else 5,   # sign patterns of x0
        window=100,                   # Adam's per-coordinate step ratio over the first `window` steps
        gd_learning_rate=1.0,         # GD's η (1/λ_max)
        weight_decay=0.1,             # λ of AdamW (decoupled) and of Adam with L2 in the loss
    ))
    return c
