"""dlnotes.models.word2vec: the SGNS loss against a direct formula, the class-separation statistics."""
import jax
import jax.numpy as jnp
import numpy as np

from dlnotes.models import word2vec as w2v


def test_sgns_loss_matches_formula_and_gradient_moves_pairs_together():
    r = np.random.default_rng(0)
    u, v, n = r.normal(size=(3, 4)), r.normal(size=(3, 4)), r.normal(size=(3, 2, 4))
    sig = lambda x: 1 / (1 + np.exp(-x))
    ref = -np.log(sig((u * v).sum(-1))) - np.log(sig(-np.einsum("bd,bkd->bk", u, n))).sum(-1)
    with jax.enable_x64(True):
        np.testing.assert_allclose(w2v.sgns_loss(jnp.asarray(u), jnp.asarray(v), jnp.asarray(n)), ref, rtol=1e-12)
    model = w2v.make_skipgram(6, 4)
    params, ms = model.init(jax.random.key(0))
    assert np.all(np.asarray(params["out"][...]) == 0)
    batch = {"center": jnp.array([0]), "context": jnp.array([1]), "negatives": jnp.array([[2, 3]])}
    loss0 = model.apply(params, ms, batch)[0]
    np.testing.assert_allclose(loss0, 3 * np.log(2), rtol=1e-6)        # v = 0: σ(0) = ½ for all three terms


def test_class_separation_auc_and_neighbours():
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    s = w2v.class_separation(emb, np.array([0, 0, 1, 1]))
    assert s["auc"] == 1.0 and s["gap"] > 0.5
    s = w2v.class_separation(emb, np.array([0, 1, 0, 1]))
    assert s["auc"] == 0.25            # same-class cosines 0 and 0.22 beat 2 of the 8 (same, different) comparisons
    assert w2v.nearest_neighbours(emb, 0, 1)[0][0] == 1
    np.testing.assert_allclose(w2v._ranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1, 3.5, 2])
