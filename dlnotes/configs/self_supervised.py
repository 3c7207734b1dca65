"""Masked-reconstruction pretraining and PCA for few labels; n < d and d ≫ n (claims C49, C50).

    python scripts/reproduce.py --only=C49,C50 --workdir=/tmp/ssl
    python scripts/train.py --config=configs/self_supervised.py:fast --workdir=/tmp/ssl1
    python scripts/train.py --config=configs/self_supervised.py:fast --workdir=/tmp/ssl2 --config.train.corruption=noise

Pretraining (what ``scripts/train.py`` trains): an MLP autoencoder 64 → ``hidden`` → ``code`` →
``hidden`` → 64 on all 1797 digits (x/16, unlabelled) with ``train.corruption`` = "mask": a
``train.mask_ratio`` share of the 2×2 patches zeroed at the input, the loss on those pixels only.
Few labels: a logistic probe (scikit-learn's C = ``probe.C``) on ``labels_per_class`` examples of
each class from the training split, scored on the 360 test digits, ``probe.num_draws`` label draws.
``data.noise_features`` pure N(0, ``data.noise_std``²) features padded to every digit for C50's d ≫ n.
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "self_supervised"
    c.seed = 0
    c.num_steps = 1500
    c.log_every = 100
    c.batch_size = 128
    c.sampling = "epoch"
    c.data = ml_collections.ConfigDict(dict(seed=0, n_test=360, noise_features=1000, noise_std=0.3, noise_seed=1))
    c.model = ml_collections.ConfigDict(dict(name="mlp", input_dim=64, hidden=[256], code=32, activation="relu"))
    c.train = ml_collections.ConfigDict(dict(corruption="mask", noise_std=0.2, mask_ratio=0.5, patch=2))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 2e-3
    c.probe = ml_collections.ConfigDict(dict(
        C=1.0, num_steps=500,
        labels_per_class=[1, 5] if fast else [1, 3, 5, 10],
        num_draws=5 if fast else 10,
        pca_dim=10,
        c50_labels_per_class=3,    # 30 labels: n = 30 < d = 64
    ))
    return c
