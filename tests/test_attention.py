"""dlnotes.nn.attention and dlnotes.nn.posenc against independent computations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from dlnotes.nn import attention as att
from dlnotes.nn import posenc


def _qkv(seed=0, b=2, t=5, s=7, h=3, d=4):
    r = np.random.default_rng(seed)
    return (r.normal(size=(b, t, h, d)), r.normal(size=(b, s, h, d)), r.normal(size=(b, s, h, d)))


def _numpy_attention(q, k, v, mask, temperature=1.0):
    """float64 reference: explicit loops over batch, head and query."""
    b, t, h, d = q.shape
    out = np.zeros((b, t, h, v.shape[-1]))
    for bi in range(b):
        for hi in range(h):
            for ti in range(t):
                allowed = np.broadcast_to(mask, (b, h, t, k.shape[1]))[bi, hi, ti]
                if not allowed.any():
                    continue
                sc = k[bi, :, hi] @ q[bi, ti, hi] / np.sqrt(d) / temperature
                sc = np.where(allowed, sc, -np.inf)
                w = np.exp(sc - sc.max())
                w /= w.sum()
                out[bi, ti, hi] = w @ v[bi, :, hi]
    return out


def test_matches_jax_dot_product_attention_causal_and_padding():
    q, k, v = (jnp.asarray(a, jnp.float32) for a in _qkv(t=6, s=6))
    causal = att.causal_mask(6)
    ours = att.dot_product_attention(q, k, v, mask=causal)
    ref = jax.nn.dot_product_attention(q, k, v, is_causal=True)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    valid = jnp.array([[True] * 6, [True] * 4 + [False] * 2])
    mask = att.padding_mask(None, valid)
    ours = att.dot_product_attention(q, k, v, mask=mask)
    ref = jax.nn.dot_product_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 0.3])
def test_matches_float64_numpy_with_fully_masked_rows(temperature):
    q, k, v = _qkv(1)
    rng = np.random.default_rng(2)
    mask = rng.random((2, 1, 5, 7)) < 0.5
    mask[0, 0, 2] = False          # a fully masked row
    mask[1, 0, 4] = False
    with jax.enable_x64(True):
        ours = att.dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), mask=jnp.asarray(mask),
                                         temperature=temperature)
        ours = np.asarray(ours)
    ref = _numpy_attention(q, k, v, mask, temperature)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
    assert (ours[0, 2] == 0).all() and (ours[1, 4] == 0).all()


def test_fully_masked_rows_give_zero_output_and_finite_gradients():
    q, k, v = (jnp.asarray(a, jnp.float32) for a in _qkv(3))
    mask = jnp.zeros((1, 1, 5, 7), bool).at[..., 1:, :3].set(True)     # row 0 fully masked

    def f(q, k, v):
        return jnp.sum(att.dot_product_attention(q, k, v, mask=mask) ** 2)
    out = att.dot_product_attention(q, k, v, mask=mask)
    assert jnp.all(out[:, 0] == 0) and jnp.all(jnp.isfinite(out))
    grads = jax.grad(f, argnums=(0, 1, 2))(q, k, v)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    assert jnp.all(grads[0][:, 0] == 0)


def test_soft_lookup_tends_to_hard_lookup():
    r = np.random.default_rng(0)
    keys = r.normal(size=(16, 8))
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    vals = r.normal(size=(16, 3))
    with jax.enable_x64(True):
        gap = float(att.lookup_gap(jnp.asarray(keys), 5))
        assert gap > 0
        errs = [float(jnp.linalg.norm(att.soft_lookup(jnp.asarray(keys[5]), jnp.asarray(keys), jnp.asarray(vals), t)
                                      - vals[5])) for t in (1.0, 0.3, 0.1, gap / 30)]
        assert all(a > b for a, b in zip(errs, errs[1:])) and errs[-1] < 1e-9
        np.testing.assert_array_equal(att.hard_lookup(jnp.asarray(keys[5]), jnp.asarray(keys), jnp.asarray(vals)),
                                      vals[5])


def test_multihead_cross_attention_equals_per_head_formula():
    mha = att.MultiHeadAttention(8, 2, context_dim=6, rngs=nnx.Rngs(0))
    r = np.random.default_rng(0)
    x, c = jnp.asarray(r.normal(size=(2, 3, 8)), jnp.float32), jnp.asarray(r.normal(size=(2, 5, 6)), jnp.float32)
    y = mha(x, c)
    wq, wk, wv, wo = (np.asarray(m.kernel[...], np.float64) for m in (mha.wq, mha.wk, mha.wv, mha.wo))
    xn, cn = np.asarray(x, np.float64), np.asarray(c, np.float64)
    heads = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        s = (xn @ wq[:, sl]) @ np.swapaxes(cn @ wk[:, sl], 1, 2) / 2.0
        w = np.exp(s - s.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        heads.append(w @ (cn @ wv[:, sl]))
    np.testing.assert_allclose(y, np.concatenate(heads, -1) @ wo, atol=1e-5)


@pytest.mark.parametrize("use_bias", [False, True])
def test_causal_self_attention_fused_projection_equals_per_head_formula(use_bias):
    """Self-attention projects q, k, v with one matmul on (B·T, D); float64 numpy per head and query."""
    mha = att.MultiHeadAttention(8, 2, use_bias=use_bias, rngs=nnx.Rngs(3))
    if use_bias:
        for i, m in enumerate((mha.wq, mha.wk, mha.wv, mha.wo)):
            m.bias[...] = jnp.asarray(np.random.default_rng(10 + i).normal(size=8), jnp.float32)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 5, 8)), jnp.float32)
    y = mha(x, mask=att.causal_mask(5))
    w = {n: np.asarray(getattr(mha, n).kernel[...], np.float64) for n in ("wq", "wk", "wv", "wo")}
    b = {n: np.asarray(getattr(mha, n).bias[...], np.float64) if use_bias else np.zeros(8) for n in w}
    xn = np.asarray(x, np.float64)
    q, k, v = (xn @ w[n] + b[n] for n in ("wq", "wk", "wv"))
    heads = np.zeros((3, 5, 8))
    for bi in range(3):
        for h in range(2):
            sl = slice(4 * h, 4 * h + 4)
            for t in range(5):
                s = k[bi, :t + 1, sl] @ q[bi, t, sl] / 2.0
                a = np.exp(s - s.max())
                heads[bi, t, sl] = (a / a.sum()) @ v[bi, :t + 1, sl]
    np.testing.assert_allclose(y, heads @ w["wo"] + b["wo"], atol=1e-5)
    # gradients of the kernels: the fused projection against three separate matmuls and jax.nn.softmax
    def separate(ws, x):
        q, k, v = (x @ ws[n] + b[n].astype(np.float32) for n in ("wq", "wk", "wv"))
        q, k, v = (z.reshape(3, 5, 2, 4) for z in (q, k, v))
        s = jnp.where(np.tril(np.ones((5, 5), bool)), jnp.einsum("bthd,bshd->bhts", q, k) / 2.0, -jnp.inf)
        o = jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(s, -1), v).reshape(3, 5, 8)
        return jnp.sum((o @ ws["wo"] + b["wo"].astype(np.float32)) ** 2)
    gm = jax.grad(lambda m, x: jnp.sum(m(x, mask=att.causal_mask(5)) ** 2))(mha, x)
    gr = jax.grad(separate)({n: getattr(mha, n).kernel[...] for n in w}, x)
    for n in w:
        np.testing.assert_allclose(getattr(gm, n).kernel[...], gr[n], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rope", [False, True])
def test_kv_cache_decoding_equals_full_causal_attention(rope):
    mha = att.MultiHeadAttention(8, 2, rope=rope, rngs=nnx.Rngs(1))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 6, 8)), jnp.float32)
    full = mha(x, mask=att.causal_mask(6))
    cache = att.init_cache(2, 6, 2, 4)
    y0, cache = mha(x[:, :2], cache=cache, index=0)       # a 2-token prompt, then one token at a time
    ys = [y0]
    for t in range(2, 6):
        y, cache = mha(x[:, t:t + 1], cache=cache, index=t)
        ys.append(y)
    np.testing.assert_allclose(jnp.concatenate(ys, 1), full, atol=1e-5)


def test_sinusoidal_shift_is_a_rotation_float64():
    with jax.enable_x64(True):
        pe = posenc.sinusoidal(jnp.arange(200, dtype=jnp.float64), 64)
        for k in (1, 7, 50):
            rk = posenc.rotation(k, 64, dtype=jnp.float64)
            np.testing.assert_allclose(pe[:-k] @ rk.T, pe[k:], atol=1e-10, rtol=0)
            np.testing.assert_allclose(rk @ rk.T, np.eye(64), atol=1e-12)
        np.testing.assert_allclose(jnp.linalg.norm(pe, axis=1), np.sqrt(32), rtol=1e-12)
        # PE[t, 2i] = sin(t ω_i), PE[t, 2i+1] = cos(t ω_i)
        w = 10000.0 ** (-np.arange(0, 64, 2) / 64)
        np.testing.assert_allclose(pe[13, 0::2], np.sin(13 * w), atol=1e-12)
        np.testing.assert_allclose(pe[13, 1::2], np.cos(13 * w), atol=1e-12)


def test_rope_scores_depend_on_relative_position_only():
    r = np.random.default_rng(0)
    with jax.enable_x64(True):
        q, k = (jnp.asarray(r.normal(size=(1, 1, 16))) for _ in range(2))

        def score(m, n):
            return float(jnp.sum(posenc.rope(q, jnp.array([m], jnp.float64))
                                 * posenc.rope(k, jnp.array([n], jnp.float64))))
        assert abs(score(3, 1) - score(12, 10)) < 1e-12
        assert abs(score(0, 0) - float(jnp.sum(q * k))) < 1e-12
        np.testing.assert_allclose(jnp.linalg.norm(posenc.rope(q, jnp.array([9.0]))), jnp.linalg.norm(q), rtol=1e-12)


def test_concat_and_learned_positions():
    x = jnp.ones((2, 5, 3))
    pe = posenc.sinusoidal(5, 4)
    y = posenc.concat_positions(x, pe)
    assert y.shape == (2, 5, 7) and jnp.all(y[..., 3:] == pe)
    lp = posenc.LearnedPositions(10, 4, rngs=nnx.Rngs(0))
    assert lp(5).shape == (5, 4) and jnp.all(lp(3, offset=2) == lp.table[...][2:5])


def test_self_attention_is_softmax_aggregation_on_the_complete_graph():
    graph = pytest.importorskip("dlnotes.nn.graph")
    r = np.random.default_rng(4)
    n, d = 6, 5
    q, k, v = (jnp.asarray(r.normal(size=(n, d)), jnp.float32) for _ in range(3))
    senders, receivers = (jnp.asarray(a.ravel()) for a in np.meshgrid(np.arange(n), np.arange(n)))  # j -> i, self-loops
    scores = jnp.sum(q[receivers] * k[senders], -1) / np.sqrt(d)
    agg = graph.aggregate(v[senders], receivers, n, "softmax", scores=scores)
    ref = att.dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
    np.testing.assert_allclose(agg, ref, atol=1e-5)
