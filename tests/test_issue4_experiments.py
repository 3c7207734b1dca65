"""Helpers of relu_elbows, ridge, init_variance, standardization (their claims run in test_claims.py)."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from dlnotes import linear
from dlnotes.experiments import base, init_variance, relu_elbows, ridge, standardization
from dlnotes.models import relu_net
from dlnotes.hparams import with_changes


def _elbow_config(width=8, **model):
    m = dict(width=width, weight_init="normal", bias_init="normal", init_scale=1.0)
    m.update(model)
    c = base.load_config("relu_elbows", "fast")
    return with_changes(c, **{f"model.{k}": v for k, v in m.items()})


def _stacked_params(config, seeds):
    net = relu_net.make_relu_net(config)
    ps = [nnx.to_pure_dict(net.init(jax.random.key(s))[0]) for s in seeds]
    return jax.tree.map(lambda *a: jnp.stack(a), *ps)


def test_with_changes_copies():
    c = base.load_config("relu_elbows", "fast")
    c2 = with_changes(c, **{"model.width": 3, "num_steps": 7})
    assert (c2.model.width, c2.num_steps) == (3, 7) and c.model.width != 3


def test_pad_width_keeps_the_function():
    cfg = _elbow_config(width=5)
    p = _stacked_params(cfg, [0, 1])
    padded = relu_elbows.pad_width(p, 12)
    assert padded["hidden"]["kernel"].shape == (2, 1, 12) and padded["out"]["kernel"].shape == (2, 12, 1)
    x = jnp.linspace(-5, 5, 101)
    for i in range(2):
        a = relu_net.elbow_formula(relu_elbows.point(p, i), x)
        b = relu_net.elbow_formula(relu_elbows.point(padded, i), x)
        assert float(jnp.max(jnp.abs(a - b))) <= 1e-6 * float(jnp.max(jnp.abs(a)))  # padded units add exact zeros


def test_second_difference_check_on_random_nets():
    cfg = _elbow_config(width=6)
    p = _stacked_params(cfg, [0, 1, 2])
    away, match, fsum, n = relu_elbows.second_difference_check(cfg, p, 1e-3, 3.0)
    assert away.shape == (3,) and np.all(away <= 1e-10) and np.all(match <= 1e-10) and np.all(fsum <= 1e-10)
    assert n.sum() > 0


def test_dead_unit_gradients_are_exactly_zero():
    cfg = _elbow_config(width=3)
    data = relu_elbows.make_data(cfg)  # x in [-2, 2]
    # unit 0: elbow at 5 with slope up (dead), unit 1: elbow at -5 slope down (dead), unit 2: elbow at 0 (alive)
    p = {"hidden": {"kernel": jnp.array([[[1.0, -1.0, 1.0]]]), "bias": jnp.array([[-5.0, -5.0, 0.0]])},
         "out": {"kernel": jnp.array([[[0.3], [0.7], [1.1]]]), "bias": jnp.array([[0.2]])}}
    dead, outside, grad = relu_elbows.dead_unit_gradients(cfg, p, data)
    assert dead.tolist() == [[True, True, False]] and outside.tolist() == dead.tolist()
    assert grad[0, 0] == 0.0 and grad[0, 1] == 0.0 and grad[0, 2] > 0


def test_hidden_init_uses_the_named_policies():
    p = relu_elbows.hidden_init("he_normal", "zeros", [0, 1], 1000)
    assert p["hidden"]["kernel"].shape == (2, 1, 1000)
    assert float(jnp.max(jnp.abs(p["hidden"]["bias"]))) == 0.0
    assert abs(float(jnp.var(p["hidden"]["kernel"])) - 2.0) < 0.2   # He: var 2/fan_in, fan_in = 1
    q = relu_elbows.hidden_init("normal", "constant_0.01", [3], 10)
    assert np.allclose(np.asarray(q["hidden"]["bias"]), 0.01)


def test_cauchy_ks_tells_cauchy_from_normal():
    rng = np.random.default_rng(0)
    _, p_cauchy = relu_elbows.cauchy_ks([rng.standard_cauchy(2000) for _ in range(5)])
    _, p_normal = relu_elbows.cauchy_ks([rng.standard_normal(2000) for _ in range(5)])
    assert p_cauchy > 0.01 and p_normal < 1e-10


def test_forward_moments_match_the_mlp():
    from dlnotes.models.relu_net import make_mlp
    for act in ("relu", "tanh", "linear"):
        cfg = ml_collections.ConfigDict({"model": dict(width=16, depth=4, in_features=16, activation=act,
                                                       weight_init="xavier_normal", bias_init="zeros",
                                                       init_scale=1.0)})
        f = make_mlp(cfg)
        params, state = f.init(jax.random.key(0))
        x = jax.random.normal(jax.random.key(1), (32, 16))
        (_, acts), _ = f.apply(params, state, x, return_activations=True)
        ref = np.array([float(jnp.mean(jnp.square(z))) for z in acts["pre"]])
        pure = nnx.to_pure_dict(params)
        W = jnp.stack([pure["layers"][i]["kernel"] for i in range(4)])
        q = np.asarray(init_variance.forward_moments(W, x, act))
        np.testing.assert_allclose(q, ref, rtol=1e-5)


def test_layer_second_moments_shapes_and_input():
    q0, q = init_variance.layer_second_moments(jax.random.key(0), width=64, depth=5, batch=128,
                                               activation="linear", weight_init="xavier_normal")
    assert q.shape == (5,) and abs(float(q0) - 1.0) < 0.05
    q0s, qs = init_variance.moments([0, 1], width=32, depth=3, batch=16, activation="relu", weight_init="he_normal")
    assert q0s.shape == (2,) and qs.shape == (2, 3)


def test_tanh_decay_fit_separates_power_law_and_exponential():
    l = np.arange(1, 51)
    slope, rp, re = init_variance.tanh_decay_fit(1 / (2 * l), 5)
    assert abs(slope + 1) < 1e-9 and rp < 1e-9 and re > 0.05
    slope, rp, re = init_variance.tanh_decay_fit(0.9 ** l, 5)
    assert re < 1e-9 and rp > 0.05


def test_filter_gap_sup_is_about_0_2():
    with jax.enable_x64(True):
        gaps = ridge.filter_gap(jnp.geomspace(1e-4, 1.0, 2000), 1.0, [10, 100, 1000])
        assert np.all(np.asarray(gaps) <= 0.25) and np.all(np.asarray(gaps) >= 0.19)


def test_conditioned_problem_has_the_asked_spectrum():
    with jax.enable_x64(True):
        X, y, sig, V = ridge.conditioned_problem(jax.random.key(0), 30, 6, 1e-4, 0.1)
        s = np.asarray(jnp.linalg.svd(X, compute_uv=False))
        np.testing.assert_allclose(s, np.geomspace(1, 1e-4, 6), rtol=1e-10)
        np.testing.assert_allclose(sig, s, rtol=1e-10)
        np.testing.assert_allclose(np.asarray(V).T @ np.asarray(V), np.eye(6), atol=1e-12)
        assert y.shape == (30,)
        # held-out rows share the training distribution: their second moments follow σ² along V
        Xt, yt = ridge.held_out_problem(jax.random.key(1), 20000, 30, sig, V, 0.1, 0.0)
        m = np.asarray(V).T @ (np.asarray(Xt).T @ np.asarray(Xt) / 20000) @ np.asarray(V) * 30
        np.testing.assert_allclose(np.diag(m), np.asarray(sig) ** 2, rtol=0.05)


def test_underdetermined_data_key_is_not_a_run_key():
    """X's rows must not coincide with the engine's w0 draws of small seeds (same key, same numbers)."""
    c = base.load_config("ridge", "fast")
    with jax.enable_x64(True):
        X = ridge.underdetermined_data(c)["train"]["x"]
        P = linear.null_space_projector(X)
        for s in range(3):
            k_init, _ = jax.random.split(jax.random.key(s))
            w0 = jax.random.normal(k_init, (X.shape[1],))
            assert float(jnp.linalg.norm(P @ w0) / jnp.linalg.norm(w0)) > 0.3


def test_steps_to_target():
    r = np.array([[1.0, 0.1, 1e-4, 1e-5], [1.0, 0.5, 0.2, 0.1]])
    assert standardization.steps_to_target(r, 1e-3).tolist() == [2, -1]


def test_standardization_uses_train_statistics():
    c = base.load_config("standardization", "fast")
    with jax.enable_x64(True):
        d = standardization.make_data(c, True)
        raw = standardization.make_data(c, False)
    xt = np.asarray(d["train"]["x"])
    np.testing.assert_allclose(xt[:, :-1].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(xt[:, :-1].std(0), 1, atol=1e-12)
    assert np.all(xt[:, -1] == 1)
    # validation reuses the train mean/std: exactly the same affine map
    rt, rv = np.asarray(raw["train"]["x"])[:, :-1], np.asarray(raw["val"]["x"])[:, :-1]
    np.testing.assert_allclose(np.asarray(d["val"]["x"])[:, :-1], (rv - rt.mean(0)) / rt.std(0), rtol=1e-10)
    assert abs(rt.mean() - c.data.offset) < 10


@pytest.mark.parametrize("name", ["relu_elbows", "ridge", "init_variance", "standardization"])
def test_build_task_and_validate(name):
    c = base.load_config(name, "fast")
    mod = base.module(name)
    mod.validate(c)
    task = mod.build_task(c)
    assert task.num_steps == c.num_steps
