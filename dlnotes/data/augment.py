"""Data augmentation as pure, jittable functions that run on the fly inside a compiled step.

Images are float in [0, 1], channels last: one image ``(H, W, C)``, a batch ``(N, H, W, C)``.
- deterministic ops ``op(image, ...) -> image``: ``autocontrast``, ``rotate``, ``translate``, ``hflip``,
  ``posterize``, ``cutout_at``;
- per-example random ops ``op(key, image, ...) -> image`` (vmap them with one key per example):
  ``random_autocontrast``, ``random_rotate``, ``random_translate``, ``random_hflip``,
  ``random_posterize``, ``cutout``, ``pixmix`` -- all keep the label;
- batch ops ``op(key, images, labels_onehot, ...) -> (images, labels)`` that mix pairs within the
  batch and mix the (one-hot / soft) labels by the same weights: ``mixup``, ``cutmix``.
``compose(config)`` builds a ``Pipeline`` from a list of op names (with parameters); its float
parameters (probabilities ``p``, angles, alphas, ...) are pytree leaves, so they may be traced,
vmapped or swept without recompiling.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.ndimage import map_coordinates

from dlnotes.errors import ConfigError

# ----------------------------------------------------------------------------- deterministic ops


def _sample(image, rows, cols, fill):
    """Bilinear sample of ``image`` (H, W, C) at float coordinates ``rows, cols`` (H', W'); outside = ``fill``."""
    fill = jnp.asarray(fill, image.dtype)

    def one(ch):
        # map_coordinates' cval must be static; sample (ch - fill) with cval 0 and add fill back.
        return map_coordinates(ch - fill, [rows, cols], order=1, mode="constant", cval=0.0) + fill

    return jax.vmap(one, in_axes=2, out_axes=2)(image)


def _grid(h, w, dtype=jnp.float32):
    return jnp.meshgrid(jnp.arange(h, dtype=dtype), jnp.arange(w, dtype=dtype), indexing="ij")


def autocontrast(image):
    """Per channel ``(x - min) / (max - min)``: darkest pixel -> 0, brightest -> 1 (flat channels unchanged)."""
    lo = jnp.min(image, axis=(0, 1), keepdims=True)
    hi = jnp.max(image, axis=(0, 1), keepdims=True)
    span = hi - lo
    ok = span > 0
    return jnp.where(ok, (image - lo) / jnp.where(ok, span, 1.0), image)


def rotate(image, degrees, fill=0.0):
    """Rotate counter-clockwise (as displayed) by ``degrees`` about the image centre, bilinear.

    Coordinate map: output pixel p takes the input at ``c + R(-theta) (p - c)``, c = ((H-1)/2, (W-1)/2);
    by 90 degrees on a square image this is ``jnp.rot90``.
    """
    h, w = image.shape[0], image.shape[1]
    theta = jnp.deg2rad(jnp.asarray(degrees, jnp.float32))
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    i, j = _grid(h, w)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    x, u = j - cx, cy - i  # x right, u up
    src_x = cos * x + sin * u
    src_u = -sin * x + cos * u
    return _sample(image, cy - src_u, cx + src_x, fill)


def translate(image, dx, dy, fill=0.0):
    """Shift right by ``dx`` and down by ``dy`` pixels: ``out[i, j] = image[i - dy, j - dx]``.

    Bilinear, so sub-pixel shifts interpolate and integer shifts are exact; uncovered pixels = ``fill``.
    """
    h, w = image.shape[0], image.shape[1]
    i, j = _grid(h, w)
    return _sample(image, i - jnp.asarray(dy, jnp.float32), j - jnp.asarray(dx, jnp.float32), fill)


def hflip(image):
    """Mirror left-right: ``out[:, j] = image[:, W - 1 - j]``."""
    return image[:, ::-1, :]


def posterize(image, bits):
    """Keep the top ``bits`` bits of each 8-bit value: ``(round(255 x) & (0xFF << (8 - bits))) / 255``."""
    q = jnp.round(jnp.clip(image, 0.0, 1.0) * 255.0).astype(jnp.int32)
    bits = jnp.clip(jnp.asarray(bits).astype(jnp.int32), 0, 8)
    mask = jnp.left_shift(jnp.int32(0xFF), 8 - bits) & 0xFF
    return (q & mask).astype(image.dtype) / 255.0


def cutout_at(image, cy, cx, size, fill=0.0):
    """Fill the ``size`` x ``size`` square with top-left ``(cy - size // 2, cx - size // 2)``
    (clipped at the borders) with ``fill``."""
    h, w = image.shape[0], image.shape[1]
    i, j = _grid(h, w, jnp.int32)
    size = jnp.asarray(size).astype(jnp.int32)
    top, left = cy - size // 2, cx - size // 2
    inside = (i >= top) & (i < top + size) & (j >= left) & (j < left + size)
    return jnp.where(inside[..., None], jnp.asarray(fill, image.dtype), image)


# ----------------------------------------------------------------------------- per-example random ops


# Each random op draws all its numbers with one ``jax.random.uniform`` call: every call site of the
# threefry hash costs compile time, and these ops run inside compiled training steps.


def _uniforms(key, n):
    return jax.random.uniform(key, (n,))


def _maybe(u, p, new, old):
    """``new`` if the uniform ``u < p`` (probability ``p``), else ``old``."""
    return jnp.where(u < jnp.asarray(p, jnp.float32), new, old)


def _rotate_u(u, image, max_degrees, fill=0.0, p=1.0):  # u: 2 uniforms
    deg = (2.0 * u[0] - 1.0) * max_degrees
    return _maybe(u[1], p, rotate(image, deg, fill), image)


def _translate_u(u, image, max_shift, integer=True, fill=0.0, p=1.0):  # u: 3 uniforms
    m = jnp.asarray(max_shift, jnp.float32)
    if integer:
        d = jnp.minimum(jnp.floor(u[:2] * (2.0 * m + 1.0)) - m, m)  # uniform on {-m, ..., m}
    else:
        d = (2.0 * u[:2] - 1.0) * m
    return _maybe(u[2], p, translate(image, d[0], d[1], fill), image)


def random_autocontrast(key, image, p=1.0):
    """``autocontrast`` with probability ``p``."""
    return _maybe(_uniforms(key, 1)[0], p, autocontrast(image), image)


def random_rotate(key, image, max_degrees=15.0, fill=0.0, p=1.0):
    """``rotate`` by an angle ~ U[-max_degrees, max_degrees], with probability ``p``."""
    return _rotate_u(_uniforms(key, 2), image, max_degrees, fill, p)


def random_translate(key, image, max_shift=1.0, integer=True, fill=0.0, p=1.0):
    """``translate`` by (dx, dy): uniform integers in [-max_shift, max_shift] if ``integer``
    (max_shift a whole number), else uniform reals in that range (sub-pixel); with probability ``p``."""
    return _translate_u(_uniforms(key, 3), image, max_shift, integer, fill, p)


def random_hflip(key, image, p=0.5):
    """``hflip`` with probability ``p``."""
    return _maybe(_uniforms(key, 1)[0], p, hflip(image), image)


def random_posterize(key, image, bits=4, p=1.0):
    """``posterize`` to ``bits`` bits with probability ``p``."""
    return _maybe(_uniforms(key, 1)[0], p, posterize(image, bits), image)


def cutout(key, image, size=4, fill=0.0, p=1.0):
    """Cutout (DeVries & Taylor 2017): a ``size``-square of ``fill`` centred at a uniform random pixel
    (it may hang over the border), with probability ``p``."""
    h, w = image.shape[0], image.shape[1]
    u = _uniforms(key, 3)
    cy = jnp.minimum(jnp.floor(u[0] * h), h - 1).astype(jnp.int32)
    cx = jnp.minimum(jnp.floor(u[1] * w), w - 1).astype(jnp.int32)
    return _maybe(u[2], p, cutout_at(image, cy, cx, size, fill), image)


# ----------------------------------------------------------------------------- PixMix


def fractal_pattern(key, shape):
    """A random fractal-like picture of ``shape`` (H, W, C) in [0, 1]: 1/f^a noise, a ~ U[1, 2.5],
    random phases per channel, min-max scaled (the procedural mixing set of ``pixmix``)."""
    h, w, c = shape
    fy = jnp.fft.fftfreq(h)[:, None]
    fx = jnp.fft.rfftfreq(w)[None, :]
    u = jax.random.uniform(key, (c * fy.shape[0] * fx.shape[1] + 1,))
    a = 1.0 + 1.5 * u[-1]
    f = jnp.sqrt(fy ** 2 + fx ** 2)
    amp = jnp.where(f > 0, jnp.where(f > 0, f, 1.0) ** (-a), 0.0)
    phase = 2 * jnp.pi * u[:-1].reshape((c,) + f.shape)
    img = jnp.fft.irfft2(amp * jnp.exp(1j * phase), s=(h, w))  # (C, H, W)
    return autocontrast(jnp.moveaxis(img, 0, -1).astype(jnp.float32))


@functools.lru_cache(maxsize=8)
def photo_mixing_set(h: int, w: int, c: int) -> np.ndarray:
    """Mixing set from scikit-learn's two sample photos: each whole photo, its 4 quadrants and its
    centre half, resized to ``(h, w)`` (PIL, antialiased); grey (channel mean) if ``c == 1``.
    Shape ``(12, h, w, c)``, float32 in [0, 1]."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    crops = []
    for photo in load_sample_images().images:
        ph, pw = photo.shape[:2]
        boxes = [(0, ph, 0, pw), (0, ph // 2, 0, pw // 2), (0, ph // 2, pw // 2, pw), (ph // 2, ph, 0, pw // 2),
                 (ph // 2, ph, pw // 2, pw), (ph // 4, 3 * ph // 4, pw // 4, 3 * pw // 4)]
        for t, b, l, r in boxes:
            im = Image.fromarray(np.ascontiguousarray(photo[t:b, l:r])).resize((w, h), Image.Resampling.BILINEAR)
            crops.append(np.asarray(im, np.float32) / 255.0)
    out = np.stack(crops)
    if c != 3:
        out = np.repeat(out.mean(-1, keepdims=True), c, axis=-1)
    return out.astype(np.float32)


def _pixmix_ab(u, beta):  # u: 3 uniforms
    """PixMix's mixing weights: (a, b) = (Beta(beta, 1), Beta(1, beta)) or (1 + Beta(1, beta), -Beta(1, beta)),
    by inverse CDF: Beta(beta, 1) = U^(1/beta), Beta(1, beta) = 1 - U^(1/beta)."""
    v = jnp.maximum(u[1:3], 1e-12) ** (1.0 / jnp.asarray(beta, jnp.float32))  # two Beta(beta, 1) draws
    first = u[0] < 0.5
    a = jnp.where(first, v[0], 2.0 - v[0])  # 1 + Beta(1, beta) = 2 - Beta(beta, 1)
    b = jnp.where(first, 1.0 - v[1], v[1] - 1.0)
    return a, b


def _pixmix_mix(u, x, y, beta):  # u: 4 uniforms
    """One PixMix step: additive ``(a(2x-1) + b(2y-1) + 1)/2`` or multiplicative ``(2x)^a (2y)^b / 2``
    (1/2 each), clipped to [0, 1]."""
    a, b = _pixmix_ab(u[1:4], beta)
    add = (a * (2 * x - 1) + b * (2 * y - 1) + 1) / 2
    mul = (2 * x) ** a * jnp.maximum(2 * y, 1e-6) ** b / 2
    return jnp.clip(jnp.where(u[0] < 0.5, add, mul), 0.0, 1.0)


def _pixmix_augment(u, image):  # u: 4 uniforms
    """One random op of PixMix's augmentation set (here: autocontrast, posterize 4 bits, rotate +-30
    degrees, integer translate up to 1/8 of the size), chosen by ``u[0]``."""
    h, w = image.shape[0], image.shape[1]
    branches = [
        lambda v, x: autocontrast(x),
        lambda v, x: posterize(x, 4),
        lambda v, x: _rotate_u(v, x, 30.0),
        lambda v, x: _translate_u(v, x, float(max(1, round(min(h, w) / 8)))),
    ]
    which = jnp.minimum(jnp.floor(u[0] * len(branches)), len(branches) - 1).astype(jnp.int32)
    return jax.lax.switch(which, branches, u[1:4], image)


def pixmix(key, image, mixing_set="patterns", k=4, beta=3.0, p=1.0):
    """PixMix (Hendrycks et al. 2022); the label is kept.

    ``mixed`` = image or aug(image) (1/2 each); then for r ~ U{0..k} rounds: other = aug(image) or a
    mixing picture (1/2 each), ``mixed = clip(op(mixed, other), 0, 1)`` with op chosen at random
    between additive ``(a(2x-1) + b(2y-1) + 1)/2`` and multiplicative ``(2x)^a (2y)^b / 2`` mixing,
    (a, b) drawn as in the paper with ``beta``. ``mixing_set``: ``"patterns"`` (a fresh
    ``fractal_pattern`` per call), ``"photos"`` (``photo_mixing_set``, baked into the compiled program
    as a constant: fine for small images; for large ones pass the array) or an array ``(M, H, W, C)``.
    ``k`` must be a Python int (it bounds the loop).
    """
    h, w, c = image.shape
    kpat, ku = jax.random.split(key)
    u = jax.random.uniform(ku, (8 + 9 * k,))  # 8 for the set-up, 9 per round
    if isinstance(mixing_set, str):
        if mixing_set == "patterns":
            pic = fractal_pattern(kpat, (h, w, c))
        elif mixing_set == "photos":
            pics = jnp.asarray(photo_mixing_set(h, w, c))
            pic = pics[jnp.minimum(jnp.floor(u[0] * pics.shape[0]), pics.shape[0] - 1).astype(jnp.int32)]
        else:
            raise ValueError(f"pixmix mixing_set must be 'patterns', 'photos' or an array, got {mixing_set!r}")
    else:
        pics = jnp.asarray(mixing_set, image.dtype)
        pic = pics[jnp.minimum(jnp.floor(u[0] * pics.shape[0]), pics.shape[0] - 1).astype(jnp.int32)]
    pic = pic.astype(image.dtype)
    mixed = jnp.where(u[1] < 0.5, _pixmix_augment(u[2:6], image), image)
    rounds = jnp.floor(u[6] * (k + 1))  # uniform on {0, ..., k}

    def body(r, mixed):
        v = jax.lax.dynamic_slice(u, (8 + 9 * r,), (9,))
        other = jnp.where(v[0] < 0.5, _pixmix_augment(v[1:5], image), pic)
        return jnp.where(r < rounds, _pixmix_mix(v[5:9], mixed, other, beta), mixed)

    mixed = jax.lax.fori_loop(0, k, body, mixed)
    return _maybe(u[7], p, mixed.astype(image.dtype), image)


# ----------------------------------------------------------------------------- batch ops (labels mix)


def _check_onehot(labels):
    if labels.ndim != 2:
        raise ValueError(f"mixup/cutmix need one-hot or soft labels (N, K), got shape {labels.shape}")


def _symmetric_beta(key, alpha, n):
    """n draws of Beta(alpha, alpha) = sigmoid(log G1 - log G2), G ~ Gamma(alpha): one gamma sampler."""
    lg = jax.random.loggamma(key, jnp.broadcast_to(jnp.asarray(alpha, jnp.float32), (2, n)))
    return jax.nn.sigmoid(lg[0] - lg[1])


def mix_pairs(images, labels, partner, lam):
    """``x_i <- lam_i x_i + (1 - lam_i) x_partner(i)``, labels likewise (so label mass stays 1)."""
    lam = jnp.asarray(lam, images.dtype) * jnp.ones(images.shape[:1], images.dtype)
    li = lam[:, None, None, None]
    x = li * images + (1 - li) * images[partner]
    y = lam[:, None] * labels + (1 - lam[:, None]) * labels[partner]
    return x, y.astype(labels.dtype)


def mixup(key, images, labels, alpha=0.2, p=1.0):
    """mixup (Zhang et al. 2018) with pairs (i, perm(i)) from a random permutation of the batch and
    one weight lam_i ~ Beta(alpha, alpha) per example (lam_i = 1, i.e. no mixing, with prob 1 - p)."""
    _check_onehot(labels)
    n = images.shape[0]
    kperm, klam, kp = jax.random.split(key, 3)
    lam = _symmetric_beta(klam, alpha, n)
    lam = _maybe(jax.random.uniform(kp, (n,)), p, lam, 1.0)
    return mix_pairs(images, labels, jax.random.permutation(kperm, n), lam)


def paste_box(images, labels, partner, top, left, bottom, right):
    """Paste the box ``[top, bottom) x [left, right)`` of ``images[partner]`` into each image; labels
    mixed by area: ``y_i <- (1 - A_i) y_i + A_i y_partner(i)`` with A_i = box area / (H W)."""
    n, h, w = images.shape[:3]
    i = jnp.arange(h)[None, :, None]
    j = jnp.arange(w)[None, None, :]
    col = lambda v: jnp.broadcast_to(jnp.asarray(v), (n,))[:, None, None]
    box = (i >= col(top)) & (i < col(bottom)) & (j >= col(left)) & (j < col(right))  # (N, H, W)
    x = jnp.where(box[..., None], images[partner], images)
    area = jnp.mean(box.astype(labels.dtype), axis=(1, 2))[:, None]
    return x, (1 - area) * labels + area * labels[partner]


def cutmix(key, images, labels, alpha=1.0, p=1.0):
    """CutMix (Yun et al. 2019): lam ~ Beta(alpha, alpha) per example, a box of side ratio sqrt(1 - lam)
    centred at a uniform pixel (clipped to the image) is pasted from a partner (random permutation);
    labels are mixed by the pasted area fraction actually used. With prob 1 - p nothing is pasted."""
    _check_onehot(labels)
    n, h, w = images.shape[:3]
    kperm, klam, ku = jax.random.split(key, 3)
    lam = _symmetric_beta(klam, alpha, n)
    r = jnp.sqrt(1.0 - lam)
    ch = jnp.floor(h * r).astype(jnp.int32)
    cw = jnp.floor(w * r).astype(jnp.int32)
    u = jax.random.uniform(ku, (3, n))
    cy = jnp.minimum(jnp.floor(u[0] * h), h - 1).astype(jnp.int32)
    cx = jnp.minimum(jnp.floor(u[1] * w), w - 1).astype(jnp.int32)
    top, bottom = jnp.clip(cy - ch // 2, 0, h), jnp.clip(cy + ch // 2, 0, h)
    left, right = jnp.clip(cx - cw // 2, 0, w), jnp.clip(cx + cw // 2, 0, w)
    bottom = _maybe(u[2], p, bottom, top)  # empty box when not applied
    return paste_box(images, labels, jax.random.permutation(kperm, n), top, left, bottom, right)


# ----------------------------------------------------------------------------- config -> pipeline

# name -> (function, default parameters). Float (and array) parameters are traced pytree leaves;
# ints, bools and strings are static.
EXAMPLE_OPS: dict[str, tuple[Callable, dict[str, Any]]] = {
    "autocontrast": (random_autocontrast, {"p": 1.0}),
    "rotate": (random_rotate, {"max_degrees": 15.0, "fill": 0.0, "p": 1.0}),
    "translate": (random_translate, {"max_shift": 1.0, "integer": True, "fill": 0.0, "p": 1.0}),
    "hflip": (random_hflip, {"p": 0.5}),
    "posterize": (random_posterize, {"bits": 4, "p": 1.0}),
    "cutout": (cutout, {"size": 4, "fill": 0.0, "p": 1.0}),
    "pixmix": (pixmix, {"mixing_set": "patterns", "k": 4, "beta": 3.0, "p": 1.0}),
}
BATCH_OPS: dict[str, tuple[Callable, dict[str, Any]]] = {
    "mixup": (mixup, {"alpha": 0.2, "p": 1.0}),
    "cutmix": (cutmix, {"alpha": 1.0, "p": 1.0}),
}
OPS = {**EXAMPLE_OPS, **BATCH_OPS}

# parameter -> (check on a concrete value, what it must be)
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "p": (lambda v: 0.0 <= v <= 1.0, "a probability in [0, 1]"),
    "max_degrees": (lambda v: v >= 0, ">= 0"),
    "max_shift": (lambda v: v >= 0, ">= 0"),
    "fill": (lambda v: math.isfinite(v), "finite"),
    "bits": (lambda v: v == int(v) and 1 <= v <= 8, "an integer in 1..8"),
    "size": (lambda v: v == int(v) and v >= 0, "an integer >= 0"),
    "k": (lambda v: isinstance(v, int) and v >= 0, "a Python integer >= 0 (static)"),
    "beta": (lambda v: v > 0, "> 0"),
    "alpha": (lambda v: v > 0, "> 0"),
    "integer": (lambda v: isinstance(v, bool), "True or False"),
    "mixing_set": (lambda v: v in ("patterns", "photos"), "'patterns' or 'photos'"),
}


def _is_leaf_param(v) -> bool:
    """Traced (pytree leaf) parameters: floats and arrays; ints, bools, strings are static."""
    return isinstance(v, (float, jax.Array, np.ndarray, np.floating)) and not isinstance(v, bool)


def _concrete(v):
    try:
        return v if isinstance(v, (bool, str)) else (int(v) if isinstance(v, (int, np.integer)) else float(v))
    except (jax.errors.ConcretizationTypeError, TypeError):
        return None  # traced: checked where it is made


@jax.tree_util.register_pytree_node_class
class Pipeline:
    """An ordered list of augmentation ops. ``pipe(key, images, labels)`` runs them on a batch:
    per-example ops are vmapped with one key per example, batch ops (mixup, cutmix) see the batch.
    ``params`` (one dict of traced float parameters per op) are the pytree leaves."""

    def __init__(self, names: Sequence[str], static: Sequence[Mapping[str, Any]], params: Sequence[Mapping[str, Any]]):
        self.names = tuple(names)
        self.static = tuple(dict(s) for s in static)
        self.params = tuple(dict(p) for p in params)

    def tree_flatten(self):
        aux = (self.names, tuple(tuple(sorted(s.items())) for s in self.static))
        return (self.params,), aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        names, static = aux
        return cls(names, [dict(s) for s in static], children[0])

    def __repr__(self):
        ops = ", ".join(f"{n}({', '.join(f'{k}={v}' for k, v in {**s, **p}.items())})"
                        for n, s, p in zip(self.names, self.static, self.params))
        return f"Pipeline([{ops}])"

    def with_params(self, index: int, **params) -> "Pipeline":
        """A copy with op ``index``'s traced parameters replaced, e.g. ``pipe.with_params(0, p=p)``."""
        unknown = set(params) - set(self.params[index])
        if unknown:
            raise ValueError(f"op {index} ({self.names[index]}) has no traced parameter(s) {sorted(unknown)}")
        new = list(self.params)
        new[index] = {**new[index], **params}
        return Pipeline(self.names, self.static, new)

    @property
    def has_batch_ops(self) -> bool:
        return any(n in BATCH_OPS for n in self.names)

    def _kwargs(self, idx):
        return {**self.static[idx], **self.params[idx]}

    def example(self, key, image):
        """Apply the per-example ops to one image ``(H, W, C)`` (a pipeline with mixup/cutmix refuses)."""
        if self.has_batch_ops:
            raise ValueError(f"{self!r} has batch ops (mixup/cutmix): call it on a batch with labels")
        for idx, name in enumerate(self.names):
            image = EXAMPLE_OPS[name][0](jax.random.fold_in(key, idx), image, **self._kwargs(idx))
        return image

    def __call__(self, key, images, labels):
        """``(key, images (N, H, W, C), labels (N, K) one-hot/soft) -> (images, labels)``, ops in config order."""
        n = images.shape[0]
        for idx, name in enumerate(self.names):
            k = jax.random.fold_in(key, idx)
            kwargs = self._kwargs(idx)
            if name in BATCH_OPS:
                images, labels = BATCH_OPS[name][0](k, images, labels, **kwargs)
            else:
                fn = functools.partial(EXAMPLE_OPS[name][0], **kwargs)
                images = jax.vmap(fn)(jax.random.split(k, n), images)
        return images, labels


def compose(config, key: str = "augment.ops") -> Pipeline:
    """A ``Pipeline`` from a config list, e.g. ``["hflip", {"name": "rotate", "max_degrees": 10.0, "p": 0.5},
    {"name": "mixup", "alpha": 0.4}]`` (also accepts a mapping with an ``ops`` list).

    Unknown names raise ``ConfigError("augment.ops", ...)``; bad parameters raise
    ``ConfigError("augment.ops[i].<param>", ...)``. Parameters may be traced floats.
    """
    if hasattr(config, "get") and not isinstance(config, (list, tuple)) and "ops" in config:
        config = config["ops"]
    if isinstance(config, (str, bytes)) or not isinstance(config, Sequence):
        raise ConfigError(key, f"must be a list of op names or {{'name': ..., ...}} entries, got {config!r}")
    names, statics, params = [], [], []
    for i, entry in enumerate(config):
        if isinstance(entry, str):
            name, given = entry, {}
        elif hasattr(entry, "items"):
            given = dict(entry.items())
            name = given.pop("name", None)
        else:
            raise ConfigError(key, f"entry {i} must be a name or a mapping with 'name', got {entry!r}")
        if name not in OPS:
            raise ConfigError(key, f"unknown augmentation {name!r} at entry {i}; known: {', '.join(OPS)}")
        defaults = OPS[name][1]
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ConfigError(f"{key}[{i}].{unknown[0]}", f"{name} has no parameter {unknown[0]!r}; it has: {', '.join(defaults)}")
        st, pr = {}, {}
        for pname, default in defaults.items():
            v = given.get(pname, default)
            if pname == "mixing_set" and not isinstance(v, str):
                pr[pname] = v  # an explicit mixing set array is a leaf
                continue
            c = _concrete(v)
            check, what = _CHECKS[pname]
            try:
                good = c is None or check(c)
            except (TypeError, ValueError):
                good = False
            if not good:
                raise ConfigError(f"{key}[{i}].{pname}", f"{name}: must be {what}, got {v!r}")
            (pr if _is_leaf_param(v) else st)[pname] = v
        names.append(name)
        statics.append(st)
        params.append(pr)
    return Pipeline(names, statics, params)


# ----------------------------------------------------------------------------- figure


def draw_gallery(path, seed: int = 0) -> str:
    """PNG grid: rows = two real digits (8x8) and scikit-learn's two photos; columns = the original and
    each augmentation (mixup / cutmix / pixmix mix each row with the other image of its pair)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlnotes.data.images import load_digits_split, sample_photos

    digits = load_digits_split(seed)["test"]
    d = jnp.asarray(digits["x"][:2])
    photos = jnp.asarray(np.stack(list(sample_photos((96, 144)).values())))
    key = jax.random.key(seed)
    onehot = jnp.eye(2)
    partner = jnp.array([1, 0])

    @functools.partial(jax.jit, static_argnums=1)
    def columns(batch, scale, mixing_set):
        h = batch.shape[1]
        per = lambda fn: jax.vmap(fn)(jax.random.split(key, batch.shape[0]), batch)
        cols = {
            "original": batch,
            "autocontrast(x/2+1/4)": jax.vmap(autocontrast)(batch * 0.5 + 0.25),
            "rotate 30°": jax.vmap(lambda x: rotate(x, 30.0))(batch),
            "translate (1.5, 0.75)×s": jax.vmap(lambda x: translate(x, scale, scale / 2))(batch),
            "hflip": jax.vmap(hflip)(batch),
            "posterize 2 bits": jax.vmap(lambda x: posterize(x, 2))(batch),
            "cutout": per(lambda k, x: cutout(k, x, size=max(2, h // 3), fill=0.5)),
            "mixup λ=0.6": mix_pairs(batch, onehot, partner, 0.6)[0],
            "cutmix": paste_box(batch, onehot, partner, h // 4, h // 4, 3 * h // 4, batch.shape[2] // 2 + h // 4)[0],
            "pixmix patterns": per(lambda k, x: pixmix(k, x, "patterns")),
            "pixmix photos": per(lambda k, x: pixmix(k, x, mixing_set)),  # an argument, not a baked-in constant
        }
        return tuple(cols.values())  # a tuple keeps the column order (a dict output would be key-sorted)

    names = ["original", "autocontrast(x/2+1/4)", "rotate 30°", "translate (1.5, 0.75)×s", "hflip", "posterize 2 bits",
             "cutout", "mixup λ=0.6", "cutmix", "pixmix patterns", "pixmix photos"]

    rows = []
    for batch, scale, label in ((d, 1.5, "digit"), (photos, 1.5 * 8, "photo")):
        cols = columns(batch, scale, photo_mixing_set(*batch.shape[1:]))
        for r in range(batch.shape[0]):
            rows.append((f"{label} {r}", {n: np.asarray(v[r]) for n, v in zip(names, cols)}))
    fig, axes = plt.subplots(len(rows), len(names), figsize=(1.6 * len(names), 1.5 * len(rows)))
    for r, (rname, cols) in enumerate(rows):
        for c, name in enumerate(names):
            ax = axes[r, c]
            img = np.clip(cols[name], 0, 1)
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=7)
            if c == 0:
                ax.set_ylabel(rname, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
