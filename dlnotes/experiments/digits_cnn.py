"""A CNN beats a matched MLP on real digits; random shifts buy robustness to shifted inputs (C23).

Data: scikit-learn's 8×8 digits (``load_digits_split``: 360 test, 180 val, 1257 train) and
``shifted`` = the test digits each moved by 1–2 pixels (max(|dx|, |dy|) ∈ {1, 2}, zero fill).
Models: ``CNN`` (conv 3×3·16 → ReLU → conv 3×3·32 → ReLU → 2×2 max pool → dense 10, 9,930
parameters) and a one-hidden-layer ``MLPClassifier`` whose width is chosen to match that
count (132 units, 9,910 parameters). Adam 1e-3, batch 32, epochs with reshuffling.

Three grids, one compile each, ``num_seeds`` init/shuffle seeds per grid (``run_points``):
MLP, CNN, and CNN trained with random ±1-pixel integer shifts (``augment.translate`` on
the fly inside the compiled step). Checks (CLAIMS.md):
  CNN − MLP clean test accuracy, mean over seeds ≥ 0.3 points;
  (CNN + shifts) − CNN accuracy on the shifted test set, mean over seeds ≥ 10 points.
Clean accuracy with and without augmentation is reported, not claimed.
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes.data.augment import compose
from dlnotes.data.images import load_digits_split, random_shift_images
from dlnotes.errors import check
from dlnotes.experiments.base import claim
from dlnotes.models.base import count_params
from dlnotes.models.cnn import make_cnn, make_mlp_classifier
from dlnotes.optim.factory import validate_optimizer_config
from dlnotes import hparams as hpmod
from dlnotes.train import plots
from dlnotes.train.runner import CPU_LOOP_EMITTERS
from dlnotes.train.sweep import run_points
from dlnotes.train.tasks import classification_task

CLAIMS = ("C23",)
MIN_CNN_GAIN = 0.003      # CNN − MLP clean test accuracy, mean over seeds (0.3 points)
MIN_SHIFT_GAIN = 0.10     # augmented − plain CNN accuracy on the shifted test set (10 points)


def validate(config):
    validate_optimizer_config(config)
    check(config.model.name in ("cnn", "mlp"), "model.name", f"must be 'cnn' or 'mlp', got {config.model.name!r}")
    make_cnn(config)  # raises ConfigError naming a bad model.* key
    n_train = 1797 - config.data.n_val - config.data.n_test
    check(1 <= config.batch_size <= n_train, "batch_size", f"must be in [1, {n_train}] (the training digits)")
    check(config.sampling in ("epoch", "replacement"), "sampling", "must be 'epoch' or 'replacement'")
    check(1 <= config.data.min_shift <= config.data.max_shift, "data.max_shift",
          "need 1 <= data.min_shift <= data.max_shift")
    check(0 <= config.model.dropout < 1, "model.dropout", f"must be in [0, 1), got {config.model.dropout!r}")
    check(config.check.num_seeds >= 2, "check.num_seeds", "need at least 2 seeds for a mean ± std")


def make_data(config):
    """Train/val/test digits and the 1–2-pixel shifted test set (``shifted``)."""
    d = config.data
    data = load_digits_split(d.seed, n_val=d.n_val, n_test=d.n_test)
    shifted = random_shift_images(jax.random.key(d.shift_seed), jnp.asarray(data["test"]["x"]),
                                  d.min_shift, d.max_shift)
    data["shifted"] = {"x": np.asarray(shifted), "y": data["test"]["y"]}
    return {k: {kk: jnp.asarray(vv) for kk, vv in v.items()} for k, v in data.items()}


def cnn_param_count(config) -> int:
    return count_params(make_cnn(config).init(jax.random.key(0))[0])


def make_model(config):
    """The CNN, or the MLP whose width matches the CNN's parameter count."""
    if config.model.name == "mlp":
        cfg = hpmod.with_changes(config, **{"model.match_params": cnn_param_count(config)})
        return make_mlp_classifier(cfg)
    return make_cnn(config)


def make_augment(config):
    """Random integer shifts in [−max_shift, max_shift]² of each training image (None if disabled)."""
    if not config.augment.enabled:
        return None
    return compose([{"name": "translate", "max_shift": float(config.augment.max_shift), "integer": True}])


# The evaluation runs the 2,157 train/val/test/shifted digits in slices of 128 (``eval_batch``): the patch
# matrix of the 16→32 conv over all of them at once is 80 MB, over 128 of them 4.7 MB, which stays in cache.
# Measured 2026-12-01 on this 2-core CPU: one evaluation of the CNN 81 → 20 ms, the same numbers bit for bit
# (tested); its compile within noise (0.77 vs 0.85 s). Slices did not help the MLPs (depth_residual 26 → 47 ms).
EVAL_BATCH = 128

# On CPU the programs compile with XLA's loop emitters (``runner.CPU_LOOP_EMITTERS``): measured 2026-12-02 on
# this 2-core CPU, idle, the CNN's first run (init, evaluation and a 600-step chunk compiled) 1.4-1.6 s of
# compile instead of 2.1-3.1 s, and its training chunk 0.90x the time (BUILD.md, Decisions).


