"""dlnotes.nn.recurrent against independent computations (NumPy float64, PyTorch, closed forms)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlnotes.nn import recurrent as rec

jax.config.update("jax_enable_x64", False)


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def _np_lstm(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """PyTorch's LSTMCell written out in float64: weights (4H, D) / (4H, H), gates i, f, g, o."""
    a = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    H = h.shape[-1]
    i, f, g, o = (a[:, k * H:(k + 1) * H] for k in range(4))
    c = _sig(f) * c + _sig(i) * np.tanh(g)
    return _sig(o) * np.tanh(c), c


def _np_gru(x, h, w_ih, w_hh, b_ih, b_hh):
    """PyTorch's GRUCell in float64: gates r, z, n."""
    H = h.shape[-1]
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    r = _sig(gi[:, :H] + gh[:, :H])
    z = _sig(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1 - z) * n + z * h


def _rand(rng, *shape, scale=0.5):
    return rng.normal(0, scale, shape)


def test_lstm_cell_matches_numpy_float64_over_a_sequence():
    rng = np.random.default_rng(0)
    N, T, D, H = 3, 7, 5, 4
    w_ih, w_hh, b_ih, b_hh = _rand(rng, 4 * H, D), _rand(rng, 4 * H, H), _rand(rng, 4 * H), _rand(rng, 4 * H)
    xs = _rand(rng, N, T, D, scale=1.0)
    h = c = np.zeros((N, H))
    ref = []
    for t in range(T):
        h, c = _np_lstm(xs[:, t], h, c, w_ih, w_hh, b_ih, b_hh)
        ref.append(h)
    params = {"w_ih": jnp.asarray(w_ih.T, jnp.float32), "w_hh": jnp.asarray(w_hh.T, jnp.float32),
              "b": jnp.asarray(b_ih + b_hh, jnp.float32)}
    (hT, cT), ys = rec.scan_cell(rec.make_cell("lstm"), params, jnp.asarray(xs, jnp.float32),
                                 rec.initial_carry("lstm", N, H))
    np.testing.assert_allclose(np.asarray(ys), np.stack(ref, 1), atol=2e-6)
    np.testing.assert_allclose(np.asarray(cT), c, atol=2e-6)


def test_gru_cell_matches_numpy_float64_over_a_sequence():
    rng = np.random.default_rng(1)
    N, T, D, H = 3, 7, 5, 4
    w_ih, w_hh, b_ih, b_hh = _rand(rng, 3 * H, D), _rand(rng, 3 * H, H), _rand(rng, 3 * H), _rand(rng, 3 * H)
    xs = _rand(rng, N, T, D, scale=1.0)
    h = np.zeros((N, H))
    ref = []
    for t in range(T):
        h = _np_gru(xs[:, t], h, w_ih, w_hh, b_ih, b_hh)
        ref.append(h)
    params = {"w_ih": jnp.asarray(w_ih.T, jnp.float32), "w_hh": jnp.asarray(w_hh.T, jnp.float32),
              "b_ih": jnp.asarray(b_ih, jnp.float32), "b_hh": jnp.asarray(b_hh, jnp.float32)}
    _, ys = rec.scan_cell(rec.make_cell("gru"), params, jnp.asarray(xs, jnp.float32),
                          rec.initial_carry("gru", N, H))
    np.testing.assert_allclose(np.asarray(ys), np.stack(ref, 1), atol=2e-6)


def test_cells_match_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    D, H, N = 6, 5, 4
    x = torch.randn(N, D)
    h0, c0 = torch.randn(N, H), torch.randn(N, H)
    lstm, gru = torch.nn.LSTMCell(D, H), torch.nn.GRUCell(D, H)
    with torch.no_grad():
        h_t, c_t = lstm(x, (h0, c0))
        g_t = gru(x, h0)

    def t2j(p):
        return jnp.asarray(p.detach().numpy())

    pl = {"w_ih": t2j(lstm.weight_ih).T, "w_hh": t2j(lstm.weight_hh).T, "b": t2j(lstm.bias_ih) + t2j(lstm.bias_hh)}
    (h, c), _ = rec.lstm_cell(pl, (t2j(h0), t2j(c0)), t2j(x))
    np.testing.assert_allclose(np.asarray(h), h_t.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(c), c_t.numpy(), atol=1e-6)
    pg = {"w_ih": t2j(gru.weight_ih).T, "w_hh": t2j(gru.weight_hh).T, "b_ih": t2j(gru.bias_ih),
          "b_hh": t2j(gru.bias_hh)}
    g, _ = rec.gru_cell(pg, t2j(h0), t2j(x))
    np.testing.assert_allclose(np.asarray(g), g_t.numpy(), atol=1e-6)


