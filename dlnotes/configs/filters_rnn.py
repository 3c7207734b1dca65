"""FIR = causal convolution, IIR = one-state linear RNN, and IIR system identification through the scan (C38).

    python scripts/reproduce.py --only=C38 --workdir=/tmp/filters
    python scripts/train.py --config=configs/filters_rnn.py:fast --workdir=/tmp/filters1
    python scripts/train.py --config=configs/filters_rnn.py:fast --workdir=/tmp/filters2 --config.model.order=1
    python scripts/sweep.py --config=configs/filters_rnn.py:fast --workdir=/tmp/filterss --sweep="noise=0,0.05;seed=0:2"

Identification: ``data.n_seq`` input sequences x ~ N(0, 1) of length ``data.length`` through the true
filter of ``model.order`` (``data.first`` / ``data.second``: feedback a, taps b); the model is an
``IIRFilter`` of the same order (coefficients start at ``model.init_scale``·N(0, 1)), trained full
batch on ½·mean((ŷ − y − noise·ε)²) with ε a fixed standard normal draw (``noise`` is traced, so
noise levels and seeds share one compile). Runs in float64.
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "filters_rnn"
    c.seed = 0
    c.batch_size = 0                 # full batch
    c.sampling = "epoch"
    c.num_steps = 2000 if fast else 4000
    c.log_every = 100
    c.noise = 0.0                    # output noise std (traced)
    c.data = ml_collections.ConfigDict(dict(
        seed=0, n_seq=16, length=128,
        first=dict(a=[0.8], b=[0.5]),
        second=dict(a=[1.2, -0.5], b=[1.0, 0.4]),      # poles 0.6 ± 0.37i (|p| = 0.71)
        fir_taps=5))
    c.model = ml_collections.ConfigDict(dict(order=2, init_scale=0.1))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 0.02
    c.optimizer.schedule.name = "cosine"
    c.check = ml_collections.ConfigDict(dict(noises=[0.0, 0.05], num_seeds=2 if fast else 5))
    return c
