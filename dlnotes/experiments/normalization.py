"""Normalization layers: identities, batch dependence, batch size, weight standardization (C24, C25, C27).

C24  GroupNorm with 1 group = LayerNorm over (H, W, C); with C groups = InstanceNorm
     (float64, up to rounding). Batch norm at eval uses its running averages, so an
     example's output does not depend on the rest of the batch (in training it does).
C25  BN degrades at batch size 2 relative to 32, GN does not. Protocol (CLAIMS.md):
     a digits CNN whose convs and hidden dense layer before the output are normalized
     (the dense layer is what matters: after the convs alone BN still pools N·H·W
     positions), GroupNorm with 4 groups, Adam 1e-3, the same number of epochs at each
     batch size. Batch size is static (one compile per batch size and norm); seeds run
     in one vmapped grid per compile. Checks: BN's gap (acc at 32 − acc at 2) ≥ 3 points
     on every seed, |GN's gap| ≤ 1 point (seed mean), GN − BN at batch 2 ≥ 3 points.
C27  Weight standardization: a WS conv's output is invariant to scaling its weights
     (while a²·var(w) ≫ ε); a plain conv's output scales with them.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes.data.images import load_digits_split
from dlnotes.errors import check
from dlnotes.experiments.base import claim
from dlnotes.models.base import Functional
from dlnotes.nn import norm as N
from dlnotes.train import plots
from dlnotes.hparams import with_changes
from dlnotes.train.runner import CPU_LOOP_EMITTERS

CLAIMS = ("C24", "C25", "C27")
# C25's last-step GN gap is decided by float rounding (tests accept reproduced or differs, never fails): at
# batch 2 a GN net's test accuracy dips by several points for an epoch and recovers, and which seed ends in
# a dip moved when the 1-channel conv's forward changed its last bits (12-02: full profile, 5 seeds, GN gap
# −0.6 ± 0.6, reproduced; fast profile, 3 seeds, one seed ended at 92.0% after 98.5% an epoch before,
# GN gap +1.1 ± 2.9, differs). With XLA's loop emitters (05:00) the bits moved again and both profiles
# reproduced (fast −0.7 ± 0.3, full −0.5 ± 0.6). ``c25_check`` checks that explanation when it happens.
CHAOTIC = ("C25",)


# --------------------------------------------------------------------------- task (scripts/train.py)
def make_data(config):
    return load_digits_split(config.data.seed, n_train=config.data.get("n_train") or None,
                             n_val=config.data.n_val, n_test=config.data.n_test)


def validate(config):
    from dlnotes.models.cnn import cnn_kwargs
    from dlnotes.optim.factory import validate_optimizer_config
    validate_optimizer_config(config)
    cnn_kwargs(config)
    n = len(make_data(config)["train"]["y"])
    check(0 <= config.batch_size <= n, "batch_size", f"must be in [0, {n}] (the training examples; 0 = full batch)")
    check(isinstance(config.c25.n_train, int) and 10 <= config.c25.n_train < 1797 - 100, "c25.n_train",
          "must be an int in [10, 1697) (the rest of the 1797 digits is C25's test set)")
    for b in config.c25.batch_sizes:
        check(isinstance(b, int) and 1 <= b <= config.c25.n_train, "c25.batch_sizes",
              f"each must be an int in [1, {config.c25.n_train}], got {b!r}")


def make_model(config) -> Functional:
    from dlnotes.models.cnn import make_cnn
    return make_cnn(config)


def build_task(config, data=None):
    """The normalized digits CNN of ``config.model`` trained with the engine."""
    from dlnotes.train.tasks import classification_task
    data = data if data is not None else make_data(config)
    return classification_task(config, make_model(config), data, cpu_compiler_options=CPU_LOOP_EMITTERS)


# --------------------------------------------------------------------------- C24
def norm_identities(seed: int = 0, shape=(4, 6, 6, 8)):
    """Max |GN(1) − LN(H, W, C)|, max |GN(C) − IN| (float64, random scale/bias, data with
    a large offset), and BN's dependence on the rest of the batch at eval and in training."""
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(seed), 5)
        x = 3.0 + 2.0 * jax.random.normal(k[0], shape, jnp.float64)
        c = shape[-1]
        g = 1.0 + 0.5 * jax.random.normal(k[1], (c,), jnp.float64)
        b = 0.5 * jax.random.normal(k[2], (c,), jnp.float64)
        gn1_ln = float(jnp.max(jnp.abs(N.group_norm(x, 1, g, b) - N.layer_norm(x, g, b, axes=(1, 2, 3)))))
        gnc_in = float(jnp.max(jnp.abs(N.group_norm(x, c, g, b) - N.instance_norm(x, g, b))))
        # GN with G in between is neither (sanity: the identities are not trivial)
        gn2_ln = float(jnp.max(jnp.abs(N.group_norm(x, 2, g, b) - N.layer_norm(x, g, b, axes=(1, 2, 3)))))
    # BN, float32 as in training: running statistics from a few training batches
    x32 = jnp.asarray(x, jnp.float32)
    mean, var = jnp.zeros(c), jnp.ones(c)
    for i in range(5):
        xb = 3.0 + 2.0 * jax.random.normal(jax.random.fold_in(k[3], i), shape)
        _, (mean, var) = N.batch_norm(xb, train=True, running_mean=mean, running_var=var)
    others = 10.0 * jax.random.normal(k[4], shape) - 4.0
    mixed = x32.at[1:].set(others[1:])
    dep = {}
    for mode in (False, True):
        y1, _ = N.batch_norm(x32, train=mode, running_mean=mean, running_var=var)
        y2, _ = N.batch_norm(mixed, train=mode, running_mean=mean, running_var=var)
        dep["train" if mode else "eval"] = float(jnp.max(jnp.abs(y1[0] - y2[0])))
    y_alone, _ = N.batch_norm(x32[:1], train=False, running_mean=mean, running_var=var)
    y_batch, _ = N.batch_norm(x32, train=False, running_mean=mean, running_var=var)
    dep["eval_alone"] = float(jnp.max(jnp.abs(y_alone[0] - y_batch[0])))
    return {"gn1_ln": gn1_ln, "gnc_in": gnc_in, "gn2_ln": gn2_ln, **{f"bn_{k}": v for k, v in dep.items()}}


