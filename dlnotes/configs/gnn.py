"""Graph nets: message passing with every aggregator, batching and padding, GCN vs MLP on the karate club,
pooling by spectral clustering (claims C34–C37).

    python scripts/reproduce.py --only=C34,C35,C36,C37 --workdir=/tmp/gnn
    python scripts/train.py --config=configs/gnn.py:fast --workdir=/tmp/gnn1
    python scripts/train.py --config=configs/gnn.py:fast --workdir=/tmp/gnn2 --config.model.aggregator=max
    python scripts/train.py --config=configs/gnn.py:fast --workdir=/tmp/gnn3 --config.task=karate \\
        --config.model.name=gcn --config.model.level=node --config.model.num_classes=2 --config.model.hidden="(16,)"
    python scripts/sweep.py --config=configs/gnn.py:fast --workdir=/tmp/gnns --sweep="seed=0:4;model.dropout=0,0.2"
    python scripts/sweep.py --config=configs/gnn.py:fast --workdir=/tmp/gnna --config.model.aggregator=any \
        --sweep="model.aggregator_index=0:7;seed=0:2"        # every aggregator × 2 seeds, one compile

``task`` picks what ``build_task`` trains: "graphs" (graph classification of generated graphs, or of
``data.npz`` if set: keys in ``dlnotes.data.graphs``) or "karate" (node classification of the karate
club with ``data.labelled_per_class`` labelled nodes per class, drawn from each run's seed).
Steps: ``epochs`` passes over the training batches (graphs) or ``karate_steps`` full-batch steps;
both are turned into ``num_steps`` where the task is built, so overrides take effect.
"""
import ml_collections

from dlnotes.optim.factory import default_optimizer_config


def get_config(arg: str = "full"):
    fast = arg == "fast"
    c = ml_collections.ConfigDict()
    c.experiment = "gnn"
    c.seed = 0
    c.task = "graphs"                  # "graphs" | "karate"
    c.epochs = 20                      # graphs: passes over the training batches
    c.karate_steps = 200               # karate: full-batch steps
    c.log_every = 0                    # 0 = evaluate once per epoch (graphs) / every 50 steps (karate)
    c.num_steps = 0                    # derived in build_task from epochs / karate_steps (0 = derive)
    c.batch_size = 1                   # one padded batch of graphs per step
    c.sampling = "epoch"
    c.data = ml_collections.ConfigDict(dict(
        task="distance", num_train=512 if fast else 1024, num_test=256 if fast else 512, graphs_per_batch=32, min_nodes=10, max_nodes=40,
        avg_degree=2.0, num_classes=3, seed=0, npz="",
        features="onehot", labelled_per_class=2,                        # karate
        # C37's signals: SBM with `blocks` blocks of `block` nodes; class = the block carrying a bump
        sbm=dict(block=16, blocks=4, p_in=0.5, p_out=0.03, graph_seed=0, num_train=400, num_test=1000,
                 amplitude=1.0, noise=2.0, signal_seed=1)))
    c.model = ml_collections.ConfigDict(dict(
        name="mpnn", hidden=(32,), num_layers=3, aggregator="sum", similarity="none", norm="layer", groups=4,
        residual=True, readout="sum", level="graph", num_classes=3, bn_momentum=0.9, dropout=0.0,
        aggregator_index=0.0))          # aggregator="any": index into AGGREGATORS, traced (sweepable)
    c.optimizer = default_optimizer_config()
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 3e-3
    # C34: every aggregator, node permutation + edge order; float32 tolerances of CLAIMS.md
    c.c34 = ml_collections.ConfigDict(dict(num_graphs=4, min_nodes=6, max_nodes=14, features=8,
                                           atol_node=1e-5, atol_graph=5e-5))
    # C35: batched and padded vs per graph; a stream of differently sized batches for the compile count
    c.c35 = ml_collections.ConfigDict(dict(num_graphs=4, atol=1e-5, stream_batches=40 if fast else 100,
                                           stream_min_graphs=24, stream_max_graphs=40))
    # C36: Kipf's GCN (16 hidden, dropout 0.5, Adam 0.01, weight decay 5e-4) vs a per-node MLP
    c.c36 = ml_collections.ConfigDict(dict(num_splits=10, hidden=16, dropout=0.5, learning_rate=0.01,
                                           weight_decay=5e-4, steps=200, min_gcn=0.85, min_gap=0.25))
    # C37: a linear softmax classifier (full batch, Adam) on the standardized full / pooled signals
    c.c37 = ml_collections.ConfigDict(dict(steps=300, learning_rate=0.05, num_seeds=3 if fast else 5,
                                           full_margin=0.02, random_margin=0.25))
    # accuracy by aggregator on the generated task (a figure; not a claim threshold)
    c.aggregators = ml_collections.ConfigDict(dict(num_seeds=1 if fast else 3, epochs=15 if fast else 30))
    return c
