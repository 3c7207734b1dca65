"""The engine: a whole training run as one ``lax.scan``.

An experiment describes *what* is trained with a :class:`Task`; the engine owns
*how*: batching, the optimizer step, divergence handling, evaluation, chunking
for progress bars and checkpoints. Given a task,

    train = make_train(task)          # train(hp, key) -> (TrainState, metrics)

is a pure function: ``jax.jit(jax.vmap(train))(hps, keys)`` trains a whole grid
of (seed, η, other float hyperparameters) in one compiled call. ``hp`` is the
flat dict of traced float hyperparameters (see ``dlnotes.train.hparams``), so
changing a number never recompiles.

Randomness is a function of (seed key, step) only — ``fold_in(key, step)`` — so
results do not depend on how the run is cut into chunks: a run resumed from a
checkpoint is bit-identical to an uninterrupted one.

Divergence: if a step's loss or new parameters are not finite, the point keeps
its last finite state for the rest of the run, ``diverged`` turns true and
``diverged_at`` records the step. Under ``vmap`` this is per point, so one
diverging point never touches the others.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlnotes.errors import ConfigError, check

Array = jax.Array
Pytree = Any


@dataclasses.dataclass(frozen=True)
class Task:
    """What to train.

    init(key, hp) -> (params, model_state)
    loss(params, model_state, batch, key, hp) -> (scalar, (aux: dict of scalars, new_model_state))
    optimizer(hp) -> optax.GradientTransformation
    evaluate(params, model_state, data, hp) -> dict of arrays (optional; run every ``log_every`` steps and at step 0)
    data: dict of splits; ``data[train_split]`` is a dict of arrays with a shared leading example axis.
    batch_size: None or 0 = full batch (GD); otherwise minibatches drawn by ``sampling``:
      "epoch" (reshuffle every epoch, drop the remainder) or "replacement" (iid indices).
    cpu_compiler_options: XLA options for this task's compiled programs (init, evaluation, chunks) when
      the ``Runner`` compiles them on a CPU, e.g. ``runner.CPU_LOOP_EMITTERS``; ignored on GPU/TPU. A
      task picks them where they were measured to help its model (they change results in the last bits).
    """

    init: Callable
    loss: Callable
    optimizer: Callable
    data: Mapping[str, Mapping[str, Array]]
    num_steps: int
    batch_size: int | None = None
    sampling: str = "epoch"
    log_every: int = 1
    evaluate: Callable | None = None
    train_split: str = "train"
    cpu_compiler_options: Mapping[str, Any] | None = None

    def __post_init__(self):
        check(isinstance(self.num_steps, int) and self.num_steps > 0, "num_steps", "must be a positive int")
        check(isinstance(self.log_every, int) and self.log_every > 0 and self.num_steps % self.log_every == 0,
              "log_every", f"must be a positive divisor of num_steps={self.num_steps}")
        check(self.sampling in ("epoch", "replacement"), "sampling",
              f"must be 'epoch' or 'replacement', got {self.sampling!r}")
        check(self.train_split in self.data, "data", f"has no {self.train_split!r} split")
        n = self.num_examples
        check(n > 0, "data", "the training data are empty")
        check(not self.batch_size or 0 < self.batch_size <= n, "batch_size",
              f"{self.batch_size} is larger than the {n} training examples")

    def check_finite(self):
        """ConfigError('data', ...) if any training array holds NaN or inf."""
        for name, x in self.data[self.train_split].items():
            x = np.asarray(x)
            if np.issubdtype(x.dtype, np.inexact) and not np.all(np.isfinite(x)):
                raise ConfigError("data", f"training array {name!r} contains NaN or inf")

    @property
    def num_examples(self) -> int:
        return int(jax.tree.leaves(self.data[self.train_split])[0].shape[0])


class TrainState(NamedTuple):
    step: Array          # int32 scalar
    params: Pytree
    model_state: Pytree
    opt_state: Pytree
    key: Array           # raw uint32 key data of the run's seed key
    diverged: Array      # bool
    diverged_at: Array   # int32, -1 if never


def _all_finite(tree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(x).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _select(pred, new, old):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


def epoch_permutation(task: Task, key, epoch):
    """The example order of ``epoch`` (a deterministic function of (key, epoch))."""
    return jax.random.permutation(jax.random.fold_in(key, epoch), task.num_examples)


def sample_batch(task: Task, train_data, key, step, perm=None):
    """The minibatch of ``step``: a deterministic function of (key, step).

    "epoch": slice ``step % (n // B)`` of the epoch's permutation ``perm``;
    "replacement": B iid indices drawn with ``fold_in(key, step)``.
    """
    b = task.batch_size
    if not b:
        return train_data
    if task.sampling == "replacement":
        idx = jax.random.randint(jax.random.fold_in(key, step), (b,), 0, task.num_examples)
    else:
        i = step % (task.num_examples // b)
        idx = jax.lax.dynamic_slice_in_dim(perm, i * b, b)
    return jax.tree.map(lambda x: jnp.take(x, idx, axis=0), train_data)


class Engine:
    """Pure building blocks of a run; all functions take ``data`` explicitly.

    init(hp, key, data) -> (TrainState, eval metrics at step 0)
    run(state, hp, data, num_blocks) -> (TrainState, metrics) — ``num_blocks × log_every`` steps
    """

    def __init__(self, task: Task):
        self.task = task

    def init(self, hp, key, data):
        """``(initial TrainState, evaluation at step 0)``."""
        state = self.init_state(hp, key)
        return state, self.evaluate(state, hp, data)

    def init_state(self, hp, key):
        """The initial TrainState of ``hp``/``key`` (raw key data or a typed key)."""
        task = self.task
        key = jnp.asarray(key)
        if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
            key = jax.random.key_data(key)
        k_init, _ = jax.random.split(jax.random.wrap_key_data(key))
        params, model_state = task.init(k_init, hp)
        opt_state = task.optimizer(hp).init(params)
        return TrainState(jnp.zeros((), jnp.int32), params, model_state, opt_state, key,
                          jnp.array(False), jnp.array(-1, jnp.int32))

    def evaluate(self, state, hp, data):
        """``task.evaluate`` of the state's parameters ({} without one)."""
        if self.task.evaluate is None:
            return {}
        return dict(self.task.evaluate(state.params, state.model_state, data, hp))

    def _keys(self, state):
        base = jax.random.wrap_key_data(state.key)
        _, k_run = jax.random.split(base)
        return jax.random.split(k_run)  # (data key, loss key)

    def step(self, state: TrainState, hp, data, t, perm=None):
        """One optimizer step. ``t`` (= state.step) is passed unbatched so that
        under ``vmap`` the per-epoch reshuffle stays a real branch."""
        task = self.task
        k_data, k_loss = self._keys(state)
        batch = sample_batch(task, data[task.train_split], k_data, t, perm)
        k_loss = jax.random.fold_in(k_loss, t)
        grad_fn = jax.value_and_grad(task.loss, has_aux=True)
        (loss, (aux, new_ms)), grads = grad_fn(state.params, state.model_state, batch, k_loss, hp)
        tx = task.optimizer(hp)
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & _all_finite(new_params) & ~state.diverged
        params, model_state, opt_state = _select(
            ok, (new_params, new_ms, new_opt), (state.params, state.model_state, state.opt_state))
        newly = ~ok & ~state.diverged
        new_state = TrainState(state.step + 1, params, model_state, opt_state, state.key,
                               state.diverged | newly,
                               jnp.where(newly, state.step, state.diverged_at))
        nan = jnp.asarray(jnp.nan, loss.dtype)
        metrics = {"loss": jnp.where(state.diverged | newly, nan, loss)}
        metrics.update({k: jnp.where(state.diverged | newly, jnp.nan, v) for k, v in aux.items()})
        return new_state, metrics

    def run(self, state, hp, data, num_blocks: int, start=0, evaluate: bool = True):
        """``num_blocks × log_every`` steps from step ``start`` (= state.step, unbatched), evaluating
        after each block (metrics["evals"] of leading size ``num_blocks``) unless ``evaluate`` is False."""
        task = self.task
        k = task.log_every
        epochs = bool(task.batch_size) and task.sampling == "epoch"
        per_epoch = task.num_examples // task.batch_size if epochs else 1
        k_data = self._keys(state)[0]

        def one(carry, t):
            s, perm = carry
            if epochs:  # reshuffle once per epoch (and at the chunk's first step), not once per step;
                # one call site, so the shuffle (a sort) is compiled once per chunk
                perm = jax.lax.cond((t % per_epoch == 0) | (t == start),
                                    lambda: epoch_permutation(task, k_data, t // per_epoch), lambda: perm)
            s, m = self.step(s, hp, data, t, perm)
            return (s, perm), m

        def block(carry, ts):
            carry, m = jax.lax.scan(one, carry, ts)
            return carry, (m, self.evaluate(carry[0], hp, data) if evaluate else {})

        perm0 = jnp.zeros((task.num_examples,) if epochs else (), jnp.int32)   # replaced at the first step
        ts = (start + jnp.arange(num_blocks * k, dtype=jnp.int32)).reshape(num_blocks, k)
        (state, _), (steps, evals) = jax.lax.scan(block, (state, perm0), ts)
        steps = jax.tree.map(lambda x: x.reshape((num_blocks * k,) + x.shape[2:]), steps)
        return state, {"steps": steps, "evals": evals}


def make_train(task: Task):
    """``train(hp, key) -> (TrainState, metrics)``: the whole run as one scan.

    metrics = {"steps": {name: (T,)}, "evals": {name: (T/log_every + 1,)}} (eval row 0 = init).
    """
    engine = Engine(task)

    def train(hp, key):
        state, ev0 = engine.init(hp, key, task.data)
        state, m = engine.run(state, hp, task.data, task.num_steps // task.log_every)
        m["evals"] = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), ev0, m["evals"])
        return state, m

    return train


def concat_metrics(chunks: list[dict], axis: int = 0) -> dict:
    """Join per-chunk metrics along the step axis (numpy)."""
    return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs], axis=axis), *chunks)
