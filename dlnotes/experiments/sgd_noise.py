"""SGD's noise: constant η only sort of converges; sampling schemes (C3, C4).

C3  Noisy, overdetermined least squares (x ~ N(0, I_d), y = xᵀw + σε), SGD with
    batch 1 sampled with replacement. With constant η the mean squared distance
    to the empirical optimum ŵ, averaged over the second half of the run,
    grows ∝ η (log-log slope within 0.3 of 1, averaged over seeds), for
    η ≤ 0.2·(2/E‖x‖²). With the 1/t schedule η_t = η/(1 + (η/η_top)·t/s) from the same η
    (decay after ≈ s·η_top/η steps) the final distance keeps shrinking: ≥ 10× below constant η's, at
    every η.
C4  On a large noisy dataset (L* > 0), epochs with reshuffling and sampling with
    replacement reach the same final loss within 5% when η is decayed to ~0
    (cosine); with constant η the seed means are reported side by side.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes import linear
from dlnotes.data.io import load_regression_npz
from dlnotes.data.synthetic import gaussian_regression
from dlnotes.errors import check
from dlnotes.experiments.base import claim
from dlnotes.optim.factory import make_optimizer, validate_optimizer_config
from dlnotes.train import plots
from dlnotes.hparams import with_changes
from dlnotes.train.sweep import run_points
from dlnotes.train.tasks import least_squares_task

CLAIMS = ("C3", "C4")


def validate(config):
    validate_optimizer_config(config)
    n = len(load_regression_npz(config.data.npz)["y"]) if config.data.get("npz") else config.data.n
    check(0 <= config.batch_size <= n, "batch_size", f"must be in [0, {n}] (the number of examples; 0 = full batch)")
    check(config.sampling in ("epoch", "replacement"), "sampling", "must be 'epoch' or 'replacement'")


def make_data(config, n=None):
    """The noisy regression (or the user's ``data.npz`` with arrays x (n, d), y (n,))."""
    if config.data.get("npz") and n is None:
        p = {k: jnp.asarray(v) for k, v in load_regression_npz(config.data.npz).items()}
    else:
        p = gaussian_regression(jax.random.key(config.data.seed), n or config.data.n, config.data.d,
                                noise=config.data.noise)
    w_hat = linear.least_squares(p["x"], p["y"])
    return {"train": {"x": p["x"], "y": p["y"]}, "w_hat": w_hat}


def _evaluate(params, model_state, data, hp):
    x, y = data["train"]["x"], data["train"]["y"]
    return {"full_loss": linear.least_squares_loss(x, y, params),
            "dist2": jnp.sum(jnp.square(params - data["w_hat"]))}


def build_task(config, data=None, **overrides):
    data = data if data is not None else make_data(config)
    return least_squares_task(config, data, optimizer=lambda hp: make_optimizer(config, hp),
                              evaluate=_evaluate, **overrides)


def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    return [_c3(config, workdir), _c4(config, workdir)]


def _c3(config, workdir):
    c = config.c3
    cfg = with_changes(config, num_steps=c.num_steps, batch_size=1, sampling="replacement", log_every=c.log_every,
                **{"data.npz": ""})
    data = make_data(cfg)
    eta_max = 2.0 / cfg.data.d  # 2/E‖x‖²
    etas = [float(f * eta_max) for f in c.eta_fractions]
    seeds = list(range(c.num_seeds))
    points = [{"optimizer.learning_rate": e, "seed": s} for s in seeds for e in etas]
    _, res = run_points(build_task(cfg, data), cfg, points, progress="C3 constant η")
    d2 = np.asarray(res.metrics["evals"]["dist2"]).reshape(len(seeds), len(etas), -1)
    half = d2.shape[-1] // 2
    stationary = d2[..., half:].mean(-1)                         # (seeds, etas)
    slopes = [np.polyfit(np.log(etas), np.log(stationary[g]), 1)[0] for g in range(len(seeds))]
    slope = float(np.mean(slopes))

    dcfg = with_changes(cfg, **{"optimizer.schedule.name": "inverse_time", "optimizer.schedule.decay_rate": 1.0,
                         "optimizer.schedule.step_size": c.decay_steps})
    # η_t = η/(1 + (η/η_top)·t/s): decay starts after ≈ s·η_top/η steps, the same amount of progress
    # Σ η_t for every η (with one s for all, a small η's run decays before its bias has gone).
    dpoints = [{**p, "optimizer.schedule.decay_rate": p["optimizer.learning_rate"] / etas[-1]} for p in points]
    _, dres = run_points(build_task(dcfg, data), dcfg, dpoints, progress="C3 1/t schedule")
    dd2 = np.asarray(dres.metrics["evals"]["dist2"]).reshape(len(seeds), len(etas), -1)
    final_decay = dd2[..., -1].mean(0)
    ratios = stationary.mean(0) / final_decay          # constant / decayed, at every η
    ratio = float(ratios.min())
    ok = abs(slope - 1.0) <= 0.3 and ratio >= 10
    fig = _figure_c3(etas, stationary, d2, dd2, c.log_every, os.path.join(workdir, "sgd_noise_ball.png"))
    return claim("C3", "constant-η SGD only sort of converges: stationary distance ∝ η; a decaying η keeps shrinking",
                 f"slope {slope:.3f} (per seed {', '.join(f'{s:.2f}' for s in slopes)}); "
                 f"constant/decayed final distance ≥ {ratio:.1f}× (at each η: "
                 + ", ".join(f"{r:.3g}" for r in ratios) + ")",
                 "|slope − 1| ≤ 0.3; ≥ 10× at every η", ok, fig,
                 details=f"η up to {c.eta_fractions[-1]}·(2/E‖x‖²), batch 1 with replacement, "
                         f"{c.num_steps} steps, 1/t decay η/(1 + (η/η_top)·t/{c.decay_steps}) (η_top = the largest η)")


def _c4(config, workdir):
    c = config.c4
    base = with_changes(config, batch_size=c.batch_size, log_every=c.log_every,
                 num_steps=c.epochs * (c.n // c.batch_size),
                 **{"optimizer.learning_rate": c.learning_rate, "data.npz": ""})
    data = make_data(base, n=c.n)
    l_star = float(linear.least_squares_loss(data["train"]["x"], data["train"]["y"], data["w_hat"]))
    points = [{"seed": s} for s in range(c.num_seeds)]
    finals, curves = {}, {}
    for sched in ("cosine", "constant"):
        for sampling in ("epoch", "replacement"):
            cfg = with_changes(base, sampling=sampling, **{"optimizer.schedule.name": sched})
            _, res = run_points(build_task(cfg, data), cfg, points, progress=f"C4 {sampling} {sched}")
            full = np.asarray(res.metrics["evals"]["full_loss"])
            finals[sched, sampling] = full[:, -1]
            curves[f"{sampling}, {sched} η"] = full.mean(0)
    a, b = finals["cosine", "epoch"].mean(), finals["cosine", "replacement"].mean()
    rel = abs(a - b) / min(a, b)
    ca, cb = finals["constant", "epoch"].mean(), finals["constant", "replacement"].mean()
    steps = np.arange(len(next(iter(curves.values())))) * c.log_every
    fig = plots.learning_curves(curves, os.path.join(workdir, "sampling.png"), steps=steps,
                                title=f"SGD batch {c.batch_size} on n={c.n} (L* = {l_star:.4f}): full-data loss")
    return claim("C4", "epochs with reshuffling vs sampling with replacement reach the same final loss (η decayed to 0)",
                 f"{100 * rel:.2f}% (epoch {a:.5f} vs replacement {b:.5f})", "≤ 5%", rel <= 0.05, fig,
                 details=f"L* = {l_star:.5f}; constant η: epoch {ca:.5f} vs replacement {cb:.5f} "
                         f"(seed means, {c.num_seeds} seeds); {c.epochs} epochs")


def _figure_c3(etas, stationary, d2, dd2, log_every, path):
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    m = stationary.mean(0)
    a1.loglog(etas, m, "o-", label="constant η: mean over 2nd half, seed mean")
    for g in range(stationary.shape[0]):
        a1.loglog(etas, stationary[g], ".", color="0.6")
    a1.loglog(etas, m[0] * np.asarray(etas) / etas[0], "k--", lw=1, label="∝ η")
    a1.loglog(etas, dd2[..., -1].mean(0), "s-", label="1/t schedule: final")
    from matplotlib.ticker import NullFormatter
    a1.xaxis.set_minor_formatter(NullFormatter())
    a1.set(xlabel="η", ylabel="‖w − ŵ‖²", title="SGD's noise ball grows with η (1/t decay: bias left at small η)")
    a1.legend(fontsize=7)
    t = np.arange(d2.shape[-1]) * log_every
    a2.semilogy(t, d2[:, -1].mean(0), lw=0.8, label=f"constant η={etas[-1]:.3g}")
    a2.semilogy(t, dd2[:, -1].mean(0), lw=0.8, label="1/t decay from the same η")
    a2.set(xlabel="step", ylabel="‖w_t − ŵ‖² (seed mean)", title="only sort of converges")
    a2.legend(fontsize=7)
    return plots.save(fig, path)
