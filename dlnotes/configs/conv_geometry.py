"""Convolution geometry, equivariance, pooling invariance, depthwise parameters (claims C19–C22).

    python scripts/reproduce.py --only=C19,C20,C21,C22 --workdir=/tmp/conv
    python scripts/train.py --config=configs/conv_geometry.py:fast --workdir=/tmp/conv1 --config.model.pool=subsample
    python scripts/sweep.py --config=configs/conv_geometry.py:fast --workdir=/tmp/convs --sweep="seed=0:4"
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "conv_geometry"
    c.seed = 0
    # the run of scripts/train.py (and C21's trained nets): a digits CNN, Adam, batch 32
    c.num_steps = 600 if fast else 3000
    c.log_every = 100
    c.batch_size = 32
    c.sampling = "epoch"
    c.data = ml_collections.ConfigDict(dict(seed=0, n_train=0, n_val=180, n_test=360))  # n_train 0 = all the rest
    c.model = ml_collections.ConfigDict(dict(
        image_size=[8, 8], in_channels=1, channels=[16, 32], kernel_size=3, pool="max", norm="none",
        dense=0, num_classes=10))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    # C19: receptive-field growth over 1..rf_depth blocks; C20: shift and photo size
    c.rf_depth = 5
    c.shift = (3, 2)
    c.equivariance_size = 48
    c.equivariance_atol = 1e-6
    # C21: pooling invariance (5-point margins), seeds of the trained CNNs (one vmapped grid per model)
    c.c21 = ml_collections.ConfigDict(dict(num_seeds=3 if fast else 5, random_channels=16, margin=0.05))
    # C22: depthwise vs dense widths, and the block width for ConvNeXt vs ResNet
    c.c22 = ml_collections.ConfigDict(dict(channels=[8, 32, 96], block_channels=96))
    return c
