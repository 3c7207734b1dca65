"""PCA, principal angles, k-means by Lloyd and by gradient descent, patch masks, a linear probe.

Shapes: ``X`` is ``(n, d)`` (rows are points); centres ``C`` are ``(k, d)``; a subspace is given
by the columns of a ``(d, k)`` matrix. Every function is pure and jittable, works in the dtype it
is given (``jax.enable_x64`` for float64) and takes one problem: ``jax.vmap`` it over keys for many
initializations (``kmeans`` does: the best of ``n_init`` runs in one compiled call).

PCA (scikit-learn's numbers): with Xc = X − mean = U S Vᵀ, the components are the first k rows
of Vᵀ (sign: the largest-|·| entry of each is positive), the explained variance is S²/(n − 1).

k-means minimizes the inertia Σ_i min_j ‖x_i − c_j‖² (scikit-learn's ``inertia_``). Lloyd
alternates assignment and centroid steps; gradient descent minimizes the mean inertia
``kmeans_loss`` (hard assignments: each point pulls only its nearest centre) or the soft loss
−T·mean_i log Σ_j exp(−‖x_i − c_j‖²/T) whose gradient weighs every centre by the softmax
responsibilities (queries x, keys c: attention); T → 0 gives the hard loss back.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp


# ---------------------------------------------------------------------------
# PCA


class PCA(NamedTuple):
    mean: jax.Array                      # (d,)
    components: jax.Array                # (k, d), orthonormal rows
    explained_variance: jax.Array        # (k,)  σ_i²/(n − 1)
    explained_variance_ratio: jax.Array  # (k,)  over the total variance
    singular_values: jax.Array           # (k,)  σ_i of the centred data


def _flip_rows(V):
    """Sign convention of scikit-learn's ``svd_flip(u_based_decision=False)``: max-|·| entry > 0."""
    i = jnp.argmax(jnp.abs(V), axis=1)
    s = jnp.sign(jnp.take_along_axis(V, i[:, None], axis=1))
    return V * jnp.where(s == 0, 1.0, s).astype(V.dtype)


def pca(X, k: int, method: str = "auto") -> PCA:
    """PCA of ``X`` (n, d) with ``k`` components (static).

    method: "svd" (thin SVD of the centred data), "eigh" (eigendecomposition of XcᵀXc, d × d:
    fast for n ≫ d, squares the condition number), "auto" = "eigh" if n ≥ 10 d else "svd"
    (scikit-learn's ``svd_solver="auto"`` rule for d < 1000).
    """
    n, d = X.shape
    if method == "auto":
        method = "eigh" if (n >= 10 * d and d < 1000) else "svd"
    mean = jnp.mean(X, axis=0)
    Xc = X - mean
    if method == "svd":
        _, s_all, Vt = jnp.linalg.svd(Xc, full_matrices=False)
    elif method == "eigh":
        w, V = jnp.linalg.eigh(Xc.T @ Xc)
        w, V = jnp.maximum(w[::-1], 0.0), V[:, ::-1]
        s_all, Vt = jnp.sqrt(w), V.T
    else:
        raise ValueError(f"unknown PCA method {method!r}: 'svd', 'eigh' or 'auto'")
    var_all = s_all ** 2 / (n - 1)
    comps = _flip_rows(Vt[:k])
    return PCA(mean, comps, var_all[:k], var_all[:k] / jnp.sum(var_all), s_all[:k])


def pca_transform(p: PCA, X):
    """Codes z = (x − mean) Vₖᵀ. (n, d) -> (n, k)."""
    return (X - p.mean) @ p.components.T


def pca_reconstruct(p: PCA, Z):
    """x̂ = z Vₖ + mean. (n, k) -> (n, d)."""
    return Z @ p.components + p.mean


def pca_reconstruction_error(p: PCA, X):
    """Mean squared reconstruction error per point, mean_i ‖x_i − x̂_i‖²."""
    R = X - pca_reconstruct(p, pca_transform(p, X))
    return jnp.mean(jnp.sum(R ** 2, axis=1))


# ---------------------------------------------------------------------------
# principal angles


