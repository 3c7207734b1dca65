"""Least squares and ridge (C9–C13), in float64.

Closed forms from ``dlnotes.linear`` are checked against each other; GD runs through the engine
(``least_squares_task``, L(w) = ½‖Xw − y‖²/n, H = XᵀX/n).

C9   ridge (XᵀX + λI)⁻¹Xᵀy = SVD form Σ σ_i²/(σ_i² + λ)·(u_iᵀy/σ_i) v_i; λ = 0 gives OLS (1e-6 relative);
C10  OLS on [X; √λ I] (zero targets) and the min-norm solution on [X, √λ I] give ridge (1e-6);
C11  GD from 0 on an underdetermined problem → X⁺y (1e-5, T ≥ 500); from w0 → X⁺y + P_null w0;
C12  early stopping is implicit ridge: GD's filter factors after t steps vs ridge's with λ = n/(ηt)
     (``linear``'s unnormalised ridge; = 1/(ηt) in H's units): largest gap ≤ 0.25 for t ≥ 10; the best
     validation errors along t and along λ agree within 10%;
C13  ‖X⁺y‖ and OLS's held-out error grow without bound as σ_min → 0; ridge's held-out error stays within
     ``c13.ridge_factor`` of its best.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from dlnotes import linear
from dlnotes.errors import check
from dlnotes.experiments.base import claim
from dlnotes.optim.factory import make_optimizer, validate_optimizer_config
from dlnotes.train import plots
from dlnotes.hparams import with_changes
from dlnotes.train.sweep import run_points
from dlnotes.train.tasks import least_squares_task

CLAIMS = ("C9", "C10", "C11", "C12", "C13")


def validate(config):
    validate_optimizer_config(config)
    check(config.data.n >= 1 and config.data.d >= 1, "data.n", "n and d must be ≥ 1")
    check(config.batch_size == 0 or 0 < config.batch_size <= config.data.n, "batch_size",
          f"must be in [0, data.n={config.data.n}] (0 = full batch)")


def _evaluate(params, model_state, data, hp):
    out = {"w": params, "train_loss": linear.least_squares_loss(data["train"]["x"], data["train"]["y"], params)}
    if "val" in data:
        out["val_loss"] = linear.least_squares_loss(data["val"]["x"], data["val"]["y"], params)
    return out


def underdetermined_data(config):
    """C11's problem: X (n, d) ~ N(0, 1) with n < d, y ~ N(0, 1).

    The data key is folded with a tag: with ``key(seed)`` itself, X's first row would equal the engine's
    w0 of run seed = data.seed (same key, same draws), putting that w0 in X's row space."""
    kx, ky = jax.random.split(jax.random.fold_in(jax.random.key(config.data.seed), 0xDA7A))
    dt = jnp.zeros(()).dtype
    X = jax.random.normal(kx, (config.data.n, config.data.d), dt)
    return {"train": {"x": X, "y": jax.random.normal(ky, (config.data.n,), dt)}}


def build_task(config, data=None, **overrides):
    """GD (``config.optimizer``) on least squares; by default C11's underdetermined problem."""
    data = data if data is not None else underdetermined_data(config)
    return least_squares_task(config, data, optimizer=lambda hp: make_optimizer(config, hp),
                              evaluate=_evaluate, **overrides)


def run(config, workdir):
    os.makedirs(workdir, exist_ok=True)
    with jax.enable_x64(True):
        c9, c10 = _c9_c10(config, workdir)
        return [c9, c10, _c11(config, workdir), _c12(config, workdir), _c13(config, workdir)]


def _rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


# ---------------------------------------------------------------------------
# C9, C10: closed forms against each other