def c24(config, workdir):
    r = norm_identities()
    tol = config.c24.atol_float64
    ok = (r["gn1_ln"] <= tol and r["gnc_in"] <= tol and r["bn_eval"] == 0.0 and r["bn_eval_alone"] == 0.0
          and r["bn_train"] > 0)
    return claim(
        "C24", "GroupNorm(1) = LayerNorm, GroupNorm(C) = InstanceNorm; BN's eval output does not depend on the batch",
        f"max |GN(1) − LN| = {r['gn1_ln']:.2g}, max |GN(C) − IN| = {r['gnc_in']:.2g} (float64); BN eval: "
        f"changing the other examples moves example 0 by {r['bn_eval']:.2g} (alone vs in a batch: "
        f"{r['bn_eval_alone']:.2g}); in training by {r['bn_train']:.3g}",
        f"identities ≤ {tol:g} (float64 rounding); BN eval dependence exactly 0, training dependence > 0", ok, None,
        details=f"x: (4, 6, 6, 8) with mean 3, std 2, random per-channel scale and bias; GN(2) vs LN differs by "
                f"{r['gn2_ln']:.3g} (the identities are not trivial); BN running averages from 5 training batches")


# --------------------------------------------------------------------------- C25
def batch_size_grid(config, data, norm: str, batch: int, seeds):
    """Train the CNN with ``norm`` (convs and dense) at ``batch`` for ``c25.epochs`` epochs,
    all seeds in one vmapped grid, evaluated at step 0 and at every epoch's end (the training bits do
    not depend on where the evaluations fall): per-seed (test accuracy, train accuracy), each of shape
    (seeds, epochs + 1)."""
    from dlnotes.train.sweep import run_points
    n = len(data["train"]["y"])
    steps_per_epoch = n // batch
    cfg = with_changes(config, batch_size=batch, num_steps=steps_per_epoch * config.c25.epochs,
                       log_every=steps_per_epoch, **{"model.norm": norm, "model.dense_norm": norm})
    _, res = run_points(build_task(cfg, data), cfg, [{"seed": s} for s in seeds], progress=f"C25 {norm} b={batch}")
    ev = res.metrics["evals"]
    return np.asarray(ev["test_acc"]), np.asarray(ev["train_acc"])