def test_rnn_cell_with_layer_norm_normalizes_preactivations():
    rng = np.random.default_rng(2)
    D, H, N = 3, 6, 2
    p = {"w_ih": jnp.asarray(_rand(rng, D, H)), "w_hh": jnp.asarray(_rand(rng, H, H)), "b": jnp.zeros(H),
         "ln_scale": jnp.asarray(rng.uniform(0.5, 2, H)), "ln_bias": jnp.asarray(_rand(rng, H))}
    x, h = _rand(rng, N, D), _rand(rng, N, H)
    a = x @ np.asarray(p["w_ih"]) + h @ np.asarray(p["w_hh"])
    ref = np.maximum(0, (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + 1e-5)
                     * np.asarray(p["ln_scale"]) + np.asarray(p["ln_bias"]))
    out, _ = rec.rnn_cell(p, jnp.asarray(h), jnp.asarray(x), activation="relu", ln=True)
    np.testing.assert_allclose(np.asarray(out), ref, atol=1e-5)
    # LN makes the cell invariant to the scale of W_ih and W_hh together
    p2 = dict(p, w_ih=3.0 * p["w_ih"], w_hh=3.0 * p["w_hh"])
    out2, _ = rec.rnn_cell(p2, jnp.asarray(h), jnp.asarray(x), activation="relu", ln=True)
    np.testing.assert_allclose(np.asarray(out2), np.asarray(out), rtol=1e-3)   # up to LN's ε


def test_fir_filter_is_the_causal_sum():
    rng = np.random.default_rng(3)
    x, h = rng.normal(size=(2, 20)), rng.normal(size=5)
    ref = np.array([[sum(h[k] * x[n, t - k] for k in range(5) if t - k >= 0) for t in range(20)]
                    for n in range(2)])
    np.testing.assert_allclose(np.asarray(rec.fir_filter(jnp.asarray(x, jnp.float32),
                                                         jnp.asarray(h, jnp.float32))), ref, atol=1e-5)


def test_iir_filter_against_its_impulse_response_and_the_difference_equation():
    a, b = 0.8, 1.5
    imp = np.asarray(rec.impulse_response(jnp.array([b]), jnp.array([a]), 30))
    np.testing.assert_allclose(imp, b * a ** np.arange(30), rtol=1e-5)
    # second order with two taps: direct recursion in float64, and output = input ∗ impulse response
    a2, b2 = np.array([1.2, -0.5]), np.array([1.0, 0.3])
    x = np.random.default_rng(4).normal(size=40)
    y = np.zeros(40)
    for t in range(40):
        y[t] = sum(a2[i] * y[t - 1 - i] for i in range(2) if t - 1 - i >= 0) + \
            sum(b2[j] * x[t - j] for j in range(2) if t - j >= 0)
    ours = np.asarray(rec.iir_filter(jnp.asarray(x, jnp.float32), jnp.asarray(b2, jnp.float32),
                                     jnp.asarray(a2, jnp.float32)))
    np.testing.assert_allclose(ours, y, atol=1e-4)
    imp2 = np.asarray(rec.impulse_response(jnp.asarray(b2), jnp.asarray(a2), 40))
    np.testing.assert_allclose(np.convolve(x, imp2)[:40], y, atol=1e-4)


