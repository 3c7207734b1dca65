"""Helpers of the conv_geometry, normalization and regularization experiments (issue 6).

The experiments' claims themselves run in tests/test_claims.py; these check the
measuring functions against hand-computed cases.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlnotes.experiments import conv_geometry as cg
from dlnotes.experiments import normalization as nm
from dlnotes.experiments import regularization as rg
from dlnotes.nn import conv as C


# ---------------------------------------------------------------- conv_geometry
def test_output_size_grid_rows_match_formula():
    rows = cg.output_size_grid(Ws=(6,), Ks=(2, 3), Ps=(0, 1), Ss=(1, 2), Ds=(1, 2))
    assert rows and all(want == got for *_, want, got in rows)
    kinds = {r[0] for r in rows}
    assert kinds == {"conv/im2col", "conv/xla", "max_pool", "avg_pool"}


@pytest.mark.parametrize("layers", [
    [("conv", 3, 1, 1)] * 2,
    [("conv", 3, 1, 1), ("avg", 2, 2, 1)] * 2,
    [("conv", 2, 3, 1)],            # K < S: holes, still one bounding box
])
def test_gradient_receptive_field_equals_formula(layers):
    r, c, g = cg.gradient_receptive_field(layers)
    want = C.receptive_field([(k, s, d) for _, k, s, d in layers]).size
    assert r == c == want
    assert g.shape[0] > want and (g >= 0).all()


def test_gradient_receptive_field_detects_clipping():
    with pytest.raises(ValueError):
        cg.gradient_receptive_field([("conv", 3, 1, 1)] * 3, size=7)


def test_unchanged_fraction_counts_only_active_units():
    a = np.array([0.0, 0.0, 1.0, 2.0, 3.0, 0.0])
    b = np.array([0.0, 0.0, 1.0, 5.0, 0.0, 4.0])
    # active in either: indices 2..5 (4 units); unchanged among them: index 2
    assert cg.unchanged_fraction(a, b) == pytest.approx(0.25)
    assert cg.unchanged_fraction(np.zeros(3), np.zeros(3)) == 0.0


def test_prediction_consistency_of_a_shift_invariant_and_a_position_reader():
    x = jnp.zeros((5, 8, 8, 1)).at[:, 3:5, 3:5].set(1.0)
    invariant = lambda x: jnp.stack([x.sum((1, 2, 3)), jnp.ones(x.shape[0])], -1)  # argmax always 0
    assert cg.prediction_consistency(invariant, x) == 1.0
    # reads pixel (3, 3) of a blob on rows/cols 3–4: shifting right or down uncovers it (prediction
    # changes), shifting left or up keeps it covered: 2 of the 4 shifts keep the prediction
    reader = lambda x: jnp.stack([x[:, 3, 3, 0], 0.5 * jnp.ones(x.shape[0])], -1)
    assert cg.prediction_consistency(reader, x) == pytest.approx(0.5)


def test_block_param_counts_match_the_formulas():
    from dlnotes.models.convnext import convnext_block_num_params
    from dlnotes.models.resnet import resnet_block_num_params
    counts = list(cg.block_param_counts(16).values())
    assert counts == [resnet_block_num_params(16), convnext_block_num_params(16)]


# ---------------------------------------------------------------- normalization
def test_norm_identities_are_exact_and_nontrivial():
    r = nm.norm_identities(seed=1, shape=(3, 4, 4, 4))
    assert r["gn1_ln"] <= 1e-12 and r["gnc_in"] <= 1e-12
    assert r["gn2_ln"] > 1e-3
    assert r["bn_eval"] == 0.0 and r["bn_eval_alone"] == 0.0 and r["bn_train"] > 0.0


def test_ws_scale_invariance_rows():
    rows, var_w = nm.ws_scale_invariance([0.5, 3.0])
    assert var_w > 0
    for a, ws_rel, plain_rel in rows:
        assert ws_rel < 1e-6
        assert plain_rel == pytest.approx(abs(a - 1), rel=1e-6)   # a plain conv (zero bias) scales with a


def test_bn_model_writes_running_averages_under_grad():
    """The BN CNN's running averages update inside value_and_grad (the engine's step)."""
    import ml_collections
    cfg = ml_collections.ConfigDict(dict(model=dict(channels=[4], norm="batch", dense=8, dense_norm="batch")))
    m = nm.make_model(cfg)
    p, ms = m.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
    f = lambda p: (lambda o: (o[0].sum(), o[1]))(m.apply(p, ms, x, train=True))
    (_, new_ms), g = jax.jit(jax.value_and_grad(f, has_aux=True))(p)
    old, new = jax.tree.leaves(ms), jax.tree.leaves(new_ms)
    assert any(not np.allclose(a, b) for a, b in zip(old, new))


# ---------------------------------------------------------------- regularization
def test_smoothing_target_gap_is_where_softmax_equals_the_target():
    eps, k = 0.2, 5
    gap = rg.smoothing_target_gap(eps, k)
    z = jnp.zeros(k).at[0].set(gap)
    q = jnp.full(k, eps / k).at[0].add(1 - eps)
    np.testing.assert_allclose(jax.nn.softmax(z), q, rtol=1e-6)


def test_logit_gap():
    logits = jnp.array([[3.0, 1.0, 2.0], [0.0, 4.0, 1.0]])
    y = jnp.array([0, 1])
    # (3 − 1.5) and (4 − 0.5)
    assert float(rg.logit_gap(logits, y)) == pytest.approx((1.5 + 3.5) / 2)


def test_monte_carlo_mean_and_dropout_expectation():
    mean = rg.monte_carlo_mean(lambda k, s: s * jax.random.normal(k, (3,)), jax.random.key(0), 4000, 2.0,
                               chunk=1000)
    assert np.abs(np.asarray(mean)).max() < 4 * 2.0 / np.sqrt(4000)
    x = jnp.linspace(-1.0, 1.0, 50)
    rel, det = rg.dropout_monte_carlo(x, 0.3, 20000, jax.random.key(1))
    assert rel < 0.02 and det == 0.0
    assert rg.rel_error(2 * x, x) == pytest.approx(1.0)


def test_mean_confidence_gap_sign():
    over = {"count": np.array([10.0, 0.0]), "confidence": np.array([0.9, 0.0]), "accuracy": np.array([0.6, 0.0])}
    assert rg._mean_conf_gap(over) == pytest.approx(0.3)