def c25_check(bn_small, bn_large, gn_small, gn_large, *, points=3.0, gn_tolerance=1.0, late=3, dip=2.0):
    """C25's verdict from test-accuracy histories (seeds, evaluations; one evaluation per epoch's end).

    The notes' statement, at the last evaluation: BN's gap (large − small batch) ≥ ``points`` on every
    seed, |GN's gap| ≤ ``gn_tolerance`` points (seed mean), GN − BN at the small batch ≥ ``points``
    (seed mean). When only GN's gap misses, the finding that explains it is checked: at batch 2 Adam's
    steps are noisy and a net's test accuracy dips for an epoch and recovers (measured 12-02: one of
    three GN seeds at 98.5% after epoch 9, 92.0% after epoch 10, its train accuracy 100% → 94.8%), so
    the last evaluation can land in a dip. Then (a) on each run's median over its last ``late``
    evaluations, |GN's gap| ≤ ``gn_tolerance`` (seed mean), and (b) every seed whose last-step GN gap is
    above ``gn_tolerance`` ends ≥ ``dip`` points below that median at the small batch.
    Returns ``(gaps {name: per-seed points}, notes_hold, passed)``.
    """
    last = lambda h: 100 * np.asarray(h, np.float64)[:, -1]
    med = lambda h: 100 * np.median(np.asarray(h, np.float64)[:, -late:], axis=1)
    bn_gap, gn_gap = last(bn_large) - last(bn_small), last(gn_large) - last(gn_small)
    gn_minus_bn = last(gn_small) - last(bn_small)
    gn_gap_late = med(gn_large) - med(gn_small)
    gaps = {"bn": bn_gap, "gn": gn_gap, "gn_minus_bn": gn_minus_bn, "gn_late": gn_gap_late,
            "gn_small_dip": med(gn_small) - last(gn_small)}
    bn_ok = bool(np.all(bn_gap >= points)) and gn_minus_bn.mean() >= points
    if bn_ok and abs(gn_gap.mean()) <= gn_tolerance:
        return gaps, True, True
    off = gn_gap > gn_tolerance
    explained = bn_ok and abs(gn_gap_late.mean()) <= gn_tolerance and bool(off.any()) \
        and bool(np.all(gaps["gn_small_dip"][off] >= dip))
    return gaps, False, explained


def c25(config, workdir):
    c = config.c25
    from dlnotes.data.images import DIGITS_SIZE
    d = make_data(with_changes(config, **{"data.n_train": c.n_train, "data.n_val": 0,
                                   "data.n_test": DIGITS_SIZE - c.n_train}))
    data = {"train": d["train"], "test": d["test"]}  # all the rest as the test set: less noise in the gaps
    seeds = list(range(c.num_seeds))
    hist, train_hist = {}, {}
    for norm in ("batch", "group"):
        for b in c.batch_sizes:
            hist[norm, b], train_hist[norm, b] = batch_size_grid(config, data, norm, b, seeds)
    acc = {k: v[:, -1] for k, v in hist.items()}
    train_acc = {k: v[:, -1] for k, v in train_hist.items()}
    small, large = min(c.batch_sizes), max(c.batch_sizes)
    gaps, holds, ok = c25_check(hist["batch", small], hist["batch", large], hist["group", small],
                                hist["group", large], points=c.points, gn_tolerance=c.gn_tolerance)
    fig = _figure_c25(acc, c.batch_sizes, os.path.join(workdir, "bn_vs_gn_batch_size.png"))
    f = lambda a: f"{100 * a.mean():.1f} ± {100 * a.std():.1f}"
    g = lambda a: f"{a.mean():.1f} ± {a.std():.1f}"
    r = lambda a: [round(float(v), 1) for v in a]
    measured = (f"BN gap (acc@{large} − acc@{small}) per seed {r(gaps['bn'])} points; GN gap "
                f"{g(gaps['gn'])} points (per seed {r(gaps['gn'])}); GN − BN at batch {small}: "
                f"{g(gaps['gn_minus_bn'])} points")
    if not holds:
        measured += (f"; NOT reproduced at the last step: batch-{small} dips — GN gap on each run's median over "
                     f"its last 3 epochs {g(gaps['gn_late'])} points (per seed {r(gaps['gn_late'])}); GN at batch "
                     f"{small} ends {r(gaps['gn_small_dip'])} points below that median")
    return claim(
        "C25", "batch norm degrades at batch size 2 relative to 32; group norm does not", measured,
        f"BN gap ≥ {c.points:g} on every seed; |GN gap| ≤ {c.gn_tolerance:g} (seed mean); GN − BN at batch "
        f"{small} ≥ {c.points:g} (seed mean); if only the GN gap misses, the explanation: |GN gap| ≤ "
        f"{c.gn_tolerance:g} on the last-3-epoch medians and every seed over it ends ≥ 2 points below its "
        f"median at batch {small}", ok, fig,
        details=f"digits CNN channels {list(config.model.channels)}, norm after each conv and on the {config.model.dense}-unit "
                f"dense layer before the output (GN {config.model.groups} groups), Adam "
                f"{config.optimizer.learning_rate:g}, {c.epochs} epochs of {len(data['train']['y'])} training digits "
                f"at every batch size, {len(seeds)} seeds; test accuracy ({len(data['test']['y'])} digits): "
                + "; ".join(f"{n[0].upper()}N b={b}: {f(a)}%" for (n, b), a in acc.items())
                + "; train accuracy: " + "; ".join(f"{n[0].upper()}N b={b}: {f(a)}%" for (n, b), a in train_acc.items())
                + " (the last step's verdict is chaotic: see normalization.CHAOTIC)",
        notes_hold=None if holds else False)


