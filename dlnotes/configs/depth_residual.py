"""Plain nets get worse with depth, residual nets do not; a ConvNeXt-style net trains on digits (C29, C30).

    python scripts/reproduce.py --only=C29,C30 --workdir=/tmp/depth
    python scripts/train.py --config=configs/depth_residual.py:fast --workdir=/tmp/depth1
    python scripts/train.py --config=configs/depth_residual.py:fast --workdir=/tmp/depth2 --config.model.name=plain
    python scripts/train.py --config=configs/depth_residual.py:fast --workdir=/tmp/depth3 --config.model.name=convnext \
        --config.num_steps=600
    python scripts/sweep.py --config=configs/depth_residual.py:fast --workdir=/tmp/depths --sweep="seed=0:4"

Data: scikit-learn's digits (360 test, 180 val, 1257 train; ``data.seed``), flattened to 64
inputs for the plain/residual nets, 8×8×1 images for the conv nets. ``model.name``: "plain"
(h ← relu(LN(Wh + b))), "residual" (pre-LN h ← h + W₂ relu(W₁ LN(h))), "convnext" or "resnet".
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "depth_residual"
    c.seed = 0
    # the plain run of scripts/train.py: C29's protocol for one net
    c.num_steps = 500
    c.batch_size = 64
    c.sampling = "epoch"
    c.log_every = 50
    c.data = ml_collections.ConfigDict(dict(seed=0, n_val=180, n_test=360))
    c.model = ml_collections.ConfigDict(dict(
        name="residual",                 # plain | residual | convnext | resnet
        depth=32, width=128, activation="relu", num_classes=10, image_size=[8, 8], in_channels=1,
        drop_path=0.0,                   # stochastic depth rate of residual branches (traced)
        zero_init_branch=True,           # residual: W₂ = 0 at init, blocks start as the identity
        # convnext
        dims=[16, 32], depths=[1, 1], kernel_size=7, expansion=4, layer_scale=0.0, stem_kernel=3,
        # resnet
        channels=[16, 32], blocks=1, norm="batch",
    ))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    c.c29 = ml_collections.ConfigDict(dict(
        depths=[8, 32], num_seeds=2 if fast else 5, num_steps=500, batch_size=64, grad_batch=256))
    c.c30 = ml_collections.ConfigDict(dict(
        num_seeds=2 if fast else 5, epochs=10 if fast else 30, batch_size=64, eval_every_epochs=5))
    return c
