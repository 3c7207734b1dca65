"""Skip-gram with negative sampling on a generated corpus with interchangeable word classes (claim C46).

    python scripts/reproduce.py --only=C46 --workdir=/tmp/w2v
    python scripts/train.py --config=configs/word2vec.py:fast --workdir=/tmp/w2v1
    python scripts/train.py --config=configs/word2vec.py --workdir=/tmp/w2v2 --config.data.path=my_text.txt
    python scripts/sweep.py --config=configs/word2vec.py:fast --workdir=/tmp/w2vs --sweep="seed=0:4"

Corpus (``dlnotes.data.text.class_corpus``): 60,000 sentences, 16 classes × 8 words; a sentence is a walk of 6 distinct
classes over a fixed random successor graph (3 successors per class), each class emitting one of its
words uniformly — words of one class share all contexts and never co-occur. ``data.path`` = a UTF-8
text file instead (lower-cased words, one sentence per line, words seen < ``data.min_count`` times dropped).
Pairs: window 2 (reduced at random as in word2vec), subsampling t = 1e-3; 5 negatives from unigram^0.75.
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "word2vec"
    c.seed = 0
    c.num_steps = 2000 if fast else 3000
    c.log_every = 250 if fast else 500
    c.batch_size = 1024
    c.sampling = "replacement"
    c.data = ml_collections.ConfigDict(dict(
        path="", seed=0, num_sentences=60000, num_classes=16, words_per_class=8, sentence_len=6, branching=3,
        window=2, subsample=1e-3, noise_power=0.75, min_count=5, pair_seed=1))
    c.model = ml_collections.ConfigDict(dict(dim=16, negatives=5))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-2
    c.check = ml_collections.ConfigDict(dict(num_seeds=3 if fast else 5))
    return c
