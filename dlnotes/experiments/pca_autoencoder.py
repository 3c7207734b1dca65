"""A linear autoencoder trained by gradient descent finds the PCA subspace (C47).

Data: all 1797 digits, x/16 flattened to 64 and centred. Model: x → BAx with A (k, d), B (d, k),
k = ``model.code`` = 10, full-batch Adam on mean‖x − BAx‖² for ``num_steps`` = 500 steps. Its
minimizers have col(B) = the top-k PCA subspace, but the encoder is only pinned down on the data's
span: the 3 digit pixels that are always 0 give A's columns there no gradient, so A's rows keep
their random initial component along them unless the weights are tied (B = Aᵀ) or decayed.

Three variants of ``check.num_seeds`` seeds each: untied, tied, untied + L2 weight decay
``check.weight_decay`` (untied and decayed in one compiled grid, λ traced; ``run_points``). The engine's evaluation records the largest
principal angle of col(B) and of row(A) to scikit-learn's top-k PCA subspace every ``log_every``
steps. Checks (CLAIMS.md):
  untied decoder: largest angle ≤ 1° after 500 steps, every seed;
  encoder shown: untied ≥ 10° (every seed) with its weights on the constant pixels exactly unchanged,
  tied ≤ 1° and decayed ≤ 5° (every seed).
Reported, not claimed: the reconstruction error of PCA-10 vs the autoencoders and a nonlinear MLP
autoencoder with the same 10-dimensional code (``mlp``), and their reconstructions of test digits.
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes import hparams as hpmod
from dlnotes import unsupervised as U
from dlnotes.errors import check
from dlnotes.experiments import common_unsupervised as CU
from dlnotes.experiments.base import claim
from dlnotes.models import autoencoder as AE
from dlnotes.optim.factory import validate_optimizer_config
from dlnotes.train import plots
from dlnotes.train.sweep import run_points

CLAIMS = ("C47",)
DIFFERS = ()
MAX_DECODER_DEG = 1.0     # untied decoder vs PCA, every seed
MIN_UNTIED_ENCODER_DEG = 10.0
MAX_TIED_ENCODER_DEG = 1.0
MAX_DECAYED_ENCODER_DEG = 5.0


def validate(config):
    validate_optimizer_config(config)
    CU.validate_reconstruction(config)
    check(config.model.code < config.model.input_dim, "model.code", "the bottleneck must be smaller than the input")
    check(config.check.num_seeds >= 1, "check.num_seeds", "need at least one seed")
    check(config.check.weight_decay > 0, "check.weight_decay", "the decayed variant needs a decay > 0")
    check(config.batch_size == 0 or 0 < config.batch_size <= 1797, "batch_size", "must be in [0, 1797]")


def make_data(config):
    """``train.x``: the centred digits (N, 64); ``pca.basis``: scikit-learn's top-k components as columns (64, k);
    ``pca.constant_pixels``: indices of the pixels that are 0 in every digit, ``pca.mean`` the digits' mean; ``test``: the held-out
    split's digits centred with the same mean (for figures)."""
    from sklearn.decomposition import PCA as SKPCA
    split = CU.digits_flat(config.data.seed)
    X = CU.all_digits(split)
    mean = X.mean(0)
    basis = SKPCA(config.model.code).fit(X).components_.T.astype(np.float32)
    constant = np.flatnonzero(X.var(0) == 0).astype(np.int32)
    return {"train": {"x": jnp.asarray(X - mean)}, "pca": {"basis": jnp.asarray(basis), "constant_pixels": constant,
                                                       "mean": jnp.asarray(mean)},
            "test": {"x": jnp.asarray(split["test"]["x"] - mean)}}