def build_task(config, data=None):
    data = data if data is not None else make_data(config)
    return classification_task(
        config, make_model(config), data, augment=make_augment(config), num_classes=10,
        eval_splits=("val", "test", "shifted"), eval_batch=EVAL_BATCH,
        call_kwargs=lambda hp: {"dropout": hpmod.get(hp, config, "model.dropout")},
        cpu_compiler_options=CPU_LOOP_EMITTERS)


VARIANTS = (("MLP", "mlp", False), ("CNN", "cnn", False), ("CNN + shifts", "cnn", True))


def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    data = make_data(config)
    points = [{"seed": s} for s in range(config.check.num_seeds)]
    acc, curves, n_params, first_filters, seconds = {}, {}, {}, {}, {}
    for label, name, aug in VARIANTS:
        cfg = hpmod.with_changes(config, **{"model.name": name, "augment.enabled": aug})
        t0 = time.perf_counter()
        task = build_task(cfg, data)
        _, res = run_points(task, cfg, points, progress=f"C23 {label}")
        seconds[label] = time.perf_counter() - t0
        ev = res.metrics["evals"]
        acc[label] = {s: np.asarray(ev[f"{s}_acc"])[:, -1] for s in ("train", "test", "shifted")}
        curves[label] = np.asarray(ev["test_acc"]).mean(0)
        params = res.state.params
        n_params[label] = count_params(jax.tree.map(lambda x: x[0], params))
        if name == "cnn":
            first_filters[label] = np.asarray(params["convs"][0]["kernel"][...])[0]   # seed 0: (3, 3, 1, C)

    cnn_gain = acc["CNN"]["test"] - acc["MLP"]["test"]
    shift_gain = acc["CNN + shifts"]["shifted"] - acc["CNN"]["shifted"]
    clean_change = acc["CNN + shifts"]["test"] - acc["CNN"]["test"]
    ok = cnn_gain.mean() >= MIN_CNN_GAIN and shift_gain.mean() >= MIN_SHIFT_GAIN

    fig_bars = _figure_bars(acc, n_params, os.path.join(workdir, "digits_cnn_accuracy.png"))
    _figure_filters(first_filters, os.path.join(workdir, "digits_cnn_filters.png"))
    steps = np.arange(len(curves["CNN"])) * config.log_every
    plots.learning_curves(curves, os.path.join(workdir, "digits_cnn_curves.png"), steps=steps, logy=False,
                          ylabel="test accuracy (seed mean)", title="digits: test accuracy during training")

    def pm(v):
        return f"{100 * v.mean():.2f} ± {100 * v.std(ddof=1):.2f}"

    table = "; ".join(f"{k}: clean {pm(a['test'])}%, shifted {pm(a['shifted'])}%, train {pm(a['train'])}% "
                      f"({n_params[k]} params, {seconds[k]:.1f} s)" for k, a in acc.items())
    return [claim(
        "C23", "a CNN beats a matched MLP on real digits; random ±1-pixel shifts in training raise accuracy on "
               "a 1–2-pixel shifted test set",
        f"CNN − MLP clean test acc {pm(cnn_gain)} points; shifted test acc with − without augmentation "
        f"{pm(shift_gain)} points", "CNN − MLP ≥ 0.3 points and shift gain ≥ 10 points (means over seeds)",
        ok, fig_bars,
        details=f"{len(points)} seeds, {config.epochs} epochs, batch {config.batch_size}, Adam "
                f"{config.optimizer.learning_rate:g}; clean accuracy change from augmentation {pm(clean_change)} "
                f"points (reported, not claimed); per seed CNN − MLP: "
                + ", ".join(f"{100 * g:+.2f}" for g in cnn_gain) + "; " + table)]


def _figure_bars(acc, n_params, path):
    import matplotlib.pyplot as plt
    labels = list(acc)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    width = 0.38
    xs = np.arange(len(labels))
    for j, (split, name) in enumerate((("test", "clean test"), ("shifted", "test shifted 1–2 px"))):
        m = [100 * acc[k][split].mean() for k in labels]
        s = [100 * acc[k][split].std(ddof=1) for k in labels]
        bars = ax.bar(xs + (j - 0.5) * width, m, width, yerr=s, capsize=3, label=name)
        for b, v in zip(bars, m):
            ax.text(b.get_x() + b.get_width() / 2, v + 1, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_xticks(xs, [f"{k}\n({n_params[k]:,} params)" for k in labels])
    ax.set(ylabel="accuracy (%), mean ± std over seeds", ylim=(0, 105),
           title="digits: CNN vs matched MLP; training with random ±1 px shifts")
    ax.legend(loc="lower right", fontsize=8)
    return plots.save(fig, path)


def _figure_filters(filters, path):
    import matplotlib.pyplot as plt
    rows = len(filters)
    c = next(iter(filters.values())).shape[-1]
    fig, axes = plt.subplots(rows, c, figsize=(0.6 * c, 0.75 * rows + 0.45), squeeze=False)
    for r, (label, w) in enumerate(filters.items()):
        lim = np.abs(w).max()
        for j in range(c):
            ax = axes[r, j]
            ax.imshow(w[:, :, 0, j], cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=7)
    fig.suptitle("learned first-layer 3×3 filters (seed 0; red +, blue −)", fontsize=9)
    return plots.save(fig, path)
