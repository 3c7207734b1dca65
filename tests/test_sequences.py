"""dlnotes.data.sequences: the generated tasks against a plain-Python reading of their rules."""
import jax
import numpy as np
import pytest

from dlnotes.data import sequences as seq


def _check_layout(b, n, max_len):
    for k in ("src", "src_mask", "tgt", "align"):
        assert b[k].shape == (n, max_len), k
    for k in ("tgt_in", "tgt_out", "tgt_mask"):
        assert b[k].shape == (n, max_len + 1), k
    src, tgt = np.asarray(b["src"]), np.asarray(b["tgt"])
    for i in range(n):
        L = int(b["src_len"][i])
        assert int(b["tgt_len"][i]) == L
        assert (src[i, :L] >= seq.NUM_SPECIAL).all() and (src[i, L:] == seq.PAD).all()
        assert np.asarray(b["src_mask"][i]).tolist() == [True] * L + [False] * (max_len - L)
        assert np.asarray(b["tgt_in"][i]).tolist() == [seq.BOS] + tgt[i].tolist()
        assert np.asarray(b["tgt_out"][i]).tolist() == tgt[i, :L].tolist() + [seq.EOS] + [seq.PAD] * (max_len - L)
        assert np.asarray(b["tgt_mask"][i]).sum() == L + 1


def test_copy_through_map():
    b = seq.copy_through_map(0, 64, (5, 30), vocab=10)
    _check_layout(b, 64, 30)
    table = np.asarray(seq.token_map(10))
    assert sorted(table[3:]) == list(range(3, 13)) and (table[:3] == [0, 1, 2]).all()
    src, tgt = np.asarray(b["src"]), np.asarray(b["tgt"])
    lens = np.asarray(b["src_len"])
    assert lens.min() >= 5 and lens.max() <= 30 and len(set(lens)) > 5
    for i in range(64):
        L = lens[i]
        assert (tgt[i, :L] == table[src[i, :L]]).all()


def test_reversal():
    b = seq.reversal(1, 16, 10)
    _check_layout(b, 16, 10)
    src, tgt = np.asarray(b["src"]), np.asarray(b["tgt"])
    assert (tgt == src[:, ::-1]).all()
    b = seq.reversal(2, 16, (3, 9))
    src, tgt = np.asarray(b["src"]), np.asarray(b["tgt"])
    for i in range(16):
        L = int(b["src_len"][i])
        assert (tgt[i, :L] == src[i, :L][::-1]).all()


def test_translation_swaps_adjective_noun_pairs():
    n, hi = 200, 16
    b = seq.translation(3, n, (4, hi))
    _check_layout(b, n, hi)
    v = {k: set(np.asarray(x).tolist()) for k, x in seq.translation_vocab().items()}
    src, tgt, align = (np.asarray(b[k]) for k in ("src", "tgt", "align"))
    swaps = 0
    for i in range(n):
        L = int(b["src_len"][i])
        words, out, t = src[i, :L].tolist(), [], 0
        while t < L:   # the rule, read left to right
            if t + 1 < L and words[t] in v["adj"] and words[t + 1] in v["noun"]:
                out += [words[t + 1], words[t]]
                t += 2
                swaps += 1
            else:
                out.append(words[t])
                t += 1
        assert [w for w in out] == [src[i, a] for a in align[i, :L]]
        # the dictionary preserves word classes
        for s_word, t_word in zip(out, tgt[i, :L]):
            assert any(s_word in v[c] and t_word in v[c] for c in v)
    assert swaps > n // 2


def test_decoder_only_packing():
    b = seq.reversal(4, 8, (2, 6))
    d = seq.decoder_only(b)
    for i in range(8):
        L = int(b["src_len"][i])
        toks = np.asarray(d["tokens"][i])
        expect = (np.asarray(b["src"][i, :L]).tolist() + [seq.BOS] + np.asarray(b["tgt"][i, :L]).tolist()
                  + [seq.EOS])
        assert toks[:2 * L + 2].tolist() == expect and (toks[2 * L + 2:] == seq.PAD).all()
        tgt_part = np.asarray(d["targets"][i])[np.asarray(d["loss_mask"][i])]
        assert tgt_part.tolist() == np.asarray(b["tgt"][i, :L]).tolist() + [seq.EOS]


def test_recall_first_token():
    b = seq.recall_first_token(5, 1000, 30, vocab=8)
    x = np.asarray(b["x"])
    assert x.shape == (1000, 31) and x.min() == 0 and x.max() == 7
    assert (np.asarray(b["y"]) == x[:, 0]).all()
    # the first token's class is uniform: chance is 1/8
    assert np.abs(np.bincount(x[:, 0], minlength=8) / 1000 - 1 / 8).max() < 0.05


def test_by_length_pads_every_field():
    b = seq.by_length(0, seq.copy_through_map, 3, [2, 5, 4])
    assert b["src"].shape == (9, 5) and b["tgt_out"].shape == (9, 6)
    assert np.asarray(b["src_len"]).tolist() == [2] * 3 + [5] * 3 + [4] * 3
    assert (np.asarray(b["src_mask"]).sum(1) == np.asarray(b["src_len"])).all()
    assert (np.asarray(b["tgt_mask"]).sum(1) == np.asarray(b["src_len"]) + 1).all()
    assert (np.asarray(b["align"])[0, 2:] == -1).all()
    out = np.asarray(b["tgt_out"])
    assert (out[np.arange(9), np.asarray(b["src_len"])] == seq.EOS).all()
    table = np.asarray(seq.token_map(10))
    src, tgt = np.asarray(b["src"]), np.asarray(b["tgt"])
    assert all((tgt[i, :L] == table[src[i, :L]]).all() for i, L in enumerate(np.asarray(b["src_len"])))
    # every pair follows its task's rule at its own length, not the padded width (reversal)
    r = seq.by_length(1, seq.reversal, 2, [3, 6])
    src, tgt = np.asarray(r["src"]), np.asarray(r["tgt"])
    for i, L in enumerate([3, 3, 6, 6]):
        assert (tgt[i, :L] == src[i, :L][::-1]).all() and (src[i, L:] == seq.PAD).all()


def test_given_lengths_reproduce_a_draw():
    d = seq.copy_through_map(7, 20, (2, 9))
    lens = np.asarray(d["src_len"])
    assert lens.max() == 9                  # same width, so the same token draws
    g = seq.copy_through_map(7, 20, src_len=lens)
    for k in d:
        np.testing.assert_array_equal(np.asarray(g[k]), np.asarray(d[k]), err_msg=k)
    with pytest.raises(ValueError, match="src_len"):
        seq.copy_through_map(7, 20, src_len=lens[:5])