def build_task(config, data=None):
    data = data if data is not None else make_data(config)
    model = AE.make_autoencoder(config)
    linear = config.model.get("name", "linear") == "linear"

    def evaluate(params, ms, d, hp):
        x = d["train"]["x"]
        x_hat, _ = model.apply(params, ms, x)
        out = {"recon": CU.reconstruction_loss(x_hat, x)}
        if linear:
            m = model.module(params, ms)
            out["decoder_deg"] = U.largest_principal_angle_deg(m.decoder_matrix, d["pca"]["basis"])
            out["encoder_deg"] = U.largest_principal_angle_deg(m.encoder[...].T, d["pca"]["basis"])
            out["encoder_dead_cols"] = m.encoder[...][:, d["pca"]["constant_pixels"]]
        return out

    return CU.reconstruction_task(config, data, model=model, evaluate=evaluate)


def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    data = make_data(config)
    points = [{"seed": s} for s in range(config.check.num_seeds)]
    dead = np.asarray(data["pca"]["constant_pixels"])
    dec, enc, curves, recon, seconds, dead_change = {}, {}, {}, {}, {}, None
    models = {}
    n = len(points)
    # untied and decayed share one compiled grid (λ traced: the base config's decay is > 0, λ = 0 is a point)
    grids = (
        (("untied", "decayed"), False, [{**p, "optimizer.weight_decay": 0.0} for p in points]
         + [{**p, "optimizer.weight_decay": float(config.check.weight_decay)} for p in points]),
        (("tied",), True, [{**p, "optimizer.weight_decay": 0.0} for p in points]),
    )
    for labels, tied, pts in grids:
        cfg = hpmod.with_changes(config, **{"model.tied": tied,
                                            "optimizer.weight_decay": float(config.check.weight_decay)})
        t0 = time.perf_counter()
        _, res = run_points(build_task(cfg, data), cfg, pts, progress=f"C47 {' + '.join(labels)}")
        seconds[" + ".join(labels)] = time.perf_counter() - t0
        for j, label in enumerate(labels):
            sl = slice(j * n, (j + 1) * n)
            ev = jax.tree.map(lambda a: np.asarray(a)[sl], res.metrics["evals"])
            dec[label] = ev["decoder_deg"][:, -1]
            enc[label] = ev["encoder_deg"][:, -1]
            curves[label] = (ev["decoder_deg"].mean(0), ev["encoder_deg"].mean(0))
            recon[label] = float(ev["recon"][:, -1].mean())
            models[label] = (AE.make_autoencoder(cfg), jax.tree.map(lambda a: a[j * n], res.state.params),
                             jax.tree.map(lambda a: a[j * n], res.state.model_state))
            if label == "untied":   # the constant pixels' encoder columns: unchanged from their initial values
                cols = np.asarray(ev["encoder_dead_cols"])   # (G, evals, k, #constant pixels)
                dead_change = float(np.max(np.abs(cols - cols[:, :1]), initial=0.0))

    # PCA reference numbers (ours vs scikit-learn) and a nonlinear autoencoder with the same code size
    X = data["train"]["x"]
    ours = U.pca(X, config.model.code)
    pca_vs_sklearn = float(U.largest_principal_angle_deg(ours.components.T, data["pca"]["basis"]))
    recon["PCA"] = float(U.pca_reconstruction_error(ours, X))
    mlp_cfg = hpmod.with_changes(config, **{"model.name": "mlp", "model.hidden": list(config.mlp.hidden),
                                            "num_steps": config.mlp.num_steps, "log_every": config.mlp.num_steps,
                                            "batch_size": config.mlp.batch_size,
                                            "optimizer.learning_rate": config.mlp.learning_rate})
    t0 = time.perf_counter()
    _, res = run_points(build_task(mlp_cfg, data), mlp_cfg, [{"seed": 0}], progress="C47 MLP autoencoder")
    seconds["mlp"] = time.perf_counter() - t0
    recon["MLP"] = float(np.asarray(res.metrics["evals"]["recon"])[0, -1])
    models["MLP"] = (AE.make_autoencoder(mlp_cfg), jax.tree.map(lambda a: a[0], res.state.params),
                     jax.tree.map(lambda a: a[0], res.state.model_state))

    ok_dec = bool(np.all(dec["untied"] <= MAX_DECODER_DEG))
    ok_enc = bool(np.all(enc["untied"] >= MIN_UNTIED_ENCODER_DEG) and dead_change == 0.0
                  and np.all(enc["tied"] <= MAX_TIED_ENCODER_DEG)
                  and np.all(enc["decayed"] <= MAX_DECAYED_ENCODER_DEG))

    steps = np.arange(len(curves["untied"][0])) * config.log_every
    fig = _figure_angles(curves, steps, os.path.join(workdir, "pca_autoencoder_angles.png"), config)
    _figure_recon(data, ours, models, os.path.join(workdir, "pca_autoencoder_reconstructions.png"))

    def degs(v):
        return "[" + ", ".join(f"{a:.3g}" for a in v) + "]°"

    return [claim(
        "C47", "a linear autoencoder x → BAx (k = 10) trained by GD on centred digits: the decoder's column space "
               "is the top-10 PCA subspace; the encoder's row space aligns only if tied or decayed",
        f"largest angle to PCA-10 after {config.num_steps} steps: decoder {degs(dec['untied'])}; encoder untied "
        f"{degs(enc['untied'])}, tied {degs(enc['tied'])}, decayed {degs(enc['decayed'])}",
        f"decoder ≤ {MAX_DECODER_DEG:g}° every seed; encoder untied ≥ {MIN_UNTIED_ENCODER_DEG:g}° with its weights on "
        f"the constant pixels unchanged, tied ≤ {MAX_TIED_ENCODER_DEG:g}°, decayed ≤ {MAX_DECAYED_ENCODER_DEG:g}°",
        ok_dec and ok_enc, fig,
        details=f"{len(points)} seeds, full-batch {config.optimizer.name} η = {config.optimizer.learning_rate:g}, "
                f"decay λ = {config.check.weight_decay:g}; {len(dead)} pixels constant over all digits, "
                f"max |A_T − A_0| on them (untied) = {dead_change:.3g}; decoder angle tied {degs(dec['tied'])}, "
                f"decayed {degs(dec['decayed'])}; our PCA vs scikit-learn's: {pca_vs_sklearn:.2g}°; "
                f"mean‖x − x̂‖²: PCA-10 {recon['PCA']:.4f}, untied {recon['untied']:.4f}, tied {recon['tied']:.4f}, "
                f"decayed {recon['decayed']:.4f}, MLP {list(config.mlp.hidden)} code 10 {recon['MLP']:.4f} "
                f"(reported); seconds " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))]


