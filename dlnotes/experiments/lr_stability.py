"""Learning rate and stability of GD on least squares (C1, C2, C5).

Problem: L(w) = ½‖Xw − y‖²/n with H = XᵀX/n of known spectrum (λ_max = 1,
condition number κ), from ``dlnotes.linear.make_least_squares``; w0 ~ N(0, I)
per seed. One vmapped sweep over η across 2/λ_max (× seeds) gives:

C1  diverged (L_T > L_0 or non-finite) ⇔ η > 2/λ_max, outside a ±3% band;
C2  the excess loss L_T − L* falls as η grows to 1/λ_max and beyond, is
    smallest for η ∈ [1.4, 2)/λ_max, and L_T > L_0 for η ≥ 1.05·2/λ_max;
C5  the error along eigendirection i is exactly (1 − ηλ_i)^t times its start.
Runs in float64 (the C5 check is at 1e-4 relative; float64 leaves it ~1e-12).
"""
from __future__ import annotations

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes import linear
from dlnotes.experiments.base import claim
from dlnotes.optim.factory import make_optimizer, validate_optimizer_config
from dlnotes.train import plots
from dlnotes.train.sweep import run_points
from dlnotes.train.tasks import least_squares_task

CLAIMS = ("C1", "C2", "C5")


def validate(config):
    validate_optimizer_config(config)


def make_data(config, seed=None):
    """Train split of the least-squares problem, plus what the checks need."""
    seed = config.data.seed if seed is None else seed
    p = linear.make_least_squares(jax.random.key(seed), config.data.n, config.data.d, config.data.kappa,
                                  noise=config.data.noise, dtype=jnp.zeros(()).dtype)
    w_hat = linear.least_squares(p.X, p.y)
    lam, vecs = jnp.linalg.eigh(linear.hessian(p.X))
    return {"train": {"x": p.X, "y": p.y}, "w_hat": w_hat, "eigvecs": vecs[:, ::-1],
            "eigvals": lam[::-1], "l_star": linear.least_squares_loss(p.X, p.y, w_hat)}


def _evaluate(params, model_state, data, hp):
    x, y = data["train"]["x"], data["train"]["y"]
    return {"full_loss": linear.least_squares_loss(x, y, params),
            "proj": data["eigvecs"].T @ (params - data["w_hat"])}


def build_task(config, data=None):
    data = data if data is not None else make_data(config)
    return least_squares_task(config, data, optimizer=lambda hp: make_optimizer(config, hp),
                              evaluate=_evaluate, batch_size=0, log_every=1)


def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    with jax.enable_x64(True):
        return _run(config, workdir)


def _run(config, workdir):
    data = make_data(config)
    lam_max = float(data["eigvals"][0])
    eta_crit = 2.0 / lam_max
    ratios = np.asarray(config.sweep.eta_over_threshold, float)
    seeds = list(range(config.sweep.num_seeds))
    points = [{"optimizer.learning_rate": float(r * eta_crit), "seed": s} for s in seeds for r in ratios]
    task = build_task(config, data)
    rows, res = run_points(task, config, points, progress="lr_stability sweep")
    G, R = len(seeds), len(ratios)
    full = np.asarray(res.metrics["evals"]["full_loss"]).reshape(G, R, -1)
    l0, lT = full[..., 0], full[..., -1]
    l_star = float(data["l_star"])
    engine_div = np.asarray(res.state.diverged).reshape(G, R)

    # C1: measured divergence set vs η > 2/λ_max, outside the ±3% band.
    diverged = engine_div | ~np.isfinite(lT) | (lT > l0)
    predicted = ratios > 1.0
    outside = np.abs(ratios - 1.0) > 0.03
    mismatches = int(np.sum((diverged != predicted)[:, outside]))
    figs = {}
    figs["sweep"] = _figure_sweep(ratios, lT, l0, l_star, diverged, os.path.join(workdir, "lr_sweep.png"))
    c1 = claim("C1", "GD on least squares is stable iff η < 2/λ_max(H)",
               f"{mismatches} mismatches / {G * int(outside.sum())} (η, seed) outside ±3%",
               "0 mismatches", mismatches == 0, figs["sweep"],
               details=f"λ_max={lam_max:.4g}, T={config.num_steps}, κ={config.data.kappa}, {G} seeds")

    # C2: excess loss after T steps against η (in units of 1/λ_max).
    eta_units = 2.0 * ratios  # η·λ_max
    excess = np.where(diverged, np.nan, lT - l_star)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: every seed diverged there
        mean_excess = np.nanmean(excess, axis=0)
    rising = eta_units <= 1.0 + 1e-9
    steady = bool(np.all(np.diff(excess[:, rising], axis=1) < 0))
    stable = eta_units < 2.0
    best = float(eta_units[stable][np.nanargmin(np.where(np.isfinite(excess[:, stable]), excess[:, stable],
                                                         np.inf).mean(0))])
    best_each = [float(eta_units[stable][np.argmin(np.where(np.isfinite(e[stable]), e[stable], np.inf))])
                 for e in excess]
    grow = eta_units >= 1.05 * 2.0
    grows = bool(np.all(~np.isfinite(lT[:, grow]) | (lT[:, grow] > l0[:, grow])))
    ok2 = steady and all(1.4 <= b < 2.0 for b in best_each) and grows
    figs["excess"] = _figure_excess(eta_units, excess, os.path.join(workdir, "excess_loss.png"))
    c2 = claim("C2", "too small η makes little progress; best η ∈ [1.4, 2)/λ_max; L_T > L_0 beyond 1.05·2/λ_max",
               f"best η·λ_max = {best:.3g} (per seed {', '.join(f'{b:.3g}' for b in best_each)}); "
               f"falls steadily to 1/λ_max: {steady}; L_T > L_0 beyond: {grows}",
               "best ∈ [1.4, 2); monotone for η ≤ 1/λ_max; L_T > L_0 for η ≥ 1.05·2/λ_max", ok2, figs["excess"],
               details=f"mean excess at η=0.1/λ_max vs 1/λ_max: "
                       f"{_at(eta_units, mean_excess, 0.1):.3g} vs {_at(eta_units, mean_excess, 1.0):.3g}")

    # C5: error along each eigendirection follows (1 − ηλ_i)^t.
    proj = np.asarray(res.metrics["evals"]["proj"]).reshape(G, R, config.num_steps + 1, -1)
    lam = np.asarray(data["eigvals"])
    t = np.arange(config.num_steps + 1)[:, None]
    devs = []
    use = [i for i, r in enumerate(ratios) if r < 0.97]
    for g in range(G):
        for i in use:
            eta = ratios[i] * eta_crit
            e0 = proj[g, i, 0]
            pred = e0[None, :] * (1.0 - eta * lam[None, :]) ** t
            devs.append(np.max(np.abs(proj[g, i] - pred) / np.abs(e0)[None, :]))
    dev = float(np.max(devs))
    figs["directions"] = _figure_directions(proj[0], ratios, eta_crit, lam, os.path.join(workdir, "directions.png"))
    c5 = claim("C5", "GD fits large singular directions first: error_i(t) = (1 − ησ_i²)^t·error_i(0)",
               dev, "≤ 1e-4 (max relative deviation)", dev <= 1e-4, figs["directions"],
               details=f"{len(devs)} (seed, η) runs below the threshold, {lam.size} directions, float64")
    return [c1, c2, c5]