def _c9_c10(config, workdir):
    c = config.c9
    kx, ky = jax.random.split(jax.random.key(0))
    Xg = jax.random.normal(kx, (c.n, c.d))
    problems = {
        "gaussian": linear.LeastSquares(Xg, Xg @ jnp.ones(c.d) + jax.random.normal(ky, (c.n,)), jnp.ones(c.d), None),
        f"κ={c.kappa:g}": linear.make_least_squares(jax.random.key(1), c.n, c.d, c.kappa, noise=0.1,
                                                    dtype=jnp.float64),
    }
    lams = jnp.asarray(c.lambdas, jnp.float64)
    pos = lams[lams > 0]
    c9_err, ols_err, c10_rows, c10_feat = 0.0, 0.0, 0.0, 0.0
    per = []
    for name, p in problems.items():
        X, y = p.X, p.y
        closed = jax.vmap(lambda l: linear.ridge(X, y, l))(lams)
        svd = jax.vmap(lambda l: linear.ridge_svd(X, y, l))(lams)
        e9 = max(_rel(a, b) for a, b in zip(closed, svd))
        ols = linear.least_squares(X, y)
        e0 = max(_rel(linear.ridge(X, y, 0.0), ols), _rel(linear.ridge_svd(X, y, 0.0), ols))
        rows = jax.vmap(lambda l: linear.ridge_by_augmented_rows(X, y, l))(pos)
        feats = jax.vmap(lambda l: linear.ridge_by_augmented_features(X, y, l))(pos)
        ref = closed[lams > 0]
        er = max(_rel(a, b) for a, b in zip(rows, ref))
        ef = max(_rel(a, b) for a, b in zip(feats, ref))
        c9_err, ols_err = max(c9_err, e9), max(ols_err, e0)
        c10_rows, c10_feat = max(c10_rows, er), max(c10_feat, ef)
        per.append(f"{name}: {e9:.1e}/{e0:.1e}/{er:.1e}/{ef:.1e}")
    fig = _figure_filters(problems[f"κ={c.kappa:g}"].X, lams, os.path.join(workdir, "ridge_filter_factors.png"))
    c9 = claim("C9", "ridge closed form = SVD form with filter factors σ²/(σ² + λ); λ = 0 gives OLS",
               f"max rel. diff closed vs SVD {c9_err:.1e}; λ=0 vs OLS {ols_err:.1e}", "both ≤ 1e-6",
               max(c9_err, ols_err) <= 1e-6, fig,
               details=f"n={c.n}, d={c.d}, λ ∈ {list(c.lambdas)} (vmapped), float64; a Gaussian X and one with "
                       f"H's condition number {c.kappa:g}; per problem closed-vs-SVD/λ=0-vs-OLS/rows/features: "
                       + "; ".join(per))
    c10 = claim("C10", "ridge by data augmentation: √λ·I rows (zero targets), or √λ·I features + min norm",
                f"max rel. diff rows {c10_rows:.1e}; features {c10_feat:.1e}", "both ≤ 1e-6",
                max(c10_rows, c10_feat) <= 1e-6, fig,
                details=f"λ ∈ {[float(v) for v in pos]} against the closed form, both problems of C9")
    return c9, c10


# ---------------------------------------------------------------------------
# C11: GD through the engine finds the minimum-norm solution