def _figure_angles(curves, steps, path, config):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for j, (ax, part) in enumerate(zip(axes, ("decoder columns B", "encoder rows A"))):
        for label, c in curves.items():
            ax.plot(steps, np.maximum(c[j], 1e-4), label=label, lw=1.4)
        ax.axhline(MAX_DECODER_DEG, color="k", ls=":", lw=0.8)
        ax.set(yscale="log", xlabel="step", title=f"{part} vs top-{config.model.code} PCA subspace")
    axes[0].set_ylabel("largest principal angle (°, seed mean)")
    axes[0].legend(fontsize=8)
    fig.suptitle("linear autoencoder on centred digits: the decoder finds PCA; the untied encoder does not "
                 "(constant pixels get no gradient)", fontsize=9)
    return plots.save(fig, path)


def _figure_recon(data, pca_fit, models, path, n=8):
    import matplotlib.pyplot as plt
    x = data["test"]["x"][:n]
    mean = np.asarray(data["pca"]["mean"])
    rows = {"original": np.asarray(x), "PCA-10": np.asarray(U.pca_reconstruct(pca_fit, U.pca_transform(pca_fit, x)))}
    for label in ("untied", "tied", "MLP"):
        model, p, ms = models[label]
        rows[f"{'linear AE ' if label != 'MLP' else ''}{label}"] = np.asarray(model.apply(p, ms, x)[0])
    fig, axes = plt.subplots(len(rows), n, figsize=(n * 0.9, len(rows) * 0.95 + 0.4))
    for r, (label, imgs) in enumerate(rows.items()):
        for j in range(n):
            ax = axes[r, j]
            ax.imshow((imgs[j] + mean).reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=7)
    fig.suptitle("test digits and their reconstructions through a 10-dimensional code", fontsize=9)
    return plots.save(fig, path)