def _at(x, y, v):
    return float(y[np.argmin(np.abs(x - v))])


def _figure_sweep(ratios, lT, l0, l_star, diverged, path):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for g in range(lT.shape[0]):
        ok = ~diverged[g]
        ax.plot(ratios[ok], (lT[g] / l0[g])[ok], "o-", ms=3, lw=1, color=f"C{g}", label=f"seed {g}")
        ax.plot(ratios[~ok], np.ones((~ok).sum()) * 1.0, "x", ms=7, color="red",
                label="diverged (L_T > L_0)" if g == 0 else None)
    ax.axvline(1.0, color="k", ls="--", lw=1, label="η = 2/λ_max")
    ax.axvspan(0.97, 1.03, color="0.85", label="±3% band")
    ax.set(xscale="log", yscale="log", xlabel="η / (2/λ_max)", ylabel="L_T / L_0",
           title="GD on least squares: final loss across the stability threshold")
    ax.legend(fontsize=7)
    return plots.save(fig, path)


def _figure_excess(eta_units, excess, path):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for g in range(excess.shape[0]):
        ax.plot(eta_units, excess[g], "o-", ms=3, lw=1, label=f"seed {g}")
    ax.axvspan(1.4, 2.0, color="C2", alpha=0.15, label="[1.4, 2)/λ_max")
    ax.axvline(1.0, color="k", ls=":", lw=1, label="1/λ_max")
    ax.set(xscale="log", yscale="log", xlabel="η·λ_max", ylabel="L_T − L*",
           title="Excess loss after T steps (diverged runs omitted)")
    ax.legend(fontsize=7)
    return plots.save(fig, path)


def _figure_directions(proj, ratios, eta_crit, lam, path):
    import matplotlib.pyplot as plt
    i = int(np.argmin(np.abs(ratios - 0.45)))
    eta = ratios[i] * eta_crit
    e = np.abs(proj[i])
    t = np.arange(e.shape[0])
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for j, d in enumerate(np.unique(np.linspace(0, lam.size - 1, 5).astype(int))):
        ax.plot(t[::4], e[::4, d], "o", ms=3, color=f"C{j}")
        ax.plot(t, e[0, d] * np.abs(1 - eta * lam[d]) ** t, "-", lw=1, color=f"C{j}", label=f"λ_{d}={lam[d]:.3g}")
    ax.set(yscale="log", xlabel="step t", ylabel="|v_iᵀ(w_t − ŵ)|",
           title=f"GD error per eigendirection (dots) vs (1−ηλ_i)^t (lines), η={eta:.3g}")
    ax.legend(fontsize=7)
    return plots.save(fig, path)
