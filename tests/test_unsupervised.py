"""dlnotes.unsupervised against scikit-learn, SciPy and float64 NumPy."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from sklearn.cluster import KMeans as SKKMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA as SKPCA
from sklearn.linear_model import LogisticRegression

from dlnotes import unsupervised as U


@pytest.fixture(scope="module")
def digits():
    return load_digits().data / 16.0


# ------------------------------------------------------------------ PCA


@pytest.mark.parametrize("method", ["svd", "eigh"])
def test_pca_matches_sklearn_float64(digits, method):
    with jax.enable_x64(True):
        X = jnp.asarray(digits, jnp.float64)
        p = U.pca(X, 10, method=method)
        sk = SKPCA(10, svd_solver="full").fit(digits)
        np.testing.assert_allclose(p.mean, sk.mean_, atol=1e-12)
        np.testing.assert_allclose(p.explained_variance, sk.explained_variance_, rtol=1e-9)
        np.testing.assert_allclose(p.explained_variance_ratio, sk.explained_variance_ratio_, rtol=1e-9)
        np.testing.assert_allclose(p.singular_values, sk.singular_values_, rtol=1e-9)
        np.testing.assert_allclose(p.components, sk.components_, atol=1e-8)   # same sign convention
        Z = U.pca_transform(p, X)
        np.testing.assert_allclose(Z, sk.transform(digits), atol=1e-8)
        np.testing.assert_allclose(U.pca_reconstruct(p, Z), sk.inverse_transform(sk.transform(digits)), atol=1e-8)
        err = np.mean(np.sum((digits - sk.inverse_transform(sk.transform(digits))) ** 2, 1))
        np.testing.assert_allclose(U.pca_reconstruction_error(p, X), err, rtol=1e-9)


def test_pca_float32_random_wide_and_tall():
    rng = np.random.default_rng(0)
    for shape in ((300, 40), (30, 80)):
        A = rng.normal(size=shape) @ np.diag(np.linspace(3, 0.1, shape[1]))
        p = U.pca(jnp.asarray(A, jnp.float32), 5)
        sk = SKPCA(5, svd_solver="full").fit(A)
        np.testing.assert_allclose(p.explained_variance, sk.explained_variance_, rtol=1e-4)
        assert float(U.largest_principal_angle_deg(p.components.T, jnp.asarray(sk.components_.T, jnp.float32))) < 0.05


# ------------------------------------------------------------------ principal angles


def test_principal_angles_match_scipy_float64():
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        for a, b in ((5, 5), (6, 3), (2, 7)):
            A, B = rng.normal(size=(20, a)), rng.normal(size=(20, b))
            ours = np.asarray(U.principal_angles(jnp.asarray(A), jnp.asarray(B)))
            np.testing.assert_allclose(ours, np.sort(scipy.linalg.subspace_angles(A, B)), atol=1e-12)
        # nearly equal subspaces: tiny angles are accurate (sines, not arccos of ≈ 1)
        A = rng.normal(size=(30, 4))
        B = A + 1e-9 * rng.normal(size=(30, 4))
        ours = np.asarray(U.principal_angles(jnp.asarray(A), jnp.asarray(B)))
        ref = np.sort(scipy.linalg.subspace_angles(A, B))
        assert ref.max() < 1e-7
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-15)


def test_principal_angles_known_rotation():
    with jax.enable_x64(True):
        t = 0.3
        A = jnp.eye(4)[:, :2]
        B = jnp.array([[1, 0], [0, np.cos(t)], [0, np.sin(t)], [0, 0]], jnp.float64)
        np.testing.assert_allclose(U.principal_angles(A, B), [0.0, t], atol=1e-14)
        np.testing.assert_allclose(U.largest_principal_angle_deg(A, 3.0 * B), np.degrees(t), atol=1e-12)


# ------------------------------------------------------------------ k-means


def test_kmeans_plus_plus_picks_distinct_data_points(digits):
    X = jnp.asarray(digits, jnp.float32)
    C = np.asarray(U.kmeans_plus_plus(jax.random.key(0), X, 10))
    idx = [np.flatnonzero(np.all(np.asarray(X) == c, axis=1)) for c in C]
    assert all(len(i) >= 1 for i in idx)
    assert len({int(i[0]) for i in idx}) == 10


@pytest.fixture(scope="module")
def lloyd64(digits):
    """A float64 k-means++ init on digits and Lloyd's run from it to convergence (tol = 0)."""
    with jax.enable_x64(True):
        X = jnp.asarray(digits, jnp.float64)
        C0 = U.kmeans_plus_plus(jax.random.key(3), X, 10)
        return np.asarray(C0), jax.tree.map(np.asarray, U.lloyd(X, C0, max_iter=300, tol=0.0))


