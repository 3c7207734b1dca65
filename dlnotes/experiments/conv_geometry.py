"""Convolution geometry, equivariance, pooling invariance, depthwise parameters (C19–C22).

C19  Output size ⌊(W − K_eff + 2P)/S⌋ + 1 (K_eff = D(K − 1) + 1) equals the shape the
     conv (both impls) and pooling layers produce, over a grid of (W, K, P, S, D).
     The receptive field r_l = r_{l−1} + (K_eff − 1)·j_{l−1}, j_l = j_{l−1}·S equals the
     bounding box of the nonzero entries of ∂y[centre]/∂x for linear stacks (positive
     kernels, 'VALID' so no border clips); it grows linearly with stride-1 convs
     (constant increments K − 1) and exponentially with pooling/stride (increments × S).
C20  Shifted input → shifted output away from the borders (exact), and zero vs
     mirror padding differ only within the receptive-field radius of a border.
C21  Among units active in either image, a 2×2 max pool leaves more units unchanged
     under 1-pixel shifts than the unpooled map or stride-2 subsampling (≥ 5 points);
     a digits CNN with max pooling keeps ≥ 5 points more of its test predictions under
     1-pixel shifts than the same CNN with subsampling (trained through the engine,
     seeds in one vmapped grid per model).
C22  Depthwise K²·C vs dense K²·C² weights (ratio C exactly); a ConvNeXt block's
     parameters vs a ResNet block's (reported).
"""
from __future__ import annotations

import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes.data.images import load_digits_split, sample_photos, shift_images
from dlnotes.errors import check
from dlnotes.experiments.base import claim
from dlnotes.nn import conv as C
from dlnotes.nn import pool as P
from dlnotes.train import plots
from dlnotes.hparams import with_changes

CLAIMS = ("C19", "C20", "C21", "C22")

SHIFTS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # (dy, dx): the four 1-pixel shifts


# --------------------------------------------------------------------------- task (scripts/train.py)
def _model_config(config, pool: str):
    return with_changes(config, **{"model.pool": pool})


def make_data(config):
    return load_digits_split(config.data.seed, n_train=config.data.get("n_train") or None,
                             n_val=config.data.n_val, n_test=config.data.n_test)


def validate(config):
    from dlnotes.optim.factory import validate_optimizer_config
    validate_optimizer_config(config)
    check(config.model.pool in ("max", "avg", "subsample", "none"), "model.pool",
          "must be one of max, avg, subsample, none")


def build_task(config, data=None):
    """The digits CNN of ``config.model`` (pool = ``model.pool``) trained with the engine."""
    from dlnotes.models.cnn import make_cnn
    from dlnotes.train.runner import CPU_LOOP_EMITTERS
    from dlnotes.train.tasks import classification_task
    data = data if data is not None else make_data(config)
    # XLA's loop emitters on CPU, as for the digits CNN (C23): measured 2026-12-02, idle, fresh processes,
    # the fast config's first run 4.2-4.5 s -> 3.0-3.5 s (backend compile 3.0-3.3 -> 1.8-2.1 s)
    return classification_task(config, make_cnn(config), data, cpu_compiler_options=CPU_LOOP_EMITTERS)


# --------------------------------------------------------------------------- C19
def output_size_grid(Ws=(5, 8, 13), Ks=(1, 2, 3, 5), Ps=(0, 1, 2), Ss=(1, 2, 3), Ds=(1, 2)):
    """Rows (layer, W, K, P, S, D, formula, actual) for conv (im2col, xla) and max/avg pooling.

    ``actual`` is the spatial size of the layer's output (``jax.eval_shape``: the real
    layer traced, nothing computed), on a W × (W + 1) input so both axes are checked.
    """
    rows = []
    for W, K, Pd, S, D in itertools.product(Ws, Ks, Ps, Ss, Ds):
        if W + 2 * Pd < D * (K - 1) + 1:
            continue
        x = jax.ShapeDtypeStruct((1, W, W + 1, 2), jnp.float32)
        w = jax.ShapeDtypeStruct((K, K, 2, 3), jnp.float32)
        want = (C.conv_output_size(W, K, Pd, S, D), C.conv_output_size(W + 1, K, Pd, S, D))
        for impl in ("im2col", "xla"):
            y = jax.eval_shape(lambda x, w: C.conv2d(x, w, stride=S, padding=Pd, dilation=D, impl=impl), x, w)
            rows.append((f"conv/{impl}", W, K, Pd, S, D, want, tuple(y.shape[1:3])))
        if D == 1 and Pd < K:  # pooling: a window never entirely in the padding
            for name, fn in (("max_pool", P.max_pool), ("avg_pool", P.avg_pool)):
                y = jax.eval_shape(lambda x: fn(x, K, S, Pd), x)
                rows.append((name, W, K, Pd, S, D, want, tuple(y.shape[1:3])))
    return rows


