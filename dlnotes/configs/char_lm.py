"""A character language model you can train and sample from (nanoGPT's small CPU configuration).

    python scripts/train.py --config=configs/char_lm.py --workdir=/tmp/charlm
    python scripts/sample.py --workdir=/tmp/charlm --prompt="Return the " --temperature=0.8 --top_k=10
    python scripts/train.py --config=configs/char_lm.py --workdir=/tmp/mylm --config.data.path=my_text.txt
    python scripts/train.py --config=configs/char_lm.py:fast --workdir=/tmp/charlm_fast        # ~1 minute

Corpus: by default the docstrings of a fixed list of standard-library modules, gathered at run time
(``dlnotes.data.text.stdlib_corpus``: nothing downloaded); ``data.path`` = your own UTF-8 text file.
Every 10th block of 4,096 characters is held out (``data.val_fraction`` = 0.1); validation loss is
logged in bits per character (``val_bpc`` in metrics.jsonl) and plotted with the training loss in
bits in ``bpc.png`` (``dlnotes.experiments.transformer.train_figures``). Model
(``dlnotes.models.transformer.TransformerLM``): 4 pre-norm blocks, 4 heads, width 128, context 64,
learned positions, tied embeddings, no dropout; AdamW 1e-3 (β₂ 0.99, weight decay 0.1), 100 warm-up
steps then cosine to 1e-4; batch 12; 2000 steps.
This config trains the ``transformer`` experiment's ``char_lm`` task (it checks no claim).
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    tiny = arg == "tiny"        # for the end-to-end test: seconds of training
    c = ml_collections.ConfigDict()
    c.experiment = "transformer"
    c.task = "char_lm"
    c.seed = 0
    c.num_steps = 20 if tiny else (300 if fast else 2000)
    c.log_every = 10 if tiny else (50 if fast else 100)
    c.batch_size = 12
    c.sampling = "replacement"
    c.data = ml_collections.ConfigDict(dict(path="", val_fraction=0.1, stride=1, eval_windows=16 if tiny else 128))
    c.model = ml_collections.ConfigDict(dict(
        width=32 if tiny else 128, num_heads=4, num_layers=1 if tiny else 4, context=32 if tiny else 64,
        mlp_ratio=4, norm="layer", posenc="learned", use_bias=False))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    c.optimizer.b2 = 0.99
    c.optimizer.weight_decay = 0.1
    c.optimizer.schedule.name = "warmup_cosine"
    c.optimizer.schedule.warmup_steps = 2 if tiny else (20 if fast else 100)
    c.optimizer.schedule.alpha = 0.1
    return c