def principal_angles(A, B):
    """Principal angles (radians, ascending) between the column spaces of A (d, a) and B (d, b).

    min(a, b) angles. cos θ_i are the singular values of Q_Aᵀ Q_B; small angles come from the
    sines, the singular values of Q_B − Q_A Q_Aᵀ Q_B (accurate where cos θ ≈ 1), as in SciPy's
    ``subspace_angles`` (which returns them descending).
    """
    if A.shape[1] < B.shape[1]:
        A, B = B, A
    Qa, _ = jnp.linalg.qr(A)
    Qb, _ = jnp.linalg.qr(B)
    M = Qa.T @ Qb
    cos = jnp.linalg.svd(M, compute_uv=False)                    # descending -> ascending angles
    sin = jnp.sort(jnp.linalg.svd(Qb - Qa @ M, compute_uv=False))  # ascending  -> ascending angles
    return jnp.where(cos ** 2 >= 0.5, jnp.arcsin(jnp.clip(sin, 0.0, 1.0)), jnp.arccos(jnp.clip(cos, -1.0, 1.0)))


def largest_principal_angle_deg(A, B):
    """The largest principal angle between col(A) and col(B), in degrees."""
    return jnp.degrees(jnp.max(principal_angles(A, B)))


# ---------------------------------------------------------------------------
# k-means: assignments, inertia, k-means++, Lloyd


class KMeans(NamedTuple):
    centers: jax.Array   # (k, d)
    labels: jax.Array    # (n,) int32
    inertia: jax.Array   # () Σ_i min_j ‖x_i − c_j‖²
    n_iter: jax.Array    # () int32, Lloyd iterations run


def sq_distances(X, C):
    """‖x_i − c_j‖², (n, d),(k, d) -> (n, k) (expanded form, clipped at 0)."""
    d2 = jnp.sum(X ** 2, 1)[:, None] - 2.0 * X @ C.T + jnp.sum(C ** 2, 1)[None, :]
    return jnp.maximum(d2, 0.0)


def assign(X, C):
    """Nearest centre of every point and its squared distance: ((n,) int32, (n,))."""
    d2 = sq_distances(X, C)
    return jnp.argmin(d2, axis=1).astype(jnp.int32), jnp.min(d2, axis=1)


def inertia(X, C):
    """Σ_i min_j ‖x_i − c_j‖² (scikit-learn's ``inertia_``)."""
    return jnp.sum(assign(X, C)[1])


def kmeans_plus_plus(key, X, k: int, n_local_trials: int | None = None):
    """k-means++ centres (k, d): the first uniformly at random, each next one drawn ∝ D(x)², the squared
    distance to the nearest centre so far. Greedy, as scikit-learn: of ``n_local_trials`` draws
    (default 2 + ⌊ln k⌋) keep the one that lowers the potential Σ D² most."""
    n = X.shape[0]
    L = n_local_trials or 2 + int(math.log(k))
    k0, key = jax.random.split(key)
    first = jax.random.randint(k0, (), 0, n)
    C = jnp.zeros((k, X.shape[1]), X.dtype).at[0].set(X[first])
    d2 = jnp.sum((X - X[first]) ** 2, axis=1)

    def body(i, carry):
        C, d2 = carry
        logits = jnp.log(jnp.maximum(d2, 0.0))  # -inf at existing centres: never drawn again
        cand = jax.random.categorical(jax.random.fold_in(key, i), logits, shape=(L,))
        d2_cand = jnp.minimum(d2[None, :], sq_distances(X, X[cand]).T)   # (L, n)
        best = jnp.argmin(jnp.sum(d2_cand, axis=1))
        return C.at[i].set(X[cand[best]]), d2_cand[best]

    C, _ = jax.lax.fori_loop(1, k, body, (C, d2))
    return C


def centroids(X, labels, k: int, old=None):
    """Mean of the points of each cluster (k, d); an empty cluster keeps ``old`` (or 0)."""
    onehot = jax.nn.one_hot(labels, k, dtype=X.dtype)
    counts = onehot.sum(0)
    sums = onehot.T @ X
    means = sums / jnp.maximum(counts, 1.0)[:, None]
    return jnp.where(counts[:, None] > 0, means, old if old is not None else 0.0)