def gradient_receptive_field(layers, size=None, seed=0):
    """Bounding box (rows, cols) and map of the nonzero entries of ∂y[centre]/∂x.

    ``layers``: (kind, K, S, D) with kind 'conv' (positive random K×K kernel) or 'avg'
    (avg pool, a linear stand-in for any K×K pool); a linear stack, 'VALID' padding,
    on a ``size``² input (default: 2·(analytic RF) + 4·jump + 1, so nothing clips).
    Returns (size_rows, size_cols, |g| map).
    """
    rf = C.receptive_field([(k, s, d) for _, k, s, d in layers])
    size = size or 2 * rf.size + 4 * rf.jump + 1
    keys = jax.random.split(jax.random.key(seed), len(layers))
    ws = [jax.random.uniform(kk, (k, k, 1, 1), minval=0.5, maxval=1.5) for kk, (_, k, _, _) in zip(keys, layers)]

    def f(x):
        h = x
        for w, (kind, k, s, d) in zip(ws, layers):
            h = C.conv2d(h, w, stride=s, dilation=d, padding="VALID") if kind == "conv" else P.avg_pool(h, k, s)
        c = (h.shape[1] // 2, h.shape[2] // 2)
        return h[0, c[0], c[1], 0]

    g = np.asarray(jax.jit(jax.grad(f))(jnp.ones((1, size, size, 1), jnp.float32)))[0, :, :, 0]
    nz = g != 0
    rows, cols = np.nonzero(nz.any(axis=1))[0], np.nonzero(nz.any(axis=0))[0]
    if rows[0] == 0 or rows[-1] == size - 1 or cols[0] == 0 or cols[-1] == size - 1:
        raise ValueError(f"input {size} too small for the receptive field of {layers}: borders clip")
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1), np.abs(g)


RF_STACKS = {
    "3×3 conv ×3": [("conv", 3, 1, 1)] * 3,
    "(3×3 conv, 2×2 pool) ×3": [("conv", 3, 1, 1), ("avg", 2, 2, 1)] * 3,
    "3×3 dilation 1, 2, 4": [("conv", 3, 1, 1), ("conv", 3, 1, 2), ("conv", 3, 1, 4)],
    "5×5 stride 2, 3×3 dil 2": [("conv", 5, 2, 1), ("conv", 3, 1, 2)],
    "2×2 stride 3 (K < S) ×2": [("conv", 2, 3, 1)] * 2,
}


