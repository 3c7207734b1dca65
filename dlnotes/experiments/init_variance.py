"""Initialization: activation variance through 50 layers, and four bias policies (C14, C15).

C14  q_l = mean(z_l²), the second moment of layer l's pre-activations z_l = h_{l−1} W_l (zero biases),
     h_0 = x ~ N(0, I) of the layer width. Xavier (var 2/(fan_in + fan_out) = 1/width here):
     linear layers keep q (q_50/q_0 within ×1.5), ReLU halves it (q_{l+1} = q_l/2: mean per-layer
     ratio in [0.45, 0.55]), tanh decays polynomially, q_l ≈ 1/(2l) (q_{l+1} ≈ q_l − 2q_l²): log q is a
     line in log l of slope ≈ −1, not a line in l. He (var 2/fan_in) keeps a ReLU net's q: q_50/q_1
     within ×2 at width 2048 (fixed seeds).
C15  relu_elbows' elbow task trained from the four bias policies (fan-in d+1 Xavier, 0, 0.01, N(0, 0.01²)):
     the band max/min of the seed-median final losses must be ≤ 2× ("a small band"); the seeds' own
     spread is reported beside it. Measured here: the band is wide (zero/small biases stack every elbow
     at x = 0 and Adam often stalls on a plateau): verdict ``differs``. The finding that explains it is
     checked: the fan-in d+1 bias (elbows spread) stalls on no seed and its median is ≤ 2× the best
     median of the other three.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes.experiments.base import claim
from dlnotes.experiments.common import elbow_data as make_data, elbow_task, validate_elbows
from dlnotes.models.relu_net import ACTIVATIONS
from dlnotes.nn import init as nn_init
from dlnotes.train import plots
from dlnotes.hparams import with_changes
from dlnotes.train.sweep import run_points

CLAIMS = ("C14", "C15")
DIFFERS = ("C15",)  # the notes' small band does not reproduce (CLAIMS.md)

PLATEAU = 4.69e-2  # the train loss many runs from elbows clustered at 0 stall at (measured, sin(3x) on [-2, 2])


def validate(config):
    validate_elbows(config)


def build_task(config):
    """C15's run: the elbow task with ``config.model.bias_init``."""
    return elbow_task(config)


# ---------------------------------------------------------------------------
# C14: second moments through depth


def _layer(h, W, activation):
    z = h @ W
    return ACTIVATIONS[activation](z), jnp.mean(jnp.square(z))


def forward_moments(weights, x, activation):
    """q_l = mean(z_l²) for stacked square weights (L, w, w): z_l = h_{l−1} W_l, h_l = act(z_l), h_0 = x. -> (L,)."""
    _, q = jax.lax.scan(lambda h, W: _layer(h, W, activation), x, weights)
    return q


@functools.partial(jax.jit, static_argnames=("width", "depth", "batch", "activation", "weight_init"))
def layer_second_moments(key, *, width, depth, batch, activation, weight_init):
    """(q_0, q_1..q_depth): the input's and each layer's pre-activation second moment, x ~ N(0, I_width).

    W_l ~ ``weight_init`` of shape (width, width) from ``fold_in(key, l)``, drawn inside the scan one
    layer at a time (a 50-layer width-2048 net never sits in memory). Same math as ``forward_moments``.
    """
    init = nn_init.weight_init(weight_init)
    kx, kw = jax.random.split(key)
    x = jax.random.normal(kx, (batch, width))

    def step(h, l):
        return _layer(h, init(jax.random.fold_in(kw, l), (width, width)), activation)

    _, q = jax.lax.scan(step, x, jnp.arange(depth))
    return jnp.mean(jnp.square(x)), q


def moments(seeds, **kw):
    """Stacked (q_0 (S,), q (S, depth)) over fixed seeds (sequential: vmapping the scan gains nothing on CPU)."""
    out = [layer_second_moments(jax.random.key(int(s)), **kw) for s in seeds]
    return np.array([float(o[0]) for o in out]), np.stack([np.asarray(o[1]) for o in out])


