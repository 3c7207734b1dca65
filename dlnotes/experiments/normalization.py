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

CLAIMS = ("C24", "C25", "C27")


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
    return classification_task(config, make_model(config), data)


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
    all seeds in one vmapped grid: per-seed final test accuracy."""
    from dlnotes.train.sweep import run_points
    n = len(data["train"]["y"])
    steps_per_epoch = n // batch
    log_every = steps_per_epoch * config.c25.epochs
    cfg = with_changes(config, batch_size=batch, num_steps=log_every, log_every=log_every,
                **{"model.norm": norm, "model.dense_norm": norm})
    _, res = run_points(build_task(cfg, data), cfg, [{"seed": s} for s in seeds], progress=f"C25 {norm} b={batch}")
    ev = res.metrics["evals"]
    return np.asarray(ev["test_acc"])[:, -1], np.asarray(ev["train_acc"])[:, -1]


def c25(config, workdir):
    c = config.c25
    from dlnotes.data.images import DIGITS_SIZE
    d = make_data(with_changes(config, **{"data.n_train": c.n_train, "data.n_val": 0,
                                   "data.n_test": DIGITS_SIZE - c.n_train}))
    data = {"train": d["train"], "test": d["test"]}  # all the rest as the test set: less noise in the gaps
    seeds = list(range(c.num_seeds))
    acc, train_acc = {}, {}
    for norm in ("batch", "group"):
        for b in c.batch_sizes:
            acc[norm, b], train_acc[norm, b] = batch_size_grid(config, data, norm, b, seeds)
    small, large = min(c.batch_sizes), max(c.batch_sizes)
    bn_gap = acc["batch", large] - acc["batch", small]
    gn_gap = acc["group", large] - acc["group", small]
    gn_minus_bn = acc["group", small] - acc["batch", small]
    pts = c.points / 100.0
    ok = bool(np.all(bn_gap >= pts)) and abs(gn_gap.mean()) <= c.gn_tolerance / 100.0 \
        and gn_minus_bn.mean() >= pts
    fig = _figure_c25(acc, c.batch_sizes, os.path.join(workdir, "bn_vs_gn_batch_size.png"))
    f = lambda a: f"{100 * a.mean():.1f} ± {100 * a.std():.1f}"
    return claim(
        "C25", "batch norm degrades at batch size 2 relative to 32; group norm does not",
        f"BN gap (acc@{large} − acc@{small}) per seed {_pts(bn_gap)} points; GN gap "
        f"{f(gn_gap)} points (per seed {_pts(gn_gap)}); GN − BN at batch {small}: "
        f"{f(gn_minus_bn)} points",
        f"BN gap ≥ {c.points:g} on every seed; |GN gap| ≤ {c.gn_tolerance:g} (seed mean); GN − BN at batch "
        f"{small} ≥ {c.points:g} (seed mean)", ok, fig,
        details=f"digits CNN channels {list(config.model.channels)}, norm after each conv and on the {config.model.dense}-unit "
                f"dense layer before the output (GN {config.model.groups} groups), Adam "
                f"{config.optimizer.learning_rate:g}, {c.epochs} epochs of {len(data['train']['y'])} training digits "
                f"at every batch size, {len(seeds)} seeds; test accuracy ({len(data['test']['y'])} digits): "
                + "; ".join(f"{n[0].upper()}N b={b}: {f(a)}%" for (n, b), a in acc.items())
                + "; train accuracy: " + "; ".join(f"{n[0].upper()}N b={b}: {f(a)}%" for (n, b), a in train_acc.items()))


def _pts(a):
    """Fractions as a list of percentage points, 1 decimal."""
    return [round(100 * float(v), 1) for v in np.asarray(a)]


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
