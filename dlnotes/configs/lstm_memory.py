"""Gradients through time, recall over long lags, layer norm inside the cell (claims C39, C40).

    python scripts/reproduce.py --only=C39,C40 --workdir=/tmp/lstm
    python scripts/train.py --config=configs/lstm_memory.py:fast --workdir=/tmp/lstm1
    python scripts/train.py --config=configs/lstm_memory.py:fast --workdir=/tmp/lstm2 --config.model.cell=rnn
    python scripts/sweep.py --config=configs/lstm_memory.py:fast --workdir=/tmp/lstms \
        --sweep="optimizer.learning_rate=1e-3:1:7:log;seed=0:3"

What ``build_task`` trains: recall of the first token after ``data.lag`` distractors (vocab
``data.vocab``, ``data.n_train`` training sequences sampled with replacement, ``data.n_test`` test
sequences) by a ``RecurrentClassifier`` (``model.cell`` rnn|lstm|gru, ``model.activation``,
``model.ln`` = layer norm on the pre-activations, ``model.radius`` = the vanilla cell's initial
recurrent spectral radius, ``model.forget_bias``). ``run`` varies cells, lags and learning rates as
CLAIMS.md's C39/C40 protocols say (``c39``, ``c40`` below).
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "lstm_memory"
    c.seed = 0
    c.batch_size = 64
    c.sampling = "replacement"
    c.num_steps = 1500
    c.log_every = 100
    c.data = ml_collections.ConfigDict(dict(seed=0, test_seed=1, lag=30, vocab=8, n_train=8192, n_test=1024))
    c.model = ml_collections.ConfigDict(dict(cell="lstm", hidden=64, activation="tanh", ln=False, radius=0.6,
                                             forget_bias=2.0))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 3e-3
    c.optimizer.clip_norm = 1.0
    c.c39 = ml_collections.ConfigDict(dict(
        lags=[30] if fast else [30, 50],
        num_steps=800 if fast else 1500,
        num_seeds=2 if fast else 5,
        # ‖∂h_T/∂h_{T−k}‖ at initialization (float64, batch 1, inputs x_t ~ N(0, I_8))
        jac_length=100, jac_hidden=64, jac_seeds=2 if fast else 3, jac_fit_from=10,
        linear_radii=[0.8, 0.95, 1.05, 1.2], tanh_radii=[0.6, 1.0, 1.1, 3.0]))
    c.c40 = ml_collections.ConfigDict(dict(
        lag=10,
        num_steps=600 if fast else 1200,
        num_seeds=2 if fast else 5,
        log_every=50,
        # tanh: plain vs LN, one vmapped learning-rate × seed grid per cell type (no clipping)
        lrs=[0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0],
        lr_steps=300,
        lr_seeds=3 if fast else 5))
    return c