def c19(config, workdir):
    rows = output_size_grid()
    bad = [r for r in rows if r[6] != r[7]]
    cases = list(RF_STACKS.items())
    depth = config.rf_depth
    conv_only = [[("conv", 3, 1, 1)] * n for n in range(1, depth + 1)]
    pooled = [[("conv", 3, 1, 1), ("avg", 2, 2, 1)] * n for n in range(1, depth + 1)]
    rf_rows, maps = [], {}
    for name, layers in cases + [(f"conv×{n}", l) for n, l in enumerate(conv_only, 1)] \
            + [(f"(conv,pool)×{n}", l) for n, l in enumerate(pooled, 1)]:
        hr, hc, maps[name] = gradient_receptive_field(layers)
        rf_rows.append((name, C.receptive_field([(k, s, d) for _, k, s, d in layers]).size, hr, hc))
    rf_ok = all(a == r == c for _, a, r, c in rf_rows)
    meas_conv = [r for n, _, r, _ in rf_rows if n.startswith("conv×")]
    meas_pool = [r for n, _, r, _ in rf_rows if n.startswith("(conv,pool)×")]
    inc_conv = np.diff(meas_conv)
    inc_pool = np.diff(meas_pool)
    linear = bool(np.all(inc_conv == inc_conv[0]))
    expo = bool(np.all(inc_pool[1:] == 2 * inc_pool[:-1]))
    fig = _figure_rf([(n, maps[n]) for n, _ in cases], meas_conv, meas_pool, os.path.join(workdir, "receptive_field.png"))
    ok = not bad and rf_ok and linear and expo
    return claim(
        "C19", "conv output size formula matches the layers; analytic receptive field = gradient bounding box; "
               "linear growth with convs, exponential with pooling",
        f"{len(rows) - len(bad)}/{len(rows)} output sizes match; RF {sum(a == r == c for _, a, r, c in rf_rows)}"
        f"/{len(rf_rows)} stacks match; conv-only RF {meas_conv} (increments {sorted(set(inc_conv.tolist()))}); "
        f"with 2×2 pooling {meas_pool} (increments {inc_pool.tolist()})",
        "all sizes match; all RFs = bounding box; constant increments (conv) and doubling increments (pool)",
        ok, fig,
        details="output-size grid W∈{5,8,13} (and W+1 on the other axis), K∈{1,2,3,5}, P∈{0,1,2}, S∈{1,2,3}, "
                "D∈{1,2}, conv (im2col and XLA) and max/avg pooling; receptive fields: "
                + "; ".join(f"{n}: analytic {a}, gradient box {r}×{c}" for n, a, r, c in rf_rows[:len(cases)])
                + (f"; mismatches: {bad[:5]}" if bad else ""))


