"""Least squares, ridge, SVD filter factors, and closed forms for GD on quadratics.

Shapes: ``X`` is ``(n, d)`` (n samples, d features); ``y`` is ``(n,)`` or
``(n, k)`` and solutions ``w`` are ``(d,)`` or ``(d, k)`` to match. Every function
is pure and jittable, works in the dtype it is given (use ``jax.enable_x64``
for float64), and takes one problem: ``jax.vmap`` it for a batch of problems
(or of λ, η, t — these may be traced).

Loss normalisation (used everywhere in this module, and by the engine's mean
squared error):

    L(w) = ½‖Xw − y‖² / n,   ∇L = Xᵀ(Xw − y)/n,   H = XᵀX / n.

So GD is ``w ← w − η Xᵀ(Xw − y)/n`` and it is stable iff η < 2/λ_max(H).
The curvatures of H are ``scaled_singular_values(X)**2`` (σ_i(X)²/n); GD's
filter factors ``gd_filter_factors(s, η, t)`` take those scaled values ``s``.

Ridge keeps the notes' unnormalised form ``(XᵀX + λI)⁻¹Xᵀy`` with filter
factors ``σ²/(σ² + λ)`` in the singular values σ of X. The same filter is
``ridge_filter_factors(s, λ/n)`` in scaled values, so early stopping after t
steps of size η compares with ``ridge(X, y, n/(η t))``.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


# ---------------------------------------------------------------------------
# helpers


def _rcond(X, s):
    """Relative cut-off below which a singular value counts as zero (numpy's pinv default)."""
    return jnp.finfo(s.dtype).eps * max(X.shape[-2], X.shape[-1])


def _rank_mask(X, s):
    """``s_i > rcond·s_max``: which singular values count as nonzero."""
    smax = jnp.max(s, initial=0.0)
    return s > _rcond(X, s) * smax


def _rows(v, y):
    """Broadcast a per-component vector ``v`` (r,) against ``y`` (r,) or (r, k)."""
    return v.reshape(v.shape + (1,) * (y.ndim - 1))


def _filtered(X, y, f):
    """``V diag(f/σ) Uᵀ y`` — the SVD solution with filter factors ``f`` (length min(n,d)).

    f_i/σ_i is taken as 0 where σ_i counts as zero.
    """
    U, s, Vh = jnp.linalg.svd(X, full_matrices=False)
    keep = _rank_mask(X, s)
    coef = jnp.where(keep, f / jnp.where(keep, s, 1.0), 0.0)
    return Vh.T @ (_rows(coef, y) * (U.T @ y))


# ---------------------------------------------------------------------------
# solutions


def least_squares(X, y):
    """OLS ``argmin_w ‖Xw − y‖²`` (minimum norm if X is rank deficient). (n,d),(n[,k]) -> (d[,k])."""
    return jnp.linalg.lstsq(X, y)[0]


def min_norm_solution(X, y):
    """Minimum-norm least-squares solution ``X⁺y = V diag(1/σ) Uᵀ y`` (σ ≈ 0 dropped). -> (d[,k])."""
    s = jnp.linalg.svd(X, compute_uv=False)
    return _filtered(X, y, jnp.ones_like(s))


def ridge(X, y, lam):
    """Ridge, closed form ``(XᵀX + λI)⁻¹ Xᵀy``. (n,d),(n[,k]),() -> (d[,k])."""
    d = X.shape[-1]
    A = X.T @ X + lam * jnp.eye(d, dtype=X.dtype)
    return jnp.linalg.solve(A, X.T @ y)


def ridge_filter_factors(s, lam):
    """Ridge's filter factors ``σ²/(σ² + λ)`` for singular values ``s`` (any shape)."""
    s2 = jnp.square(s)
    return s2 / (s2 + lam)


def ridge_svd(X, y, lam):
    """Ridge in SVD form ``Σ_i f_i (u_iᵀy/σ_i) v_i`` with ``f_i = σ_i²/(σ_i² + λ)``. -> (d[,k]).

    λ = 0 gives the minimum-norm OLS solution.
    """
    s = jnp.linalg.svd(X, compute_uv=False)
    return _filtered(X, y, ridge_filter_factors(s, lam))


def ridge_by_augmented_rows(X, y, lam):
    """Ridge as OLS on ``[X; √λ I]`` with zero targets for the d extra rows. -> (d[,k])."""
    d = X.shape[-1]
    Xa = jnp.concatenate([X, jnp.sqrt(lam) * jnp.eye(d, dtype=X.dtype)], axis=0)
    ya = jnp.concatenate([y, jnp.zeros((d,) + y.shape[1:], y.dtype)], axis=0)
    return least_squares(Xa, ya)


def ridge_by_augmented_features(X, y, lam):
    """Ridge as the min-norm solution on ``[X, √λ I]`` (n extra features), first d rows kept. -> (d[,k])."""
    n, d = X.shape
    Xa = jnp.concatenate([X, jnp.sqrt(lam) * jnp.eye(n, dtype=X.dtype)], axis=1)
    return min_norm_solution(Xa, y)[:d]


# ---------------------------------------------------------------------------
# curvature and GD in closed form


def hessian(X):
    """``H = XᵀX / n``, the Hessian of ``L(w) = ½‖Xw − y‖²/n``. (n,d) -> (d,d)."""
    return X.T @ X / X.shape[0]


def scaled_singular_values(X):
    """``σ_i(X)/√n``, descending, length min(n,d); their squares are H's nonzero-block eigenvalues."""
    return jnp.linalg.svd(X, compute_uv=False) / jnp.sqrt(jnp.asarray(X.shape[0], X.dtype))


def stability_threshold(X):
    """GD's critical step size ``2/λ_max(H)``, H = XᵀX/n: GD on L converges iff η < this."""
    return 2.0 / jnp.linalg.eigvalsh(hessian(X))[-1]


def null_space_projector(X):
    """Projector onto null(X): ``P = I − X⁺X = I − V_r V_rᵀ`` (r = numerical rank). (n,d) -> (d,d)."""
    d = X.shape[-1]
    _, s, Vh = jnp.linalg.svd(X, full_matrices=True)
    keep = jnp.zeros((d,), bool).at[: s.shape[0]].set(_rank_mask(X, s))
    Vr = Vh.T * keep.astype(X.dtype)
    return jnp.eye(d, dtype=X.dtype) - Vr @ Vh


def gd_filter_factors(s, eta, t):
    """GD's filter factors after t steps from 0: ``1 − (1 − η s²)^t``, s = ``scaled_singular_values(X)``.

    Exact for any η (also η s² ≥ 1, where the factor oscillates or diverges);
    t must be integer-valued (int or float). Any broadcastable shapes.
    """
    s = jnp.asarray(s)
    x = eta * jnp.square(s)
    t = jnp.asarray(t, s.dtype)
    # accurate for small η s²: 1 − (1 − x)^t = −expm1(t·log1p(−x))
    inside = x < 1
    xs = jnp.where(inside, x, 0.0)
    f_in = -jnp.expm1(t * jnp.log1p(-xs))
    base = 1 - x
    odd = jnp.mod(t, 2) == 1
    sign = jnp.where((base < 0) & odd, -1.0, 1.0).astype(s.dtype)
    f_out = 1 - sign * jnp.abs(base) ** t
    return jnp.where(inside, f_in, f_out)


def gd_iterate(X, y, eta, t, w0=None):
    """Closed form of GD's iterate w_t on ``L(w) = ½‖Xw − y‖²/n`` from ``w0`` (default 0).

    ``w_t = w0 + V diag(f) (diag(1/σ) Uᵀy − Vᵀw0)`` with ``f = gd_filter_factors(σ/√n, η, t)``:
    the row-space part of w0 decays as (1 − ησ²/n)^t, its null-space part ``P_null w0`` stays.
    As t → ∞ (η < 2/λ_max): ``X⁺y + P_null w0``. (n,d),(n[,k]) -> (d[,k]).
    """
    n = X.shape[0]
    U, s, Vh = jnp.linalg.svd(X, full_matrices=False)
    keep = _rank_mask(X, s)
    f = jnp.where(keep, gd_filter_factors(s / jnp.sqrt(jnp.asarray(n, X.dtype)), eta, t), 0.0)
    coef = jnp.where(keep, f / jnp.where(keep, s, 1.0), 0.0)
    w = Vh.T @ (_rows(coef, y) * (U.T @ y))
    if w0 is not None:
        w = w + w0 - Vh.T @ (_rows(f, w0) * (Vh @ w0))
    return w


def gd_step(X, y, w, eta):
    """One GD step on ``L(w) = ½‖Xw − y‖²/n``: ``w − η Xᵀ(Xw − y)/n``."""
    return w - eta * (X.T @ (X @ w - y)) / X.shape[0]


def least_squares_loss(X, y, w):
    """``L(w) = ½‖Xw − y‖²/n`` (summed over target columns)."""
    return 0.5 * jnp.sum(jnp.square(X @ w - y)) / X.shape[0]


# ---------------------------------------------------------------------------
# problems with a controlled condition number


class Quadratic(NamedTuple):
    """``f(x) = ½ xᵀAx − bᵀx``; minimiser ``x_star = A⁻¹b``; ``eigenvalues`` of A, descending."""

    A: jax.Array
    b: jax.Array
    x_star: jax.Array
    eigenvalues: jax.Array


class LeastSquares(NamedTuple):
    """``y = X w_true + noise``; H = XᵀX/n has eigenvalues ``curvatures`` (descending, length min(n,d))."""

    X: jax.Array
    y: jax.Array
    w_true: jax.Array
    curvatures: jax.Array


def condition_spectrum(k: int, kappa, lam_max=1.0, dtype=jnp.float32):
    """``k`` eigenvalues log-spaced from ``lam_max`` down to ``lam_max/κ`` (exact ends; κ may be traced)."""
    frac = jnp.linspace(0.0, 1.0, k, dtype=dtype) if k > 1 else jnp.zeros((1,), dtype)
    return lam_max * jnp.exp(-frac * jnp.log(jnp.asarray(kappa, dtype)))


def _orthogonal(key, m, dtype):
    q, r = jnp.linalg.qr(jax.random.normal(key, (m, m), dtype))
    return q * jnp.sign(jnp.diagonal(r))


def make_quadratic(key, dim: int, kappa, *, lam_max=1.0, rotate: bool = True, dtype=jnp.float32):
    """A quadratic ``½xᵀAx − bᵀx`` with cond(A) = κ exactly: ``A = Q diag(λ) Qᵀ``.

    λ log-spaced in [lam_max/κ, lam_max]; Q random orthogonal (identity if not ``rotate``:
    a diagonal, axis-aligned problem); ``b = A x_star`` with ``x_star ~ N(0, I)``.
    """
    kq, kx = jax.random.split(key)
    lam = condition_spectrum(dim, kappa, lam_max, dtype)
    Q = _orthogonal(kq, dim, dtype) if rotate else jnp.eye(dim, dtype=dtype)
    A = (Q * lam) @ Q.T
    A = 0.5 * (A + A.T)
    x_star = jax.random.normal(kx, (dim,), dtype)
    return Quadratic(A=A, b=A @ x_star, x_star=x_star, eigenvalues=lam)


def quadratic_value(q: Quadratic, x):
    """``f(x) = ½ xᵀAx − bᵀx``."""
    return 0.5 * x @ q.A @ x - q.b @ x


def make_least_squares(key, n: int, d: int, kappa, *, lam_max=1.0, noise=0.0, dtype=jnp.float32):
    """Least squares whose H = XᵀX/n has its min(n,d) nonzero eigenvalues log-spaced in [lam_max/κ, lam_max].

    ``X = √n U diag(√λ) Vᵀ`` (random orthonormal U, V), ``w_true ~ N(0, I)``,
    ``y = X w_true + noise·N(0, I)``.
    """
    ku, kv, kw, ke = jax.random.split(key, 4)
    r = min(n, d)
    lam = condition_spectrum(r, kappa, lam_max, dtype)
    U = _orthogonal(ku, n, dtype)[:, :r]
    V = _orthogonal(kv, d, dtype)[:, :r]
    X = jnp.sqrt(jnp.asarray(n, dtype)) * (U * jnp.sqrt(lam)) @ V.T
    w_true = jax.random.normal(kw, (d,), dtype)
    y = X @ w_true + noise * jax.random.normal(ke, (n,), dtype)
    return LeastSquares(X=X, y=y, w_true=w_true, curvatures=lam)
