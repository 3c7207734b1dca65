"""k-means by gradient descent reaches Lloyd's inertia on digits (claim C48).

    python scripts/reproduce.py --only=C48 --workdir=/tmp/kmeans
    python scripts/train.py --config=configs/kmeans.py:fast --workdir=/tmp/kmeans1
    python scripts/train.py --config=configs/kmeans.py:fast --workdir=/tmp/kmeans2 --config.kmeans.soft=True
    python scripts/sweep.py --config=configs/kmeans.py:fast --workdir=/tmp/kmeanss --sweep="seed=0:10"

Data: all 1797 digits x/16 as 64-vectors. The parameters are the k centres, initialized by
k-means++ from the run's seed, trained by full-batch GD (``optimizer``) on the mean inertia
(hard assignments) or, with ``kmeans.soft``, on the soft loss −T·mean log Σ exp(−‖x − c‖²/T)
with T annealed geometrically from ``kmeans.t_start`` to ``kmeans.t_end`` (traced). Lloyd's
reference: scikit-learn's KMeans(n_init=``kmeans.n_init``) and ours (``dlnotes.unsupervised.kmeans``).
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):  # fast and full are the same protocol here (it is cheap)
    c = ml_collections.ConfigDict()
    c.experiment = "kmeans"
    c.seed = 0
    c.num_steps = 500
    c.log_every = 10
    c.batch_size = 0
    c.sampling = "epoch"
    c.data = ml_collections.ConfigDict(dict(seed=0))
    c.kmeans = ml_collections.ConfigDict(dict(k=10, soft=False, t_start=1.0, t_end=0.01, n_init=10, max_iter=300))
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "sgd"
    # GD on the mean inertia: ∇_{c_j} = 2(n_j/n)(c_j − m_j), so η = n/(2 n_j) ≈ k/2 would be Lloyd's step
    c.optimizer.learning_rate = 2.5
    # 10 GD inits in both profiles (one compiled grid); fast: the same protocol, it is cheap
    c.check = ml_collections.ConfigDict(dict(num_inits=10))
    return c
