"""dlnotes.data.text: the corpus loaders' refusals, the vocabulary, windows, word2vec's corpus and pairs."""
import numpy as np
import pytest

from dlnotes.data import text
from dlnotes.errors import ConfigError


def test_stdlib_corpus_is_deterministic_and_large():
    a, b = text.stdlib_corpus(), text.stdlib_corpus()
    assert a == b and len(a) > 200_000
    vocab = text.CharVocab.from_text(a)
    assert 60 <= vocab.size <= 200
    s = "Return the value."
    assert vocab.decode(vocab.encode(s)) == s


@pytest.mark.parametrize("content, message", [(None, "no such file"), (b"", "empty"), (b"  \n\t\n", "empty"),
                                              (b"caf\xe9 latin-1", "not UTF-8")])
def test_user_file_refusals_are_one_line(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        text.load_corpus(str(path))
    assert e.value.key == "data.path" and message in e.value.message and "\n" not in str(e.value)


def test_user_file_and_windows(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello wörld\n", encoding="utf-8")
    t = text.load_corpus(str(path))
    v = text.CharVocab.from_text(t)
    ids = v.encode(t)
    w = text.char_windows(ids, 4, stride=2)
    assert w.shape == ((len(ids) - 5) // 2 + 1, 5)
    assert v.decode(w[1]) == t[2:7]
    with pytest.raises(ConfigError):
        v.encode("hello?")           # '?' is not in the vocabulary
    with pytest.raises(ConfigError):
        text.char_windows(ids, 100)


def test_class_corpus_classes_never_cooccur():
    c = text.class_corpus(0, 500, num_classes=8, words_per_class=4, sentence_len=5, branching=3)
    s = c["sentences"]
    assert s.shape == (500, 5)
    cls = c["word_class"][s]
    assert all(len(set(row)) == 5 for row in cls)          # a class appears at most once per sentence
    for row in cls:                                          # consecutive classes follow the successor graph
        assert all(b in c["successors"][a] for a, b in zip(row, row[1:]))


def test_skipgram_pairs_window_and_subsampling():
    sents = [np.array([0, 1, 2, 3, 4]), np.array([5, 6])]
    p = text.skipgram_pairs(0, sents, 7, window=2, subsample=0.0)
    pairs = set(zip(p["center"].tolist(), p["context"].tolist()))
    assert (4, 5) not in pairs and (5, 4) not in pairs          # no pair crosses sentences
    assert all(abs(a - b) <= 2 for a, b in pairs if a < 5 and b < 5)
    assert (5, 6) in pairs and (6, 5) in pairs and (0, 1) in pairs
    counts = np.array([100_000, 10, 10, 10])
    keep = text.keep_probability(counts.astype(float), 1e-3)
    assert keep[0] < keep[1] == 1.0
    q = text.noise_distribution(np.array([1, 16]), 0.75)
    np.testing.assert_allclose(q, np.array([1, 8]) / 9)


def test_interleaved_train_val_split():
    ids = np.arange(100_000)
    tr, va = text.train_val_split(ids, 0.1)
    assert len(tr) + len(va) == len(ids) and len(va) == 10_000
    assert set(tr.tolist()).isdisjoint(va.tolist())
    assert va.min() < 25_000 and va.max() > 90_000        # held-out blocks from the whole text
    tr, va = text.train_val_split(np.arange(2_000), 0.1)   # a short text still gets a validation split
    assert len(va) >= 100
