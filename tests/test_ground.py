"""Ground-floor pieces against independent computations: losses, gd_step, synthetic data, classification_task."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx

from dlnotes import linear
from dlnotes.data import synthetic
from dlnotes.losses import cross_entropy, mse, smooth_labels
from dlnotes.models.base import functional
from dlnotes.optim.factory import default_optimizer_config
from dlnotes.train.runner import Runner
from dlnotes.train.tasks import classification_task
from dlnotes import hparams


@pytest.fixture
def logits_labels():
    k1, k2 = jax.random.split(jax.random.key(0))
    return 3.0 * jax.random.normal(k1, (64, 7)), jax.random.randint(k2, (64,), 0, 7)


def test_cross_entropy_hard_labels_is_optax(logits_labels):
    z, y = logits_labels
    want = optax.softmax_cross_entropy_with_integer_labels(z, y).mean()
    np.testing.assert_allclose(cross_entropy(z, y), want, rtol=1e-6)


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
def test_cross_entropy_smoothed_is_optax(logits_labels, eps):
    z, y = logits_labels
    q = optax.smooth_labels(jax.nn.one_hot(y, 7), eps)
    want = optax.softmax_cross_entropy(z, q).mean()
    np.testing.assert_allclose(cross_entropy(z, y, label_smoothing=eps), want, rtol=1e-6)
    np.testing.assert_allclose(smooth_labels(y, 7, eps), q, atol=1e-7)


def test_cross_entropy_soft_labels_is_optax(logits_labels):
    z, _ = logits_labels
    q = jax.nn.softmax(jax.random.normal(jax.random.key(1), z.shape))
    np.testing.assert_allclose(cross_entropy(z, q), optax.softmax_cross_entropy(z, q).mean(), rtol=1e-6)
    # a float64 NumPy computation, by hand
    zn, qn = np.asarray(z, np.float64), np.asarray(q, np.float64)
    logp = zn - zn.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    np.testing.assert_allclose(cross_entropy(z, q), -(qn * logp).sum(-1).mean(), rtol=1e-5)


def test_mse_gradient_is_the_residual():
    p, t = jnp.arange(6.0), jnp.ones(6)
    np.testing.assert_allclose(jax.grad(mse)(p, t), (p - t) / 6, rtol=1e-6)


def test_gd_step_is_a_gradient_step():
    k1, k2, k3 = jax.random.split(jax.random.key(2), 3)
    X, y, w = jax.random.normal(k1, (30, 5)), jax.random.normal(k2, (30,)), jax.random.normal(k3, (5,))
    grad = jax.grad(lambda w: linear.least_squares_loss(X, y, w))(w)
    np.testing.assert_allclose(linear.gd_step(X, y, w, 0.3), w - 0.3 * grad, rtol=1e-5, atol=1e-6)


def test_gaussian_regression():
    d = synthetic.gaussian_regression(jax.random.key(3), 20000, 4, noise=0.5)
    assert d["x"].shape == (20000, 4) and d["y"].shape == (20000,) and d["w_true"].shape == (4,)
    resid = np.asarray(d["y"] - d["x"] @ d["w_true"])
    assert abs(resid.std() - 0.5) < 0.01 and abs(float(jnp.mean(jnp.sum(d["x"] ** 2, 1))) - 4) < 0.1
    again = synthetic.gaussian_regression(jax.random.key(3), 20000, 4, noise=0.5)
    np.testing.assert_array_equal(d["y"], again["y"])


def test_sine_regression():
    d = synthetic.sine_regression(jax.random.key(4), 512, freq=2.0, noise=0.0, lo=-1.0, hi=1.0)
    np.testing.assert_allclose(d["x"][[0, -1], 0], [-1.0, 1.0])
    np.testing.assert_allclose(d["y"], np.sin(2.0 * np.asarray(d["x"])), atol=1e-6)


class _Linear(nnx.Module):
    def __init__(self, din, k, rngs):
        self.dense = nnx.Linear(din, k, rngs=rngs)

    def __call__(self, x, *, train=False, key=None):
        return self.dense(x)


def test_classification_task_loss_and_accuracy():
    rng = np.random.default_rng(0)
    centers = 3.0 * rng.standard_normal((3, 5))
    y = rng.integers(0, 3, 300)
    x = (centers[y] + 0.3 * rng.standard_normal((300, 5))).astype(np.float32)
    data = {"train": {"x": x[:200], "y": y[:200]}, "test": {"x": x[200:], "y": y[200:]}}
    opt = default_optimizer_config()
    opt.name, opt.learning_rate = "adam", 0.05
    cfg = ml_collections.ConfigDict(dict(num_steps=100, batch_size=0, log_every=100, optimizer=opt,
                                         train=dict(label_smoothing=0.1)))
    model = functional(lambda rngs, hp: _Linear(5, 3, rngs))
    task = classification_task(cfg, model, data, eval_splits=("test",))
    hp = hparams.from_config(cfg)
    params, ms = task.init(jax.random.key(0), hp)
    logits = np.asarray(model.apply(params, ms, x[:200])[0], np.float64)
    q = 0.9 * np.eye(3)[y[:200]] + 0.1 / 3
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    loss, (aux, _) = task.loss(params, ms, data["train"], jax.random.key(1), hp)
    np.testing.assert_allclose(loss, -(q * logp).sum(1).mean(), rtol=1e-5)     # smoothing ε = 0.1 applied
    np.testing.assert_allclose(aux["batch_acc"], np.mean(logits.argmax(1) == y[:200]), rtol=1e-6)
    res = Runner(task).run(hp, jax.random.key(0))
    ev = res.metrics["evals"]
    assert ev["test_acc"][-1] >= 0.95 and ev["train_loss"][-1] < ev["train_loss"][0]


def test_classification_evaluation_in_slices_equals_one_pass():
    """``eval_batch`` (the digits CNN's evaluation, zero-padded last slice) gives the one-pass numbers bit for bit,
    and both match accuracies and losses computed here from the model's logits."""
    from dlnotes.experiments import base, digits_cnn
    from dlnotes.losses import cross_entropy as ce

    cfg = base.load_config("digits_cnn", "fast")
    hp = hparams.from_config(cfg)
    data = digits_cnn.make_data(cfg)
    sliced = digits_cnn.build_task(cfg, data)
    assert digits_cnn.EVAL_BATCH and data["train"]["x"].shape[0] % digits_cnn.EVAL_BATCH
    model = digits_cnn.make_model(cfg)
    whole = classification_task(cfg, model, data, num_classes=10, eval_splits=("val", "test", "shifted"))
    params, ms = sliced.init(jax.random.key(2), hp)
    a = jax.jit(sliced.evaluate)(params, ms, data, hp)
    b = jax.jit(whole.evaluate)(params, ms, data, hp)
    assert set(a) == set(b) == {f"{s}_{m}" for s in ("train", "val", "test", "shifted") for m in ("acc", "loss")}
    for k in a:
        assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), k
    for split in ("train", "shifted"):
        logits = model.apply(params, ms, data[split]["x"])[0]
        np.testing.assert_allclose(a[f"{split}_acc"], np.mean(np.argmax(logits, -1) == data[split]["y"]), rtol=1e-6)
        np.testing.assert_allclose(a[f"{split}_loss"], ce(logits, data[split]["y"]), rtol=1e-5)