def _c11(config, workdir):
    c = config.c11
    data = underdetermined_data(config)
    X, y = data["train"]["x"], data["train"]["y"]
    eta = float(c.eta_lam_max / jnp.linalg.eigvalsh(linear.hessian(X))[-1])
    seeds = list(range(c.num_seeds))
    points = [{"model.init_scale": s0, "optimizer.learning_rate": eta, "seed": s} for s0 in (0.0, 1.0) for s in seeds]
    cfg = with_changes(config, **{"model.init_scale": 1.0})  # traced; the grid sets 0 or 1
    _, res = run_points(build_task(cfg, data), cfg, points, progress="ridge C11 GD")
    w_path = np.asarray(res.metrics["evals"]["w"])          # (G, T/k + 1, d)
    wT = np.asarray(res.state.params)
    w0 = w_path[:, 0]
    pinv = np.asarray(linear.min_norm_solution(X, y))
    P = np.asarray(linear.null_space_projector(X))
    targets = pinv[None] + w0 @ P.T                          # X⁺y + P_null w0 (= X⁺y from 0)
    errs = np.linalg.norm(wT - targets, axis=1) / np.linalg.norm(targets, axis=1)
    zero, nonzero = errs[: len(seeds)], errs[len(seeds):]
    off = np.linalg.norm(wT[len(seeds):] - pinv, axis=1) / np.linalg.norm(pinv)
    ok = config.num_steps >= 500 and float(errs.max()) <= 1e-5
    fig = _figure_c11(w_path, pinv, targets, len(seeds), config.log_every, os.path.join(workdir, "min_norm.png"))
    return claim("C11", "GD from 0 on underdetermined least squares → min-norm X⁺y; from w0 → X⁺y + P_null·w0",
                 f"max rel. error from 0: {zero.max():.1e}; from w0 ≠ 0 (vs X⁺y + P_null w0): {nonzero.max():.1e}",
                 "both ≤ 1e-5 (float64, T ≥ 500)", ok, fig,
                 details=f"n={config.data.n} < d={config.data.d}, η = {c.eta_lam_max}/λ_max = {eta:.4g}, "
                         f"T = {config.num_steps}, {len(seeds)} seeds each, engine grid of {len(points)} points; "
                         f"from w0 ≠ 0 the end point is {off.min():.2g}–{off.max():.2g} (relative) away from X⁺y")


# ---------------------------------------------------------------------------
# C12: early stopping is implicit ridge


def early_stopping_data(c):
    """x ~ N(0, diag(s²)) with s² log-spaced in [s2_min, 1], w ~ N(0, I), y = xᵀw + noise·ε; train and val."""
    k = jax.random.key(c.data_seed)
    kx, kv, kw, ke, kf = jax.random.split(k, 5)
    s = jnp.sqrt(jnp.geomspace(1.0, c.s2_min, c.d))
    w = jax.random.normal(kw, (c.d,))
    X, Xv = s * jax.random.normal(kx, (c.n, c.d)), s * jax.random.normal(kv, (c.n_val, c.d))
    y = X @ w + c.noise * jax.random.normal(ke, (c.n,))
    yv = Xv @ w + c.noise * jax.random.normal(kf, (c.n_val,))
    return {"train": {"x": X, "y": y}, "val": {"x": Xv, "y": yv}}


def filter_gap(s_scaled, eta, ts):
    """max_i |(1 − (1 − η s_i²)^t) − s_i²/(s_i² + 1/(ηt))| for each t (closed forms, s = σ/√n)."""
    t = jnp.asarray(ts, s_scaled.dtype)[:, None]
    return jnp.max(jnp.abs(linear.gd_filter_factors(s_scaled, eta, t)
                           - linear.ridge_filter_factors(s_scaled, 1.0 / (eta * t))), axis=1)


