"""Standardization and image expectation estimates against numpy loops."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlnotes.data import standardize as st


def test_standardizer_matches_numpy_and_reuses_train_stats():
    rng = np.random.default_rng(0)
    xtr = 100 + 50 * rng.normal(size=(200, 4))
    xva = 100 + 50 * rng.normal(size=(50, 4))
    mean, std = st.fit_standardizer(jnp.asarray(xtr, jnp.float32))
    assert np.allclose(mean, xtr.mean(0), rtol=1e-5)
    assert np.allclose(std, xtr.std(0), rtol=1e-5)
    z = np.asarray(st.standardize(jnp.asarray(xva, jnp.float32), mean, std))
    assert np.allclose(z, (xva - xtr.mean(0)) / xtr.std(0), atol=1e-4)
    # the training set itself comes out with mean 0, std 1; validation does not exactly
    ztr = np.asarray(st.standardize(jnp.asarray(xtr, jnp.float32), mean, std))
    assert np.abs(ztr.mean(0)).max() < 1e-4 and np.abs(ztr.std(0) - 1).max() < 1e-4
    assert np.abs(z.mean(0)).max() > 1e-3
    back = st.unstandardize(z, mean, std)
    assert np.allclose(back, xva, rtol=1e-5)


def test_zero_std_is_guarded():
    x = jnp.asarray([[1.0, 5.0], [3.0, 5.0], [2.0, 5.0]])
    mean, std = st.fit_standardizer(x)
    assert float(std[1]) == 0.0
    z = st.standardize(x, mean, std)
    assert bool(jnp.all(jnp.isfinite(z)))
    assert np.allclose(z[:, 1], 0.0)
    assert np.allclose(z[:, 0], (np.array([1, 3, 2]) - 2) / np.std([1, 3, 2]))


@pytest.fixture
def images():
    rng = np.random.default_rng(1)
    return rng.uniform(0, 255, size=(6, 7, 5, 3)).astype(np.float32)


def test_expectation_per_position(images):
    e = st.expectation_per_position(images)
    assert e.shape == (7, 5, 3)
    ref = np.zeros((7, 5, 3))
    for i in range(7):
        for j in range(5):
            for c in range(3):
                ref[i, j, c] = images[:, i, j, c].mean()
    assert np.allclose(e, ref, rtol=1e-5)


def test_expectation_range_midpoint(images):
    assert float(st.expectation_range_midpoint(images, 0.0, 255.0)) == 127.5
    assert abs(float(st.expectation_range_midpoint(images)) - (images.min() + images.max()) / 2) < 1e-3


def test_expectation_per_image(images):
    e = st.expectation_per_image(images)
    assert e.shape == (6, 1, 1, 3)
    for n in range(6):
        for c in range(3):
            assert abs(float(e[n, 0, 0, c]) - images[n, :, :, c].mean()) < 1e-3
    centred = st.center_images(images, "per_image")
    assert np.abs(np.asarray(centred).mean(axis=(1, 2))).max() < 1e-3


@pytest.mark.parametrize("k", [1, 3, 4])
def test_expectation_local_patch(images, k):
    e = np.asarray(st.expectation_local_patch(jnp.asarray(images), k))
    assert e.shape == images.shape
    before, after = k // 2, k - 1 - k // 2
    N, H, W, C = images.shape
    ref = np.zeros_like(images)
    for i in range(H):
        for j in range(W):
            patch = images[:, max(0, i - before): i + after + 1, max(0, j - before): j + after + 1, :]
            ref[:, i, j, :] = patch.mean(axis=(1, 2))
    assert np.allclose(e, ref, rtol=1e-5)
    if k == 1:
        assert np.allclose(e, images)


def test_center_images_and_jit(images):
    x = jnp.asarray(images)
    f = jax.jit(st.center_images, static_argnames=("method", "k"))
    out = f(x, "local_patch", k=3)
    assert np.allclose(out, x - st.expectation_local_patch(x, 3), atol=1e-4)
    out = st.center_images(x[:2], "per_position", x_train=x)
    assert np.allclose(out, images[:2] - images.mean(0), atol=1e-3)
    with pytest.raises(ValueError):
        st.center_images(x, "median")
