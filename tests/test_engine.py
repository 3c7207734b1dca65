"""The engine: one scan per run, vmapped grids, divergence, chunking, resume."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dlnotes import losses
from dlnotes.train.checkpoint import Checkpointer
from dlnotes.train.loop import Engine, Task, make_train
from dlnotes.train.runner import CPU_LIBRARY_DOTS, Runner
from dlnotes.train.sweep import grid_points, parse_sweep, stack_points, sweep_rows

N, H = 64, 16


def _data():
    x = jnp.linspace(-2, 2, N)[:, None]
    y = jnp.sin(3 * x) + 0.05 * jax.random.normal(jax.random.key(1), x.shape)
    return {"train": {"x": x, "y": y}}


def _init(key, hp):
    k1, k2, k3 = jax.random.split(key, 3)
    return {"w1": jax.random.normal(k1, (1, H)), "b1": jax.random.normal(k2, (H,)),
            "w2": jax.random.normal(k3, (H, 1)) / jnp.sqrt(H), "b2": jnp.zeros(1)}, {}


def _forward(p, x):
    return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]


def _loss(p, ms, batch, key, hp):
    return losses.mse(_forward(p, batch["x"]), batch["y"]), ({}, ms)


def _task(**kw):
    args = dict(init=_init, loss=_loss, optimizer=lambda hp: optax.sgd(hp["lr"]), data=_data(),
                num_steps=120, log_every=10,
                evaluate=lambda p, ms, d, hp: {"val": losses.mse(_forward(p, d["train"]["x"]), d["train"]["y"])})
    args.update(kw)
    return Task(**args)


def test_one_scan_equals_handwritten_loop():
    task = _task()
    state, m = jax.jit(make_train(task))({"lr": jnp.float32(0.05)}, jax.random.key(0))
    # independent computation: the same init key derivation, plain Python loop of GD steps
    k_init, _ = jax.random.split(jax.random.wrap_key_data(jax.random.key_data(jax.random.key(0))))
    p, _ = _init(k_init, None)
    step = jax.jit(lambda p: jax.tree.map(lambda a, g: a - 0.05 * g, p,
                                          jax.grad(lambda q: _loss(q, {}, _data()["train"], None, None)[0])(p)))
    for _ in range(120):
        p = step(p)
    for k in p:
        np.testing.assert_allclose(state.params[k], p[k], rtol=1e-5, atol=1e-6)
    assert m["steps"]["loss"].shape == (120,)
    assert m["evals"]["val"].shape == (13,)  # step 0 + every 10 steps
    np.testing.assert_allclose(m["evals"]["val"][-1], _loss(p, {}, _data()["train"], None, None)[0], rtol=1e-5)


def test_changing_hyperparameters_does_not_recompile():
    f = jax.jit(make_train(_task()))
    for lr in (0.01, 0.02, 0.3):
        jax.block_until_ready(f({"lr": jnp.float32(lr)}, jax.random.key(0)))
    assert f._cache_size() == 1
    r = Runner(_task(), grid=True)
    for lrs in ([0.01, 0.1], [0.2, 0.03]):
        r.run({"lr": jnp.array(lrs)}, jax.random.split(jax.random.key(0), 2), chunk_steps=40)
    assert r._init._cache_size() == 1
    assert all(fn._cache_size() == 1 for fn in r._chunks.values())


def test_grid_points_equal_single_runs_and_divergence_is_isolated():
    task = _task(num_steps=100)
    lrs = jnp.array([0.01, 0.05, 50.0, 0.1])            # 50 diverges
    keys = jax.random.split(jax.random.key(3), 4)
    grid = Runner(task, grid=True).run({"lr": lrs}, keys, chunk_steps=50)
    assert list(np.asarray(grid.state.diverged)) == [False, False, True, False]
    at = int(grid.state.diverged_at[2])
    assert 0 <= at < 100
    assert np.all(np.isnan(grid.metrics["steps"]["loss"][2, at:]))
    assert all(np.all(np.isfinite(np.asarray(x[2]))) for x in jax.tree.leaves(grid.state.params))
    single = Runner(task)
    for i in (0, 1, 3):
        one = single.run({"lr": lrs[i]}, keys[i], chunk_steps=50)
        for a, b in zip(jax.tree.leaves(one.state.params), jax.tree.leaves(grid.state.params)):
            np.testing.assert_allclose(np.asarray(b)[i], a, rtol=1e-6, atol=1e-7)
    # replacing the diverging point by a benign one leaves the others bit-identical
    benign = Runner(task, grid=True).run({"lr": lrs.at[2].set(0.02)}, keys, chunk_steps=50)
    assert not bool(benign.state.diverged[2])
    for a, b in zip(jax.tree.leaves(benign.state.params), jax.tree.leaves(grid.state.params)):
        np.testing.assert_array_equal(np.asarray(a)[[0, 1, 3]], np.asarray(b)[[0, 1, 3]])


def test_frozen_state_is_last_finite_state():
    task = _task(num_steps=60, log_every=1)
    lr = {"lr": jnp.float32(50.0)}
    full = Runner(task).run(lr, jax.random.key(0))
    at = int(full.state.diverged_at)
    assert bool(full.state.diverged) and at >= 1
    upto = Runner(_task(num_steps=at, log_every=1)).run(lr, jax.random.key(0))
    for a, b in zip(jax.tree.leaves(full.state.params), jax.tree.leaves(upto.state.params)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sampling", ["epoch", "replacement"])
def test_chunking_does_not_change_the_run(sampling):
    task = _task(batch_size=8, sampling=sampling, num_steps=100)
    hp, key = {"lr": jnp.float32(0.05)}, jax.random.key(7)
    whole = jax.jit(make_train(task))(hp, key)
    chunked = Runner(task).run(hp, key, chunk_steps=30)   # 30, 30, 30, 10 steps
    for a, b in zip(jax.tree.leaves(whole[0].params), jax.tree.leaves(chunked.state.params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(whole[1]["steps"]["loss"], chunked.metrics["steps"]["loss"])


@pytest.mark.parametrize("grid", [False, True])
def test_evaluation_apart_equals_evaluation_in_the_chunk(grid):
    """Few blocks per chunk: evaluation is its own compiled function, shared by step 0 and every
    block, the chunk trains only. Many blocks per chunk: evaluation runs inside the chunk's scan.
    Same steps and evaluations either way, with the same layout."""
    from dlnotes.train.runner import EVAL_APART_MAX_BLOCKS

    blocks = EVAL_APART_MAX_BLOCKS + 4
    task = _task(batch_size=8, sampling="epoch", num_steps=10 * blocks)
    hp = {"lr": jnp.array([0.05, 0.02]) if grid else jnp.float32(0.05)}
    key = jax.random.split(jax.random.key(7), 2) if grid else jax.random.key(7)
    r = Runner(task, grid=grid)
    assert r.evaluates_apart(EVAL_APART_MAX_BLOCKS) and not r.evaluates_apart(blocks)
    apart = r.run(hp, key, chunk_steps=30)        # 3, 3, ... blocks per chunk: evaluated apart
    inside = r.run(hp, key)                        # all blocks in one chunk: evaluated inside
    assert set(r._chunks) == {(1, False), (blocks, True)}
    assert r._eval._cache_size() == 1              # one evaluation program for step 0 and every block
    np.testing.assert_array_equal(apart.metrics["steps"]["loss"], inside.metrics["steps"]["loss"])
    assert apart.metrics["evals"]["val"].shape == inside.metrics["evals"]["val"].shape == \
        ((2,) if grid else ()) + (blocks + 1,)
    np.testing.assert_allclose(apart.metrics["evals"]["val"], inside.metrics["evals"]["val"], rtol=1e-6)
    # the evaluation is of the state after each block: the last one is the final state's
    final = r._eval_fn(apart.state, *r.split_hp(hp), task.data)
    np.testing.assert_allclose(apart.metrics["evals"]["val"][..., -1], final["val"], rtol=1e-6)


def test_epoch_sampling_visits_every_example_once_per_epoch():
    from dlnotes.train.loop import epoch_permutation, sample_batch
    data = {"i": jnp.arange(N)}
    task = _task(batch_size=8, data={"train": data})
    key = jax.random.key(0)
    for epoch in range(3):
        perm = epoch_permutation(task, key, epoch)
        seen = np.concatenate([np.asarray(sample_batch(task, data, key, epoch * 8 + s, perm)["i"])
                               for s in range(8)])
        assert sorted(seen.tolist()) == list(range(N))
    assert not np.array_equal(epoch_permutation(task, key, 0), epoch_permutation(task, key, 1))


def test_resume_from_checkpoint_is_bit_identical(tmp_path):
    task = _task(batch_size=8, num_steps=100)
    hp, key = {"lr": jnp.float32(0.05)}, jax.random.key(11)
    ref = Runner(task).run(hp, key, chunk_steps=20)

    class Killed(Exception):
        pass

    def kill_after_two(step, state, metrics):
        if step >= 40:
            raise Killed

    with pytest.raises(Killed):
        Runner(task).run(hp, key, chunk_steps=20, checkpointer=Checkpointer(str(tmp_path)), on_chunk=kill_after_two)
    resumed = Runner(task).run(hp, key, chunk_steps=20, checkpointer=Checkpointer(str(tmp_path)))
    assert resumed.resumed_from == 40
    for a, b in zip(jax.tree.leaves(ref.state), jax.tree.leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
    for name in ("loss",):
        np.testing.assert_array_equal(ref.metrics["steps"][name], resumed.metrics["steps"][name])
    np.testing.assert_array_equal(ref.metrics["evals"]["val"], resumed.metrics["evals"]["val"])


def test_map_batch_size_equals_vmap():
    task = _task(num_steps=40)
    hp = {"lr": jnp.array([0.01, 0.02, 0.05, 0.1])}
    keys = jax.random.split(jax.random.key(0), 4)
    a = Runner(task, grid=True).run(hp, keys)
    b = Runner(task, grid=True, map_batch_size=2).run(hp, keys)
    np.testing.assert_allclose(a.metrics["steps"]["loss"], b.metrics["steps"]["loss"], rtol=1e-6)


def test_sweep_spec_and_rows():
    import ml_collections
    cfg = ml_collections.ConfigDict({"seed": 0, "optimizer": {"learning_rate": 0.1, "name": "sgd"},
                                     "data": {"noise": 0.1}})
    sweep = parse_sweep("optimizer.learning_rate=1e-3:1:4:log;seed=0:2")
    np.testing.assert_allclose(sweep["optimizer.learning_rate"], [1e-3, 1e-2, 1e-1, 1.0], rtol=1e-6)
    assert sweep["seed"] == [0, 1]
    points = grid_points(cfg, sweep)
    assert len(points) == 8
    hp, keys = stack_points(cfg, points)
    assert hp["optimizer.learning_rate"].shape == (8,) and keys.shape[0] == 8
    from dlnotes.errors import ConfigError
    with pytest.raises(ConfigError, match="data.noise"):
        grid_points(cfg, {"data.noise": [0.1]})       # data floats are static
    with pytest.raises(ConfigError, match="optimizer.name"):
        grid_points(cfg, {"optimizer.name": [1.0]})
    task = _task(num_steps=20, optimizer=lambda hp: optax.sgd(hp["optimizer.learning_rate"]))
    res = Runner(task, grid=True).run(hp, keys)
    rows = sweep_rows(points, res)
    assert [r["diverged"] for r in rows] == list(np.asarray(res.state.diverged))
    assert rows[0]["final_loss"] == pytest.approx(float(res.metrics["steps"]["loss"][0, -1]))


def test_uniform_hyperparameters_enter_a_grid_unbatched():
    """Hyperparameters equal at every grid point lose the grid axis (a cond on them stays a branch);
    the numbers equal the single runs, and a later grid that varies them compiles once more."""
    task = _task(num_steps=40, optimizer=lambda hp: optax.sgd(hp["lr"] * jnp.where(hp["scale"] > 0, hp["scale"], 1.0)))
    r = Runner(task, grid=True)
    keys = jax.random.split(jax.random.key(5), 3)
    hp = {"lr": jnp.array([0.01, 0.05, 0.1]), "scale": jnp.array([0.5, 0.5, 0.5])}
    vary, same = r.split_hp(hp)
    assert set(vary) == {"lr"} and set(same) == {"scale"} and np.shape(same["scale"]) == ()
    grid = r.run(hp, keys)
    for i in range(3):
        one = Runner(task).run({"lr": hp["lr"][i], "scale": jnp.float32(0.5)}, keys[i])
        for a, b in zip(jax.tree.leaves(one.state.params), jax.tree.leaves(grid.state.params)):
            np.testing.assert_allclose(np.asarray(b)[i], a, rtol=1e-6, atol=1e-7)
    r.run({"lr": hp["lr"], "scale": jnp.array([0.5, 0.0, 2.0])}, keys)
    assert r._init._cache_size() == 2


def test_library_dots_compile_with_the_option_and_agree():
    from dlnotes.train.runner import compiler_options

    assert compiler_options(False) is None
    assert compiler_options(True) == (CPU_LIBRARY_DOTS if jax.default_backend() == "cpu" else None)
    task = _task(num_steps=40)
    hp = {"lr": jnp.array([0.01, 0.02, 0.05, 0.1])}
    keys = jax.random.split(jax.random.key(0), 4)
    a = Runner(task, grid=True).run(hp, keys)
    r = Runner(task, grid=True, library_dots=True)
    b = r.run(hp, keys)
    assert r._options == compiler_options(True)
    np.testing.assert_allclose(a.metrics["steps"]["loss"], b.metrics["steps"]["loss"], rtol=1e-4)
    np.testing.assert_allclose(a.metrics["evals"]["val"], b.metrics["evals"]["val"], rtol=1e-4)


def test_init_compiles_lightly_on_cpu_with_bitwise_equal_parameters():
    """The once-per-run init is compiled with ``INIT_OPTIONS`` on CPU (faster compile); the initial
    parameters must equal a default compile's bit for bit, so no run's numbers move."""
    from dlnotes import hparams as hpmod
    from dlnotes.experiments import base, digits_cnn
    from dlnotes.train.runner import INIT_OPTIONS, compiler_options

    on_cpu = jax.default_backend() == "cpu"
    assert compiler_options(False, init=True) == (INIT_OPTIONS if on_cpu else None)
    assert compiler_options(True, init=True) == ({**CPU_LIBRARY_DOTS, **INIT_OPTIONS} if on_cpu else None)
    cfg = hpmod.with_changes(base.load_config("digits_cnn", "fast"), num_steps=2, log_every=1)
    for task, hp in ((digits_cnn.build_task(cfg), hpmod.from_config(cfg)), (_task(), {"lr": jnp.float32(0.05)})):
        r = Runner(task)
        hv, hu = r.split_hp(hp)
        keys = jax.random.key_data(jax.random.key(3))
        light = r._init(hv, hu, keys)
        plain = jax.jit(lambda hv, hu, k: r.engine.init_state({**hv, **hu}, k))(hv, hu, keys)
        for a, b in zip(jax.tree.leaves(light), jax.tree.leaves(plain)):
            assert np.array_equal(np.asarray(a), np.asarray(b))
        # under a caller's trace the init inlines (compiler options need a top-level jit)
        shapes = jax.eval_shape(lambda k: r.init(hp, k)[0], keys)
        assert [s.shape for s in jax.tree.leaves(shapes)] == [np.shape(a) for a in jax.tree.leaves(light)]


def test_a_task_s_cpu_compiler_options_reach_its_programs():
    """``Task.cpu_compiler_options`` (the digits CNN asks for XLA's loop emitters) are compiled into the
    init, evaluation and chunks on CPU: the run's numbers then differ from a default compile in the last bits
    only; an option this jaxlib does not know is dropped instead of failing the run."""
    import dataclasses

    from dlnotes import hparams as hpmod
    from dlnotes.experiments import base, digits_cnn
    from dlnotes.train import runner as runner_mod
    from dlnotes.train.runner import CPU_LOOP_EMITTERS, compiler_options

    cfg = hpmod.with_changes(base.load_config("digits_cnn", "fast"), num_steps=40, log_every=40)
    task = digits_cnn.build_task(cfg)
    assert task.cpu_compiler_options == CPU_LOOP_EMITTERS
    if jax.default_backend() != "cpu":
        assert compiler_options(False, task_options=CPU_LOOP_EMITTERS) is None
        pytest.skip("CPU compiler options")
    assert compiler_options(False, task_options=CPU_LOOP_EMITTERS) == CPU_LOOP_EMITTERS
    assert compiler_options(False, init=True, task_options=CPU_LOOP_EMITTERS) == {
        **CPU_LOOP_EMITTERS, **runner_mod.INIT_OPTIONS}
    assert compiler_options(False, task_options={"xla_cpu_no_such_option_in_any_xla": True}) is None
    hp, key = hpmod.from_config(cfg), jax.random.key(5)
    ours = Runner(task)
    assert ours._options == CPU_LOOP_EMITTERS
    a = ours.run(hp, key)
    b = Runner(dataclasses.replace(task, cpu_compiler_options=None)).run(hp, key)
    pa, pb = (np.concatenate([np.ravel(x) for x in jax.tree.leaves(r.state.params)]) for r in (a, b))
    np.testing.assert_allclose(pa, pb, rtol=1e-3, atol=1e-5)
    for name in a.metrics["evals"]:
        np.testing.assert_allclose(a.metrics["evals"][name], b.metrics["evals"][name], rtol=1e-3, atol=1e-5)
    if runner_mod._cpu_accepts(*next(iter(CPU_LOOP_EMITTERS.items()))):
        assert not np.array_equal(pa, pb)   # the option reached the chunk: other code, other last bits


def test_full_batch_grid_trains_on_one_copy_of_the_data_per_point(monkeypatch):
    """A full-batch grid widens its training split to one copy per point (``Runner.widens``); the numbers agree
    with the shared-data program and with single runs; minibatch grids, single runs and grids whose copies
    would exceed ``WIDEN_MAX_BYTES`` keep one shared array."""
    from dlnotes.train import runner as runner_mod

    task = _task(num_steps=60, log_every=20)
    train = task.data["train"]
    nbytes = sum(np.asarray(x).nbytes for x in jax.tree.leaves(train))
    wide = Runner(task, grid=True)
    if jax.default_backend() != "cpu":
        pytest.skip("widening is measured and enabled on CPU only")
    assert wide.widens(4, train) and not Runner(task).widens(0, train)
    assert not Runner(_task(batch_size=8), grid=True).widens(4, train)
    monkeypatch.setattr(runner_mod, "WIDEN_MAX_BYTES", 4 * nbytes - 1)
    assert not wide.widens(4, train) and wide.widens(3, train)
    monkeypatch.setattr(runner_mod, "WIDEN_MAX_BYTES", 0)
    shared = Runner(task, grid=True)
    lrs, keys = jnp.array([0.01, 0.05, 0.1, 0.2]), jax.random.split(jax.random.key(7), 4)

    def unbatched_dots(r):   # dot_generals in the chunk's program without batch dimensions (merged over points)
        hv, hu = r.split_hp({"lr": lrs})
        state = jax.eval_shape(r._init_fn, hv, hu, jax.random.key_data(keys))
        jaxpr = jax.make_jaxpr(r.chunk_fn(2))(state, hv, hu, task.data, jnp.int32(0))

        def count(j):
            n = 0
            for e in j.eqns:
                if e.primitive.name == "dot_general" and not e.params["dimension_numbers"][1][0]:
                    n += 1
                for v in e.params.values():
                    for sub in (v if isinstance(v, (list, tuple)) else [v]):
                        if isinstance(sub, jax.extend.core.ClosedJaxpr):
                            n += count(sub.jaxpr)
                        elif isinstance(sub, jax.extend.core.Jaxpr):
                            n += count(sub)
            return n
        return count(jaxpr.jaxpr)
    a, n_shared = shared.run({"lr": lrs}, keys), unbatched_dots(shared)   # (traced while nothing widens)
    monkeypatch.setattr(runner_mod, "WIDEN_MAX_BYTES", 64 << 20)
    b = wide.run({"lr": lrs}, keys)
    assert (n_shared, unbatched_dots(wide)) == (3, 0)   # x·W1, xᵀ·δ and the evaluation's x·W1
    for x, y in zip(jax.tree.leaves(a.state.params), jax.tree.leaves(b.state.params)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    single = Runner(task).run({"lr": lrs[2]}, keys[2])
    for x, y in zip(jax.tree.leaves(single.state.params), jax.tree.leaves(b.state.params)):
        np.testing.assert_allclose(np.asarray(y)[2], x, rtol=1e-5, atol=1e-6)


def _dropout_task():
    from dlnotes import hparams as hpmod
    from dlnotes.nn.regularize import dropout

    def loss(p, ms, batch, key, hp):
        h = jax.nn.relu(batch["x"] @ p["w1"] + p["b1"])
        h = dropout(h, hpmod.get(hp, None, "model.dropout"), key, train=True)
        return losses.mse(h @ p["w2"] + p["b2"], batch["y"]), ({}, ms)
    return _task(loss=loss, num_steps=40)


def _conds(fn, *args):
    return str(jax.make_jaxpr(fn)(*args)).count(" cond[")


def test_a_zero_dropout_rate_is_compiled_in_and_other_rates_stay_traced():
    """A switch (dropout, drop-path) at exactly 0 enters the compiled program as a constant: no branch
    (and no random draw) compiled, the same numbers bit for bit as the traced rate at 0. Nonzero
    rates stay traced: changing them does not recompile; in a grid only a uniform 0 is frozen."""
    from dlnotes import hparams as hpmod

    task = _dropout_task()
    hp0 = {"lr": jnp.float32(0.05), "model.dropout": jnp.float32(0.0)}
    r = Runner(task)
    hv, hu = r.split_hp(hp0)
    assert hu["model.dropout"] == hpmod.Frozen(0.0) and hpmod.get(hu, None, "model.dropout") == 0.0
    state, _ = r.init(hp0, jax.random.key(0))
    assert _conds(r.chunk_fn(1, evaluate=False), state, hv, hu, task.data, jnp.int32(0)) == 0
    traced = {"lr": jnp.float32(0.05), "model.dropout": jnp.float32(0.0)}
    assert _conds(lambda s: Engine(task).run(s, traced, task.data, 1, evaluate=False), state) == 2   # forward, backward
    frozen = r.run(hp0, jax.random.key(0))
    reference, _ = jax.jit(make_train(task))(traced, jax.random.key(0))  # the rate traced all along
    for a, b in zip(jax.tree.leaves(frozen.state.params), jax.tree.leaves(reference.params)):
        np.testing.assert_array_equal(a, b)
    for rate in (0.3, 0.5):
        r.run({"lr": jnp.float32(0.05), "model.dropout": jnp.float32(rate)}, jax.random.key(0))
    assert r.chunk_fn(1, evaluate=False)._cache_size() == 2   # frozen 0, then one traced rate
    g = Runner(task, grid=True)
    assert g.split_hp({"lr": jnp.array([0.05, 0.1]), "model.dropout": jnp.zeros(2)})[1]["model.dropout"] \
        == hpmod.Frozen(0.0)
    hv, hu = g.split_hp({"lr": jnp.array([0.05, 0.1]), "model.dropout": jnp.array([0.0, 0.3])})
    assert "model.dropout" in hv and "model.dropout" not in hu
