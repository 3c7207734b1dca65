"""A linear autoencoder x → BAx trained by GD finds the PCA subspace (claim C47).

    python scripts/reproduce.py --only=C47 --workdir=/tmp/pca_ae
    python scripts/train.py --config=configs/pca_autoencoder.py:fast --workdir=/tmp/pca_ae1
    python scripts/train.py --config=configs/pca_autoencoder.py:fast --workdir=/tmp/pca_ae2 --config.model.tied=True
    python scripts/sweep.py --config=configs/pca_autoencoder.py:fast --workdir=/tmp/pca_aes --sweep="seed=0:5"

Data: all 1797 digits x/16, flattened to 64 and centred (their mean subtracted). ``model``: a
linear autoencoder with bottleneck ``code`` = k (``tied``: B = Aᵀ), full-batch Adam on
mean‖x − BAx‖². Every ``log_every`` steps the engine records the largest principal angle of the
decoder's columns and of the encoder's rows to scikit-learn's top-k PCA subspace.
``check.weight_decay``: the L2 decay of the "decayed" variant; ``mlp``: the nonlinear autoencoder
of the reconstruction figure (reported, not claimed).
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "pca_autoencoder"
    c.seed = 0
    c.num_steps = 500
    c.log_every = 20
    c.batch_size = 0          # full batch
    c.sampling = "epoch"
    c.data = ml_collections.ConfigDict(dict(seed=0))
    c.model = ml_collections.ConfigDict(dict(name="linear", input_dim=64, code=10, tied=False,
                                             hidden=[128], activation="relu"))
    c.train = ml_collections.ConfigDict(dict(corruption="none", noise_std=0.2, mask_ratio=0.5, patch=2))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 2e-2
    c.check = ml_collections.ConfigDict(dict(
        num_seeds=3 if fast else 5,
        weight_decay=1e-3,     # the decayed variant's L2 (added to the gradient before Adam)
    ))
    c.mlp = ml_collections.ConfigDict(dict(hidden=[128], num_steps=400 if fast else 2000, batch_size=128,
                                           learning_rate=2e-3))
    return c