def tanh_decay_fit(q, fit_from):
    """Fits of log q_l over l ≥ fit_from: power law (vs log l) and exponential (vs l).

    Returns (power-law slope, RMS residual of the power law, RMS residual of the exponential).
    """
    l = np.arange(1, q.size + 1)[fit_from - 1:]
    lq = np.log(q[fit_from - 1:])
    res = []
    for xs in (np.log(l), l.astype(float)):
        coef = np.polyfit(xs, lq, 1)
        res.append((coef[0], float(np.sqrt(np.mean((np.polyval(coef, xs) - lq) ** 2)))))
    return float(res[0][0]), res[0][1], res[1][1]


def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    return [_c14(config, workdir), _c15(config, workdir)]


def _c14(config, workdir):
    c = config.c14
    common = dict(width=c.width, depth=c.depth, batch=c.batch, weight_init="xavier_normal")
    q0_lin, q_lin = moments(c.seeds, activation="linear", **common)
    q0_relu, q_relu = moments(c.seeds, activation="relu", **common)
    q0_tanh, q_tanh = moments(c.seeds, activation="tanh", **common)
    _, q_he = moments(c.he_seeds, width=c.he_width, depth=c.depth, batch=c.he_batch, activation="relu",
                      weight_init="he_normal")
    lin = q_lin[:, -1] / q0_lin                                  # final / input
    relu = np.mean(q_relu[:, 1:] / q_relu[:, :-1], axis=1)       # mean per-layer ratio, per seed
    qt = q_tanh.mean(0)
    slope, rms_pow, rms_exp = tanh_decay_fit(qt, c.tanh_fit_from)
    two_l_q = qt[-1] * 2 * c.depth
    he = q_he[:, -1] / q_he[:, 0]                                # q_50 / q_1
    ok_lin = bool(np.all((lin >= 1 / 1.5) & (lin <= 1.5)))
    ok_relu = bool(np.all((relu >= 0.45) & (relu <= 0.55)))
    ok_tanh = abs(slope + 1) <= 0.2 and rms_exp >= 3 * rms_pow
    ok_he = bool(np.all((he >= 0.5) & (he <= 2.0)))
    fig = _figure_c14(q_lin, q_relu, q_tanh, q_he, c, os.path.join(workdir, "activation_variance.png"))
    return claim("C14", "Xavier keeps variance through linear layers, halves it per ReLU layer, decays ≈ 1/(2l) "
                        "under tanh; He keeps a deep ReLU net's second moment",
                 f"linear q50/q0 {lin.min():.3f}–{lin.max():.3f}; ReLU mean ratio {relu.min():.4f}–{relu.max():.4f}; "
                 f"tanh log-log slope {slope:.3f} (RMS residual power law {rms_pow:.3f} vs exponential "
                 f"{rms_exp:.3f}), 2l·q_l at l={c.depth}: {two_l_q:.3f}; He width {c.he_width} q50/q1 "
                 f"{he.min():.3f}–{he.max():.3f}",
                 "linear within ×1.5; ReLU ratio ∈ [0.45, 0.55]; tanh slope −1 ± 0.2 and exponential residual ≥ 3× "
                 "the power law's; He within ×2 (every seed)",
                 ok_lin and ok_relu and ok_tanh and ok_he, fig,
                 details=f"Xavier nets width {c.width}, depth {c.depth}, batch {c.batch}, seeds {list(c.seeds)}; tanh "
                         f"fits over l = {c.tanh_fit_from}…{c.depth} of the seed-mean q_l; He: width {c.he_width}, "
                         f"batch {c.he_batch}, seeds {list(c.he_seeds)}, log q50/q1 spread "
                         f"{np.std(np.log(he)):.3f} (13/√width = {13 / np.sqrt(c.he_width):.3f})")


# ---------------------------------------------------------------------------
# C15: bias policies on the elbow task


def c15_check(finals, spread_init="xavier_fan_in_plus_one"):
    """C15 from the final losses per bias policy ``{name: (seeds,)}``.

    Returns (band, notes_hold, finding_ok, medians, stalled, best_other): the notes' "small band" is
    band = max/min of the seed medians ≤ 2×. The finding that explains a wide band: the ``spread_init``
    policy (elbows spread out) has no stalled seed (≥ 10× the best median) and its median is ≤ 2× the
    best median of the *other* policies.
    """
    med = {k: float(np.median(v)) for k, v in finals.items()}
    band = max(med.values()) / min(med.values())
    best = min(med.values())
    stalled = {k: int(np.sum(np.asarray(v) >= 10 * best)) for k, v in finals.items()}
    best_other = min(v for k, v in med.items() if k != spread_init)
    ok = stalled[spread_init] == 0 and med[spread_init] <= 2.0 * best_other
    return band, band <= 2.0, ok, med, stalled, best_other