def test_one_state_linear_rnn_is_the_first_order_iir():
    a, b = 0.7, -0.4
    x = np.random.default_rng(5).normal(size=(3, 25)).astype(np.float32)
    p = {"w_ih": jnp.array([[b]]), "w_hh": jnp.array([[a]]), "b": jnp.zeros(1)}
    _, ys = rec.scan_cell(rec.make_cell("rnn", activation="linear"), p, jnp.asarray(x)[..., None],
                          jnp.zeros((3, 1)))
    np.testing.assert_allclose(np.asarray(ys[..., 0]), np.asarray(rec.iir_filter(jnp.asarray(x), jnp.array([b]),
                                                                                 jnp.array([a]))), atol=1e-6)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_padding_never_changes_valid_outputs(kind):
    rng = np.random.default_rng(6)
    N, T, D, H = 3, 9, 4, 5
    g = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    p = {"w_ih": jnp.asarray(_rand(rng, D, g * H)), "w_hh": jnp.asarray(_rand(rng, H, g * H))}
    if kind == "gru":
        p.update(b_ih=jnp.asarray(_rand(rng, g * H)), b_hh=jnp.asarray(_rand(rng, g * H)))
    else:
        p["b"] = jnp.asarray(_rand(rng, g * H))
    cell = rec.make_cell(kind)
    lengths = np.array([9, 5, 2])
    mask = jnp.asarray(np.arange(T)[None] < lengths[:, None])
    xs = rng.normal(size=(N, T, D)).astype(np.float32)
    xs2 = np.where(np.asarray(mask)[..., None], xs, rng.normal(size=xs.shape) * 100).astype(np.float32)
    c0 = rec.initial_carry(kind, N, H)
    for reverse in (False, True):
        c1, y1 = rec.scan_cell(cell, p, jnp.asarray(xs), c0, mask=mask, reverse=reverse)
        c2, y2 = rec.scan_cell(cell, p, jnp.asarray(xs2), c0, mask=mask, reverse=reverse)
        np.testing.assert_allclose(np.asarray(y1), np.asarray(y2), atol=1e-6)
        assert (np.asarray(y1)[~np.asarray(mask)] == 0).all()
        for a_, b_ in zip(jax.tree.leaves(c1), jax.tree.leaves(c2)):
            np.testing.assert_allclose(np.asarray(a_), np.asarray(b_), atol=1e-6)
        # each sequence alone, unpadded, gives the same valid outputs and final state
        for n, L in enumerate(lengths):
            cn, yn = rec.scan_cell(cell, p, jnp.asarray(xs[n:n + 1, :L]), rec.initial_carry(kind, 1, H),
                                   reverse=reverse)
            np.testing.assert_allclose(np.asarray(y1[n, :L]), np.asarray(yn[0]), atol=1e-5)
            np.testing.assert_allclose(np.asarray(rec.cell_hidden(c1)[n]), np.asarray(rec.cell_hidden(cn)[0]),
                                       atol=1e-5)


def test_bidirectional_and_stacked_shapes_and_residual():
    rng = np.random.default_rng(7)
    N, T, H = 2, 6, 4
    p = {"w_ih": jnp.asarray(_rand(rng, H, H)), "w_hh": jnp.asarray(_rand(rng, H, H)), "b": jnp.zeros(H)}
    cell = rec.make_cell("rnn")
    xs = jnp.asarray(rng.normal(size=(N, T, H)), jnp.float32)
    mask = jnp.asarray(np.arange(T)[None] < np.array([[6], [3]]))
    (cf, cb), ys = rec.bidirectional(cell, p, cell, p, xs, jnp.zeros((N, H)), jnp.zeros((N, H)), mask=mask)
    assert ys.shape == (N, T, 2 * H)
    # backward half of sequence 1 (length 3) equals the forward scan of its reversed valid part
    _, yr = rec.scan_cell(cell, p, xs[1:2, :3][:, ::-1], jnp.zeros((1, H)))
    np.testing.assert_allclose(np.asarray(ys[1, :3, H:]), np.asarray(yr[0, ::-1]), atol=1e-6)
    _, top = rec.stacked([cell, cell], [p, p], xs, [jnp.zeros((N, H))] * 2, residual=True)
    _, l1 = rec.scan_cell(cell, p, xs, jnp.zeros((N, H)))
    _, l2 = rec.scan_cell(cell, p, l1 + xs, jnp.zeros((N, H)))
    np.testing.assert_allclose(np.asarray(top), np.asarray(l2 + l1 + xs), atol=1e-6)