def lloyd(X, C0, max_iter: int = 300, tol: float = 1e-4) -> KMeans:
    """Lloyd's algorithm from centres ``C0`` in a ``lax.while_loop``.

    Stops when no label changes or the total squared centre shift ≤ tol × mean per-feature variance
    (scikit-learn's rule), or after ``max_iter`` iterations; then assigns once more.
    """
    k = C0.shape[0]
    tol_abs = tol * jnp.mean(jnp.var(X, axis=0))
    labels0 = assign(X, C0)[0]

    def cond(s):
        _, _, shift, changed, it = s
        return (it < max_iter) & changed & (shift > tol_abs)

    def body(s):
        C, labels, _, _, it = s
        C_new = centroids(X, labels, k, C)
        new_labels = assign(X, C_new)[0]
        return C_new, new_labels, jnp.sum((C_new - C) ** 2), jnp.any(new_labels != labels), it + 1

    init = (C0, labels0, jnp.asarray(jnp.inf, X.dtype), jnp.array(True), jnp.array(0, jnp.int32))
    C, _, _, _, it = jax.lax.while_loop(cond, body, init)
    labels, d2 = assign(X, C)
    return KMeans(C, labels, jnp.sum(d2), it)


def kmeans_runs(key, X, k: int, n_init: int = 10, max_iter: int = 300, tol: float = 1e-4) -> KMeans:
    """``n_init`` k-means++ + Lloyd runs at once (vmapped over keys): every field gets a leading (n_init,) axis."""
    keys = jax.random.split(key, n_init)
    return jax.vmap(lambda kk: lloyd(X, kmeans_plus_plus(kk, X, k), max_iter, tol))(keys)


def best_run(runs: KMeans) -> KMeans:
    """The run of lowest inertia from a batch of runs."""
    i = jnp.argmin(runs.inertia)
    return jax.tree.map(lambda a: a[i], runs)


def kmeans(key, X, k: int, n_init: int = 10, max_iter: int = 300, tol: float = 1e-4) -> KMeans:
    """The best of ``n_init`` k-means++ + Lloyd runs (scikit-learn's ``KMeans(n_init=...)``), one compiled call."""
    return best_run(kmeans_runs(key, X, k, n_init, max_iter, tol))


# ---------------------------------------------------------------------------
# k-means by gradient descent


def kmeans_loss(C, X):
    """Mean inertia mean_i min_j ‖x_i − c_j‖² (hard assignments; ∇_{c_j} = 2(n_j/n)(c_j − mean of cluster j))."""
    return jnp.mean(jnp.min(sq_distances(X, C), axis=1))


def soft_assignments(X, C, temperature):
    """Responsibilities softmax_j(−‖x_i − c_j‖²/T), (n, k): attention of queries x over keys c."""
    return jax.nn.softmax(-sq_distances(X, C) / temperature, axis=1)


def soft_kmeans_loss(C, X, temperature):
    """−T · mean_i log Σ_j exp(−‖x_i − c_j‖²/T) ≤ ``kmeans_loss``, equal as T → 0.

    ∇_{c_j} = (2/n) Σ_i r_ij (c_j − x_i) with r = ``soft_assignments``: a centre moves towards the
    responsibility-weighted mean of all points (deterministic annealing).
    """
    return -temperature * jnp.mean(jax.nn.logsumexp(-sq_distances(X, C) / temperature, axis=1))


def annealed_temperature(step, num_steps: int, t_start, t_end):
    """Geometric schedule T_t = t_start·(t_end/t_start)^(t/(num_steps − 1)), t = 0 … num_steps − 1."""
    frac = jnp.asarray(step, jnp.result_type(float)) / max(num_steps - 1, 1)
    return t_start * (t_end / t_start) ** frac