def _c12(config, workdir):
    c = config.c12
    data = early_stopping_data(c)
    X, y = data["train"]["x"], data["train"]["y"]
    Xv, yv = data["val"]["x"], data["val"]["y"]
    n = X.shape[0]
    U, sig, Vh = jnp.linalg.svd(X, full_matrices=False)
    s = sig / np.sqrt(n)                                     # scaled singular values: H's curvatures are s²
    eta = float(c.eta_lam_max / s[0] ** 2)
    cfg = with_changes(config, num_steps=c.num_steps, log_every=c.log_every,
                       **{"model.init_scale": 0.0, "optimizer.learning_rate": eta})
    _, res = run_points(build_task(cfg, data), cfg, [{"seed": 0}], progress="ridge C12 GD")
    w_path = np.asarray(res.metrics["evals"]["w"][0])        # (K+1, d)
    val_gd = np.asarray(res.metrics["evals"]["val_loss"][0])
    ts = np.arange(w_path.shape[0]) * c.log_every
    # GD's measured filter factors: component of w_t along v_i over that of the OLS solution
    w_ols = np.asarray(linear.least_squares(X, y))
    V = np.asarray(Vh).T
    f_gd = (w_path @ V) / (w_ols @ V)[None, :]               # (K+1, d)
    use = ts >= 10
    f_ridge = np.asarray(linear.ridge_filter_factors(sig[None, :], n / (eta * ts[use][:, None])))
    gaps = np.max(np.abs(f_gd[use] - f_ridge), axis=1)
    gap = float(gaps.max())
    t_first = int(ts[use][0])  # the claim starts at t = 10: that step must be among the measured ones
    closed = np.asarray(linear.gd_filter_factors(s[None, :], eta, ts[:, None]))
    engine_vs_closed = float(np.max(np.abs(f_gd - closed)))
    # the ridge path over λ, vmapped, against early stopping over t
    lam_lo, lam_hi = n / (eta * ts[-1]) / 10, n / (eta * 1.0) * 10
    lams = jnp.geomspace(lam_lo, lam_hi, c.num_lambdas)
    val_ridge = np.asarray(jax.vmap(lambda l: linear.least_squares_loss(Xv, yv, linear.ridge(X, y, l)))(lams))
    best_gd, best_ridge = float(val_gd.min()), float(val_ridge.min())
    rel = abs(best_gd - best_ridge) / best_ridge
    t_best = int(ts[np.argmin(val_gd)])
    lam_best = float(lams[np.argmin(val_ridge)])
    val_ols = float(linear.least_squares_loss(Xv, yv, w_ols))
    ok = gap <= 0.25 and rel <= 0.10 and t_first == 10
    fig = _figure_c12(s, eta, ts, f_gd, val_gd, np.asarray(lams), val_ridge, n, os.path.join(workdir,
                                                                                            "early_stopping.png"))
    return claim("C12", "early stopping is implicit ridge with λ = 1/(ηt) (= n/(ηt) for unnormalised ridge)",
                 f"largest filter-factor gap over t = {t_first}, {t_first + c.log_every}, … {gap:.3f}; best val. loss GD {best_gd:.4f} vs ridge "
                 f"{best_ridge:.4f} ({100 * rel:.1f}%)", "gap ≤ 0.25 for every logged t ≥ 10 (t = 10 included); |Δ best| ≤ 10%", ok, fig,
                 details=f"n={n}, d={c.d}, x ~ N(0, diag(s²)) s² ∈ [{c.s2_min:g}, 1], noise {c.noise}; GD through the "
                         f"engine from 0, η = {c.eta_lam_max}/λ_max = {eta:.4g}, T = {c.num_steps}; best t = {t_best} "
                         f"(1/(ηt) = {1 / (eta * max(t_best, 1)):.3g}), best ridge λ/n = {lam_best / n:.3g}; OLS val. "
                         f"loss {val_ols:.4f}; engine filter factors vs 1 − (1 − ηs²)^t: max |Δ| {engine_vs_closed:.1e}; "
                         f"closed-form sup gap over all s: {float(filter_gap(jnp.geomspace(1e-4, 1, 400), 1.0, [1e4]).max()):.3f}")


# ---------------------------------------------------------------------------
# C13: small singular values make OLS large, ridge keeps it bounded


def conditioned_problem(key, n, d, sigma_min, noise):
    """X = U diag(σ) Vᵀ with σ log-spaced from 1 to ``sigma_min`` (traced), y = X·1 + noise·ε (ε, U, V fixed by key).

    Also returns V, so held-out inputs can be drawn from the same distribution."""
    ku, kv, ke = jax.random.split(key, 3)
    U = jnp.linalg.qr(jax.random.normal(ku, (n, d)))[0]
    V = jnp.linalg.qr(jax.random.normal(kv, (d, d)))[0]
    sig = jnp.exp(jnp.linspace(0.0, 1.0, d) * jnp.log(sigma_min))
    X = (U * sig) @ V.T
    return X, X @ jnp.ones(d) + noise * jax.random.normal(ke, (n,)), sig, V


