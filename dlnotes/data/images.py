"""Offline image data: scikit-learn's digits and sample photos, a user's own npz, shifted test sets.

Conventions: images are float in [0, 1], channels last (NHWC for a batch, HWC for one
image); labels are int32 class indices. A split is ``{"x": (N, H, W, C), "y": (N,)}``.
Nothing here downloads: ``load_digits`` and ``load_sample_images`` ship with scikit-learn.
"""
from __future__ import annotations

import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes.data.io import read_npz
from dlnotes.errors import ConfigError

DIGITS_SIZE = 1797  # images in scikit-learn's 8x8 digits set
SPLITS = ("train", "val", "test")


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
    """A permutation of ``range(N)`` whose every prefix is (close to) class-stratified.

    Each example gets the key ``(rank within its class, after a per-class shuffle, + u) / class count``
    with ``u ~ U[0, 1)``; sorting by the key interleaves the classes in proportion to their size.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    sort_key = np.empty(len(labels), dtype=np.float64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank = rng.permutation(len(idx))
        sort_key[idx] = (rank + rng.random(len(idx))) / len(idx)
    return np.argsort(sort_key, kind="stable")


def resize_images(x, size: Sequence[int], method: str = "linear"):
    """Resize a batch ``(N, H, W, C)`` to ``(N, *size, C)`` with ``jax.image.resize`` (antialiased), clipped to [0, 1]."""
    x = jnp.asarray(x)
    h, w = int(size[0]), int(size[1])
    out = jax.image.resize(x, (x.shape[0], h, w, x.shape[3]), method=method)
    return jnp.clip(out, 0.0, 1.0).astype(x.dtype)


def load_digits_split(
    seed: int,
    n_train: int | None = None,
    n_val: int = 180,
    n_test: int = 360,
    dtype=np.float32,
    size: Sequence[int] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """scikit-learn's 1797 real 8x8 handwritten digits, split by ``seed``.

    Split: examples are put in a stratified random order (``stratified_order``); test takes the
    first ``n_test``, val the next ``n_val``, train the next ``n_train`` (None: all the rest).
    So the test set depends only on ``(seed, n_test)``: shrinking train never changes test.
    ``x``: ``(N, 8, 8, 1)`` = pixel / 16 in [0, 1] (or ``(N, *size, 1)`` if ``size``), ``y``: int32.
    """
    from sklearn.datasets import load_digits

    for name, n in (("n_val", n_val), ("n_test", n_test)) + ((("n_train", n_train),) if n_train is not None else ()):
        if int(n) != n or n < 0:
            raise ConfigError(f"data.{name}", f"must be a non-negative integer, got {n!r}")
    rest = DIGITS_SIZE - n_val - n_test
    if n_train is None:
        n_train = rest
    if n_train > rest or rest < 0:
        raise ConfigError("data.n_train", f"n_train + n_val + n_test = {n_train + n_val + n_test} > {DIGITS_SIZE} digits")
    digits = load_digits()
    x = (digits.images / 16.0).astype(dtype)[..., None]
    y = digits.target.astype(np.int32)
    order = stratified_order(y, seed)
    bounds = np.cumsum([0, n_test, n_val, n_train])
    parts = {"test": order[bounds[0]:bounds[1]], "val": order[bounds[1]:bounds[2]], "train": order[bounds[2]:bounds[3]]}
    out = {}
    for split in SPLITS:
        xs = x[parts[split]]
        if size is not None and len(xs):
            xs = np.asarray(resize_images(xs, size)).astype(dtype)
        elif size is not None:
            xs = np.zeros((0, int(size[0]), int(size[1]), 1), dtype)
        out[split] = {"x": xs, "y": y[parts[split]]}
    return out


def load_npz(path, x_key: str = "x", y_key: str = "y", dtype=np.float32) -> dict[str, np.ndarray]:
    """A user's own images from an ``.npz``: ``x`` NHWC or NHW (a channel axis is added), ``y`` labels.

    Integer pixels are divided by their dtype's maximum (uint8 -> /255); float pixels are kept.
    Returns ``{"x": (N, H, W, C) dtype, "y": (N,) int32}``. Bad files raise ``ConfigError(path, ...)``.
    """
    path = os.fspath(path)
    arr = read_npz(path, (x_key, y_key))  # exists, readable, keys, numeric, non-empty, finite, same length
    x, y = arr[x_key], arr[y_key]
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ConfigError(path, f"{x_key!r} must be NHWC or NHW, got shape {x.shape}")
    if y.ndim != 1:
        raise ConfigError(path, f"{y_key!r} must be 1-D labels, got shape {y.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / np.iinfo(x.dtype).max
    elif not np.issubdtype(x.dtype, np.floating):
        raise ConfigError(path, f"{x_key!r} has non-numeric dtype {x.dtype}")
    if np.issubdtype(y.dtype, np.floating):
        if np.any(y != np.round(y)):
            raise ConfigError(path, f"{y_key!r} must hold integer class labels")
    elif not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(path, f"{y_key!r} has non-integer dtype {y.dtype}")
    if np.any(y < 0):
        raise ConfigError(path, f"{y_key!r} has negative labels")
    return {"x": x.astype(dtype), "y": y.astype(np.int32)}


def sample_photos(size: Sequence[int] | None = None, dtype=np.float32) -> dict[str, np.ndarray]:
    """scikit-learn's two bundled photos ``{"china": (427, 640, 3), "flower": ...}``, float in [0, 1], HWC.

    ``size=(h, w)`` resizes (PIL bilinear, antialiased when shrinking) to ``(h, w, 3)``.
    """
    from PIL import Image
    from sklearn.datasets import load_sample_images

    data = load_sample_images()
    out = {}
    for fname, img in zip(data.filenames, data.images):
        name = os.path.splitext(os.path.basename(fname))[0]
        if size is not None:
            img = np.asarray(Image.fromarray(img).resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR))
        out[name] = (img.astype(np.float32) / 255.0).astype(dtype)
    return out


@jax.jit
def shift_images(x, dx, dy, fill=0.0):
    """Shift images by whole pixels, ``out[i, j] = x[i - dy, j - dx]``, uncovered pixels = ``fill``.

    ``x``: ``(..., H, W, C)``; ``dx`` (right) and ``dy`` (down) are ints or int arrays broadcasting
    against the leading batch axes (one shift per image, e.g. a test set shifted by 1-2 pixels, C23).
    Pure jnp, no wrap-around (unlike ``jnp.roll``). Jitted, so an eager call (a shifted test set built
    once) compiles one program instead of one per operation (27 for C23's shifted digits); inlined
    under a caller's jit.
    """
    x = jnp.asarray(x)
    h, w = x.shape[-3], x.shape[-2]
    batch = x.shape[:-3]
    dx = jnp.broadcast_to(jnp.asarray(dx, jnp.int32), batch)[..., None, None]
    dy = jnp.broadcast_to(jnp.asarray(dy, jnp.int32), batch)[..., None, None]
    rows = jnp.arange(h)[:, None] - dy  # (..., H, 1) source row of each output row
    cols = jnp.arange(w)[None, :] - dx  # (..., 1, W)
    valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    r = jnp.clip(rows, 0, h - 1)
    c = jnp.clip(cols, 0, w - 1)
    flat = x.reshape((-1, h, w, x.shape[-1]))
    rr = jnp.broadcast_to(r, batch + (h, w)).reshape((-1, h, w))
    cc = jnp.broadcast_to(c, batch + (h, w)).reshape((-1, h, w))
    gathered = jax.vmap(lambda im, a, b: im[a, b])(flat, rr, cc).reshape(x.shape)
    return jnp.where(jnp.broadcast_to(valid, batch + (h, w))[..., None], gathered, jnp.asarray(fill, x.dtype))


def random_shift_images(key, x, min_shift: int = 1, max_shift: int = 2, fill=0.0):
    """Each image shifted by ``(dx, dy)`` with ``min_shift <= max(|dx|, |dy|) <= max_shift`` (uniform over that ring).

    The shifted test set of C23: the same digits, moved 1-2 pixels in a random direction.
    """
    offs = [(a, b) for a in range(-max_shift, max_shift + 1) for b in range(-max_shift, max_shift + 1)
            if min_shift <= max(abs(a), abs(b)) <= max_shift]
    if not offs:
        raise ConfigError("data.max_shift", f"no shift with {min_shift} <= max(|dx|,|dy|) <= {max_shift}")
    return _random_shift(key, jnp.asarray(x), jnp.asarray(offs, jnp.int32), fill)


@jax.jit
def _random_shift(key, x, offs, fill):
    pick = jax.random.randint(key, (x.shape[0],), 0, offs.shape[0])
    return shift_images(x, offs[pick, 0], offs[pick, 1], fill)
