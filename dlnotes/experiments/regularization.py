"""Dropout, stochastic depth, label smoothing (C31, C32, C33).

C31  Inverted dropout: E[train output] = eval output (Monte Carlo over keys, ≤ 1e-2
     relative, for the layer and for a trained net's logits, dropout before the linear
     output layer) and eval is deterministic. The "regularizing effect" is measured and
     reported as found: train − test accuracy gap with and without dropout (mean ± std
     over seeds) on 200 digits and on MNIST-1D; the rate is traced, so rates × seeds
     train in one vmapped grid per dataset.
C32  Stochastic depth on a residual net: in training every block's update
     h_{i+1} − h_i of every example is either exactly 0 (dropped) or f(h_i)/(1 − p)
     (kept), per example, dropped fraction ≈ p; at eval each block is h + f(h), the
     expectation of the training block (Monte Carlo ≤ 1e-2), independent of p.
C33  Label smoothing makes the target reachable: with ε the training logit gap
     z_y − z_k settles within 5% of log((1 − ε + ε/K)/(ε/K)) after ≥ 2k steps, while with
     one-hot targets it keeps growing (gap at 8k / gap at 2k ≥ 1.2). ε is traced: ε ×
     seeds in one grid. ECE (15 bins) on the test set is reported with and without.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes.data.images import load_digits_split
from dlnotes.errors import check
from dlnotes.experiments.base import claim
from dlnotes.nn.regularize import dropout
from dlnotes import hparams as hpmod
from dlnotes.train import plots
from dlnotes.hparams import with_changes

CLAIMS = ("C31", "C32", "C33")
DIFFERS = ("C31", "C33")  # dropout's regularizing effect; smoothing's calibration (CLAIMS.md)


# --------------------------------------------------------------------------- task (scripts/train.py)
def make_data(config, dataset: str | None = None):
    """Digits (``data.n_train`` training images) or MNIST-1D (``data.mnist1d_samples``, generated locally)."""
    dataset = dataset or config.data.dataset
    if dataset == "mnist1d":
        from dlnotes.data.mnist1d import load_mnist1d
        d = load_mnist1d(seed=config.data.seed, num_samples=config.data.mnist1d_samples, n_val=0)
    else:
        d = load_digits_split(config.data.seed, n_train=config.data.n_train or None, n_val=0,
                              n_test=config.data.n_test)
    return {"train": d["train"], "test": d["test"]}  # no validation split


def _image_size(dataset):
    return [40, 1] if dataset == "mnist1d" else [8, 8]


def validate(config):
    from dlnotes.optim.factory import validate_optimizer_config
    validate_optimizer_config(config)
    check(config.data.dataset in ("digits", "mnist1d"), "data.dataset", "must be 'digits' or 'mnist1d'")
    check(isinstance(config.model.dropout, float) and 0.0 <= config.model.dropout < 1.0, "model.dropout",
          "must be a float in [0, 1)")
    check(0.0 <= config.train.label_smoothing < 1.0, "train.label_smoothing", "must be in [0, 1)")
    for r in config.c31.rates:
        check(isinstance(r, float) and 0.0 <= r < 1.0, "c31.rates", f"each must be a float in [0, 1), got {r!r}")
    check(0.0 < config.c32.drop_path < 1.0, "c32.drop_path", "must be in (0, 1)")
    check(0.0 < config.c33.epsilon < 1.0, "c33.epsilon", "must be in (0, 1)")
    n = len(make_data(config)["train"]["y"])
    check(0 <= config.batch_size <= n, "batch_size", f"must be in [0, {n}] (the training examples; 0 = full batch)")


def make_model(config, dataset: str | None = None):
    """The MLP classifier (dropout before the output layer, rate given at call time)."""
    from dlnotes.models.cnn import make_mlp_classifier
    cfg = with_changes(config, **{"model.image_size": _image_size(dataset or config.data.dataset)})
    return make_mlp_classifier(cfg)


def build_task(config, data=None, dataset: str | None = None):
    """MLP on digits or MNIST-1D with traced dropout rate ``model.dropout`` and label smoothing
    ``train.label_smoothing``."""
    from dlnotes.train.tasks import classification_task
    data = data if data is not None else make_data(config, dataset)
    return classification_task(config, make_model(config, dataset), data,
                               call_kwargs=lambda hp: {"dropout": hpmod.get(hp, config, "model.dropout")})


def _train_grid(config, data, points, dataset, **kw):
    from dlnotes.train.sweep import run_points
    return run_points(build_task(config, data, dataset), config, points, **kw)


def _member(tree, g):
    return jax.tree.map(lambda a: a[g], tree)


# --------------------------------------------------------------------------- C31
@functools.lru_cache(maxsize=None)
def _chunk_sum(fn):
    return jax.jit(lambda ks, *args: jnp.sum(jax.vmap(lambda k: fn(k, *args))(ks), 0))


def monte_carlo_mean(fn, key, num_samples: int, *args, chunk: int = 5000):
    """Mean of ``fn(k, *args)`` over ``num_samples`` keys split from ``key`` (vmapped chunks;
    compiled once per ``fn``, so pass what changes as ``args``)."""
    chunk = min(chunk, num_samples)
    keys = jax.random.split(key, num_samples // chunk * chunk).reshape(-1, chunk)
    total = _chunk_sum(fn)
    return sum(total(ks, *args) for ks in keys) / keys.size


def rel_error(a, b):
    """‖a − b‖ / ‖b‖ (Frobenius)."""
    return float(jnp.linalg.norm(jnp.ravel(a - b)) / jnp.linalg.norm(jnp.ravel(b)))


def dropout_monte_carlo(x, rate, num_samples: int, key):
    """(‖E_MC[dropout(x)] − x‖/‖x‖, max |eval(key1) − eval(key2)|)."""
    mean = monte_carlo_mean(lambda k: dropout(x, rate, k, True), key, num_samples)
    k1, k2 = jax.random.split(jax.random.fold_in(key, 1))
    det = float(jnp.max(jnp.abs(dropout(x, rate, k1, False) - dropout(x, rate, k2, False))))
    return rel_error(mean, x), det


def logits_monte_carlo(model, params, ms, x, rate, num_samples: int, key):
    """‖E_keys[train logits] − eval logits‖ / ‖eval logits‖ and the eval logits' spread
    over keys (0 = deterministic)."""
    mean = monte_carlo_mean(lambda k: model.apply(params, ms, x, train=True, key=k, dropout=rate)[0],
                            key, num_samples)
    ev = lambda k: model.apply(params, ms, x, train=False, key=k, dropout=rate)[0]
    k1, k2 = jax.random.split(jax.random.fold_in(key, 1))
    y0 = ev(k1)
    return rel_error(mean, y0), float(jnp.max(jnp.abs(ev(k2) - y0)))


def c31(config, workdir):
    c = config.c31
    rates = list(c.rates)
    seeds = list(range(c.num_seeds))
    points = [{"model.dropout": r, "seed": s} for s in seeds for r in rates]
    gaps, accs, mc_rows = {}, {}, []
    x = jax.random.normal(jax.random.key(3), (1000,))
    for r in rates:
        if r > 0:
            mc_rows.append(("layer", r) + dropout_monte_carlo(x, r, c.mc_samples, jax.random.key(4)))
    for dataset in ("digits", "mnist1d"):
        cfg = with_changes(config, num_steps=c.num_steps[dataset], log_every=c.num_steps[dataset],
                    **{"data.dataset": dataset, "train.label_smoothing": 0.0})
        data = make_data(cfg, dataset)
        _, res = _train_grid(cfg, data, points, dataset, progress=f"C31 {dataset}")
        ev = res.metrics["evals"]
        tr = np.asarray(ev["train_acc"])[:, -1].reshape(len(seeds), len(rates))
        te = np.asarray(ev["test_acc"])[:, -1].reshape(len(seeds), len(rates))
        gaps[dataset], accs[dataset] = tr - te, te
        if dataset == "digits":  # E[train logits] = eval logits on a trained net, at the largest rate
            model = make_model(cfg, dataset)
            g = int(np.argmax(rates))
            p, ms = _member((res.state.params, res.state.model_state), g)
            xb = jnp.asarray(data["test"]["x"][:16])
            mc_rows.append(("trained MLP logits", rates[g]) + logits_monte_carlo(
                model, p, ms, xb, rates[g], c.mc_samples, jax.random.key(5)))
    worst_rel = max(r[2] for r in mc_rows)
    worst_det = max(r[3] for r in mc_rows)
    i0, i1 = rates.index(0.0), int(np.argmax(rates))
    dgap = {d: 100 * float(np.mean(gaps[d][:, i1] - gaps[d][:, i0])) for d in gaps}   # points
    dacc = {d: 100 * float(np.mean(accs[d][:, i1] - accs[d][:, i0])) for d in accs}
    # The notes: dropout regularizes — a narrower gap (≥ 2 points) at no cost in test accuracy, on both sets.
    notes_hold = all(dgap[d] <= -2.0 and dacc[d] >= 0.0 for d in gaps)
    # The finding: no reliable effect on digits (little overfitting to remove), a narrower gap on MNIST-1D
    # (heavy overfitting). MNIST-1D's Δacc is reported, not checked: its sign follows the step budget
    # (dropout slows fitting: below at the fast profile's 1500 steps, +2.6 points at the full 4000).
    finding = abs(dgap["digits"]) <= 2.0 and dgap["mnist1d"] <= -2.0
    ok = worst_rel <= c.mc_rtol and worst_det == 0.0 and (notes_hold or finding)
    fig = _figure_c31(rates, gaps, accs, os.path.join(workdir, "dropout_gap.png"))
    gap_txt = "; ".join(
        f"{d}: gap {100 * gaps[d][:, i0].mean():.1f} ± {100 * gaps[d][:, i0].std():.1f} without, "
        f"{100 * gaps[d][:, i1].mean():.1f} ± {100 * gaps[d][:, i1].std():.1f} with p={rates[i1]:g} "
        f"(Δgap per seed {[round(100 * float(v), 1) for v in gaps[d][:, i1] - gaps[d][:, i0]]})" for d in gaps)
    return claim(
        "C31", "inverted dropout keeps E[output] = eval output and eval is deterministic; its regularizing "
               "effect (train − test gap) is measured and reported as found",
        f"‖E_MC − eval‖/‖eval‖ ≤ {worst_rel:.2g} ({c.mc_samples} samples); eval spread over keys {worst_det:g}. "
        f"Regularization (points): {gap_txt}",
        f"MC error ≤ {c.mc_rtol:g}, eval spread = 0; notes: Δgap ≤ −2 points and Δtest acc ≥ 0 on both sets "
        f"(measured Δgap {', '.join(f'{d} {v:+.1f}' for d, v in dgap.items())}; Δacc "
        f"{', '.join(f'{d} {v:+.1f}' for d, v in dacc.items())}); if not, the finding: |Δgap digits| ≤ 2 and "
        "MNIST-1D Δgap ≤ −2 (its Δacc reported: its sign follows the step budget)", ok, fig, notes_hold=notes_hold,
        details="Monte Carlo: " + "; ".join(f"{n} p={r:g}: {e:.2g}" for n, r, e, _ in mc_rows)
                + f". Gap runs: MLP width {config.model.width}, dropout before the output layer, Adam "
                  f"{config.optimizer.learning_rate:g}, batch {config.batch_size}; digits {config.data.n_train} "
                  f"train / {config.data.n_test} test, {c.num_steps['digits']} steps; MNIST-1D "
                  f"{config.data.mnist1d_samples} samples (80/20 split), {c.num_steps['mnist1d']} steps; "
                  f"{len(seeds)} seeds; test accuracy by rate {rates}: "
                  + "; ".join(f"{d} {[round(100 * float(v), 1) for v in accs[d].mean(0)]}" for d in accs))


def _figure_c31(rates, gaps, accs, path):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, len(gaps), figsize=(10, 6.4), sharex=True)
    for j, d in enumerate(gaps):
        for ax, v, name, color in ((axes[0, j], 100 * gaps[d], "train − test accuracy gap", "tab:red"),
                                   (axes[1, j], 100 * accs[d], "test accuracy", "tab:blue")):
            ax.errorbar(rates, v.mean(0), yerr=v.std(0), fmt="o-", capsize=4, color=color)
            for i, r in enumerate(rates):
                ax.plot(np.full(v.shape[0], r), v[:, i], ".", color=color, alpha=0.4)
            ax.set_ylabel(f"{name} (points)", fontsize=9)
        axes[0, j].set_title(f"{d}: mean ± std over seeds (dots = seeds)", fontsize=10)
        axes[1, j].set_xlabel("dropout rate p (before the output layer)")
    return plots.save(fig, path)


# --------------------------------------------------------------------------- C32
def stochastic_depth_check(config, key):
    """On a residual net (``ResidualNet``): per-block updates in training are 0 or f(h)/(1 − p)
    per example; block-wise Monte-Carlo mean = eval block; eval independent of p."""
    from dlnotes.models.resnet import ResidualNet
    from flax import nnx
    c = config.c32
    p = c.drop_path
    net = ResidualNet(64, c.depth, c.width, rngs=nnx.Rngs(params=0))
    x = jax.random.normal(jax.random.fold_in(key, 0), (c.batch, 64))
    blocks = [net.block(i) for i in range(net.depth)] if hasattr(net, "block") else list(net.blocks)
    hs = net.hidden_states(x, train=True, key=jax.random.fold_in(key, 1), drop_path=p)
    structure_err, dropped, mixed_blocks = 0.0, [], 0
    for i, blk in enumerate(blocks):
        h, h_next = hs[i], hs[i + 1]
        delta, f = h_next - h, blk.branch(h)
        is_zero = jnp.all(delta == 0, axis=1)
        err_kept = jnp.max(jnp.abs(delta - f / (1 - p)), axis=1) / jnp.max(jnp.abs(f / (1 - p)))
        structure_err = max(structure_err, float(jnp.max(jnp.where(is_zero, 0.0, err_kept))))
        dropped.append(np.asarray(is_zero))
        mixed_blocks += int(0 < int(is_zero.sum()) < c.batch)
    dropped = np.stack(dropped)                        # (blocks, batch)
    frac = float(dropped.mean())
    sigma = np.sqrt(p * (1 - p) / dropped.size)
    # block-wise expectation: mean over keys of the training block equals the eval block
    mc_rel = 0.0
    h_eval = net.hidden_states(x, train=False)
    graphdef = nnx.graphdef(blocks[0])

    def update(k, state, h):  # one training block's update h_{i+1} − h_i
        return nnx.merge(graphdef, state)(h, train=True, key=k, drop_path=p) - h

    for i, blk in enumerate(blocks):
        h = h_eval[i]
        mean = monte_carlo_mean(update, jax.random.fold_in(key, 100 + i), c.mc_samples, nnx.state(blk), h)
        mc_rel = max(mc_rel, rel_error(mean, blk(h, train=False) - h))
    y_eval = net(x, train=False, drop_path=p)
    y_eval0 = net(x, train=False, drop_path=0.0)
    y_eval_k = net(x, train=False, key=jax.random.key(9), drop_path=p)
    eval_dep = float(jnp.max(jnp.abs(y_eval - y_eval0)) + jnp.max(jnp.abs(y_eval - y_eval_k)))
    return {"structure_err": structure_err, "dropped_frac": frac, "sigma": float(sigma),
            "mixed_blocks": mixed_blocks, "blocks": len(blocks), "mc_rel": mc_rel, "eval_dep": eval_dep,
            "dropped": dropped}


def c32(config, workdir):
    c = config.c32
    r = stochastic_depth_check(config, jax.random.key(c.seed))
    p = c.drop_path
    ok = (r["structure_err"] <= 1e-5 and abs(r["dropped_frac"] - p) <= 4 * r["sigma"]
          and r["mixed_blocks"] == r["blocks"] and r["mc_rel"] <= c.mc_rtol and r["eval_dep"] == 0.0)
    fig = _figure_c32(r["dropped"], p, os.path.join(workdir, "stochastic_depth.png"))
    return claim(
        "C32", "stochastic depth drops whole residual blocks per example in training and uses the expectation at eval",
        f"kept blocks = f(h)/(1 − p) to {r['structure_err']:.2g} (rel.), dropped = exactly 0; dropped fraction "
        f"{r['dropped_frac']:.3f} (p = {p:g} ± {r['sigma']:.3f}); {r['mixed_blocks']}/{r['blocks']} blocks drop some "
        f"examples and keep others; block-wise ‖E_MC[update] − eval update‖/‖eval update‖ ≤ {r['mc_rel']:.2g}; "
        f"eval output change with p or key "
        f"{r['eval_dep']:g}",
        f"structure ≤ 1e-5; |fraction − p| ≤ 4σ; per example in every block; MC ≤ {c.mc_rtol:g}; eval "
        f"independent of p (exactly)", ok, fig,
        details=f"ResidualNet (pre-LN, {c.depth} blocks of width {c.width}) at init, batch {c.batch}, "
                f"{c.mc_samples} Monte-Carlo keys per block")


def _figure_c32(dropped, p, path):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.imshow(~dropped, cmap="Greys_r", aspect="auto", interpolation="nearest", vmin=0, vmax=1)
    ax.set(xlabel="example in the batch", ylabel="residual block",
           title=f"stochastic depth in training (p = {p:g}): white = block kept (×1/(1 − p)), black = dropped "
                 f"(identity)")
    ax.title.set_fontsize(9)
    return plots.save(fig, path)


# --------------------------------------------------------------------------- C33
def logit_gap(logits, y):
    """Mean over examples of z_y − mean_{k≠y} z_k."""
    logits = jnp.asarray(logits)
    k = logits.shape[-1]
    zy = jnp.take_along_axis(logits, jnp.asarray(y)[:, None], axis=1)[:, 0]
    return jnp.mean(zy - (jnp.sum(logits, -1) - zy) / (k - 1))


def smoothing_target_gap(epsilon, k: int) -> float:
    """log((1 − ε + ε/K)/(ε/K)): the logit gap at which softmax equals the smoothed target."""
    return float(np.log((1 - epsilon + epsilon / k) / (epsilon / k)))


def c33(config, workdir):
    from dlnotes.train.metrics import reliability_diagram
    from dlnotes.train.runner import Runner
    from dlnotes.train.sweep import stack_points
    c = config.c33
    eps = c.epsilon
    cfg = with_changes(config, num_steps=c.num_steps, log_every=c.log_every, batch_size=c.batch_size,
                **{"data.dataset": "digits", "data.n_train": c.n_train, "model.dropout": 0.0,
                   "train.label_smoothing": eps})
    data = make_data(cfg, "digits")
    model = make_model(cfg, "digits")
    seeds = list(range(c.num_seeds))
    epsilons = [0.0, eps]
    points = [{"train.label_smoothing": e, "seed": s} for s in seeds for e in epsilons]
    hp, keys = stack_points(cfg, points)
    xtr, ytr = jnp.asarray(data["train"]["x"]), jnp.asarray(data["train"]["y"])
    logits_fn = jax.jit(jax.vmap(lambda p, ms, x: model.apply(p, ms, x, train=False)[0], in_axes=(0, 0, None)))
    steps, gaps = [], []

    def on_chunk(step, state, metrics):
        steps.append(step)
        gaps.append(np.asarray(jax.vmap(logit_gap, in_axes=(0, None))(
            logits_fn(state.params, state.model_state, xtr), ytr)))

    task = build_task(cfg, data, "digits")
    res = Runner(task, grid=True).run(hp, keys, chunk_steps=c.chunk_steps, on_chunk=on_chunk,
                                      progress="C33 label smoothing")
    steps = np.asarray(steps)
    gaps = np.stack(gaps, 1).reshape(len(seeds), len(epsilons), len(steps))  # (seed, ε, time)
    k = 10
    target = smoothing_target_gap(eps, k)
    i2k, iend = int(np.searchsorted(steps, c.early_step)), len(steps) - 1
    rel_err = np.abs(gaps[:, 1, i2k:] / target - 1).max(axis=1)           # every logged step ≥ 2k, per seed
    growth = gaps[:, 0, iend] / gaps[:, 0, i2k]
    test_logits = logits_fn(res.state.params, res.state.model_state, jnp.asarray(data["test"]["x"]))
    rel = [jax.tree.map(np.asarray, reliability_diagram(test_logits[g], data["test"]["y"], 15, from_logits=True))
           for g in range(len(points))]
    ece = np.array([r["ece"] for r in rel]).reshape(len(seeds), len(epsilons))
    acc = np.asarray(res.metrics["evals"]["test_acc"])[:, -1].reshape(len(seeds), len(epsilons))
    under = _mean_conf_gap(rel[1])  # < 0: the smoothed net is underconfident (the finding behind its ECE)
    notes_hold = bool(ece[:, 1].mean() < ece[:, 0].mean())  # the notes: smoothing improves calibration
    ok = bool(np.all(rel_err <= c.target_rtol)) and bool(np.all(growth >= c.min_growth)) and (notes_hold or under < 0)
    better = "one-hot" if ece[:, 0].mean() < ece[:, 1].mean() else f"ε = {eps:g}"
    pooled = [jax.tree.map(np.asarray, reliability_diagram(
        jnp.concatenate([test_logits[g] for g in range(j, len(points), len(epsilons))]),
        np.tile(data["test"]["y"], len(seeds)), 15, from_logits=True)) for j in range(len(epsilons))]
    fig = _figure_c33(steps, gaps, target, eps, pooled[0], pooled[1],
                      os.path.join(workdir, "label_smoothing.png"))
    return claim(
        "C33", "label smoothing makes the target reachable: the logit gap settles at log((1−ε+ε/K)/(ε/K)); "
               "one-hot keeps growing; calibration reported",
        f"ε = {eps:g}: gap {gaps[:, 1, iend].mean():.3f} vs target {target:.3f} (max deviation after step "
        f"{steps[i2k]} per seed {[round(100 * float(v), 2) for v in rel_err]}%); one-hot gap at {steps[iend]} / at "
        f"{steps[i2k]} per seed {[round(float(v), 2) for v in growth]}; test ECE (15 bins) one-hot "
        f"{100 * ece[:, 0].mean():.1f} ± {100 * ece[:, 0].std():.1f}% vs smoothed {100 * ece[:, 1].mean():.1f} ± "
        f"{100 * ece[:, 1].std():.1f}%: {better} is better calibrated",
        f"within {100 * c.target_rtol:g}% of the target at every logged step ≥ {c.early_step}; one-hot growth "
        f"≥ {c.min_growth:g} (every seed); notes: smoothed ECE < one-hot ECE; if not, the finding: the smoothed "
        f"net is underconfident (mean confidence − accuracy < 0, measured {100 * under:+.1f} points)", ok, fig,
        notes_hold=notes_hold,
        details=f"MLP width {config.model.width} on {c.n_train} digits, Adam {config.optimizer.learning_rate:g}, batch "
                f"{c.batch_size}, {c.num_steps} steps, {len(seeds)} seeds, ε and seeds in one grid; the gap is "
                f"z_y − mean_(k≠y) z_k on the training set; test accuracy one-hot "
                f"{100 * acc[:, 0].mean():.1f}% vs smoothed {100 * acc[:, 1].mean():.1f}%; smoothing "
                + ("made the net underconfident" if _mean_conf_gap(rel[1]) < 0 else "left the net overconfident")
                + f" (mean confidence − accuracy {100 * _mean_conf_gap(rel[1]):+.1f} points vs one-hot "
                  f"{100 * _mean_conf_gap(rel[0]):+.1f})")


def _mean_conf_gap(r):
    """Σ_b n_b (conf_b − acc_b) / N: > 0 overconfident, < 0 underconfident."""
    n = r["count"]
    return float(np.sum(n * (r["confidence"] - r["accuracy"])) / np.sum(n))


def _figure_c33(steps, gaps, target, eps, rel0, rel1, path):
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for j, (name, color) in enumerate((("one-hot", "tab:red"), (f"smoothed ε = {eps:g}", "tab:blue"))):
        for s in range(gaps.shape[0]):
            a1.plot(steps, gaps[s, j], color=color, lw=1, alpha=0.7, label=name if s == 0 else None)
    a1.axhline(target, color="k", ls="--", lw=1, label=f"log((1−ε+ε/K)/(ε/K)) = {target:.2f}")
    a1.axhspan(0.95 * target, 1.05 * target, color="0.85", zorder=0)
    a1.set_yscale("log")
    a1.set(xlabel="step", ylabel="training logit gap z_y − mean z_k (log scale)",
           title="logit gap vs steps (lines = seeds; band = ±5%)")
    a1.legend(fontsize=8)
    edges = rel0["bin_edges"]
    centres = 0.5 * (edges[1:] + edges[:-1])
    w = (edges[1] - edges[0]) * 0.4
    for r, off, name, color in ((rel0, -w / 2, "one-hot", "tab:red"), (rel1, w / 2, f"ε = {eps:g}", "tab:blue")):
        e = float(r["ece"])
        m = r["count"] > 0
        a2.bar(centres[m] + off, r["accuracy"][m], width=w, color=color, alpha=0.75,
               label=f"{name} (ECE {100 * e:.1f}%)")
        a2.plot(r["confidence"][m], r["accuracy"][m], "o", color=color, ms=3)
    a2.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    a2.set(xlabel="confidence (max softmax), 15 bins", ylabel="accuracy in bin", xlim=(0, 1), ylim=(0, 1.02),
           title="reliability diagram on the test digits (all seeds pooled)")
    a2.legend(fontsize=8, loc="upper left")
    return plots.save(fig, path)


# --------------------------------------------------------------------------- run
def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    return [c31(config, workdir), c32(config, workdir), c33(config, workdir)]