def _c15(config, workdir):
    c = config.c15
    data = make_data(config)
    seeds = list(range(c.num_seeds))
    finals, curves = {}, {}
    for name in c.bias_inits:
        cfg = with_changes(config, **{"model.bias_init": name})
        _, res = run_points(elbow_task(cfg, data), cfg, [{"seed": s} for s in seeds], progress=f"C15 bias {name}")
        finals[name] = np.asarray(res.metrics["evals"]["train_mse"])[:, -1]
        curves[name] = np.median(np.asarray(res.metrics["evals"]["train_mse"]), 0)
    spread_init = "xavier_fan_in_plus_one"
    band, small, ok, med, stalled, best_other = c15_check(finals, spread_init)
    seed_spread = float(np.median([v.max() / v.min() for v in finals.values()]))
    steps = np.arange(len(next(iter(curves.values())))) * config.log_every
    fig = plots.learning_curves(curves, os.path.join(workdir, "bias_inits.png"), steps=steps, ylabel="train ½·MSE",
                                title=f"Elbow task (width {config.model.width}, {config.model.weight_init}): "
                                      f"median of {len(seeds)} seeds per bias init")
    return claim("C15", "the four bias initializations reach final losses within a small band on the elbow task "
                        f"({'reproduced' if small else 'NOT reproduced here'}: band {band:.3g}×); "
                        "checked: the fan-in d+1 bias, which spreads the elbows, never stalls",
                 f"band {band:.3g}× (seed-to-seed within an init {seed_spread:.3g}×); stalled seeds (≥ 10× best "
                 "median): " + ", ".join(f"{k} {n}/{len(seeds)}" for k, n in stalled.items()),
                 "notes: band ≤ 2×; finding: fan-in d+1 has 0 stalled seeds and median ≤ 2× the best of the other three "
                 f"(measured {med[spread_init] / best_other:.3g}×)", ok, fig, notes_hold=small,
                 details=f"{config.optimizer.name} η={config.optimizer.learning_rate}, {config.num_steps} full-batch "
                         f"steps, width {config.model.width}, {config.model.weight_init} weights; final train loss "
                         f"median [min–max] per init: " + "; ".join(
                             f"{k} {med[k]:.2e} [{v.min():.2e}–{v.max():.2e}]" for k, v in finals.items())
                         + f"; runs stalled on the {PLATEAU:.3g} plateau: " + ", ".join(
                             f"{k} {int(np.sum(np.isclose(v, PLATEAU, rtol=0.02)))}/{v.size}" for k, v in finals.items())
                         + ". Measured, not hidden: the band comes from seeds stalled on a plateau of the loss; "
                           "zero and N(0, 0.01²) biases stack every elbow at x ≈ 0, the fan-in d+1 Xavier bias "
                           "spreads them (Cauchy-like)")


# ---------------------------------------------------------------------------


def _figure_c14(q_lin, q_relu, q_tanh, q_he, c, path):
    import matplotlib.pyplot as plt
    l = np.arange(1, c.depth + 1)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for q, name, col in ((q_lin, "Xavier, linear", "C0"), (q_relu, "Xavier, ReLU", "C1"), (q_tanh, "Xavier, tanh", "C2"),
                         (q_he, f"He, ReLU (width {c.he_width})", "C3")):
        for g in range(q.shape[0]):
            ax.plot(l, q[g], color=col, lw=1, alpha=0.8, label=name if g == 0 else None)
    ax.plot(l, 2.0 ** -l, "k:", lw=1, label="2^−l")
    ax.plot(l, 1 / (2 * l), "k--", lw=1, label="1/(2l)")
    ax.set(yscale="log", xlabel="layer l", ylabel="q_l = mean(z_l²) (pre-activation)", ylim=(1e-16, 10),
           title=f"Activation variance through {c.depth} layers (width {c.width}; one line per seed)")
    ax.legend(fontsize=8, loc="lower left")
    return plots.save(fig, path)
