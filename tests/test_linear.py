"""dlnotes.linear against numpy/scikit-learn and against literally running GD (float64)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import Ridge

from dlnotes import linear as _linear


class _Jitted:
    """dlnotes.linear with each function jitted: one compile per shape, not one per op."""

    _static = {"make_quadratic": (1,), "make_least_squares": (1, 2), "condition_spectrum": (0,)}

    def __getattr__(self, name):
        fn = getattr(_linear, name)
        if not callable(fn) or isinstance(fn, type):
            return fn
        names = tuple(a for a in ("dtype", "rotate") if a in fn.__code__.co_varnames)
        return jax.jit(fn, static_argnums=self._static.get(name, ()), static_argnames=names)


linear = _Jitted()


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _problem(n, d, k=None, seed=0, cond=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if cond is not None:  # spread the singular values over `cond`
        U, s, Vt = np.linalg.svd(X, full_matrices=False)
        s = np.geomspace(1.0, 1.0 / cond, s.size) * np.sqrt(n)
        X = (U * s) @ Vt
    y = rng.normal(size=(n,) if k is None else (n, k))
    return X, y


@pytest.mark.parametrize("k", [None, 3])
def test_least_squares_and_min_norm_match_numpy(k):
    X, y = _problem(40, 6, k)
    ref = np.linalg.lstsq(X, y, rcond=None)[0]
    assert _rel(linear.least_squares(jnp.asarray(X), jnp.asarray(y)), ref) < 1e-10
    assert _rel(linear.min_norm_solution(jnp.asarray(X), jnp.asarray(y)), ref) < 1e-10
    Xu, yu = _problem(5, 12, k, seed=1)  # underdetermined: min-norm = pinv
    ref_u = np.linalg.pinv(Xu) @ yu
    assert _rel(linear.min_norm_solution(Xu, yu), ref_u) < 1e-10
    assert _rel(linear.least_squares(Xu, yu), ref_u) < 1e-10


def test_min_norm_rank_deficient_matches_pinv():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 3)) @ rng.normal(size=(3, 8))  # rank 3 in (20, 8)
    y = rng.normal(size=20)
    assert _rel(linear.min_norm_solution(X, y), np.linalg.pinv(X) @ y) < 1e-8


@pytest.mark.parametrize("n,d,k", [(50, 8, None), (6, 15, None), (30, 10, 2)])
def test_ridge_four_ways_agree(n, d, k):
    """C9/C10: closed form = SVD form = augmented rows = augmented features; λ = 0 is OLS."""
    X, y = _problem(n, d, k, seed=n + d)
    for lam in (0.0, 1e-3, 0.7, 25.0):
        if lam == 0.0 and n < d:
            ref = np.linalg.pinv(X) @ y  # XᵀX singular: the closed form is undefined
        else:
            ref = np.asarray(linear.ridge(X, y, lam))
        ways = {
            "svd": linear.ridge_svd(X, y, lam),
            "rows": linear.ridge_by_augmented_rows(X, y, lam),
            "features": linear.ridge_by_augmented_features(X, y, lam),
        }
        for name, w in ways.items():
            assert _rel(w, ref) < 1e-6, (name, lam)
        if lam == 0.0 and n >= d:
            assert _rel(ref, np.linalg.lstsq(X, y, rcond=None)[0]) < 1e-10


def test_ridge_matches_sklearn():
    # sklearn's Ridge minimises ‖y − Xw‖² + α‖w‖² (no 1/n): α = λ of our closed form.
    X, y = _problem(60, 7, 2, seed=3)
    for lam in (1e-2, 1.0, 30.0):
        ref = Ridge(alpha=lam, fit_intercept=False, solver="svd").fit(X, y).coef_.T
        assert _rel(linear.ridge(X, y, lam), ref) < 1e-8
        assert _rel(linear.ridge_svd(X, y, lam), ref) < 1e-8


def test_ridge_filter_factors_are_svd_coordinates():
    X, y = _problem(30, 5, seed=4)
    lam = 3.0
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    w = np.asarray(linear.ridge(X, y, lam))
    f_measured = s * (Vt @ w) / (U.T @ y)
    assert np.max(np.abs(f_measured - np.asarray(linear.ridge_filter_factors(s, lam)))) < 1e-10
    assert np.allclose(linear.ridge_filter_factors(jnp.asarray(s), 0.0), 1.0)


def _run_gd(X, y, eta, T, w0=None):
    n, d = X.shape
    w = np.zeros(d) if w0 is None else np.array(w0, dtype=float)
    out = [w.copy()]
    for _ in range(T):
        w = w - eta * X.T @ (X @ w - y) / n
        out.append(w.copy())
    return out


@pytest.mark.parametrize("n,d", [(40, 6), (8, 20)])
def test_gd_iterate_matches_literal_gd(n, d):
    X, y = _problem(n, d, seed=5, cond=10.0)
    eta = 0.9 * float(linear.stability_threshold(X))
    rng = np.random.default_rng(6)
    w0 = rng.normal(size=d)
    for start in (None, w0):
        path = _run_gd(X, y, eta, 60, start)
        for t in (0, 1, 7, 60):
            got = linear.gd_iterate(X, y, eta, t, None if start is None else jnp.asarray(start))
            assert _rel(got, path[t]) < 1e-10 if t else np.allclose(got, path[0])


def test_gd_iterate_beyond_stability_matches_literal_gd():
    """Exact even when η > 2/λ_max (odd and even t)."""
    X, y = _problem(30, 4, seed=7)
    eta = 1.3 * float(linear.stability_threshold(X))
    path = _run_gd(X, y, eta, 25)
    for t in (1, 2, 5, 24, 25):
        assert _rel(linear.gd_iterate(X, y, eta, t), path[t]) < 1e-10
    assert np.linalg.norm(path[25]) > 10 * np.linalg.norm(path[5])  # it really diverges


def test_gd_filter_factors_match_svd_coordinates_of_iterates():
    """C5/C12: along v_i GD's iterate from 0 has filter factor 1 − (1 − ησ_i²/n)^t."""
    n = 50
    X, y = _problem(n, 6, seed=8, cond=30.0)
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    eta = 0.5 * float(linear.stability_threshold(X))
    path = _run_gd(X, y, eta, 40)
    s_scaled = np.asarray(linear.scaled_singular_values(X))
    assert np.allclose(s_scaled, s / np.sqrt(n), rtol=1e-12)
    for t in (1, 10, 40):
        measured = s * (Vt @ path[t]) / (U.T @ y)
        assert np.max(np.abs(measured - np.asarray(linear.gd_filter_factors(s_scaled, eta, t)))) < 1e-10
    # the same filter as ridge_filter_factors of the unnormalised λ: σ²/(σ²+λ) = s²/(s² + λ/n)
    assert np.allclose(linear.ridge_filter_factors(s, 5.0), linear.ridge_filter_factors(s_scaled, 5.0 / n))