def test_lloyd_matches_sklearn_from_the_same_init_float64(digits, lloyd64):
    C0, ours = lloyd64
    sk = SKKMeans(10, init=C0, n_init=1, max_iter=300, tol=0.0, algorithm="lloyd").fit(digits)
    np.testing.assert_allclose(ours.inertia, sk.inertia_, rtol=1e-10)
    np.testing.assert_allclose(ours.centers, sk.cluster_centers_, atol=1e-10)
    np.testing.assert_array_equal(ours.labels, sk.labels_)
    with jax.enable_x64(True):
        np.testing.assert_allclose(U.inertia(jnp.asarray(digits), jnp.asarray(ours.centers)), ours.inertia, rtol=1e-12)
    # inertia is Σ_i min_j ‖x_i − c_j‖², by brute force in NumPy
    d2 = ((digits[:, None, :] - ours.centers[None]) ** 2).sum(-1)
    np.testing.assert_allclose(ours.inertia, d2.min(1).sum(), rtol=1e-12)


def test_best_of_ten_inits_within_half_percent_of_sklearn(digits):
    X = jnp.asarray(digits, jnp.float32)
    ours = jax.jit(lambda k: U.kmeans(k, X, 10, n_init=10))(jax.random.key(0))
    sk = SKKMeans(10, n_init=10, random_state=0).fit(digits)
    assert float(ours.inertia) <= 1.005 * sk.inertia_
    assert ours.centers.shape == (10, 64) and ours.labels.shape == (1797,)


def test_gd_objective_equals_lloyds_and_is_stationary_at_its_solution(digits, lloyd64):
    with jax.enable_x64(True):
        X = jnp.asarray(digits, jnp.float64)
        res = jax.tree.map(jnp.asarray, lloyd64[1])
        n = X.shape[0]
        np.testing.assert_allclose(n * U.kmeans_loss(res.centers, X), res.inertia, rtol=1e-12)
        g = jax.grad(U.kmeans_loss)(res.centers, X)
        assert float(jnp.max(jnp.abs(g))) < 1e-12            # centroids are stationary points of the GD loss
        # soft loss ≤ hard loss, → hard as T → 0; its gradient is the responsibility-weighted pull
        hard = U.kmeans_loss(res.centers, X)
        for T in (1.0, 0.1):
            assert float(U.soft_kmeans_loss(res.centers, X, T)) <= float(hard)
        np.testing.assert_allclose(U.soft_kmeans_loss(res.centers, X, 1e-4), hard, rtol=1e-3)
        C = res.centers + 0.05
        R = U.soft_assignments(X, C, 0.5)
        manual = 2.0 / n * (R.sum(0)[:, None] * C - R.T @ X)
        np.testing.assert_allclose(jax.grad(U.soft_kmeans_loss)(C, X, 0.5), manual, atol=1e-12)


