"""Filters as recurrences: FIR = causal convolution, IIR = one-state linear RNN, identification by GD (C38).

Exact parts (float64): ``fir_filter`` (``conv1d`` with flipped taps and left padding) against the
causal sum Σ_k h_k x_{t−k} written out in NumPy; the IIR recurrence y_t = a·y_{t−1} + b·x_t
(``iir_filter``, a ``lax.scan``) against a one-state linear RNN (``rnn_cell`` with a linear
activation, W_hh = a, W_ih = b, through ``scan_cell``) and against its impulse response b·a^t.

Identification: inputs x ~ N(0, 1) through a true first-order (a = 0.8, b = 0.5) and second-order
(a = (1.2, −0.5), b = (1.0, 0.4)) system; an ``IIRFilter`` of the same order learns the coefficients
by full-batch Adam (cosine to 0) on the squared error, the gradient flowing back through the scan.
Noise levels (0 and 0.05 on the outputs) × seeds run as one compiled grid per order. Checks
(CLAIMS.md): every exact difference ≤ 1e-5; max |learned − true| coefficient ≤ 1e-4 without noise
and ≤ 1e-2 with noise 0.05, for every seed.
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes import hparams as hpmod
from dlnotes.errors import check
from dlnotes.experiments.base import claim
from dlnotes.models.base import functional
from dlnotes.models.rnn import IIRFilter
from dlnotes.nn import recurrent as rec
from dlnotes.optim.factory import make_optimizer, validate_optimizer_config
from dlnotes.train import plots
from dlnotes.train.loop import Task
from dlnotes.train.sweep import run_points

CLAIMS = ("C38",)
DIFFERS = ()
EXACT_TOL = 1e-5
TOL_CLEAN = 1e-4
TOL_NOISY = 1e-2
NOISY = 0.05


def validate(config):
    validate_optimizer_config(config)
    check(config.model.order in (1, 2), "model.order", f"must be 1 or 2, got {config.model.order!r}")
    for name in ("first", "second"):
        s = config.data[name]
        check(len(s.a) == (1 if name == "first" else 2) and len(s.b) >= 1, f"data.{name}",
              "first: one feedback coefficient, second: two; at least one tap b")
        roots = np.roots([1.0] + [-float(v) for v in s.a])
        check(np.all(np.abs(roots) < 1), f"data.{name}.a", f"unstable system (poles {roots})")
    check(config.data.n_seq >= 1 and config.data.length >= 8, "data.length", "need n_seq >= 1, length >= 8")
    check(config.noise >= 0, "noise", "must be >= 0")
    check(all(v >= 0 for v in config.check.noises), "check.noises", "noise levels must be >= 0")
    check(config.check.num_seeds >= 1, "check.num_seeds", "must be >= 1")


def system(config, order=None):
    """(a, b) of the true system of ``order`` (default model.order), float64 arrays."""
    s = config.data["first" if (order or config.model.order) == 1 else "second"]
    return np.asarray(s.a, np.float64), np.asarray(s.b, np.float64)


def make_data(config, order=None):
    """x (n_seq, length) ~ N(0, 1), y = true IIR(x), eps: a fixed standard normal draw like y."""
    d = config.data
    a, b = system(config, order)
    kx, ke = jax.random.split(jax.random.key(d.seed))
    x = jax.random.normal(kx, (d.n_seq, d.length), jnp.float64)
    y = rec.iir_filter(x, jnp.asarray(b), jnp.asarray(a))
    eps = jax.random.normal(ke, y.shape, jnp.float64)
    return {"train": {"x": x, "y": y, "eps": eps}}


def build_task(config, data=None) -> Task:
    """Full-batch identification of the model.order system (call under ``jax.enable_x64``)."""
    data = data if data is not None else make_data(config)
    a, b = system(config)

    def make(rngs, hp):
        return IIRFilter(len(a), len(b), rngs=rngs, init_scale=hpmod.get(hp, config, "model.init_scale"),
                         param_dtype=jnp.float64)

    model = functional(make, None)

    def loss(params, ms, batch, key, hp):
        y_hat, ms = model.apply(params, ms, batch["x"])
        target = batch["y"] + hpmod.get(hp, config, "noise") * batch["eps"]
        return 0.5 * jnp.mean(jnp.square(y_hat - target)), ({}, ms)

    def evaluate(params, ms, d, hp):
        return {"a": params["a"][...], "b": params["b"][...]}

    return Task(init=model.init, loss=loss, optimizer=lambda hp: make_optimizer(config, hp), data=data,
                num_steps=config.num_steps, batch_size=None, log_every=config.log_every, evaluate=evaluate)


def _exact_checks(config):
    """Max differences: FIR vs the causal sum, IIR vs one-state linear RNN, IIR vs b·a^t."""
    rng = np.random.default_rng(config.data.seed)
    x = rng.normal(size=(4, 64))
    h = rng.normal(size=config.data.fir_taps)
    direct = np.array([[sum(h[k] * x[n, t - k] for k in range(len(h)) if t >= k) for t in range(64)]
                       for n in range(4)])
    fir = float(np.max(np.abs(np.asarray(rec.fir_filter(jnp.asarray(x), jnp.asarray(h))) - direct)))
    a, b = system(config, 1)
    p = {"w_ih": jnp.asarray(b.reshape(1, 1)), "w_hh": jnp.asarray(a.reshape(1, 1)), "b": jnp.zeros(1)}
    _, ys = rec.scan_cell(rec.make_cell("rnn", activation="linear"), p, jnp.asarray(x)[..., None],
                          jnp.zeros((4, 1)))
    iir = np.asarray(rec.iir_filter(jnp.asarray(x), jnp.asarray(b), jnp.asarray(a)))
    rnn = float(np.max(np.abs(np.asarray(ys[..., 0]) - iir)))
    t = np.arange(64)
    imp = float(np.max(np.abs(np.asarray(rec.impulse_response(jnp.asarray(b), jnp.asarray(a), 64))
                              - b[0] * a[0] ** t)))
    return {"fir_vs_sum": fir, "iir_vs_rnn": rnn, "impulse_vs_ba^t": imp}


def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    with jax.enable_x64(True):
        exact = _exact_checks(config)
        points = [{"noise": float(nz), "seed": s} for nz in config.check.noises
                  for s in range(config.check.num_seeds)]
        learned, errors, curves, seconds = {}, {}, {}, {}
        for order in (1, 2):
            cfg = hpmod.with_changes(config, **{"model.order": order})
            a, b = system(cfg)
            t0 = time.perf_counter()
            _, res = run_points(build_task(cfg), cfg, points, progress=f"C38 order {order}")
            seconds[order] = time.perf_counter() - t0
            ev = res.metrics["evals"]
            la, lb = np.asarray(ev["a"])[:, -1], np.asarray(ev["b"])[:, -1]      # (points, p), (points, q+1)
            err = np.maximum(np.abs(la - a).max(1), np.abs(lb - b).max(1))
            learned[order] = (a, b, la, lb)
            errors[order] = err
            curves[order] = np.asarray(res.metrics["steps"]["loss"])
    noise = np.array([p["noise"] for p in points])
    clean, noisy = noise == 0, np.isclose(noise, NOISY)
    worst_clean = max(float(errors[o][clean].max()) for o in (1, 2))
    worst_noisy = max(float(errors[o][noisy].max()) for o in (1, 2)) if noisy.any() else float("nan")
    worst_exact = max(exact.values())
    ok = worst_exact <= EXACT_TOL and worst_clean <= TOL_CLEAN and noisy.any() and worst_noisy <= TOL_NOISY

    fig = _figure_impulses(learned, points, os.path.join(workdir, "filters_impulse_responses.png"))
    plots.learning_curves({f"order {o}, noise {p['noise']:g}, seed {p['seed']}": curves[o][i]
                           for o in (1, 2) for i, p in enumerate(points)},
                          os.path.join(workdir, "filters_identification_loss.png"),
                          title="IIR identification by gradient descent through lax.scan")
    fmt = ", ".join(f"{k} {v:.1e}" for k, v in exact.items())
    coef = "; ".join(
        f"order {o}: true a={learned[o][0].tolist()}, b={learned[o][1].tolist()}, learned (seed 0, noise "
        f"{points[i]['noise']:g}) a={np.round(learned[o][2][i], 5).tolist()}, b={np.round(learned[o][3][i], 5).tolist()}"
        for o in (1, 2) for i in (0, int(np.argmax(noisy)) if noisy.any() else 0))
    return [claim(
        "C38", "an FIR filter is a causal 1-D convolution; an IIR filter y_t = a·y_{t−1} + b·x_t is a one-state "
               "linear RNN with impulse response b·a^t; GD through lax.scan recovers first- and second-order "
               "IIR coefficients",
        f"exact: max diff {worst_exact:.1e}; coefficient error without noise {worst_clean:.1e}, with noise "
        f"{NOISY:g} {worst_noisy:.1e}",
        f"exact ≤ {EXACT_TOL:g}; coefficients ≤ {TOL_CLEAN:g} without noise, ≤ {TOL_NOISY:g} with noise {NOISY:g} "
        "(every seed, both orders)",
        ok, fig,
        details=f"float64; {fmt}; {config.check.num_seeds} seeds × noise {list(config.check.noises)}, "
                f"{config.data.n_seq} sequences of length {config.data.length}, full-batch Adam "
                f"{config.optimizer.learning_rate:g} (cosine), {config.num_steps} steps ({seconds[1]:.0f} s + "
                f"{seconds[2]:.0f} s); {coef}")]


def _figure_impulses(learned, points, path, length=30):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    t = np.arange(length)
    for ax, order in zip(axes, (1, 2)):
        a, b, la, lb = learned[order]
        true = np.asarray(rec.impulse_response(jnp.asarray(b), jnp.asarray(a), length))
        ax.plot(t, true, "k-", lw=3, alpha=0.35, label="true")
        for i, p in enumerate(points):
            if p["seed"] != 0:
                continue
            imp = np.asarray(rec.impulse_response(jnp.asarray(lb[i]), jnp.asarray(la[i]), length))
            ax.plot(t, imp, "--" if p["noise"] else ":", marker="o" if p["noise"] else ".", ms=3,
                    label=f"learned, output noise {p['noise']:g}")
        ax.axhline(0, color="gray", lw=0.5)
        ax.set(xlabel="t", ylabel="impulse response h_t",
               title=f"order {order}: a = {a.tolist()}, b = {b.tolist()}")
        ax.legend(fontsize=8)
    fig.suptitle("IIR identification by gradient descent through lax.scan (seed 0)", fontsize=10)
    return plots.save(fig, path)
