"""dlnotes.models.seq2seq: greedy decoding in lax.scan vs step by step, masks, attention math."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dlnotes.data import sequences as seq
from dlnotes.models.seq2seq import attend, make_seq2seq, sequence_cross_entropy


def _model(attention, bidirectional=False):
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(cell="gru", embed=8, hidden=16, attention=attention, vocab=10,
                                             bidirectional=bidirectional))
    f = make_seq2seq(c)
    params, ms = f.init(jax.random.key(0))
    return f, params, ms


@pytest.mark.parametrize("attention,bidirectional", [("none", False), ("additive", False), ("dot", True)])
def test_greedy_scan_equals_step_by_step_decoding(attention, bidirectional):
    f, params, ms = _model(attention, bidirectional)
    b = seq.copy_through_map(1, 5, (3, 7))
    out, _ = f.apply(params, ms, b, mode="greedy")
    m = f.module(params, ms)
    carry, memory = m.encode(b["src"], b["src_mask"])
    token = jnp.full((5,), seq.BOS, jnp.int32)
    tokens, logits = [], []
    for _ in range(b["tgt_in"].shape[1]):          # plain Python decoding, one step at a time
        carry, lg, _ = m.decode_step(carry, token, memory)
        token = jnp.argmax(lg, -1).astype(jnp.int32)
        tokens.append(token)
        logits.append(lg)
    np.testing.assert_array_equal(np.asarray(out["tokens"]), np.stack(tokens, 1))
    np.testing.assert_allclose(np.asarray(out["logits"]), np.stack(logits, 1), atol=1e-5)
    # teacher forcing on the greedy output reproduces the greedy logits
    tf_in = jnp.concatenate([jnp.full((5, 1), seq.BOS, jnp.int32), out["tokens"][:, :-1]], axis=1)
    tf, _ = f.apply(params, ms, dict(b, tgt_in=tf_in))
    np.testing.assert_allclose(np.asarray(tf["logits"]), np.asarray(out["logits"]), atol=1e-5)


@pytest.mark.parametrize("attention,bidirectional", [("none", False), ("additive", True)])
def test_source_padding_changes_nothing(attention, bidirectional):
    f, params, ms = _model(attention, bidirectional)
    b = seq.copy_through_map(2, 6, (2, 9))
    src2 = jnp.where(b["src_mask"], b["src"], 5)              # garbage tokens in the padding
    o1, _ = f.apply(params, ms, b)
    o2, _ = f.apply(params, ms, dict(b, src=src2))
    np.testing.assert_allclose(np.asarray(o1["logits"]), np.asarray(o2["logits"]), atol=1e-6)
    if attention != "none":
        att = np.asarray(o1["attention"])
        assert (att[~np.broadcast_to(np.asarray(b["src_mask"])[:, None, :], att.shape)] == 0).all()
        np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-5)


def test_attend_and_masked_cross_entropy():
    rng = np.random.default_rng(0)
    scores, values = rng.normal(size=(2, 4)), rng.normal(size=(2, 4, 3))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    w, c = attend(jnp.asarray(scores), jnp.asarray(values), jnp.asarray(mask))
    e = np.where(mask, np.exp(scores), 0)
    ref_w = e / e.sum(1, keepdims=True)
    np.testing.assert_allclose(np.asarray(w), ref_w, atol=1e-6)
    np.testing.assert_allclose(np.asarray(c), np.einsum("ns,nsh->nh", ref_w, values), atol=1e-5)
    logits = rng.normal(size=(2, 3, 5))
    tgt = rng.integers(0, 5, size=(2, 3))
    m = np.array([[1, 1, 0], [1, 0, 0]], bool)
    lp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    ref = -np.mean([lp[n, t, tgt[n, t]] for n in range(2) for t in range(3) if m[n, t]])
    np.testing.assert_allclose(float(sequence_cross_entropy(jnp.asarray(logits), jnp.asarray(tgt),
                                                            jnp.asarray(m))), ref, rtol=1e-5)


def test_source_eos_is_appended_after_the_last_valid_token():
    from dlnotes.models.seq2seq import with_source_eos
    b = seq.copy_through_map(3, 7, (2, 6))
    src, mask = with_source_eos(b["src"], b["src_mask"])
    src, mask, L = np.asarray(src), np.asarray(mask), np.asarray(b["src_len"])
    assert src.shape == (7, 7) and mask.shape == (7, 7)
    for i in range(7):
        np.testing.assert_array_equal(src[i, :L[i]], np.asarray(b["src"])[i, :L[i]])
        assert src[i, L[i]] == seq.EOS and (src[i, L[i] + 1:] == seq.PAD).all()
        assert mask[i, :L[i] + 1].all() and not mask[i, L[i] + 1:].any()


@pytest.mark.parametrize("attention", ["none", "dot"])
def test_source_eos_model_ignores_padding_and_attends_to_the_eos_column(attention):
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(cell="gru", embed=8, hidden=16, attention=attention, vocab=10,
                                             bidirectional=False, source_eos=True))
    f = make_seq2seq(c)
    params, ms = f.init(jax.random.key(0))
    b = seq.copy_through_map(2, 6, (2, 9))
    o1, _ = f.apply(params, ms, b)
    o2, _ = f.apply(params, ms, dict(b, src=jnp.where(b["src_mask"], b["src"], 5)))
    np.testing.assert_allclose(np.asarray(o1["logits"]), np.asarray(o2["logits"]), atol=1e-6)
    if attention != "none":
        att = np.asarray(o1["attention"])                 # (N, T+1, S+1): the EOS column is attended
        assert att.shape[-1] == b["src"].shape[1] + 1
        L = np.asarray(b["src_len"])
        np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-5)
        assert all((att[i, :, L[i] + 1:] == 0).all() and (att[i, :, L[i]] > 0).all() for i in range(6))
    g, _ = f.apply(params, ms, b, mode="greedy")
    assert g["tokens"].shape == b["tgt_out"].shape
