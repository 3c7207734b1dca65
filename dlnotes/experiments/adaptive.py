"""Adam takes evenly sized steps along badly scaled coordinates; AdamW ≠ L2 Adam; schedules (C18).

Problem: the diagonal quadratic f(x) = ½ Σ λ_i (x_i − x*_i)², λ log-spaced over 100×
(``dlnotes.linear.make_quadratic(rotate=False)``), x a (d, 1) kernel. GD, Adam, Adam with
L2 in the loss and AdamW run side by side in one engine run (one compile), reused on two
problems (``data=``):

1. x* = 0, x0 = ±1 (random signs per seed): GD's first steps |Δx_i| = ηλ_i differ across
   coordinates by κ; Adam's m̂/√v̂ is invariant to a per-coordinate rescaling, so its
   per-coordinate step ratio max_i|Δx_i| / min_i|Δx_i| stays ≈ 1 for the first 100 steps.
2. x* = ±1, x0 = 0, η cosine-decayed to 0: Adam with L2 (λ/2)‖x‖² in the loss lands on the
   ridge point x_i = λ_i x*_i/(λ_i + λ), shrinking the flat coordinates most; AdamW's decoupled
   decay lands elsewhere (the numbers are reported).

Also draws η_t of every schedule in ``factory.SCHEDULES`` (``schedule_fn``), checked against
optax's schedules where optax has the same one. Runs in float64.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes import linear
from dlnotes.errors import check
from dlnotes.experiments.base import claim
from dlnotes.experiments.common import quadratic_data, quadratic_task, side_by_side_task
from dlnotes.hparams import with_changes
from dlnotes.optim import factory
from dlnotes.optim.factory import validate_optimizer_config
from dlnotes.train import plots
from dlnotes.train.runner import Runner
from dlnotes.train.sweep import run_points

CLAIMS = ("C18",)

# Schedules drawn for users to pick from: name -> optimizer.schedule settings (T = SCHEDULE_STEPS).
SCHEDULE_STEPS = 1000
SCHEDULE_EXAMPLES = {
    "constant": {},
    "step": dict(decay_rate=0.5, step_size=250),
    "inverse_time": dict(decay_rate=1.0, step_size=50),
    "exponential": dict(decay_rate=0.1, step_size=500),
    "cosine": dict(alpha=0.0),
    "warmup_cosine": dict(warmup_steps=100, alpha=0.05),
}

SCHEDULE_FORMULAS = {  # η_t / η, as in factory.schedule_fn (r = decay_rate, s = step_size, W = warmup_steps)
    "constant": "1",
    "step": "r^⌊t/s⌋",
    "inverse_time": "1 / (1 + r t/s)",
    "exponential": "r^(t/s)",
    "cosine": "α + (1−α)(1 + cos(πt/T))/2",
    "warmup_cosine": "t/W, then cosine over T − W",
}


def validate(config):
    validate_optimizer_config(config)
    check(config.data.kappa >= 1, "data.kappa", f"must be >= 1, got {config.data.kappa!r}")
    check(config.data.dim >= 2, "data.dim", f"must be >= 2, got {config.data.dim!r}")


def make_data(config, x_star=None):
    """The diagonal quadratic; x* = 0 unless given."""
    c = config.data
    q = linear.make_quadratic(jax.random.key(c.seed), c.dim, c.kappa, rotate=False, dtype=jnp.zeros(()).dtype)
    xs = jnp.zeros(c.dim, q.A.dtype) if x_star is None else jnp.asarray(x_star, q.A.dtype)
    return quadratic_data(q._replace(x_star=xs, b=q.A @ xs))


def build_task(config, data=None):
    """One run of the configured optimizer from x0 = init_scale · (±1) towards x* = 0."""
    return quadratic_task(config, data if data is not None else make_data(config), kernel=True, init="signs")


def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    with jax.enable_x64(True):
        return _run(config, workdir)


def _optimizers(config):
    """label -> config: GD (η = 1/λ_max), Adam, Adam + L2 in the loss, AdamW (both cosine-decayed to 0)."""
    c = config.check
    wd = c.weight_decay
    plain = {"optimizer.weight_decay": 0.0, "optimizer.schedule.name": "constant"}
    decayed = {"optimizer.weight_decay": wd, "optimizer.schedule.name": "cosine", "optimizer.schedule.alpha": 0.0}
    return {"GD": with_changes(config, **{"optimizer.name": "sgd", "optimizer.learning_rate": c.gd_learning_rate,
                                          **plain}),
            "Adam": with_changes(config, **{"optimizer.name": "adam", **plain}),
            "Adam + L2": with_changes(config, **{"optimizer.name": "adam", **decayed}),
            "AdamW": with_changes(config, **{"optimizer.name": "adamw", **decayed})}


def step_ratio(xs):
    """Per-coordinate step sizes |x_{t+1,i} − x_{t,i}| (T, d) and their ratio max_i / min_i per step (T,)."""
    steps = np.abs(np.diff(np.asarray(xs), axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):  # a coordinate already exactly at x*: ratio inf
        return steps, steps.max(-1) / steps.min(-1)


def _run(config, workdir):
    c = config.check
    check(c.window <= config.num_steps, "check.window", f"must be <= num_steps={config.num_steps}")
    configs = _optimizers(config)
    lam = np.asarray(linear.condition_spectrum(config.data.dim, config.data.kappa, dtype=jnp.float64))
    kappa = float(lam[0] / lam[-1])
    data0 = make_data(config)  # x* = 0
    signs = np.asarray(jax.random.rademacher(jax.random.key(config.data.seed + 1), (config.data.dim,), jnp.float64))
    data1 = make_data(config, x_star=signs)
    task = side_by_side_task(configs, data0, num_steps=config.num_steps, kernel=True, init="signs")
    runner = Runner(task, grid=True)
    seeds = list(range(c.num_seeds))
    _, res0 = run_points(task, config, [{"seed": s, "model.init_scale": 1.0} for s in seeds], runner=runner,
                         data=data0, progress="adaptive x0=±1")
    _, res1 = run_points(task, config, [{"seed": s, "model.init_scale": 0.0} for s in seeds], runner=runner,
                         data=data1, progress="adaptive x*=±1")
    ev0, ev1 = res0.metrics["evals"], res1.metrics["evals"]
    x = {n: np.asarray(ev0[f"x/{n}"])[..., 0] for n in ("GD", "Adam")}  # (S, T + 1, d)

    # 1. step sizes: GD's first step vs Adam's ratio over the window
    gd_first = [step_ratio(x["GD"][s])[1][0] for s in seeds]
    adam_ratio = [step_ratio(x["Adam"][s])[1][:c.window].max() for s in seeds]
    gd_min, adam_max = float(min(gd_first)), float(max(adam_ratio))

    # 2. decoupled decay vs L2 in the loss: final weights
    wd = c.weight_decay
    x_l2 = np.asarray(ev1["x/Adam + L2"])[0, -1, :, 0]
    x_w = np.asarray(ev1["x/AdamW"])[0, -1, :, 0]
    ridge = lam * signs / (lam + wd)
    l2_vs_ridge = float(np.linalg.norm(x_l2 - ridge) / np.linalg.norm(ridge))
    w_vs_l2 = float(np.linalg.norm(x_w - x_l2) / np.linalg.norm(x_l2))
    differ = w_vs_l2 > l2_vs_ridge
    shrink_l2, shrink_w = x_l2 * signs, x_w * signs  # x_i / x*_i

    fig = _figure_steps(x, lam, wd, shrink_l2, shrink_w, c.window, config.num_steps,
                        os.path.join(workdir, "adam_step_sizes.png"))
    sched_fig, sched_dev = _figure_schedules(config, os.path.join(workdir, "schedules.png"))
    ok = gd_min >= 0.99 * kappa and adam_max <= 1.05 and differ
    return [claim(
        "C18", "Adam's per-coordinate steps are even on a badly scaled quadratic (GD's differ by κ); "
               "AdamW's decoupled decay differs from L2-in-the-loss Adam",
        f"GD first-step ratio {gd_min:.4g} (κ={kappa:.4g}); Adam max step ratio over {c.window} steps "
        f"{adam_max:.6f}; ‖x_AdamW − x_L2‖/‖x_L2‖ = {w_vs_l2:.3f} vs L2 Adam's distance to its ridge point "
        f"{l2_vs_ridge:.2g}",
        "GD ≥ 0.99·κ; Adam ≤ 1.05; AdamW's weights differ from L2 Adam's by more than L2 Adam's own error",
        ok, fig,
        details=f"d={config.data.dim}, λ over [{lam[-1]:.3g}, {lam[0]:.3g}], x0 = ±1 ({c.num_seeds} sign patterns), "
                f"GD η={c.gd_learning_rate:g}, Adam η={config.optimizer.learning_rate:g}, b1="
                f"{config.optimizer.b1:g}, b2={config.optimizer.b2:g}; per seed GD first-step ratio "
                + ", ".join(f"{v:.4g}" for v in gd_first) + ", Adam max ratio "
                + ", ".join(f"{v:.6f}" for v in adam_ratio)
                + f". Decay λ={wd:g}, x* = ±1, x0 = 0, η cosine to 0 over {config.num_steps} steps: final "
                  f"x_i/x*_i from the stiffest to the flattest coordinate: L2 Adam "
                + ", ".join(f"{v:.3f}" for v in shrink_l2) + " (ridge λ_i/(λ_i+λ): "
                + ", ".join(f"{v:.3f}" for v in lam / (lam + wd)) + "); AdamW "
                + ", ".join(f"{v:.3f}" for v in shrink_w)
                + f"; ‖x‖: L2 Adam {np.linalg.norm(x_l2):.3f}, AdamW {np.linalg.norm(x_w):.3f}. "
                  f"Schedules figure ({os.path.basename(sched_fig)}): η_t of every schedule in factory.SCHEDULES; "
                  f"schedule_fn vs optax's same schedules max |Δη|/η = {sched_dev:.1g}")]


# ---------------------------------------------------------------- figures

def _figure_steps(x, lam, wd, shrink_l2, shrink_w, window, num_steps, path):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    cmap = plt.get_cmap("viridis")
    d = lam.size
    for ax, name in zip(axes[:2], ("GD", "Adam")):
        steps, ratio = step_ratio(x[name][0][:window + 1])
        for i in range(d):
            ax.semilogy(np.arange(window), steps[:, i], color=cmap(i / max(d - 1, 1)), lw=1.2,
                        label=f"λ={lam[i]:.3g}" if i in (0, d // 2, d - 1) else None)
        ax.set(xlabel="step t", ylabel=r"step size $|x_{t+1,i} - x_{t,i}|$", ylim=(1e-5, 3),
               title=f"{name}: step size per coordinate\n" + (
                   f"first step max/min = {ratio[0]:.4g} (κ = {lam[0] / lam[-1]:.4g})" if name == "GD" else
                   f"max/min ≤ {np.max(ratio):.6g} for every t < {window}"))
        ax.legend(fontsize=7, title="coordinate curvature", title_fontsize=7, loc="lower left")
    ax = axes[2]
    ax.semilogx(lam, lam / (lam + wd), "k--", lw=1, label="ridge λ_i/(λ_i + λ)")
    ax.semilogx(lam, shrink_l2, "o", label="Adam, L2 in the loss")
    ax.semilogx(lam, shrink_w, "s", label="AdamW (decoupled)")
    ax.set(xlabel="curvature λ_i", ylabel="final x_i / x*_i", ylim=(0, 1.1),
           title=f"weight decay λ={wd:g} after {num_steps} steps (η cosine → 0)")
    ax.legend(fontsize=8)
    return plots.save(fig, path)


def _schedule_config(name, settings):
    import ml_collections
    c = ml_collections.ConfigDict()
    c.num_steps = SCHEDULE_STEPS
    c.optimizer = factory.default_optimizer_config()
    c.optimizer.learning_rate = 1.0
    c.optimizer.schedule.name = name
    for k, v in settings.items():
        c.optimizer.schedule[k] = v
    return c


def _optax_schedule(name, s, eta=1.0, T=SCHEDULE_STEPS):
    import optax
    if name == "constant":
        return optax.constant_schedule(eta)
    if name == "step":
        return optax.exponential_decay(eta, s["step_size"], s["decay_rate"], staircase=True)
    if name == "exponential":
        return optax.exponential_decay(eta, s["step_size"], s["decay_rate"])
    if name == "cosine":
        return optax.cosine_decay_schedule(eta, T, s["alpha"])
    if name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, eta, s["warmup_steps"], T, s["alpha"] * eta)
    return lambda t: eta / (1 + s["decay_rate"] * t / s["step_size"])  # inverse_time: the formula itself


def _figure_schedules(config, path):
    """η_t / η for every schedule in ``factory.SCHEDULES``; max relative deviation from optax's."""
    import matplotlib.pyplot as plt
    missing = set(factory.SCHEDULES) - set(SCHEDULE_EXAMPLES)
    check(not missing, "SCHEDULE_EXAMPLES", f"no example for {sorted(missing)}")
    t = jnp.arange(SCHEDULE_STEPS + 1)
    n = len(factory.SCHEDULES)
    fig, axes = plt.subplots(2, (n + 1) // 2, figsize=(13, 6.5), sharex=True)
    dev = 0.0
    for ax, name in zip(axes.ravel(), factory.SCHEDULES):
        s = SCHEDULE_EXAMPLES[name]
        eta = np.asarray(jax.vmap(factory.schedule_fn(_schedule_config(name, s)))(t))
        ref = np.asarray(jax.vmap(_optax_schedule(name, s))(t))
        dev = max(dev, float(np.max(np.abs(eta - ref))))
        ax.plot(np.asarray(t), eta, lw=1.6)
        ax.set_title(f"{name}: {SCHEDULE_FORMULAS[name]}\n" + ", ".join(f"{k}={v:g}" for k, v in s.items()),
                     fontsize=9)
        ax.set_ylim(-0.03, 1.05)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("step t")
    for ax in axes[:, 0]:
        ax.set_ylabel("η_t / η")
    fig.suptitle(f"Learning-rate schedules of dlnotes.optim.factory (T = num_steps = {SCHEDULE_STEPS})")
    return plots.save(fig, path), dev