def _figure_rf(cases, meas_conv, meas_pool, path):
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    fig, axes = plt.subplots(2, (len(cases) + 2) // 2, figsize=(11, 7))
    axes = axes.flat
    for ax, (name, g) in zip(axes, cases):
        rows, cols = np.nonzero(g.any(axis=1))[0], np.nonzero(g.any(axis=0))[0]
        hr, hc = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        pad = 3
        sub = g[max(rows[0] - pad, 0):rows[-1] + pad + 1, max(cols[0] - pad, 0):cols[-1] + pad + 1]
        sub = np.where(sub > 0, sub, np.nan)
        ax.imshow(sub, cmap="viridis", norm=LogNorm(), interpolation="nearest")
        ax.add_patch(plt.Rectangle((pad - 0.5, pad - 0.5), hc, hr, fill=False, ec="red", lw=1.2))
        ax.set_title(f"{name}\nRF {hr}×{hc}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[len(cases)]
    d = np.arange(1, len(meas_conv) + 1)
    ax.semilogy(d, meas_conv, "o-", label="3×3 convs: 2n + 1")
    ax.semilogy(d, meas_pool, "s-", label="(3×3 conv, 2×2 pool): 3·2ⁿ − 2")
    ax.set(xlabel="blocks n", ylabel="receptive field (pixels)", title="RF growth (gradient boxes)")
    ax.legend(fontsize=7)
    fig.suptitle("|∂ y[centre] / ∂ x| of linear stacks (log colour, white = 0; red box = analytic receptive field)",
                 fontsize=10)
    return plots.save(fig, path)


# --------------------------------------------------------------------------- C20
def _photo(size=48):
    img = sample_photos(size=(size, int(size * 1.5)))["china"].mean(-1)
    return img[None, :, :, None].astype(np.float32)


def c20(config, workdir):
    x = jnp.asarray(_photo(config.equivariance_size))
    keys = jax.random.split(jax.random.key(1), 2)
    w1 = jax.random.normal(keys[0], (3, 3, 1, 8)) / 3.0
    w2 = jax.random.normal(keys[1], (3, 3, 8, 4)) / np.sqrt(72.0)
    r = 2  # radius of the receptive field of two 3×3 convs

    def net(x, mode="zeros"):
        h = jax.nn.relu(C.conv2d(x, w1, padding=1, padding_mode=mode))
        return C.conv2d(h, w2, padding=1, padding_mode=mode)

    dy, dx = config.shift
    xs = shift_images(x, dx, dy)
    y, ys, yr = (np.asarray(a) for a in jax.jit(lambda x, xs: (net(x), net(xs), net(x, "reflect")))(x, xs))
    H, W = y.shape[1:3]
    inner = np.abs(ys[:, dy + r:H - r, dx + r:W - r] - y[:, r:H - r - dy, r:W - r - dx]).max()
    full = np.zeros((H, W))
    full[dy:, dx:] = np.abs(ys[:, dy:, dx:] - y[:, :H - dy, :W - dx]).max(axis=(0, 3))
    pad_diff = np.abs(yr - y).max(axis=(0, 3))
    interior = np.zeros((H, W), bool)
    interior[r:-r, r:-r] = True
    pad_inner = float(pad_diff[interior].max())
    pad_border_frac = float((pad_diff[~interior] > 0).mean())
    ok = inner <= config.equivariance_atol and pad_inner <= config.equivariance_atol and pad_border_frac > 0
    fig = _figure_equivariance(np.asarray(x), np.asarray(xs), y, ys, full, pad_diff, (dy, dx), r,
                               os.path.join(workdir, "equivariance.png"))
    return claim(
        "C20", "weight sharing gives translation equivariance (exact away from borders); zero vs mirror padding "
               "differ only at borders",
        f"max |net(shift x) − shift(net x)| away from borders = {inner:.3g}; zero vs mirror padding: "
        f"interior max |Δ| = {pad_inner:.3g}, {100 * pad_border_frac:.0f}% of border positions differ",
        f"interior differences ≤ {config.equivariance_atol:g} (float32); border differences > 0",
        ok, fig,
        details=f"two 3×3 convs (ReLU between, 8 then 4 channels, random weights) on a {H}×{W} grayscale photo, "
                f"shift (dy, dx) = ({dy}, {dx}), borders = the {r}-pixel receptive-field radius")


def _figure_equivariance(x, xs, y, ys, shift_err, pad_diff, shift, r, path):
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 3, figsize=(11, 5.6))
    panels = [(x[0, :, :, 0], "input x", "gray"), (y[0, :, :, 0], "conv net(x), channel 0", "RdBu_r"),
              (shift_err, "|net(shift x) − shift(net x)|\n(nonzero only in the border band)", "magma"),
              (xs[0, :, :, 0], f"shift x by (dy, dx) = {shift}", "gray"),
              (ys[0, :, :, 0], "net(shift x), channel 0", "RdBu_r"),
              (pad_diff, f"|zero − mirror padding| (border band {r} px)", "magma")]
    for ax, (img, title, cmap) in zip(axes.flat, panels):
        im = ax.imshow(img, cmap=cmap, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.03)
    return plots.save(fig, path)


# --------------------------------------------------------------------------- C21
def unchanged_fraction(base, shifted):
    """Among units active (> 0) in either map, the fraction with the same value in both."""
    base, shifted = np.asarray(base), np.asarray(shifted)
    active = (base > 0) | (shifted > 0)
    return float(((base == shifted) & active).sum() / max(active.sum(), 1))


def pooling_invariance(x, w):
    """Unchanged fraction of ReLU(conv(x, w)) under the four 1-pixel shifts of x, for the
    unpooled map, stride-2 subsampling and 2×2 max pooling (mean over shifts)."""
    feats = jax.jit(lambda x: jax.nn.relu(C.conv2d(x, w, padding="SAME")))
    f0 = feats(x)
    out = {"unpooled": [], "subsample": [], "max pool": []}
    for dy, dx in SHIFTS:
        f1 = feats(shift_images(x, dx, dy))
        out["unpooled"].append(unchanged_fraction(f0, f1))
        out["subsample"].append(unchanged_fraction(P.subsample(f0, 2), P.subsample(f1, 2)))
        out["max pool"].append(unchanged_fraction(P.max_pool(f0, 2), P.max_pool(f1, 2)))
    return {k: float(np.mean(v)) for k, v in out.items()}


def prediction_consistency(logits_fn, x):
    """Fraction of images whose predicted class is unchanged by a 1-pixel shift (mean over the 4 shifts)."""
    p0 = np.argmax(np.asarray(logits_fn(x)), -1)
    return float(np.mean([np.mean(np.argmax(np.asarray(logits_fn(shift_images(x, dx, dy))), -1) == p0)
                          for dy, dx in SHIFTS]))


def _trained_consistency(config):
    """Train the digits CNN with max pooling and with subsampling (seeds vmapped per model);
    per seed: fraction of test predictions unchanged under 1-pixel shifts, and accuracy."""
    from dlnotes.models.cnn import make_cnn
    from dlnotes.train.sweep import run_points
    data = make_data(config)
    seeds = list(range(config.c21.num_seeds))
    out = {}
    for pool in ("max", "subsample"):
        cfg = _model_config(config, pool)
        model = make_cnn(cfg)
        task = build_task(cfg, data)
        _, res = run_points(task, cfg, [{"seed": s} for s in seeds], progress=f"C21 {pool}")
        x = jnp.asarray(data["test"]["x"])
        cons, acc = [], []
        apply = jax.jit(lambda p, ms, x: model.apply(p, ms, x, train=False)[0])
        for g in range(len(seeds)):
            p, ms = jax.tree.map(lambda a: a[g], (res.state.params, res.state.model_state))
            fn = lambda x: apply(p, ms, x)
            cons.append(prediction_consistency(fn, x))
            acc.append(float(np.asarray(res.metrics["evals"]["test_acc"])[g, -1]))
        out[pool] = {"consistency": np.asarray(cons), "test_acc": np.asarray(acc)}
    return out


def c21(config, workdir):
    data = make_data(config)
    x = jnp.asarray(data["test"]["x"])
    w = jax.random.normal(jax.random.key(2), (3, 3, 1, config.c21.random_channels)) / 3.0
    mech = pooling_invariance(x, w)
    trained = _trained_consistency(config)
    margin_unpooled = mech["max pool"] - mech["unpooled"]
    margin_sub = mech["max pool"] - mech["subsample"]
    diff = trained["max"]["consistency"] - trained["subsample"]["consistency"]
    gap = float(diff.mean())
    thr = config.c21.margin
    ok = margin_unpooled >= thr and margin_sub >= thr and gap >= thr
    fig = _figure_pooling(mech, trained, os.path.join(workdir, "pooling_invariance.png"))
    cm, cs = trained["max"]["consistency"], trained["subsample"]["consistency"]
    am, as_ = trained["max"]["test_acc"], trained["subsample"]["test_acc"]
    return claim(
        "C21", "max pooling gives local translation invariance (feature maps and a trained net's predictions)",
        f"unchanged among active units: max pool {100 * mech['max pool']:.1f}% vs unpooled "
        f"{100 * mech['unpooled']:.1f}% / subsampled {100 * mech['subsample']:.1f}%; trained predictions kept under "
        f"1-px shifts: max {100 * cm.mean():.1f}% vs subsample {100 * cs.mean():.1f}% "
        f"(+{100 * gap:.1f} ± {100 * diff.std():.1f} points)",
        f"each margin ≥ {100 * thr:g} points", ok, fig,
        details=f"mechanism: ReLU of a random 3×3 conv ({config.c21.random_channels} channels) on the "
                f"{len(x)} test digits, 2×2 max pool / stride-2 subsampling, mean over the 4 one-pixel shifts. "
                f"Trained: digits CNN (channels {list(config.model.channels)}), {config.num_steps} steps, "
                f"{len(cm)} seeds; per-seed kept max {np.round(100 * cm, 1).tolist()} vs subsample "
                f"{np.round(100 * cs, 1).tolist()}; clean test accuracy max {100 * am.mean():.1f} ± {100 * am.std():.1f}%"
                f", subsample {100 * as_.mean():.1f} ± {100 * as_.std():.1f}%")


def _figure_pooling(mech, trained, path):
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["unpooled", "subsample", "max pool"]
    vals = [100 * mech[n] for n in names]
    bars = a1.bar(names, vals, color=["0.6", "tab:orange", "tab:blue"])
    a1.bar_label(bars, fmt="%.1f%%", fontsize=8)
    a1.set(ylabel="% of active units unchanged", title="feature map under 1-pixel shifts\n(ReLU(random conv) on digits)")
    a1.set_ylim(0, 100)
    labels = {"max": "max pool", "subsample": "subsample"}
    colors = {"max": "tab:blue", "subsample": "tab:orange"}
    for i, k in enumerate(("subsample", "max")):
        c = 100 * trained[k]["consistency"]
        a2.bar(i, c.mean(), yerr=c.std(), color=colors[k], alpha=0.8, capsize=4)
        a2.plot(np.full(len(c), i) + np.linspace(-0.15, 0.15, len(c)), c, "k.", ms=5)
        a2.text(i, c.mean() + 1.5, f"{c.mean():.1f}%", ha="center", fontsize=8)
    a2.set_xticks([0, 1], [labels["subsample"], labels["max"]])
    lo = min(100 * trained[k]["consistency"].min() for k in trained)
    a2.set_ylim(max(0, lo - 10), 100)
    a2.set(ylabel="% of test predictions unchanged", title="trained digits CNN under 1-pixel shifts\n(dots = seeds)")
    return plots.save(fig, path)


# --------------------------------------------------------------------------- C22
def c22(config, workdir):
    from dlnotes.nn.layers import Conv, DepthwiseConv
    rows = []
    for K, Cc in itertools.product((3, 7), config.c22.channels):
        dense = C.num_conv_params(K, Cc, Cc, bias=False)
        dw = C.num_conv_params(K, Cc, Cc, depthwise=True, bias=False)
        dense_mod = _count(lambda r: Conv(Cc, Cc, K, use_bias=False, rngs=r))
        dw_mod = _count(lambda r: DepthwiseConv(Cc, K, use_bias=False, rngs=r))
        rows.append((K, Cc, dense, dw, dense_mod, dw_mod))
    ok = all(d == K * K * Cc * Cc and w == K * K * Cc and d == Cc * w and dm == d and wm == w
             for K, Cc, d, w, dm, wm in rows)
    blocks = block_param_counts(config.c22.block_channels)
    return claim(
        "C22", "depthwise conv has K²·C weights vs K²·C² (ratio C); ConvNeXt vs ResNet block parameters reported",
        "ratios " + ", ".join(f"K={K},C={Cc}: {d // w}" for K, Cc, d, w, _, _ in rows)
        + f"; at C={config.c22.block_channels}: " + ", ".join(f"{k} {v:,}" for k, v in blocks.items())
        + f" (ratio {list(blocks.values())[0] / list(blocks.values())[1]:.2f})",
        "dense/depthwise = C exactly (formula and the layers' kernels)", ok, None,
        details="counts (K, C, dense, depthwise, dense layer, depthwise layer): "
                + "; ".join(str(r) for r in rows)
                + ". Blocks at equal width C: ResNet basic block = two dense 3×3 convs (+ norms); ConvNeXt block = "
                  "depthwise 7×7 + LayerNorm + 1×1 C→4C + GELU + 1×1 4C→C (+ layer scale): the dense 3×3s cost "
                  "18C² against the inverted bottleneck's 8C².")


def _count(make) -> int:
    """Parameters of ``make(rngs)`` (built abstractly: shapes only)."""
    from flax import nnx
    from dlnotes.models.base import count_params
    return count_params(nnx.state(nnx.eval_shape(lambda: make(nnx.Rngs(params=0))), nnx.Param))


def block_param_counts(Cc: int) -> dict[str, int]:
    """Parameters of one block of each family at width C, counted from the models' own modules."""
    from dlnotes.models.convnext import ConvNeXtBlock
    from dlnotes.models.resnet import ResNetBlock
    return {"ResNet block (2 dense 3×3 + BN)": _count(lambda r: ResNetBlock(Cc, rngs=r)),
            "ConvNeXt block (dw 7×7, LN, 1×1 ×4)": _count(lambda r: ConvNeXtBlock(Cc, rngs=r))}


# --------------------------------------------------------------------------- run
def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    return [c19(config, workdir), c20(config, workdir), c21(config, workdir), c22(config, workdir)]