def test_gd_kmeans_reaches_lloyds_inertia(digits):
    X = jnp.asarray(digits, jnp.float32)
    C0 = jax.vmap(lambda k: U.kmeans_plus_plus(k, X, 10))(jax.random.split(jax.random.key(2), 3))
    lloyd = jax.vmap(lambda c: U.lloyd(X, c).inertia)(C0)

    def gd(c, soft):
        C, losses = U.kmeans_gd(c, X, num_steps=200, learning_rate=2.5, soft=soft, t_start=1.0, t_end=0.01)
        return U.inertia(X, C), losses

    for soft in (False, True):
        ine, losses = jax.jit(jax.vmap(lambda c: gd(c, soft)))(C0)
        assert float(ine.min()) <= 1.005 * float(lloyd.min())
        np.testing.assert_allclose(losses[:, -1] * X.shape[0], ine, rtol=1e-4)
    np.testing.assert_allclose(U.annealed_temperature(jnp.array([0, 199]), 200, 1.0, 0.01), [1.0, 0.01], rtol=1e-6)


# ------------------------------------------------------------------ masked reconstruction


def test_patch_mask_masks_whole_patches():
    for ratio, expected in ((0.5, 8), (0.25, 4), (0.3, 5)):
        m = np.asarray(U.patch_mask(jax.random.key(0), (8, 8), 2, ratio))
        blocks = m.reshape(4, 2, 4, 2).transpose(0, 2, 1, 3).reshape(16, 4)
        assert np.all(blocks.all(1) | ~blocks.any(1))          # every 2×2 patch all in or all out
        assert blocks.all(1).sum() == expected                 # ⌈ratio · 16⌉ patches
    masks = jax.vmap(lambda k: U.patch_mask(k, (8, 8), 2, 0.5))(jax.random.split(jax.random.key(1), 1000))
    freq = masks.mean(0)                                            # each position masked half the time (±5σ)
    assert float(masks.mean()) == 0.5 and 0.42 < float(freq.min()) and float(freq.max()) < 0.58


def test_masked_loss_touches_masked_pixels_only():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((4, 64)), jnp.float32)
    x_hat = jnp.asarray(rng.random((4, 64)), jnp.float32)
    mask = jax.vmap(lambda k: U.patch_mask(k, (8, 8), 2, 0.5))(jax.random.split(jax.random.key(0), 4)).reshape(4, 64)
    g = jax.grad(U.masked_mse)(x_hat, x, mask)
    assert float(jnp.max(jnp.abs(jnp.where(mask, 0.0, g)))) == 0.0
    assert float(jnp.min(jnp.abs(jnp.where(mask, g, 1.0)))) > 0.0
    changed = jnp.where(mask, x_hat, 100.0)                     # garbage on the unmasked pixels: no change
    assert float(U.masked_mse(changed, x, mask)) == float(U.masked_mse(x_hat, x, mask))
    m = np.asarray(mask)
    np.testing.assert_allclose(U.masked_mse(x_hat, x, mask),
                               ((np.asarray(x_hat) - np.asarray(x)) ** 2)[m].mean(), rtol=1e-6)


# ------------------------------------------------------------------ linear probe


def test_linear_probe_matches_sklearn_logistic_regression(digits):
    y = load_digits().target
    idx = np.concatenate([np.flatnonzero(y == c)[:3] for c in range(10)])
    with jax.enable_x64(True):
        Z = jnp.asarray(digits[idx])
        p = U.fit_linear_probe(Z, jnp.asarray(y[idx]), 10, 1.0 / len(idx), num_steps=3000)
        sk = LogisticRegression(C=1.0, tol=1e-10, max_iter=10000).fit(digits[idx], y[idx])
        probs = jax.nn.softmax(jnp.asarray(digits) @ p.W + p.b)
        np.testing.assert_allclose(probs, sk.predict_proba(digits), atol=1e-4)
        np.testing.assert_allclose(U.probe_accuracy(p, jnp.asarray(digits), jnp.asarray(y)),
                                   sk.score(digits, y), atol=1e-9)
