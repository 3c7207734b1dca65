"""CNN vs a matched MLP on scikit-learn's digits; random shifts vs a shifted test set (claim C23).

    python scripts/reproduce.py --only=C23 --workdir=/tmp/digits
    python scripts/train.py --config=configs/digits_cnn.py:fast --workdir=/tmp/digits1
    python scripts/train.py --config=configs/digits_cnn.py:fast --workdir=/tmp/digits2 --config.model.name=mlp
    python scripts/train.py --config=configs/digits_cnn.py:fast --workdir=/tmp/digits3 --config.augment.enabled=False
    python scripts/sweep.py --config=configs/digits_cnn.py:fast --workdir=/tmp/digitss --sweep="seed=0:5"

Data: 1797 8×8 digits, stratified split by ``data.seed`` (360 test, 180 val, the rest =
1257 train); ``shifted`` = the test set with every image moved 1–2 pixels
(``random_shift_images``, fixed by ``data.shift_seed``). ``model.name``: "cnn" or "mlp"
(the MLP's width matches the CNN's parameter count). ``augment.enabled``: random ±1-pixel
integer shifts of each training image, on the fly inside the compiled step.
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config

N_TRAIN = 1797 - 180 - 360


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "digits_cnn"
    c.seed = 0
    c.batch_size = 32
    c.sampling = "epoch"
    c.epochs = 30
    # Derived lazily (ml_collections field references), so --config.epochs / --config.batch_size on the
    # command line move them too; an explicit --config.num_steps still wins.
    steps_per_epoch = N_TRAIN // c.get_ref("batch_size")
    c.log_every = 5 * steps_per_epoch              # one evaluation every 5 epochs
    c.num_steps = c.get_ref("epochs") * steps_per_epoch
    c.data = ml_collections.ConfigDict(dict(seed=0, n_val=180, n_test=360, min_shift=1, max_shift=2,
                                            shift_seed=1))
    c.model = ml_collections.ConfigDict(dict(
        name="cnn",            # "cnn" | "mlp"
        channels=[16, 32], kernel_size=3, pool="max", pool_layers=[1], norm="none", dense=0, dense_norm="none",
        num_classes=10, image_size=[8, 8], in_channels=1, dropout=0.0,
        depth=1,               # MLP hidden layers; its width matches the CNN's parameter count
    ))
    c.augment = ml_collections.ConfigDict(dict(enabled=True, max_shift=1.0))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
    # fast: 3 seeds (every seed had CNN − MLP ≥ +0.56 points and shift gain ≥ +31 in the 5-seed run)
    c.check = ml_collections.ConfigDict(dict(num_seeds=3 if fast else 5))
    return c
