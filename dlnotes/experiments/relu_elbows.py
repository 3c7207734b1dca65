"""A one-hidden-layer ReLU net is a sum of elbows (C6, C7, C8).

Task: fit y = sin(freq·x) on an even grid of [lo, hi] with a 1 → H → 1 ReLU net
f(x) = Σ_i a_i relu(w_i x + b_i) + c, full-batch Adam (the elbow task, also used by
``init_variance``'s C15). Seeds run as one vmapped grid per width.

C6  trained parameters in float64: the net's second differences f(x+h) − 2f(x) + f(x−h)
    vanish (≤ 1e-10) farther than h from every elbow e_i = −b_i/w_i and equal the
    exact formula Σ a_i|w_i| max(0, h − |x − e_i|) everywhere;
C7  the final validation error falls with width 4…256 (Spearman ρ ≤ −0.9 on the
    medians over seeds);
C8  with N(0,1) w and b the elbows are standard Cauchy (KS, Fisher's combined p over
    fixed seeds > 0.01); a unit whose elbow lies outside the data with its slope
    pointing away is dead: zero gradient, and still dead (untouched) after training.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from scipy import stats

from dlnotes.experiments.base import claim
from dlnotes.experiments.common import elbow_data as make_data, elbow_task, target  # noqa: F401
from dlnotes.experiments.common import validate_elbows as validate  # noqa: F401
from dlnotes.losses import mse
from dlnotes.models import relu_net
from dlnotes.nn import init as nn_init
from dlnotes.train import plots
from dlnotes.hparams import with_changes
from dlnotes.train.sweep import run_points

CLAIMS = ("C6", "C7", "C8")
# Claims whose verdict at the protocol's last step is decided by float rounding (tests accept reproduced
# or differs, never fails). C7: Adam at a constant η keeps spiking late, chaotically — targets changed by
# a relative 1e-7 change which runs sit on a spike at step 10 000 (measured 2026-12-01); over the last
# 10% of evaluations, ρ ≤ −0.9 held at 37 of 41 end points and the 4 others were explained spikes at
# width 256. The final step here landed on one of the 4 (differs); another CPU's rounding can land it
# elsewhere. The fast profile runs the protocol itself, so fast and full give the same verdict.
CHAOTIC = ("C7",)










def build_task(config):
    """One run of the elbow task (``scripts/train.py``)."""
    return elbow_task(config)


def train_seeds(config, seeds, data=None, progress=None):
    """Train the elbow task for every seed in one vmapped call: RunResult (leading axis = seeds)."""
    data = data if data is not None else make_data(config)
    _, res = run_points(elbow_task(config, data), config, [{"seed": int(s)} for s in seeds], progress=progress)
    return res


def point(tree, i):
    """Grid point ``i`` of a stacked pytree."""
    return jax.tree.map(lambda a: a[i], tree)


def pad_width(params, width, far=1e6):
    """Stacked 1 → H → 1 params (plain dicts, leading axis G) padded to ``width`` units that are exactly 0:
    w = 1, b = −far (elbow far outside any grid), a = 0. The net's function is unchanged; nets of
    several widths then share one compiled check."""
    p = nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params
    H = p["hidden"]["bias"].shape[-1]
    if H == width:
        return p
    pad = width - H

    def cat(a, v, axis):
        shape = list(a.shape)
        shape[axis] = pad
        return jnp.concatenate([a, jnp.full(shape, v, a.dtype)], axis=axis)
    return {"hidden": {"kernel": cat(p["hidden"]["kernel"], 1.0, -1), "bias": cat(p["hidden"]["bias"], -far, -1)},
            "out": {"kernel": cat(p["out"]["kernel"], 0.0, -2), "bias": p["out"]["bias"]}}


# ---------------------------------------------------------------------------
# C6: second differences of trained nets in float64


def second_difference_check(config, params, h, half_width):
    """Per net of a stacked batch (plain dicts, leading axis G, width ``config.model.width``), in float64 on a grid of step h over [−half_width, half_width]:

    (max |Δ²f| farther than h from every elbow, max |Δ²f − Σ a_i|w_i| max(0, h − |x − e_i|)|,
    max |f − elbow sum|, number of elbows on the grid), each (G,), where
    Δ²f(x) = f(x+h) − 2f(x) + f(x−h) of the net's forward pass (``apply``).
    """
    with jax.enable_x64(True):
        net = relu_net.make_relu_net(config, param_dtype=jnp.float64)
        n = int(round(half_width / h))
        grid = jnp.arange(-n, n + 1, dtype=jnp.float64) * h

        def one(pure):
            f = net.apply(nnx.State(pure), nnx.State({}), grid[:, None])[0][:, 0]
            d2 = f[2:] - 2 * f[1:-1] + f[:-2]
            x = grid[1:-1]
            e = relu_net.elbow_positions(pure)
            near = jnp.min(jnp.abs(x[:, None] - e[None, :]), axis=1) < h
            formula = relu_net.elbow_second_differences(pure, x, h)[:, 0]
            elbow_sum = relu_net.elbow_formula(pure, grid)[:, 0]
            return (jnp.max(jnp.where(near, 0.0, jnp.abs(d2))), jnp.max(jnp.abs(d2 - formula)),
                    jnp.max(jnp.abs(elbow_sum - f)), jnp.sum(jnp.abs(e) < half_width - h))

        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        return tuple(np.asarray(v) for v in jax.jit(jax.vmap(one))(p64))


# ---------------------------------------------------------------------------
# C8: Cauchy elbows and dead ReLUs


def hidden_init(weight_init, bias_init, seeds, width):
    """Initial hidden-layer params (plain dicts, leading axis = seeds) of ``width``-unit 1-input nets, drawn with
    the same ``dlnotes.nn.init`` initializers ReLUNet's hidden layer uses (fan_in 1, fan_out width). Only
    the hidden layer sets elbows and dead units; no compile per scheme."""
    w_fn = nn_init.weight_init(weight_init)
    b_fn = nn_init.bias_init(bias_init, fan_in=1, fan_out=width)

    def one(key):
        kw, kb = jax.random.split(key)
        return {"hidden": {"kernel": w_fn(kw, (1, width)), "bias": b_fn(kb, (width,))}}

    return jax.vmap(one)(jnp.stack([jax.random.key(int(s)) for s in seeds]))


def cauchy_ks(elbows_per_seed):
    """KS p-values of each seed's elbows against the standard Cauchy, and Fisher's combined p."""
    ps = [float(stats.kstest(np.asarray(e), "cauchy").pvalue) for e in elbows_per_seed]
    return ps, float(stats.combine_pvalues(ps, method="fisher").pvalue)


def dead_unit_gradients(config, params, data):
    """Per net of a stacked batch (plain dicts, leading axis G): dead mask on the training inputs (G, H),
    dead-by-elbow mask (elbow outside the data, slope away) (G, H), and per unit the largest
    |∂(½·MSE)/∂θ| over its parameters (hidden w_i, b_i and output a_i) (G, H)."""
    net = relu_net.make_relu_net(config)
    x, y = data["train"]["x"], data["train"]["y"]

    def one(pure):
        rep = relu_net.dead_relus(pure, x)
        g = jax.grad(lambda q: mse(net.apply(nnx.State(q), nnx.State({}), x)[0], y))(pure)
        parts = jnp.stack([g["hidden"]["kernel"][0], g["hidden"]["bias"], g["out"]["kernel"][:, 0]])
        return rep.dead, rep.elbow_outside, jnp.max(jnp.abs(parts), axis=0)

    return tuple(np.asarray(v) for v in jax.jit(jax.vmap(one))(params))


# ---------------------------------------------------------------------------


def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    data = make_data(config)
    widths = list(config.c7.widths)
    seeds = list(range(config.c7.num_seeds))
    results = {}
    for w in widths:
        cfg = with_changes(config, **{"model.width": w})
        results[w] = (cfg, train_seeds(cfg, seeds, data, progress=f"relu_elbows width {w}"))
    return [_c6(config, results, data, workdir), _c7(config, results, widths, workdir),
            _c8(config, results, data, workdir)]


def _stack_padded(results, width):
    """All trained nets of every width, padded to ``width`` and stacked (plain dicts), plus their true widths."""
    ps = [pad_width(res.state.params, width) for _, res in results.values()]
    return jax.tree.map(lambda *a: jnp.concatenate(a), *ps)


def _c6(config, results, data, workdir):
    h, half = float(config.c6.h), float(config.c6.half_width)
    wmax = max(results)
    stacked = _stack_padded(results, wmax)
    away, match, fsum, n_el = second_difference_check(with_changes(config, **{"model.width": wmax}), stacked, h, half)
    away, match, fsum = float(away.max()), float(match.max()), float(fsum.max())
    n_nets, n_elbows = n_el.size, int(n_el.sum())
    ok = away <= 1e-10 and match <= 1e-10
    w_fig = 16 if 16 in results else min(results)
    fig = _figure_fit(config, results[w_fig], data, h, os.path.join(workdir, "elbows_fit.png"))
    return claim("C6", "a trained 1-D ReLU net is piecewise linear with kinks exactly at −b_i/w_i (float64)",
                 f"max |Δ²f| away from elbows {away:.2e}; max |Δ²f − Σ a_i|w_i|max(0, h−|x−e_i|)| {match:.2e}",
                 "both ≤ 1e-10", ok, fig,
                 details=f"{n_nets} trained nets (widths {sorted(results)}, all seeds), grid step h={h} on "
                         f"[−{half}, {half}], {n_elbows} elbows on the grids; "
                         f"forward pass vs sum of elbows: max |Δ| {fsum:.2e}")


def c7_check(widths, val_mse, late_from: int, *, rho_max=-0.9, spike=3.0):
    """C7's verdict from the validation-error histories ``val_mse`` (S seeds, W widths, E evals).

    The notes' statement: the seed-median of the *final* error falls with width (Spearman ρ ≤
    ``rho_max``). When it does not, the finding that explains it is checked: Adam at a constant η
    keeps spiking late in training, so the last evaluation can land on a spike. Then (a) the error the
    nets reached — each run's minimum over the evaluations from ``late_from`` on (the last 10% of
    training) — falls with width (ρ ≤ ``rho_max`` on its seed-medians), and (b) at every width whose
    median final error is above the previous width's, the median over seeds of final ÷ that minimum is
    ≥ ``spike``. Returns ``(rho_final, rho_late_min, spike_ratios {width: ratio}, notes_hold, passed)``.
    """
    v = np.asarray(val_mse, np.float64)
    final = np.median(v[:, :, -1], 0)
    rho = float(stats.spearmanr(widths, final).statistic)
    late_min = v[:, :, late_from:].min(-1)
    rho_late = float(stats.spearmanr(widths, np.median(late_min, 0)).statistic)
    ratios = {int(widths[i]): float(np.median(v[:, i, -1] / late_min[:, i]))
              for i in range(1, len(widths)) if final[i] > final[i - 1]}
    if rho <= rho_max:
        return rho, rho_late, ratios, True, True
    explained = rho_late <= rho_max and bool(ratios) and all(r >= spike for r in ratios.values())
    return rho, rho_late, ratios, False, explained


def _c7(config, results, widths, workdir):
    hist = np.stack([np.asarray(results[w][1].metrics["evals"]["val_mse"]) for w in widths], 1)  # (S, W, E)
    err = hist[:, :, -1]
    med = np.median(err, 0)
    late_from = int(round(0.9 * (hist.shape[-1] - 1)))
    rho, rho_late, ratios, holds, ok = c7_check(widths, hist, late_from)
    ends = [float(stats.spearmanr(widths, np.median(hist[:, :, e], 0)).statistic)
            for e in range(late_from, hist.shape[-1])]
    n_ok = sum(r <= -0.9 for r in ends)
    div = sum(int(np.asarray(results[w][1].state.diverged).sum()) for w in widths)
    fig = _figure_width(widths, err, os.path.join(workdir, "error_vs_width.png"), config)
    measured = (f"Spearman ρ = {rho:.3f} (median val MSE {med[0]:.2e} at width {widths[0]} → "
                f"{med[-1]:.2e} at {widths[-1]})")
    if not holds:
        measured += (f"; NOT reproduced at the last step: Adam's late spikes — ρ of each run's minimum over the "
                     f"last 10% of steps {rho_late:.3f}; final ÷ that minimum (seed median) where the median "
                     f"final error rises: " + ", ".join(f"width {w}: {r:.1f}×" for w, r in ratios.items()))
    return claim("C7", "wider ReLU nets approximate the 1-D target better", measured,
                 "ρ ≤ −0.9 (final step); if not, the explanation: ρ ≤ −0.9 on the last-10% minima and final ÷ "
                 "minimum ≥ 3× at each width where the median final error rises", ok, fig,
                 details=f"full-batch {config.optimizer.name} η={config.optimizer.learning_rate}, "
                         f"{config.num_steps} steps, {err.shape[0]} seeds per width, medians "
                         + ", ".join(f"{w}: {m:.2e}" for w, m in zip(widths, med))
                         + f"; ρ ≤ −0.9 at {n_ok} of the {len(ends)} evaluations in the last 10% (the "
                           f"final step's verdict is chaotic: see relu_elbows.CHAOTIC); diverged runs: {div}",
                 notes_hold=None if holds else False)


def _c8(config, results, data, workdir):
    c = config.c8
    # Cauchy elbows at init (N(0,1) w and b), fixed seeds
    p0 = hidden_init("normal", "normal", c.ks_seeds, c.ks_width)
    elbows = np.asarray(jax.vmap(relu_net.elbow_positions)(p0))
    ps, p_fisher = cauchy_ks(elbows)

    # dead ReLUs in the trained runs: zero gradient at the end, untouched since init
    x = data["train"]["x"]
    n_dead0 = n_dead_end = 0
    stayed = touched = 0
    for w, (cfg, res) in results.items():
        ev = res.metrics["evals"]
        dead0, deadT = np.asarray(ev["dead"][:, 0]), np.asarray(ev["dead"][:, -1])
        w0, wT = np.asarray(ev["hidden_w"][:, 0]), np.asarray(ev["hidden_w"][:, -1])
        b0, bT = np.asarray(ev["hidden_b"][:, 0]), np.asarray(ev["hidden_b"][:, -1])
        n_dead0 += int(dead0.sum())
        n_dead_end += int(deadT.sum())
        stayed += int((dead0 & deadT).sum())
        touched += int((dead0 & ((w0 != wT) | (b0 != bT))).sum())
    # gradients at the trained parameters, every net padded to one width (padding units are dropped)
    wmax = max(results)
    dead, outside, grad = dead_unit_gradients(with_changes(config, **{"model.width": wmax}),
                                              _stack_padded(results, wmax), data)
    real = np.concatenate([np.broadcast_to(np.arange(wmax) < w, (res.state.diverged.shape[0], wmax))
                           for w, (_, res) in results.items()])
    max_grad = float(np.max(np.where(dead & real, grad, 0.0)))
    outside_mismatch = int(np.sum((dead != outside) & real))

    # dead fraction at init per scheme
    fractions = {}
    for scheme in c.schemes:
        wi, bi = scheme.split("/")
        pp = hidden_init(wi, bi, range(c.scheme_seeds), c.scheme_width)
        fractions[scheme] = float(np.mean(np.asarray(jax.vmap(lambda p: relu_net.dead_relus(p, x).fraction)(pp))))
    trained = {w: float(np.asarray(res.metrics["evals"]["dead"][:, -1]).mean()) for w, (_, res) in results.items()}

    ok = p_fisher > 0.01 and n_dead0 > 0 and stayed == n_dead0 and touched == 0 and max_grad == 0.0 \
        and outside_mismatch == 0
    fig = _figure_cauchy(elbows, fractions, os.path.join(workdir, "elbow_histogram.png"), c.ks_width)
    return claim("C8", "N(0,1) w, b give Cauchy elbows; dead ReLUs (elbow outside the data, slope away) "
                       "have zero gradient and stay dead",
                 f"Fisher p = {p_fisher:.3g} (KS p per seed {', '.join(f'{p:.2f}' for p in ps)}); "
                 f"{stayed}/{n_dead0} units dead at init still dead after training, {touched} of them changed, "
                 f"max |grad| on dead units {max_grad:.1g}",
                 "p > 0.01; all dead units stay dead and untouched; gradient exactly 0", ok, fig,
                 details=f"KS on {c.ks_width} elbows × {len(ps)} seeds; dead = elbow outside the data with slope "
                         f"away ({outside_mismatch} mismatches with max preactivation ≤ 0); dead fraction at init "
                         f"(width {c.scheme_width}, {c.scheme_seeds} seeds, data on [{config.data.lo}, "
                         f"{config.data.hi}]): " + ", ".join(f"{k} {v:.3f}" for k, v in fractions.items())
                         + f"; after training ({config.model.weight_init}/{config.model.bias_init}) per width: "
                         + ", ".join(f"{w}: {v:.3f}" for w, v in trained.items())
                         + f"; {n_dead_end - stayed} units died during training")


# ---------------------------------------------------------------------------
# figures


def _figure_fit(config, cfg_res, data, h, path):
    import matplotlib.pyplot as plt
    cfg, res = cfg_res
    pure = jax.tree.map(lambda v: np.asarray(v, np.float64), nnx.to_pure_dict(point(res.state.params, 0)))
    w, b = pure["hidden"]["kernel"][0], pure["hidden"]["bias"]
    a, c = pure["out"]["kernel"][:, 0], pure["out"]["bias"][0]
    net = lambda x: np.maximum(np.outer(x, w) + b, 0.0) @ a + c  # noqa: E731  (float64; = the net, C6)
    lo, hi = config.data.lo, config.data.hi
    xs = np.linspace(lo - 0.5, hi + 0.5, 2001)
    e = -b / w
    dead = np.asarray(relu_net.dead_relus(pure, data["train"]["x"]).dead)
    vis = (e > lo - 0.5) & (e < hi + 0.5)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.3))
    a1.plot(xs, np.sin(config.data.freq * xs), color="0.6", lw=3, label=f"target sin({config.data.freq:g}x)")
    a1.plot(xs, net(xs), color="C0", lw=1.3, label=f"ReLU net, width {cfg.model.width}")
    a1.plot(e[vis & ~dead], net(e[vis & ~dead]), "o", color="C3", ms=5, label="elbows −b_i/w_i")
    if (vis & dead).any():
        a1.plot(e[vis & dead], net(e[vis & dead]), "x", color="k", ms=6, label="elbows of dead units")
    a1.axvspan(lo, hi, color="C2", alpha=0.06, label="data range")
    a1.set(xlabel="x", ylabel="f(x)", title=f"Fitted function, kinks at the elbows ({int(dead.sum())} of "
                                            f"{w.size} units dead)")
    a1.legend(fontsize=7)
    grid = np.arange(-4000, 4001) * h
    f = net(grid)
    d2 = np.abs(f[2:] - 2 * f[1:-1] + f[:-2])
    formula = np.abs(np.maximum(h - np.abs(grid[1:-1, None] - e), 0.0) @ (a * np.abs(w)))
    a2.semilogy(grid[1:-1], np.maximum(d2, 1e-18), lw=0.8, label="|f(x+h) − 2f(x) + f(x−h)| (float64)")
    a2.semilogy(grid[1:-1], np.maximum(formula, 1e-18), "--", lw=0.8, label="|Σ a_i|w_i| max(0, h − |x − e_i|)|")
    for x0 in e[np.abs(e) < 4]:
        a2.axvline(x0, color="C3", lw=0.5, alpha=0.4)
    a2.axhline(1e-10, color="k", ls=":", lw=1, label="1e-10")
    a2.set(xlabel="x", ylabel="|second difference| (floored at 1e-18)", ylim=(1e-19, None),
           title=f"Second differences (h = {h}): zero away from the elbows (red)")
    a2.legend(fontsize=7, loc="center right")
    return plots.save(fig, path)


def _figure_width(widths, err, path, config):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for s in range(err.shape[0]):
        ax.plot(widths, err[s], ".", color="0.6", label="seeds" if s == 0 else None)
    ax.plot(widths, np.median(err, 0), "o-", color="C0", label="median over seeds")
    ax.set(xscale="log", yscale="log", xlabel="width H", ylabel="validation MSE (½·mean sq.)",
           title=f"Error vs width ({config.optimizer.name} η={config.optimizer.learning_rate}, "
                 f"{config.num_steps} steps)")
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.legend(fontsize=8)
    return plots.save(fig, path)


def _figure_cauchy(elbows, fractions, path, width):
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.3), gridspec_kw={"width_ratios": [1.2, 1]})
    e = elbows.ravel()
    lim = 10.0
    bins = np.linspace(-lim, lim, 81)
    inside = e[np.abs(e) < lim]
    # density of all elbows (those outside ±10 counted in the normalisation)
    counts, edges = np.histogram(inside, bins)
    a1.bar(edges[:-1], counts / (e.size * np.diff(edges)), width=np.diff(edges), align="edge", alpha=0.6,
           label=f"elbows −b/w ({elbows.shape[0]} seeds × {width})")
    xx = np.linspace(-lim, lim, 400)
    a1.plot(xx, stats.cauchy.pdf(xx), "k", lw=1.5, label="standard Cauchy density")
    a1.plot(xx, stats.norm.pdf(xx), "C1--", lw=1, label="N(0,1) density (for contrast)")
    a1.set(xlabel="elbow position", ylabel="density", title="Elbows of N(0,1) w and b are Cauchy")
    a1.legend(fontsize=7)
    names = list(fractions)
    a2.barh(range(len(names)), [fractions[n] for n in names], color="C3", alpha=0.7)
    a2.set_yticks(range(len(names)), [n.replace("/", " / ") for n in names], fontsize=7)
    for i, n in enumerate(names):
        a2.text(fractions[n], i, f" {fractions[n]:.3f}", va="center", fontsize=7)
    a2.set(xlabel="fraction of dead ReLUs at init", title="Dead ReLUs per init scheme (weight / bias)")
    a2.set_xlim(0, max(0.05, 1.3 * max(fractions.values())))
    return plots.save(fig, path)
