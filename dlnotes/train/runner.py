"""Driver: runs an :class:`~dlnotes.train.loop.Engine` in compiled chunks.

Compiled calls per chunk of ``chunk_steps`` steps (a multiple of
``log_every``; see below for the evaluation); a tqdm bar advances per chunk and a checkpoint is written
between chunks, so the per-step cost is the scan's, not Python's. A grid of
points (leading axis G on ``hp`` and ``keys``) runs as ``vmap`` — or, with
``map_batch_size``, as ``lax.map`` over vmapped blocks of that size, which is
faster on CPUs where a huge vmap gains nothing.

On CPU, a grid trained full-batch (no ``batch_size``) sees its training split as one batched copy per point
(``Runner.widens``: a broadcast inside the compiled chunk, while the copies total at most
``WIDEN_MAX_BYTES``), not one shared array. Shared, the vmapped model's dots with the data as an operand
(xᵀ·δ for a first layer's weights) are merged by XLA into one large matmul over all points, for which it
transposes the per-point activations in memory each step; batched, each point keeps its own small matmul.
Measured 2026-12-01 on this 2-core CPU, idle, interleaved: the sweep benchmark's 64-point grid (1→64→1
MLP, 256 points, 2000 steps) 1.04 → 0.74 s in one process, 0.64 → 0.36 s in two. The last bits move (the
dots sum in another order: final parameters within ~2e-4 relative after 2000 steps, as far from the
single runs as before). Minibatch grids already draw a batch per point and are unchanged.

In a grid, a hyperparameter with the same value at every point (the ones not
swept) enters unbatched: the compiled code sees a scalar, so a ``lax.cond`` on it
stays a branch (e.g. dropout at rate 0 draws no mask) instead of becoming a
select that runs both sides. Which hyperparameters vary is part of the program
(a sweep over another key compiles once more); their values never are.

Evaluation (``task.evaluate``, at step 0 and after every block of ``log_every`` steps) is its own compiled
function, shared by step 0 and every block, when a chunk holds at most ``EVAL_APART_MAX_BLOCKS`` blocks:
the chunk then trains one block per call and the evaluation follows it. So the evaluation is compiled once,
not into both the init and the chunk: measured 2026-12-01 on this 2-core CPU, 3 alternating fresh processes
each way, the digits CNN's first run (600 steps, one block) went from 4.5–5.3 s to 3.5–4.0 s, the same
numbers bit for bit (``benchmarks/compile.py``: 1.11–1.50× on 5 experiments' first runs). With
more blocks per chunk (a small ``log_every``, e.g. 1) the evaluation runs inside the chunk's scan, so that
thousands of blocks do not cost two dispatches each (apart costs ~210 µs more per block here: ≤ ~13 ms a
run at 64 blocks, against 0.5–1 s of compile saved).

``library_dots=True`` (opt-in) compiles a grid's dots on CPU through XLA's YNNPACK library calls
(``CPU_LIBRARY_DOTS``): measured 2026-12-01 on this 2-core CPU, idle, interleaved, a vmapped grid of
the sweep benchmark's 1→64→1 MLP (batched rank-1 and rank-1-output dots) ran 1.21–1.31× faster at 32–64
points, a single run 1.01×, and the digits CNN's patch matmuls 0.70× (slower): so it is not the
default. It changes results in the last bits (final losses after 2000 steps within ~1e-3 relative).

The init function (the model's initial parameters and optimizer state) runs once per run, so on CPU it
is compiled with LLVM's light optimization (``INIT_OPTIONS``, backend level 1 of 3): measured 2026-12-01 on
this 2-core CPU, when it still held the step-0 evaluation, its compile took 1.06 s instead of 1.88 s for
the digits CNN, 0.93 vs 1.64 for the residual MLPs, 0.53 vs 0.99 for the regularization MLP, about the
same for the transformer. The parameters are bitwise equal to the default compile's in all 11 tasks tried
(tested in ``tests/test_engine.py``). The evaluation is compiled at the default level (it runs every block).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dlnotes import hparams as hpmod
from dlnotes.train.checkpoint import Checkpointer
from dlnotes.train.loop import Engine, Task, TrainState, concat_metrics


@dataclasses.dataclass
class RunResult:
    state: TrainState          # final state (leading axis G for a grid)
    metrics: dict              # {"steps": {name: (..., T)}, "evals": {name: (..., T/log_every+1, ...)}} numpy
    resumed_from: int | None = None


def _raw_keys(keys):
    keys = jnp.asarray(keys)
    if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        keys = jax.random.key_data(keys)
    return keys


def _batched(fn, grid: bool, map_batch_size: int | None, in_axes):
    """vmap ``fn`` over the grid axis (or lax.map over vmapped blocks)."""
    if not grid:
        return fn
    if not map_batch_size:
        return jax.vmap(fn, in_axes=in_axes)
    def mapped(*args):
        batched = tuple(a for a, ax in zip(args, in_axes) if ax == 0)
        fixed = {i: a for i, (a, ax) in enumerate(zip(args, in_axes)) if ax is None}
        def one(xs):
            it = iter(xs)
            full = [fixed[i] if i in fixed else next(it) for i in range(len(args))]
            return fn(*full)
        return jax.lax.map(one, batched, batch_size=map_batch_size)
    return mapped


CPU_LIBRARY_DOTS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


INIT_OPTIONS = {"xla_backend_optimization_level": 1}


EVAL_APART_MAX_BLOCKS = 64


WIDEN_MAX_BYTES = 64 << 20


# XLA's loop emitters for the CPU (the code generator before the MLIR fusion emitters, still selectable):
# a task opts in with ``Task(cpu_compiler_options=CPU_LOOP_EMITTERS)`` where it was measured to help.
# Measured 2026-12-02 on this 2-core CPU, idle, fresh processes, no persistent cache: the digits CNN's three
# programs (init, evaluation, 600-step chunk) compiled in 1.41-1.59 s instead of 2.12-3.09 s (3 alternating
# rounds), and its chunk ran 0.90x the time (16 interleaved rounds in one process, range 0.76-1.26); first run
# of the fast configs (2 rounds each): digits_cnn 5.8-7.5 -> 4.9-5.0 s, normalization 5.9-6.0 -> 3.7-4.5 s,
# regularization 2.2-2.4 -> 1.6-1.8 s, depth_residual 8.6-10.8 -> 7.8-8.4 s, conv_geometry 4.2-4.5 -> 3.0-3.5 s.
# Not a default: the transformer compiled 1.3x slower and the sweep benchmark's vmapped MLP grid ran 1.48x
# slower with them (12-01), and they change results in the last bits (other fusion, other FMA contraction).
CPU_LOOP_EMITTERS = {"xla_cpu_use_fusion_emitters": False}


@functools.lru_cache(maxsize=None)
def _cpu_accepts(option: str, value) -> bool:
    """Whether this jaxlib's CPU compiler takes ``option=value`` (a later XLA may drop an option; a task
    asking for one then compiles with XLA's defaults instead of failing). One tiny compile per option."""
    try:
        jax.jit(lambda: 0).lower().compile({option: value})
        return True
    except Exception:  # noqa: BLE001 — XLA reports an unknown option as INVALID_ARGUMENT
        return False