def test_jacobian_through_the_scan_is_the_matrix_power_for_a_linear_rnn():
    rng = np.random.default_rng(8)
    H, T = 6, 12
    w = rng.normal(size=(H, H)) / np.sqrt(H)
    p = {"w_ih": jnp.zeros((1, H)), "w_hh": jnp.asarray(w, jnp.float32), "b": jnp.zeros(H)}
    norms = np.asarray(rec.state_jacobian_norms(rec.make_cell("rnn", activation="linear"), p,
                                                jnp.zeros((1, T, 1)), jnp.zeros((1, H))))
    # h_T = h_{T-k} W^k (row vectors): ‖∂h_T/∂h_{T−k}‖₂ = ‖W^k‖₂
    ref = [np.linalg.norm(np.linalg.matrix_power(w, k), 2) for k in range(T)]
    np.testing.assert_allclose(norms, ref, rtol=1e-4)


def _cell_params(rng, kind, D, H, ln):
    g = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    p = {"w_ih": rng.normal(0, 0.5, (D, g * H)), "w_hh": rng.normal(0, 0.5, (H, g * H))}
    if kind == "gru":
        p.update(b_ih=rng.normal(0, 0.5, g * H), b_hh=rng.normal(0, 0.5, g * H))
    if kind != "gru" and (kind == "lstm" or not ln):
        p["b"] = rng.normal(0, 0.5, g * H)
    if ln:
        p.update(ln_scale=rng.uniform(0.5, 2, g * H), ln_bias=rng.normal(0, 0.5, g * H))
        if kind == "gru":
            p.update(lnh_scale=rng.uniform(0.5, 2, g * H), lnh_bias=rng.normal(0, 0.5, g * H))
    return {k: jnp.asarray(v, jnp.float64) for k, v in p.items()}


@pytest.mark.parametrize("kind,settings", [("lstm", {}), ("gru", {}), ("lstm", {"ln": True}), ("gru", {"ln": True})])
def test_fused_scan_is_the_reference_scan_in_value_and_gradient(kind, settings):
    """The fused path (input projection hoisted, hand-written reverse-mode rule) against plain autodiff
    of the reference scan (``fused=False``), float64: outputs, final carry and the gradient of a random
    linear functional of both w.r.t. params, inputs and initial carry, with masks and reversed."""
    rng = np.random.default_rng(10)
    N, T, D, H = 3, 8, 5, 4
    cell = rec.make_cell(kind, **settings)
    with jax.enable_x64(True):
        p = _cell_params(rng, kind, D, H, settings.get("ln", False))
        xs = jnp.asarray(rng.normal(size=(N, T, D)))
        c0 = jax.tree.map(lambda z: jnp.asarray(rng.normal(size=z.shape)), rec.initial_carry(kind, N, H, jnp.float64))
        r_ys = jnp.asarray(rng.normal(size=(N, T, H)))
        r_c = jax.tree.map(lambda z: jnp.asarray(rng.normal(size=z.shape)), c0)
        lengths = np.array([8, 5, 1])
        for mask in (None, jnp.asarray(np.arange(T)[None] < lengths[:, None])):
            for reverse in (False, True):
                def f(p_, xs_, c0_, fused, mask=mask, reverse=reverse):
                    c, ys = rec.scan_cell(cell, p_, xs_, c0_, mask=mask, reverse=reverse, fused=fused)
                    return jnp.sum(ys * r_ys) + sum(jnp.sum(a * b) for a, b in zip(jax.tree.leaves(c),
                                                                                  jax.tree.leaves(r_c)))
                out_f = rec.scan_cell(cell, p, xs, c0, mask=mask, reverse=reverse)
                out_r = rec.scan_cell(cell, p, xs, c0, mask=mask, reverse=reverse, fused=False)
                for a, b in zip(jax.tree.leaves(out_f), jax.tree.leaves(out_r)):
                    assert a.dtype == jnp.float64
                    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-12)
                g_f = jax.grad(f, argnums=(0, 1, 2))(p, xs, c0, True)
                g_r = jax.grad(f, argnums=(0, 1, 2))(p, xs, c0, False)
                assert jax.tree.structure(g_f) == jax.tree.structure(g_r)
                for a, b in zip(jax.tree.leaves(g_f), jax.tree.leaves(g_r)):
                    assert np.abs(np.asarray(b)).max() > 1e-3          # a gradient that is really there
                    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-10)
                # the fused path is what scan_cell ran (its rule is a custom_vjp), the reference is not
                assert "custom_vjp" in str(jax.make_jaxpr(f, static_argnums=3)(p, xs, c0, True))
                assert "custom_vjp" not in str(jax.make_jaxpr(f, static_argnums=3)(p, xs, c0, False))