def kmeans_gd(C0, X, *, num_steps: int, learning_rate, soft: bool = False, t_start=1.0, t_end=1e-3):
    """Plain GD C ← C − η ∇L on ``kmeans_loss`` (or ``soft_kmeans_loss`` at the annealed temperature).

    Returns (centres (k, d), hard loss after each step (num_steps,)). With η = n/(2 n_j) for every
    centre one step would be Lloyd's centroid step; a single η moves small clusters more slowly.
    """
    def step(C, t):
        if soft:
            g = jax.grad(soft_kmeans_loss)(C, X, annealed_temperature(t, num_steps, t_start, t_end))
        else:
            g = jax.grad(kmeans_loss)(C, X)
        C = C - learning_rate * g
        return C, kmeans_loss(C, X)

    return jax.lax.scan(step, C0, jnp.arange(num_steps))


# ---------------------------------------------------------------------------
# masked reconstruction


def patch_mask(key, image_shape, patch: int, mask_ratio):
    """A boolean (H, W) mask of whole ``patch``×``patch`` patches, ⌈ratio·P⌉ of the P patches masked
    (drawn without replacement; ``mask_ratio`` may be traced). H and W must be multiples of ``patch``."""
    H, W = int(image_shape[0]), int(image_shape[1])
    if H % patch or W % patch:
        raise ValueError(f"image {H}×{W} is not a whole number of {patch}×{patch} patches")
    gh, gw = H // patch, W // patch
    P = gh * gw
    rank = jnp.argsort(jax.random.permutation(key, P))   # a uniformly random rank for every patch
    masked = (rank < jnp.ceil(mask_ratio * P)).reshape(gh, gw)
    return jnp.repeat(jnp.repeat(masked, patch, axis=0), patch, axis=1)


def masked_mse(x_hat, x, mask):
    """Mean squared error over the masked entries only: Σ m (x̂ − x)² / Σ m (0 if nothing is masked)."""
    m = mask.astype(x.dtype)
    return jnp.sum(m * (x_hat - x) ** 2) / jnp.maximum(jnp.sum(m), 1.0)


# ---------------------------------------------------------------------------
# a linear probe


class Probe(NamedTuple):
    W: jax.Array   # (d, c)
    b: jax.Array   # (c,)


def probe_objective(p: Probe, Z, y, l2):
    """mean_i cross-entropy(z_i W + b, y_i) + (l2/2)‖W‖² (the bias is not penalized).

    scikit-learn's ``LogisticRegression(C)`` minimizes n times this with l2 = 1/(C n)."""
    logits = Z @ p.W + p.b
    ce = jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0])
    return ce + 0.5 * l2 * jnp.sum(p.W ** 2)


def fit_linear_probe(Z, y, num_classes: int, l2, num_steps: int = 500) -> Probe:
    """Multinomial logistic regression on features ``Z`` (n, d) by Nesterov's accelerated GD
    (strongly convex: step 1/L, L = l2 + ½λ_max(ZᵀZ/n) + ½, momentum (√κ − 1)/(√κ + 1))."""
    n, d = Z.shape
    Z1 = jnp.concatenate([Z, jnp.ones((n, 1), Z.dtype)], axis=1)
    lam_max = jnp.linalg.norm(Z1, ord=2) ** 2 / n
    L = l2 + 0.5 * lam_max
    kappa = L / l2
    beta = (jnp.sqrt(kappa) - 1.0) / (jnp.sqrt(kappa) + 1.0)
    p0 = Probe(jnp.zeros((d, num_classes), Z.dtype), jnp.zeros((num_classes,), Z.dtype))
    grad = jax.grad(probe_objective)

    def step(carry, _):
        p, p_prev = carry
        v = jax.tree.map(lambda a, b: a + beta * (a - b), p, p_prev)
        g = grad(v, Z, y, l2)
        return (jax.tree.map(lambda a, b: a - b / L, v, g), p), None

    (p, _), _ = jax.lax.scan(step, (p0, p0), None, length=num_steps)
    return p


def probe_accuracy(p: Probe, Z, y):
    """Fraction of rows whose arg-max logit is the label."""
    return jnp.mean(jnp.argmax(Z @ p.W + p.b, axis=1) == y)