def test_gd_filter_factors_small_step_accuracy():
    # 1 − (1 − x)^t for x = 1e-12, t = 3 is 3e-12; the naive form loses ~4 digits
    f = linear.gd_filter_factors(jnp.asarray(1e-6), 1.0, 3)
    assert abs(float(f) - 3e-12) / 3e-12 < 1e-9


def test_gd_from_zero_underdetermined_converges_to_pinv():
    """C11: from 0 GD → X⁺y; from w0 → X⁺y + P_null w0 (1e-5 at T = 500, loop and closed form)."""
    X, y = _problem(10, 30, seed=9)
    eta = 1.0 / float(jnp.linalg.eigvalsh(linear.hessian(X))[-1])
    T = 500
    pinv = np.linalg.pinv(X) @ y
    w0 = np.random.default_rng(10).normal(size=30)
    P = np.eye(30) - np.linalg.pinv(X) @ X
    for start, target in ((None, pinv), (w0, pinv + P @ w0)):
        loop = _run_gd(X, y, eta, T, start)[-1]
        closed = linear.gd_iterate(X, y, eta, T, None if start is None else jnp.asarray(start))
        assert _rel(loop, target) < 1e-5
        assert _rel(closed, target) < 1e-5
    assert _rel(linear.null_space_projector(X), P) < 1e-10
    assert np.abs(np.asarray(linear.null_space_projector(X)) @ np.linalg.pinv(X)).max() < 1e-10


