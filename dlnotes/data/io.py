"""A user's own data from ``.npz`` files, checked before anything compiles."""
from __future__ import annotations

import os

import numpy as np

from dlnotes.errors import ConfigError


def read_npz(path, keys=("x", "y")) -> dict[str, np.ndarray]:
    """Arrays ``keys`` of an ``.npz``: present, numeric, non-empty, finite, same length.

    Any problem raises ``ConfigError(path, ...)`` (one line naming the file).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(path, "no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            have = list(f.keys())
            missing = [k for k in keys if k not in have]
            if missing:
                raise ConfigError(path, f"no array {missing[0]!r} (has: {', '.join(have) or 'nothing'})")
            out = {k: np.asarray(f[k]) for k in keys}
    except ConfigError:
        raise
    except Exception as e:  # not a zip/npz, truncated, pickled objects, ...
        raise ConfigError(path, f"cannot read as .npz ({type(e).__name__}: {e})") from None
    n = None
    for k, v in out.items():
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
            raise ConfigError(path, f"{k!r} has non-numeric dtype {v.dtype}")
        if v.ndim == 0 or len(v) == 0 or v.size == 0:
            raise ConfigError(path, f"{k!r} is empty (shape {v.shape})")
        if np.issubdtype(v.dtype, np.floating) and not np.all(np.isfinite(v)):
            raise ConfigError(path, f"{k!r} contains NaN or inf")
        if n is not None and len(v) != n:
            raise ConfigError(path, f"{keys[0]!r} has {n} rows but {k!r} has {len(v)}")
        n = len(v)
    return out


def load_regression_npz(path, dtype=np.float32) -> dict[str, np.ndarray]:
    """``{"x": (n, d), "y": (n,)}`` for least-squares experiments (x 1-D is taken as d = 1)."""
    arr = read_npz(path, ("x", "y"))
    x, y = arr["x"].astype(dtype), arr["y"].astype(dtype)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or y.ndim != 1:
        raise ConfigError(path, f"expected x (n, d) and y (n,), got {x.shape} and {y.shape}")
    return {"x": x, "y": y}