def held_out_problem(key, n_test, n, sig, V, noise, input_noise):
    """Held-out data like the training rows (z diag(σ) Vᵀ, z ~ N(0, I/n)) measured with a little feature
    noise (``input_noise``·N(0, I/n)): targets are the noise-free x·1 + noise·ε."""
    kz, kn, ke = jax.random.split(key, 3)
    d = V.shape[0]
    x_clean = (jax.random.normal(kz, (n_test, d)) / jnp.sqrt(n) * sig) @ V.T
    y = x_clean @ jnp.ones(d) + noise * jax.random.normal(ke, (n_test,))
    return x_clean + input_noise * jax.random.normal(kn, (n_test, d)) / jnp.sqrt(n), y


def _c13(config, workdir):
    c = config.c13
    sig_mins = jnp.geomspace(1.0, c.sigma_min_lo, c.num_sigma)

    def measure(sm):
        X, y, sig, V = conditioned_problem(jax.random.key(2), c.n, c.d, sm, c.noise)
        Xt, yt = held_out_problem(jax.random.key(3), c.n_test, c.n, sig, V, c.noise, c.input_noise)
        w_ols, w_rdg = linear.least_squares(X, y), linear.ridge(X, y, c.lam)
        mse = lambda w: jnp.mean(jnp.square(Xt @ w - yt))
        return jnp.linalg.norm(w_ols), jnp.linalg.norm(w_rdg), mse(w_ols), mse(w_rdg)

    ols, rdg, err_ols, err_rdg = (np.asarray(v) for v in jax.jit(jax.vmap(measure))(sig_mins))
    growth = float(ols[-1] / ols[0])
    err_growth = float(err_ols[-1] / err_ols[0])
    monotone = bool(np.all(np.diff(err_ols) > 0))
    ridge_factor = float(err_rdg.max() / err_rdg.min())
    ridge_norm_factor = float(rdg.max() / rdg.min())
    slope = float(np.polyfit(np.log(np.asarray(sig_mins[-5:])), np.log(ols[-5:]), 1)[0])
    ok = growth >= 100 and monotone and err_growth >= 100 and ridge_factor <= c.ridge_factor
    fig = _figure_c13(np.asarray(sig_mins), ols, rdg, err_ols, err_rdg, c.lam,
                      os.path.join(workdir, "norm_vs_sigma_min.png"))
    return claim("C13", "small singular values make the OLS solution large and its held-out error unbounded; "
                        "ridge keeps both bounded",
                 f"as σ_min: 1 → {c.sigma_min_lo:g}: ‖X⁺y‖ grows {growth:.3g}×, OLS held-out MSE grows "
                 f"{err_growth:.3g}× (monotone: {monotone}); ridge held-out MSE within {ridge_factor:.3g}× of its best, "
                 f"ridge ‖w‖ within {ridge_norm_factor:.3g}×",
                 f"‖X⁺y‖ and OLS held-out MSE grow ≥ 100× (monotone); ridge held-out MSE ≤ {c.ridge_factor:g}× its "
                 "best at every σ_min", ok, fig,
                 details=f"n={c.n}, d={c.d}, σ log-spaced 1 → σ_min, y = X·1 + {c.noise}·ε, λ = {c.lam}; held-out: "
                         f"{c.n_test} points from the training distribution read with feature noise "
                         f"{c.input_noise} (per √n); vmapped over {c.num_sigma} σ_min; OLS held-out MSE "
                         f"{err_ols[0]:.3g} → {err_ols[-1]:.3g}, ridge {err_rdg.min():.3g}–{err_rdg.max():.3g}; "
                         f"log-log slope of ‖X⁺y‖ at small σ_min {slope:.2f} (≈ −1: the noise's component along "
                         f"u_min over σ_min)")


# ---------------------------------------------------------------------------
# figures


def _figure_filters(X, lams, path):
    import matplotlib.pyplot as plt
    sig = np.asarray(jnp.linalg.svd(X, compute_uv=False))
    grid = np.geomspace(sig.min() / 3, sig.max() * 3, 300)
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for j, lam in enumerate(np.asarray(lams)):
        ax.plot(grid, grid ** 2 / (grid ** 2 + lam), lw=1, color=f"C{j}", label=f"λ = {lam:g}")
        ax.plot(sig, sig ** 2 / (sig ** 2 + lam), "o", ms=3, color=f"C{j}")
    ax.set(xscale="log", xlabel="singular value σ of X", ylabel="filter factor σ²/(σ² + λ)",
           title="Ridge filter factors (dots: the κ = 1e4 problem's σ_i)")
    ax.legend(fontsize=7)
    return plots.save(fig, path)


