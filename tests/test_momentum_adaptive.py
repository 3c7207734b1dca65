"""Experiments momentum (C16, C17) and adaptive (C18): their helpers against hand computations.

(The fast profiles and their claims run in tests/test_claims.py.)
"""

import jax
import numpy as np
import pytest

from dlnotes.experiments import adaptive, base, momentum
from dlnotes.train.loop import make_train
from dlnotes import hparams


def test_steps_to_tolerance_hand_cases():
    tol = 0.1
    gaps = np.array([[1.0, 0.5, 0.05, 0.2, 0.01, 0.001],   # dips below at 2, back above at 3: reached at 4
                     [1.0, 0.05, 0.05, 0.05, 0.05, 0.05],  # reached at 1
                     [1.0, 0.5, 0.5, 0.5, 0.5, 0.5],       # never
                     [1.0, 0.5, 0.01, np.nan, np.nan, np.nan]])  # NaN = not reached
    np.testing.assert_array_equal(momentum.steps_to_tolerance(gaps, tol), [4, 1, np.inf, np.inf])
    np.testing.assert_array_equal(momentum.steps_to_tolerance(np.array([0.0, 0.0]), tol), 0)


def test_steps_to_tolerance_of_gd_on_a_1d_quadratic():
    """GD on ½λx²: f_t = (1 − ηλ)^(2t) f_0, so the steps are ⌈log tol / (2 log|1 − ηλ|)⌉."""
    lam, eta, tol = 0.3, 1.0, 1e-8
    t = np.arange(200)
    f = 0.5 * lam * (1 - eta * lam) ** (2 * t)
    expected = np.ceil(np.log(tol) / (2 * np.log(abs(1 - eta * lam))))
    assert momentum.steps_to_tolerance(f, tol) == expected


def test_quadratic_task_gd_follows_the_closed_form():
    """Through the engine: GD on the diagonal quadratic gives x_t − x* = (1 − ηλ)^t (x_0 − x*) per coordinate."""
    config = base.load_config("momentum", "fast")
    with jax.enable_x64(True):
        config = momentum.with_changes(config, **{"optimizer.name": "sgd", "optimizer.learning_rate": 0.7,
                                                  "data.rotate": False, "data.dim": 4, "num_steps": 30})
        data = momentum.make_data(config)
        task = momentum.quadratic_task(config, data, evaluate=momentum.evaluate_path)
        _, m = jax.jit(make_train(task))(hparams.from_config(config), jax.random.key(0))
        xs = np.asarray(m["evals"]["x"])
        lam = np.asarray(data["eigenvalues"])
        x_star = np.asarray(data["train"]["x_star"])
        pred = x_star + (1 - 0.7 * lam) ** np.arange(31)[:, None] * (xs[0] - x_star)
        np.testing.assert_allclose(xs, pred, rtol=1e-10, atol=1e-12)
        gap = np.asarray(m["evals"]["excess"])
        np.testing.assert_allclose(gap, 0.5 * ((xs - x_star) ** 2 * lam).sum(-1), rtol=1e-10)


def test_step_ratio():
    xs = np.array([[1.0, -1.0], [0.5, -0.9], [0.4, -0.7]])
    steps, ratio = adaptive.step_ratio(xs)
    np.testing.assert_allclose(steps, [[0.5, 0.1], [0.1, 0.2]])
    np.testing.assert_allclose(ratio, [5.0, 2.0])


@pytest.mark.parametrize("name", ["momentum", "adaptive"])
def test_build_task_trains_one_run(name):
    config = base.load_config(name, "fast")
    config = momentum.with_changes(config, num_steps=20)
    base.module(name).validate(config)
    task = base.module(name).build_task(config)
    state, m = jax.jit(make_train(task))(hparams.from_config(config), jax.random.key(0))
    loss = np.asarray(m["steps"]["loss"])
    assert loss.shape == (20,) and np.all(np.isfinite(loss)) and loss[-1] < loss[0]
    assert not bool(state.diverged)


def test_validate_rejects_bad_input():
    from dlnotes.errors import ConfigError
    config = base.load_config("momentum", "fast")
    with pytest.raises(ConfigError, match="^optimizer.learning_rate"):
        momentum.validate(momentum.with_changes(config, **{"optimizer.learning_rate": -1.0}))
    with pytest.raises(ConfigError, match="^data.kappa"):
        momentum.validate(momentum.with_changes(config, **{"data.kappa": 0.5}))
    with pytest.raises(ConfigError, match="^optimizer.momentum"):
        adaptive.validate(momentum.with_changes(base.load_config("adaptive", "fast"), **{"optimizer.momentum": 1.0}))
