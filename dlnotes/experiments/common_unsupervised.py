"""Tasks shared by ``pca_autoencoder`` (C47), ``kmeans`` (C48) and ``self_supervised`` (C49, C50).

Data: scikit-learn's 1797 digits as flat vectors x/16 ∈ [0, 1]^64 (``digits_flat``).

Reconstruction task (``reconstruction_task``): an autoencoder of ``dlnotes.models.autoencoder``
trained on mean_i ‖x_i − x̂_i‖² with the input corrupted by ``corruption``:
  "none"  x̂ = f(x);
  "noise" x̂ = f(x + σ·ε), ε ~ N(0, I), σ = ``train.noise_std`` (traced) — denoising;
  "mask"  x̂ = f(x ⊙ (1 − m)) with m a random patch mask per image (``unsupervised.patch_mask``,
          ``train.patch`` pixels square, ``train.mask_ratio`` of the patches, traced) and the loss
          on the masked pixels only: d · Σ m (x̂ − x)² / Σ m (``unsupervised.masked_mse`` × d).

k-means task (``kmeans_task``): the centres C (k, d) are the parameters, initialized by k-means++
from the run's key, and trained by ``config.optimizer`` on ``unsupervised.kmeans_loss`` (hard) or
``soft_kmeans_loss`` at T_t annealed geometrically from ``kmeans.t_start`` to ``kmeans.t_end``
(traced); the step count rides in ``model_state``.

Few labels (``probe_accuracies``): a multinomial logistic-regression probe (``fit_linear_probe``,
scikit-learn's C = ``probe.C``) on m labelled examples per class, scored on a held-out test set;
vmapped over label draws, one compile per m.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes import hparams as hpmod
from dlnotes import unsupervised as U
from dlnotes.data.images import load_digits_split
from dlnotes.errors import check
from dlnotes.models import autoencoder as AE
from dlnotes.optim.factory import make_optimizer
from dlnotes.train.loop import Task

IMAGE = (8, 8)
CORRUPTIONS = ("none", "noise", "mask")


def digits_flat(seed: int = 0, n_test: int = 360):
    """``{"train": {"x": (N, 64), "y"}, "test": {...}}``: x/16 flattened, stratified split (no val)."""
    d = load_digits_split(seed, n_val=0, n_test=n_test)
    return {s: {"x": v["x"].reshape(len(v["x"]), -1), "y": v["y"]} for s, v in d.items() if s in ("train", "test")}


def all_digits(split):
    """All digits (train then test) as one unlabelled (N, 64) array."""
    return np.concatenate([split["train"]["x"], split["test"]["x"]])


# ---------------------------------------------------------------- reconstruction

def validate_reconstruction(config):
    t = config.train
    check(t.corruption in CORRUPTIONS, "train.corruption", f"must be one of {CORRUPTIONS}, got {t.corruption!r}")
    check(t.noise_std >= 0, "train.noise_std", f"must be ≥ 0, got {t.noise_std}")
    check(0 < t.mask_ratio < 1, "train.mask_ratio", f"must be in (0, 1), got {t.mask_ratio}")
    check(t.patch >= 1 and IMAGE[0] % t.patch == 0, "train.patch", f"must divide {IMAGE[0]}, got {t.patch}")
    AE.make_autoencoder(config)


def corrupt(config, hp, key, x):
    """(input, loss mask or None) for a batch of flat digits ``x`` (B, 64)."""
    kind = config.train.corruption
    if kind == "noise":
        return x + hpmod.get(hp, config, "train.noise_std") * jax.random.normal(key, x.shape, x.dtype), None
    if kind == "mask":
        ratio = hpmod.get(hp, config, "train.mask_ratio")
        keys = jax.random.split(key, x.shape[0])
        m = jax.vmap(lambda k: U.patch_mask(k, IMAGE, config.train.patch, ratio))(keys).reshape(x.shape)
        return jnp.where(m, 0.0, x), m
    return x, None


def reconstruction_loss(x_hat, x, mask=None):
    """mean_i ‖x_i − x̂_i‖², or over masked entries only (scaled by d to the same units)."""
    if mask is None:
        return jnp.mean(jnp.sum((x_hat - x) ** 2, axis=-1))
    return x.shape[-1] * U.masked_mse(x_hat, x, mask)


def reconstruction_task(config, data, *, model=None, evaluate=None) -> Task:
    """An autoencoder on ``data["train"]["x"]`` (N, d) with ``train.corruption``."""
    model = model or AE.make_autoencoder(config)

    def loss(params, ms, batch, key, hp):
        x = batch["x"]
        inp, mask = corrupt(config, hp, key, x)
        x_hat, ms = model.apply(params, ms, inp)
        return reconstruction_loss(x_hat, x, mask), ({}, ms)

    def default_eval(params, ms, d, hp):
        x = d["train"]["x"]
        x_hat, _ = model.apply(params, ms, x)
        return {"recon": reconstruction_loss(x_hat, x)}

    return Task(init=model.init, loss=loss, optimizer=lambda hp: make_optimizer(config, hp), data=data,
                num_steps=config.num_steps, batch_size=config.get("batch_size", 0) or None,
                sampling=config.get("sampling", "epoch"), log_every=config.log_every,
                evaluate=evaluate or default_eval)


# ---------------------------------------------------------------- k-means by gradient descent

def kmeans_task(config, X, *, num_steps=None, log_every=None) -> Task:
    """Centres (k, d) from k-means++ trained on the (hard or soft, annealed) k-means loss (full batch)."""
    k = config.kmeans.k
    soft = bool(config.kmeans.soft)
    T = num_steps or config.num_steps
    Xj = jnp.asarray(X)

    def init(key, hp):
        return U.kmeans_plus_plus(key, Xj, k), {"step": jnp.zeros((), jnp.int32)}

    def loss(C, ms, batch, key, hp):
        x = batch["x"]
        if soft:
            temp = U.annealed_temperature(ms["step"], T, hpmod.get(hp, config, "kmeans.t_start"),
                                          hpmod.get(hp, config, "kmeans.t_end"))
            value = U.soft_kmeans_loss(C, x, temp)
        else:
            value = U.kmeans_loss(C, x)
        return value, ({"hard_loss": U.kmeans_loss(C, x)}, {"step": ms["step"] + 1})

    def evaluate(C, ms, d, hp):
        return {"inertia": U.inertia(d["train"]["x"], C)}

    return Task(init=init, loss=loss, optimizer=lambda hp: make_optimizer(config, hp),
                data={"train": {"x": Xj}}, num_steps=T, batch_size=None,
                log_every=log_every or config.log_every, evaluate=evaluate)


# ---------------------------------------------------------------- few labels

def label_draws(y, per_class: int, num_draws: int, seed: int = 0) -> np.ndarray:
    """(num_draws, 10·per_class) indices: ``per_class`` examples of every class, a fresh draw per row."""
    y = np.asarray(y)
    classes = np.unique(y)
    out = []
    for s in range(num_draws):
        rng = np.random.default_rng([seed, per_class, s])
        out.append(np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in classes]))
    return np.stack(out)


def pad_features(F, d: int):
    """Zero columns up to width ``d``: a zero feature keeps a zero weight under L2, so the probe is unchanged
    and every feature type shares one compiled probe."""
    F = jnp.asarray(F)
    return jnp.pad(F, ((0, 0), (0, d - F.shape[1])))


def probe_accuracies(features: dict, y_train, y_test, draws: np.ndarray, *, C: float, num_steps: int):
    """Test accuracy of a logistic probe per feature type and label draw: ``{name: (num_draws,)}``.

    ``features[name] = (F_train (N, d_name), F_test (M, d_name))``. One compile for all names (padded to
    the widest) and draws of one size.
    """
    width = max(f[0].shape[1] for f in features.values())
    n = draws.shape[1]
    ytr, yte = jnp.asarray(y_train), jnp.asarray(y_test)
    num_classes = int(max(np.max(np.asarray(y_train)), np.max(np.asarray(y_test)))) + 1

    @jax.jit
    def score(Ftr, Fte, idx):
        def one(i):
            p = U.fit_linear_probe(Ftr[i], ytr[i], num_classes, 1.0 / (C * n), num_steps)
            return U.probe_accuracy(p, Fte, yte)
        return jax.vmap(one)(idx)

    idx = jnp.asarray(draws)
    return {name: np.asarray(score(pad_features(a, width), pad_features(b, width), idx))
            for name, (a, b) in features.items()}