def test_fused_scan_under_jit_vmap_and_the_layer():
    """Under jit and vmap (a batch of parameter sets) the fused gradient equals the plain scan's; the
    nnx layer takes the fused path; the vanilla cell and a perturbed scan keep the plain scan."""
    from flax import nnx

    from dlnotes.models.rnn import Recurrent
    rng = np.random.default_rng(11)
    N, T, D, H = 2, 6, 3, 4
    cell = rec.make_cell("lstm")
    with jax.enable_x64(True):
        ps = [_cell_params(rng, "lstm", D, H, False) for _ in range(3)]
        pb = jax.tree.map(lambda *a: jnp.stack(a), *ps)
        xs = jnp.asarray(rng.normal(size=(N, T, D)))
        c0 = rec.initial_carry("lstm", N, H, jnp.float64)

        def loss(p, fused):
            (h, c), ys = rec.scan_cell(cell, p, xs, c0, fused=fused)
            return jnp.sum(jnp.sin(ys)) + jnp.sum(h * c)
        g_f = jax.jit(jax.vmap(jax.grad(lambda p: loss(p, True))))(pb)
        g_r = [jax.grad(lambda p: loss(p, False))(p) for p in ps]
        for k in g_f:
            np.testing.assert_allclose(np.asarray(g_f[k]), np.stack([np.asarray(g[k]) for g in g_r]), rtol=0,
                                       atol=1e-10)
    layer = Recurrent("gru", D, H, rngs=nnx.Rngs(0))
    x32 = jnp.asarray(rng.normal(size=(N, T, D)), jnp.float32)
    assert "custom_vjp" in str(jax.make_jaxpr(lambda x: layer(x)[1])(x32))
    assert "custom_vjp" not in str(jax.make_jaxpr(lambda x: Recurrent("rnn", D, H, rngs=nnx.Rngs(0))(x)[1])(x32))
    d = (jnp.zeros((T, N, H)), jnp.zeros((T, N, H)))
    p32 = jax.tree.map(lambda v: v.astype(jnp.float32), ps[0])
    assert "custom_vjp" not in str(jax.make_jaxpr(
        lambda x: rec.scan_cell(cell, p32, x, rec.initial_carry("lstm", N, H), perturb=d)[1])(x32))


def test_fused_by_default_only_at_small_batches():
    """``fused=None`` (the default) takes the fused rule at batch ≤ FUSED_MAX_BATCH (where it was measured
    faster) and the plain scan above it; both give the same values."""
    cell = rec.make_cell("gru")
    T, D, H = 3, 2, 4
    p = _cell_params(np.random.default_rng(12), "gru", D, H, False)
    p = {k: jnp.asarray(v, jnp.float32) for k, v in p.items()}
    for n, fused in ((rec.FUSED_MAX_BATCH, True), (rec.FUSED_MAX_BATCH + 1, False)):
        xs = jnp.ones((n, T, D), jnp.float32)
        jaxpr = str(jax.make_jaxpr(lambda x: rec.scan_cell(cell, p, x, jnp.zeros((n, H)))[1])(xs))
        assert ("custom_vjp" in jaxpr) == fused, n
        a = rec.scan_cell(cell, p, xs, jnp.zeros((n, H)))[1]
        b = rec.scan_cell(cell, p, xs, jnp.zeros((n, H)), fused=not fused)[1]
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-6)