def test_hessian_and_stability_threshold():
    X, _ = _problem(25, 5, seed=11)
    H = X.T @ X / 25
    assert np.allclose(linear.hessian(X), H, rtol=1e-12)
    assert abs(float(linear.stability_threshold(X)) - 2 / np.linalg.eigvalsh(H).max()) < 1e-12
    # the Hessian really is the one of the loss we use
    Hj = jax.hessian(lambda w: linear.least_squares_loss(X, jnp.zeros(25), w))(jnp.zeros(5))
    assert np.allclose(Hj, H, rtol=1e-12)


def test_make_quadratic_and_least_squares_condition_numbers():
    q = linear.make_quadratic(jax.random.key(0), 12, 100.0, lam_max=2.0, dtype=jnp.float64)
    ev = np.linalg.eigvalsh(np.asarray(q.A))
    assert abs(ev.max() - 2.0) < 1e-12 and abs(ev.max() / ev.min() - 100.0) < 1e-9
    assert _rel(np.linalg.solve(q.A, q.b), q.x_star) < 1e-10
    assert float(jax.grad(lambda x: linear.quadratic_value(q, x))(q.x_star) @ np.ones(12)) == pytest.approx(0, abs=1e-10)
    p = linear.make_least_squares(jax.random.key(1), 80, 10, 1e3, noise=0.0, dtype=jnp.float64)
    evh = np.linalg.eigvalsh(np.asarray(linear.hessian(p.X)))
    assert abs(evh.max() - 1.0) < 1e-10 and abs(evh.max() / evh.min() - 1e3) < 1e-6
    assert _rel(linear.least_squares(p.X, p.y), p.w_true) < 1e-8
    # κ traced: jit over κ without recompiling per value
    f = jax.jit(lambda k: _linear.make_quadratic(jax.random.key(0), 4, k, dtype=jnp.float64).eigenvalues)
    assert abs(float(f(10.0)[0] / f(10.0)[-1]) - 10.0) < 1e-10
    assert abs(float(f(50.0)[0] / f(50.0)[-1]) - 50.0) < 1e-10
    assert f._cache_size() == 1


def test_jit_and_vmap_over_lambda_eta_t():
    X, y = _problem(20, 5, seed=12)
    lams = jnp.asarray([0.1, 1.0, 10.0])
    batched = jax.jit(jax.vmap(_linear.ridge_svd, in_axes=(None, None, 0)))(X, y, lams)
    for i, lam in enumerate(lams):
        assert _rel(batched[i], linear.ridge(X, y, float(lam))) < 1e-10
    ts = jnp.asarray([1, 5, 9])
    its = jax.jit(jax.vmap(_linear.gd_iterate, in_axes=(None, None, None, 0)))(X, y, 0.1, ts)
    path = _run_gd(X, y, 0.1, 9)
    for i, t in enumerate([1, 5, 9]):
        assert _rel(its[i], path[t]) < 1e-10


def test_float32_in_float32_out():
    X, y = _problem(20, 5, seed=13)
    X32, y32 = jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32)
    for fn in (linear.ridge, linear.ridge_svd, linear.ridge_by_augmented_rows, linear.ridge_by_augmented_features):
        w = fn(X32, y32, 0.5)
        assert w.dtype == jnp.float32
        assert _rel(w, linear.ridge(X, y, 0.5)) < 1e-4