def _figure_c25(acc, batch_sizes, path):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for norm, color in (("batch", "tab:red"), ("group", "tab:blue")):
        m = np.array([100 * acc[norm, b].mean() for b in batch_sizes])
        s = np.array([100 * acc[norm, b].std() for b in batch_sizes])
        ax.errorbar(batch_sizes, m, yerr=s, fmt="o-", color=color, capsize=4,
                    label=f"{norm} norm" + (" (4 groups)" if norm == "group" else ""))
        for b in batch_sizes:
            a = 100 * acc[norm, b]
            ax.plot(np.full(len(a), b), a, ".", color=color, alpha=0.4)
    ax.set_xscale("log", base=2)
    ax.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
    ax.set(xlabel="batch size (same number of epochs)", ylabel="test accuracy (%)")
    ax.set_title("BN vs GN across batch sizes\n(digits CNN, normalized convs and dense layer; dots = seeds)",
                 fontsize=10)
    ax.legend()
    return plots.save(fig, path)


# --------------------------------------------------------------------------- C27
def ws_scale_invariance(scales, seed: int = 0):
    """Max relative change of a WS conv's output (float64) and of a plain conv's when the
    kernel is scaled by each ``a`` in ``scales``."""
    from flax import nnx
    from dlnotes.nn.layers import Conv, WSConv
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.key(seed), 2)
        x = jax.random.normal(k[0], (2, 8, 8, 4), jnp.float64)
        ws = WSConv(4, 6, 3, dtype=jnp.float64, rngs=nnx.Rngs(params=k[1]))
        plain = Conv(4, 6, 3, dtype=jnp.float64, rngs=nnx.Rngs(params=k[1]))
        w0 = ws.kernel[...]
        y0, p0 = ws(x), plain(x)
        rel = lambda a, b: float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
        out = []
        for a in scales:
            ws.kernel[...] = a * w0
            plain.kernel[...] = a * w0
            out.append((a, rel(ws(x), y0), rel(plain(x), p0)))
        ws.kernel[...] = w0
        var_w = float(jnp.min(jnp.var(w0, axis=(0, 1, 2))))
    return out, var_w


def c27(config, workdir):
    rows, var_w = ws_scale_invariance(config.c27.scales)
    worst = max(r for _, r, _ in rows)
    plain_min = min(p for _, _, p in rows)
    ok = worst <= config.c27.rtol and plain_min > 0.05
    return claim(
        "C27", "weight standardization: output invariant to scaling the weights",
        f"max relative change of the WS conv's output over a ∈ {list(config.c27.scales)}: {worst:.2g} "
        f"(plain conv: ≥ {plain_min:.2f})",
        f"≤ {config.c27.rtol:g} (float64; ε = 1e-10 inside the std)", ok, None,
        details="; ".join(f"a = {a:g}: WS {r:.2g}, plain {p:.3g}" for a, r, p in rows)
                + f". Holds while a²·var(w) ≫ ε (min per-channel var(w) = {var_w:.3g}).")


def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    return [c24(config, workdir), c25(config, workdir), c27(config, workdir)]