def compiler_options(library_dots: bool, *, init: bool = False, task_options=None) -> dict | None:
    """XLA options for ``jax.jit`` on the CPU: the task's ``cpu_compiler_options`` (those this jaxlib
    accepts), ``CPU_LIBRARY_DOTS`` if asked for, plus ``INIT_OPTIONS`` for the once-per-run init function
    (``init=True``). None elsewhere (GPU, TPU) and when empty."""
    if jax.default_backend() != "cpu":
        return None
    task = {k: v for k, v in (task_options or {}).items() if _cpu_accepts(k, v)}
    opts = {**task, **(CPU_LIBRARY_DOTS if library_dots else {}), **(INIT_OPTIONS if init else {})}
    return opts or None


class Runner:
    """Compiled init and chunk functions for a task; reusable across calls (no recompiles)."""

    def __init__(self, task: Task, *, grid: bool = False, map_batch_size: int | None = None,
                 sharding=None, library_dots: bool = False):
        self.task, self.grid = task, grid
        self.engine = Engine(task)
        e = self.engine
        self._options = compiler_options(library_dots, task_options=task.cpu_compiler_options)
        # (varying hp, uniform hp, keys): the varying part carries the grid axis.
        self._init_fn = _batched(lambda hv, hu, k: e.init_state({**hv, **hu}, k), grid, map_batch_size,
                                 (0, None, 0))
        self._init = jax.jit(self._init_fn, compiler_options=compiler_options(
            library_dots, init=True, task_options=task.cpu_compiler_options))
        # (state, varying hp, uniform hp, data) -> evaluation metrics
        self._eval_fn = _batched(lambda s, hv, hu, d: e.evaluate(s, {**hv, **hu}, d), grid, map_batch_size,
                                 (0, 0, None, None))
        self._eval = jax.jit(self._eval_fn, compiler_options=self._options)
        self._chunks: dict[tuple[int, bool], Callable] = {}
        self._map_batch_size = map_batch_size
        self.sharding = sharding

    def chunk_fn(self, num_blocks: int, evaluate: bool = True):
        """The compiled ``num_blocks × log_every`` steps (evaluating after each block if ``evaluate``)."""
        if (num_blocks, evaluate) not in self._chunks:
            run = functools.partial(self.engine.run, num_blocks=num_blocks, evaluate=evaluate)
            split = self.task.train_split

            def one(s, hv, hu, d, train, t0):
                return run(s, {**hv, **hu}, {**d, split: train}, start=t0)

            def f(s, hv, hu, d, t0):
                train, widen = d[split], self.widens(s.step.shape[0] if self.grid else 0, d[split])
                if widen:
                    train = jax.tree.map(lambda x: jnp.broadcast_to(x, s.step.shape[:1] + x.shape), train)
                return _batched(one, self.grid, self._map_batch_size,
                                (0, 0, None, None, 0 if widen else None, None))(s, hv, hu, d, train, t0)
            self._chunks[num_blocks, evaluate] = jax.jit(f, donate_argnums=0, compiler_options=self._options)
        return self._chunks[num_blocks, evaluate]

    def widens(self, grid_size: int, train) -> bool:
        """Whether a grid of ``grid_size`` points trains on its full-batch ``train`` split as one batched
        copy per point (a broadcast) rather than one shared array (see the module docstring): only in a grid,
        without minibatches (whose batches are per point anyway), while the copies total at most
        ``WIDEN_MAX_BYTES``, and on CPU (where it was measured)."""
        if not self.grid or self.task.batch_size or jax.default_backend() != "cpu":
            return False
        nbytes = sum(np.dtype(x.dtype).itemsize * int(np.prod(x.shape)) for x in jax.tree.leaves(train))
        return grid_size * nbytes <= WIDEN_MAX_BYTES

    def evaluates_apart(self, chunk_blocks: int) -> bool:
        """Whether a run with ``chunk_blocks`` blocks per chunk evaluates through its own compiled
        function (see the module docstring) rather than inside the chunk's scan."""
        return self.task.evaluate is not None and chunk_blocks <= EVAL_APART_MAX_BLOCKS

    def split_hp(self, hp):
        """``(varying, uniform)``: in a grid, hyperparameters equal at every point lose the grid axis;
        a uniform switch at exactly 0 (dropout, drop-path) is compiled in as a constant
        (``hparams.freeze_zero_switches``), so its random branch is not compiled."""
        hp = jax.tree.map(jnp.asarray, hp)
        if not self.grid:
            return {}, hpmod.freeze_zero_switches(hp)
        vary, same = {}, {}
        for k, v in hp.items():
            a = np.asarray(v)
            if a.ndim and a.shape[0] and np.all(a == a[:1]) and not np.any(np.isnan(a)):
                same[k] = v[0]
            else:
                vary[k] = v
        return vary, hpmod.freeze_zero_switches(same)

    def init(self, hp, keys, data=None):
        """``(state, evals at step 0)`` of ``hp``/``keys`` (compiled once per set of varying keys)."""
        hv, hu = self.split_hp(hp)
        keys, data = _raw_keys(keys), self.task.data if data is None else data
        if any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves((hv, hu, keys, data))):
            # inside a caller's trace (compiler options need a top-level jit)
            state = self._init_fn(hv, hu, keys)
            return state, self._eval_fn(state, hv, hu, data)
        state = self._init(hv, hu, keys)
        return state, self._evaluate(state, hv, hu, data)

    def _evaluate(self, state, hv, hu, data):
        return self._eval(state, hv, hu, data) if self.task.evaluate is not None else {}

    def run(self, hp, keys, *, chunk_steps: int | None = None, checkpointer: Checkpointer | None = None,
            progress: bool | str = False, on_chunk: Callable | None = None,
            data=None) -> RunResult:
        """Train ``hp``/``keys`` (leading axis G for a grid). ``data`` overrides
        ``task.data`` with arrays of the same shapes, reusing the compiled code."""
        task = self.task
        k = task.log_every
        total_blocks = task.num_steps // k
        chunk_blocks = max(1, (chunk_steps or task.num_steps) // k)
        data = task.data if data is None else data
        hv, hu = self.split_hp(hp)
        keys = _raw_keys(keys)
        if self.sharding is not None:
            hv, keys = jax.device_put((hv, keys), self.sharding)

        state = self._init(hv, hu, keys)
        ev0 = self._evaluate(state, hv, hu, data)
        apart = self.evaluates_apart(chunk_blocks)
        axis = 1 if self.grid else 0
        ev0 = jax.tree.map(lambda x: np.expand_dims(np.asarray(x), axis), ev0)
        metrics = {"steps": None, "evals": ev0}
        done_blocks, resumed = 0, None
        if checkpointer is not None:
            restored = checkpointer.restore(state)
            if restored is not None:
                step, state_np, metrics = restored
                state = jax.tree.map(jnp.asarray, state_np)
                if self.sharding is not None:
                    state = jax.device_put(state, self.sharding)
                done_blocks, resumed = step // k, step
        bar = None
        if progress:
            desc = progress if isinstance(progress, str) else "train"
            bar = tqdm(total=task.num_steps, initial=done_blocks * k, desc=desc, unit="step",
                       dynamic_ncols=True, leave=False)
        while done_blocks < total_blocks:
            n = min(chunk_blocks, total_blocks - done_blocks)
            if apart:   # block by block: training chunk, then the shared evaluation
                parts = []
                for b in range(n):
                    state, mb = self.chunk_fn(1, evaluate=False)(state, hv, hu, data,
                                                                 jnp.int32((done_blocks + b) * k))
                    parts.append({"steps": mb["steps"], "evals": self._eval(state, hv, hu, data)})
                parts = jax.tree.map(np.asarray, parts)
                m = {"steps": concat_metrics([p["steps"] for p in parts], axis=axis),
                     "evals": jax.tree.map(lambda *xs: np.stack(xs, axis=axis), *[p["evals"] for p in parts])}
            else:
                state, m = self.chunk_fn(n)(state, hv, hu, data, jnp.int32(done_blocks * k))
                m = jax.tree.map(np.asarray, m)
            prev_steps = [] if metrics["steps"] is None else [metrics["steps"]]
            metrics = {"steps": concat_metrics(prev_steps + [m["steps"]], axis=axis),
                       "evals": concat_metrics([metrics["evals"], m["evals"]], axis=axis)}
            done_blocks += n
            if bar is not None:
                bar.update(n * k)
                bar.set_postfix(loss=f"{np.nanmean(m['steps']['loss'][..., -1]):.4g}")
            if checkpointer is not None:
                checkpointer.save(done_blocks * k, state, metrics)
            if on_chunk is not None:
                on_chunk(done_blocks * k, state, metrics)
        if bar is not None:
            bar.close()
        return RunResult(state=state, metrics=metrics, resumed_from=resumed)