def _figure_c11(w_path, pinv, targets, k, log_every, path):
    import matplotlib.pyplot as plt
    t = np.arange(w_path.shape[1]) * log_every
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    for g in range(w_path.shape[0]):
        zero = g < k
        ax.semilogy(t, np.linalg.norm(w_path[g] - pinv, axis=1) / np.linalg.norm(pinv), lw=1,
                    color="C0" if zero else "C1", label=("from w0 = 0: ‖w_t − X⁺y‖" if g == 0 else
                                                          "from w0 ≠ 0: ‖w_t − X⁺y‖" if g == k else None))
        if not zero:
            ax.semilogy(t, np.linalg.norm(w_path[g] - targets[g], axis=1) / np.linalg.norm(targets[g]), "--", lw=1,
                        color="C2", label="from w0 ≠ 0: ‖w_t − (X⁺y + P_null w0)‖" if g == k else None)
    ax.axhline(1e-5, color="k", ls=":", lw=1, label="1e-5")
    ax.set(xlabel="GD step t", ylabel="relative distance", title="GD on underdetermined least squares (float64)")
    ax.legend(fontsize=7)
    return plots.save(fig, path)


def _figure_c12(s, eta, ts, f_gd, val_gd, lams, val_ridge, n, path):
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.3))
    s = np.asarray(s)
    grid = np.geomspace(s.min() / 2, s.max(), 300)
    for j, t in enumerate([10, 100, 1000, 10000]):
        i = np.searchsorted(ts, t)
        if i >= len(ts):
            continue
        a1.plot(s, f_gd[i], "o", ms=4, color=f"C{j}", label=f"GD (engine), t = {ts[i]}")
        a1.plot(grid, grid ** 2 / (grid ** 2 + 1 / (eta * ts[i])), "-", lw=1, color=f"C{j}",
                label="ridge, λ = 1/(ηt)")
    a1.set(xscale="log", xlabel="scaled singular value s = σ/√n", ylabel="filter factor",
           title="Early-stopped GD (dots) vs ridge with λ = 1/(ηt) (lines)")
    a1.legend(fontsize=6, ncol=2)
    ok = ts > 0
    a2.plot(1 / (eta * ts[ok]), val_gd[ok], lw=1.5, label="early stopping: val. loss at t (x = 1/(ηt))")
    a2.plot(lams / n, val_ridge, "--", lw=1.5, label="ridge path: val. loss at λ (x = λ/n)")
    a2.axhline(min(val_gd.min(), val_ridge.min()), color="k", ls=":", lw=0.8)
    a2.set(xscale="log", xlabel="effective regularisation 1/(ηt) or λ/n", ylabel="validation loss ½·MSE",
           title="Validation error: early stopping vs ridge path")
    a2.legend(fontsize=7)
    return plots.save(fig, path)


def _figure_c13(sig_mins, ols, rdg, err_ols, err_rdg, lam, path):
    import matplotlib.pyplot as plt
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.3))
    a1.loglog(sig_mins, ols, "o-", label="OLS ‖X⁺y‖")
    a1.loglog(sig_mins, rdg, "s-", label=f"ridge ‖w‖, λ = {lam:g}")
    a1.set(xlabel="σ_min (smallest singular value of X)", ylabel="‖w‖", title="Solution norm as σ_min → 0")
    a2.loglog(sig_mins, err_ols, "o-", label="OLS")
    a2.loglog(sig_mins, err_rdg, "s-", label=f"ridge, λ = {lam:g}")
    a2.set(xlabel="σ_min", ylabel="held-out MSE", title="Held-out error (features read with a little noise)")
    for ax in (a1, a2):
        ax.invert_xaxis()
        ax.legend(fontsize=8)
    return plots.save(fig, path)
