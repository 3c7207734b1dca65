"""Autoencoders (dlnotes.models.autoencoder) and the shared reconstruction / k-means tasks."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from sklearn.datasets import load_digits

from dlnotes import unsupervised as U
from dlnotes.errors import ConfigError
from dlnotes.experiments import common_unsupervised as CU
from dlnotes.models import autoencoder as AE
from dlnotes.optim.factory import default_optimizer_config


def _config(**model):
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.num_steps = 4
    c.log_every = 2
    c.batch_size = 0
    c.model = ml_collections.ConfigDict({**dict(name="linear", input_dim=64, code=10, tied=False, hidden=[32],
                                                activation="relu"), **model})
    c.train = ml_collections.ConfigDict(dict(corruption="none", noise_std=0.2, mask_ratio=0.5, patch=2))
    c.optimizer = default_optimizer_config()
    c.kmeans = ml_collections.ConfigDict(dict(k=10, soft=False, t_start=1.0, t_end=0.01))
    return c


def test_linear_autoencoder_is_BAx_and_tied_shares_weights():
    x = jax.random.normal(jax.random.key(0), (5, 64))
    for tied in (False, True):
        f = AE.make_autoencoder(_config(tied=tied))
        p, ms = f.init(jax.random.key(1))
        m = f.module(p, ms)
        A = p["encoder"][...]
        B = A.T if tied else p["decoder"][...]
        np.testing.assert_allclose(f.apply(p, ms, x)[0], x @ A.T @ B.T, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(AE.decoder_matrix(f, p, ms), B)
        assert ("decoder" in p) != tied
        assert AE.encode(f, p, ms, x).shape == (5, 10) and m.decode(m.encode(x)).shape == (5, 64)


def test_linear_autoencoder_at_the_pca_solution_has_pcas_error():
    X = jnp.asarray(load_digits().data / 16.0, jnp.float32)
    Xc = X - X.mean(0)
    p_fit = U.pca(X, 10)
    f = AE.make_autoencoder(_config())
    p, ms = f.init(jax.random.key(0))
    p["encoder"][...] = p_fit.components
    p["decoder"][...] = p_fit.components.T
    err = CU.reconstruction_loss(f.apply(p, ms, Xc)[0], Xc)
    np.testing.assert_allclose(err, U.pca_reconstruction_error(p_fit, X), rtol=1e-4)


def test_mlp_autoencoder_shapes_and_bad_configs():
    f = AE.make_autoencoder(_mlp())
    p, ms = f.init(jax.random.key(0))
    x = jnp.ones((3, 64))
    assert f.apply(p, ms, x)[0].shape == (3, 64) and AE.encode(f, p, ms, x).shape == (3, 10)
    with pytest.raises(ConfigError, match="model.activation"):
        AE.make_autoencoder(_mlp(activation="swish"))
    with pytest.raises(ConfigError, match="model.code"):
        AE.make_autoencoder(_bad_code())
    with pytest.raises(ConfigError, match="model.name"):
        c = _config()
        c.model.name = "conv"
        AE.make_autoencoder(c)


def _mlp(**kw):
    c = _config()
    c.model.name = "mlp"
    c.model.update(kw)
    return c


def _bad_code():
    c = _config()
    c.model.code = 100
    return c


def test_mask_task_loss_ignores_unmasked_pixels_of_the_output():
    """The masked-reconstruction task's loss depends on the reconstruction at masked pixels only."""
    c = _mlp()
    c.train.corruption = "mask"
    x = jnp.asarray(load_digits().data[:16] / 16.0, jnp.float32)
    inp, mask = CU.corrupt(c, {}, jax.random.key(0), x)
    assert mask is not None and bool(jnp.all(jnp.where(mask, inp == 0, inp == x)))   # masked pixels zeroed
    g = jax.grad(lambda xh: CU.reconstruction_loss(xh, x, mask))(jnp.zeros_like(x))
    assert float(jnp.max(jnp.abs(jnp.where(mask, 0.0, g)))) == 0.0
    np.testing.assert_allclose(CU.reconstruction_loss(x, x, mask), 0.0)
    # noise corruption: same loss as without on an unchanged input
    c.train.corruption = "noise"
    inp, mask = CU.corrupt(c, {"train.noise_std": jnp.asarray(0.0)}, jax.random.key(0), x)
    assert mask is None and bool(jnp.all(inp == x))


def test_reconstruction_and_kmeans_tasks_train_through_the_engine():
    from dlnotes.train.loop import make_train
    from dlnotes.hparams import from_config
    X = jnp.asarray(load_digits().data[:200] / 16.0, jnp.float32)
    c = _mlp()
    c.train.corruption = "mask"
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-2
    state, m = jax.jit(make_train(CU.reconstruction_task(c, {"train": {"x": X}})))(from_config(c), jax.random.key(0))
    assert np.all(np.isfinite(m["steps"]["loss"])) and m["evals"]["recon"].shape == (3,)
    k = _config()
    k.optimizer.learning_rate = 2.5
    for soft in (True,):             # the soft loss: temperature from the step count in model_state
        k.kmeans.soft = soft
        state, m = jax.jit(make_train(CU.kmeans_task(k, X)))(from_config(k), jax.random.key(0))
        ine = np.asarray(m["evals"]["inertia"])
        assert ine[-1] < ine[0]                       # GD lowers the inertia from the k-means++ init
        assert int(state.model_state["step"]) == k.num_steps
        np.testing.assert_allclose(ine[-1], U.inertia(X, state.params), rtol=1e-5)
