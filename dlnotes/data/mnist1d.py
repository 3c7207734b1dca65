"""MNIST-1D (Greydanus 2020): 40-sample procedural 1-D digits, generated locally.

Only ``mnist1d.data.make_dataset`` is used; never ``get_dataset`` (it downloads a pickle).
``make_dataset`` reseeds NumPy's and Python's global RNGs; ``load_mnist1d`` restores them afterwards.
"""
from __future__ import annotations

import random

import numpy as np

from dlnotes.errors import ConfigError

SEQ_LEN = 40
NUM_CLASSES = 10


def load_mnist1d(seed: int = 42, num_samples: int = 5000, n_val: int = 0, train_split: float = 0.8,
                 dtype=np.float32) -> dict[str, dict[str, np.ndarray]]:
    """MNIST-1D splits ``{"train", "val", "test"}``, each ``{"x": (N, 40, 1) NWC, "y": (N,) int32}``.

    ``make_dataset`` with ``seed`` and ``num_samples`` (``num_samples // 10`` per class, standardized
    to mean 0 / std 1 over the whole set) splits train/test at ``train_split``; ``val`` is the last
    ``n_val`` examples of that train part (the data are already shuffled).
    """
    if int(num_samples) != num_samples or num_samples < 10:
        raise ConfigError("data.num_samples", f"must be an integer >= 10, got {num_samples!r}")
    if not 0.0 < train_split < 1.0:
        raise ConfigError("data.train_split", f"must be in (0, 1), got {train_split!r}")
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(num_samples)
    args.seed = int(seed)
    args.train_split = float(train_split)
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x_tr, y_tr = data["x"], data["y"]
    if not 0 <= n_val < len(y_tr):
        raise ConfigError("data.n_val", f"must be in [0, {len(y_tr)}) for {len(y_tr)} training examples, got {n_val!r}")
    cut = len(y_tr) - n_val

    def split(x, y):
        return {"x": np.asarray(x, dtype)[..., None], "y": np.asarray(y, np.int32)}

    return {"train": split(x_tr[:cut], y_tr[:cut]), "val": split(x_tr[cut:], y_tr[cut:]),
            "test": split(data["x_test"], data["y_test"])}
