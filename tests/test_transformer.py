"""dlnotes.models.transformer: KV-cache generation vs recomputing, causal exactness, padding, sampling."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dlnotes.data import sequences as seq
from dlnotes.models import transformer as tr


def _cfg(**kw):
    m = dict(width=32, num_heads=4, num_layers=2, context=16, mlp_ratio=2, norm="layer", posenc="learned",
             use_bias=False)
    m.update(kw)
    return ml_collections.ConfigDict({"model": m})


@pytest.mark.parametrize("posenc,norm", [("learned", "layer"), ("rope", "rms")])
def test_kv_cache_decode_and_greedy_generation_equal_recomputing(posenc, norm):
    lm = tr.make_lm(_cfg(posenc=posenc, norm=norm, width=16, num_heads=2, context=8), 11)
    p, ms = lm.init(jax.random.key(0))
    toks = jax.random.randint(jax.random.key(1), (2, 8), 0, 11)
    full_logits = jax.jit(lambda x: lm.apply(p, ms, x)[0])      # one compile each (eager ops compile per op)

    @jax.jit
    def cached(toks):
        m = lm.module(p, ms)
        caches = m.init_cache(2)
        outs = []
        for a, b in ((0, 3), (3, 4), (4, 8)):        # a prompt, one token, then the rest
            logits, caches = m.decode(toks[:, a:b], caches, a)
            outs.append(logits)
        return jnp.concatenate(outs, 1)
    np.testing.assert_allclose(cached(toks), full_logits(toks), atol=1e-5)
    gen = tr.generate(lm, p, ms, toks[:, :2], 6, jax.random.key(2), temperature=0.0)
    # the reference recomputes the whole window (no cache) for every new token; positions after the
    # current one hold zeros, which causal masking makes invisible (tested exactly below)
    ref = jnp.zeros((2, 8), jnp.int32).at[:, :2].set(toks[:, :2])
    for t in range(2, 8):
        ref = ref.at[:, t].set(jnp.argmax(full_logits(ref)[:, t - 1], -1).astype(jnp.int32))
    np.testing.assert_array_equal(gen, ref)


def test_seq2seq_cached_greedy_equals_recomputing_and_switch_norm_is_layer_or_rms_norm():
    from dlnotes.nn import layers as L
    x = 3 * jax.random.normal(jax.random.key(0), (3, 5, 16)) + 1
    for rms, ref in ((0.0, L.LayerNorm(16)), (1.0, L.RMSNorm(16))):
        np.testing.assert_allclose(tr.SwitchNorm(16, rms)(x), ref(x), atol=1e-6)
    cfg = _cfg(posenc="sinusoidal", norm="switch", rms=1.0, width=16, num_heads=2)
    s2s = tr.make_seq2seq(cfg, seq.vocab_size(10), 8)
    p, ms = s2s.init(jax.random.key(0))
    batch = seq.reversal(0, 32, (3, 8))
    m = s2s.module(p, ms)
    a = m.greedy(batch["src"], batch["src_mask"], 9, seq.BOS)
    b = m.greedy(batch["src"], batch["src_mask"], 9, seq.BOS, cache=False)
    assert a.shape == (32, 9) and len(np.unique(np.asarray(a))) >= 2      # untrained: not one constant token
    np.testing.assert_array_equal(a, b)


def test_causal_mask_is_exact_in_the_lm_and_the_decoder():
    lm = tr.make_lm(_cfg(), 11)
    p, ms = lm.init(jax.random.key(0))
    a = np.asarray(jax.random.randint(jax.random.key(1), (3, 16), 0, 11))
    b = a.copy()
    b[:, 9:] = (b[:, 9:] + 1) % 11
    la, lb = (np.asarray(lm.apply(p, ms, jnp.asarray(x))[0]) for x in (a, b))
    assert np.max(np.abs(la[:, :9] - lb[:, :9])) == 0.0 and not np.array_equal(la[:, 9:], lb[:, 9:])
    s2s = tr.make_seq2seq(_cfg(), seq.vocab_size(10), 10)
    p, ms = s2s.init(jax.random.key(0))
    batch = seq.reversal(0, 4, (6, 10))
    base = np.asarray(s2s.apply(p, ms, batch)[0])
    changed = np.asarray(batch["tgt_in"]).copy()
    changed[:, 5:] = 3
    out = np.asarray(s2s.apply(p, ms, {**batch, "tgt_in": jnp.asarray(changed)})[0])
    assert np.max(np.abs(out[:, :5] - base[:, :5])) == 0.0
    # source padding is invisible: different tokens at masked source positions change nothing
    src = np.asarray(batch["src"]).copy()
    src[~np.asarray(batch["src_mask"])] = 7
    out = np.asarray(s2s.apply(p, ms, {**batch, "src": jnp.asarray(src)})[0])
    np.testing.assert_allclose(out, base, atol=1e-6)
    assert s2s.module(p, ms).greedy(batch["src"], batch["src_mask"], 11, seq.BOS).shape == (4, 11)


def test_top_k_sampling_and_long_generation():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    draws = jax.vmap(lambda k: tr.sample_logits(k, logits, 1.0, top_k=2))(jax.random.split(jax.random.key(0), 400))
    assert set(np.unique(draws).tolist()) == {0, 1}
    assert int(tr.sample_logits(jax.random.key(0), logits, 0.0)[0]) == 0
    lm = tr.make_lm(_cfg(), 11)
    p, ms = lm.init(jax.random.key(0))
    out = tr.generate_long(lm, p, ms, jnp.zeros((1, 3), jnp.int32), 40, jax.random.key(1), temperature=1.0, top_k=3)
    assert out.shape == (1, 43) and int(out.max()) < 11
    with pytest.raises(Exception):
        tr.generate(lm, p, ms, jnp.zeros((1, 10), jnp.int32), 10, jax.random.key(1))   # beyond the context


def test_char_lm_bpc_figure(tmp_path):
    import math
    import os

    from dlnotes.experiments import base, transformer as tx
    config = base.load_config("char_lm", "tiny")
    val = np.array([4.0, 3.0, 2.5])
    metrics = {"steps": {"loss": np.linspace(3.0, 1.5, 20)}, "evals": {"val_bpc": val, "val_loss": val * math.log(2)}}
    paths = tx.train_figures(config, metrics, str(tmp_path))
    assert paths == [os.path.join(str(tmp_path), "bpc.png")] and os.path.getsize(paths[0]) > 1000
    assert tx.train_figures(base.load_config("transformer", "fast"), metrics, str(tmp_path)) == []
