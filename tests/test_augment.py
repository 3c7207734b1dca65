"""Augmentation invariants: exact identities, value ranges, determinism per key, label mixing, jit/vmap."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlnotes.data import augment as A
from dlnotes.errors import ConfigError

N, H, W, C = 8, 8, 8, 1


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x = load_digits().images[:N, :, :, None].astype(np.float32) / 16.0
    return jnp.asarray(x)


def _rand(key, shape):
    return jax.random.uniform(jax.random.key(key), shape)


# per-example ops with p = 1, all in one compiled function (one compile for the lot)
EXAMPLE = {
    "autocontrast": functools.partial(A.random_autocontrast),
    "rotate": functools.partial(A.random_rotate, max_degrees=30.0),
    "translate": functools.partial(A.random_translate, max_shift=2.0),
    "translate_sub": functools.partial(A.random_translate, max_shift=1.5, integer=False),
    "hflip": functools.partial(A.random_hflip, p=0.5),
    "posterize": functools.partial(A.random_posterize, bits=3),
    "cutout": functools.partial(A.cutout, size=3),
    "pixmix": functools.partial(A.pixmix, mixing_set="patterns"),
}
RANDOM = ("rotate", "translate", "translate_sub", "hflip", "cutout", "pixmix")


@jax.jit
def all_example_ops(key, x):
    keys = jax.random.split(key, x.shape[0])
    return {name: jax.vmap(fn)(keys, x) for name, fn in EXAMPLE.items()}


def test_example_ops_shape_range_and_key_determinism(digits):
    a = all_example_ops(jax.random.key(0), digits)
    b = all_example_ops(jax.random.key(0), digits)
    c = all_example_ops(jax.random.key(1), digits)
    for name in EXAMPLE:
        assert a[name].shape == digits.shape and a[name].dtype == jnp.float32, name
        assert float(a[name].min()) >= -1e-6 and float(a[name].max()) <= 1 + 1e-6, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        if name in RANDOM:
            assert not np.array_equal(a[name], c[name]), name
    # per-example keys: examples in a batch get different draws
    assert len({float(jnp.sum(jnp.abs(a["rotate"][i] - A.rotate(digits[i], 0.0)))) for i in range(N)}) == N


# ---------------------------------------------------------------------------- exact identities


def test_flip_twice_is_identity_and_flip_is_mirror():
    x = _rand(0, (5, 7, 3))
    np.testing.assert_array_equal(A.hflip(A.hflip(x)), x)
    np.testing.assert_array_equal(A.hflip(x), np.asarray(x)[:, ::-1])
    np.testing.assert_array_equal(A.random_hflip(jax.random.key(0), x, p=0.0), x)
    np.testing.assert_array_equal(A.random_hflip(jax.random.key(0), x, p=1.0), A.hflip(x))


def test_rotation_zero_is_identity_and_90_is_rot90():
    rot = jax.jit(A.rotate)  # traced angle and fill: one compile
    x = _rand(1, (9, 9, 2))
    np.testing.assert_allclose(rot(x, 0.0, 0.0), x, atol=1e-6)
    np.testing.assert_allclose(rot(x, 90.0, 0.0), jnp.rot90(x, 1, axes=(0, 1)), atol=1e-5)
    np.testing.assert_allclose(rot(x, -90.0, 0.0), jnp.rot90(x, -1, axes=(0, 1)), atol=1e-5)
    np.testing.assert_allclose(rot(x, 180.0, 0.0), jnp.rot90(x, 2, axes=(0, 1)), atol=1e-5)
    # any angle: the centre pixel of an odd image stays; a constant image with fill = constant stays
    assert float(jnp.abs(rot(x, 37.0, 0.0)[4, 4] - x[4, 4]).max()) < 1e-5
    np.testing.assert_allclose(rot(jnp.ones_like(x), 45.0, 1.0), jnp.ones_like(x), atol=1e-5)


def test_integer_translation_is_roll_away_from_borders_fill_at_borders():
    x = _rand(2, (10, 12, 3))
    for dx, dy in ((2, 0), (0, -3), (-1, 2)):
        out = np.asarray(A.translate(x, dx, dy, fill=0.25))
        rolled = np.asarray(jnp.roll(x, (dy, dx), axis=(0, 1)))
        rows = slice(max(dy, 0), 10 + min(dy, 0))
        cols = slice(max(dx, 0), 12 + min(dx, 0))
        np.testing.assert_allclose(out[rows, cols], rolled[rows, cols], atol=1e-6)
        covered = np.zeros((10, 12), bool)
        covered[rows, cols] = True
        np.testing.assert_array_equal(out[~covered], 0.25)


def test_subpixel_translation_interpolates():
    x = _rand(3, (6, 6, 1))
    out = A.translate(x, 0.5, 0.0)
    np.testing.assert_allclose(out[:, 1:], (x[:, 1:] + x[:, :-1]) / 2, atol=1e-6)


def test_random_integer_translation_shifts_by_whole_pixels(digits):
    out = all_example_ops(jax.random.key(0), digits)["translate"]
    for i in range(N):
        errs = {(dx, dy): float(jnp.abs(A.translate(digits[i], dx, dy) - out[i]).max())
                for dx in range(-2, 3) for dy in range(-2, 3)}
        assert min(errs.values()) < 1e-6


def test_posterize_matches_numpy_bit_masking():
    x = _rand(4, (6, 6, 3))
    q = np.round(np.asarray(x) * 255).astype(np.uint8)
    for bits in range(1, 9):
        want = (q & np.uint8((0xFF << (8 - bits)) & 0xFF)).astype(np.float32) / 255
        np.testing.assert_allclose(A.posterize(x, bits), want, atol=1e-7, err_msg=f"bits={bits}")
    np.testing.assert_allclose(A.posterize(x, 8), q / 255.0, atol=1e-7)


def test_autocontrast_maps_min_to_0_and_max_to_1_per_channel():
    x = _rand(5, (7, 7, 3)) * 0.3 + jnp.array([0.1, 0.5, 0.2])
    out = A.autocontrast(x)
    np.testing.assert_allclose(out.min(axis=(0, 1)), 0.0, atol=1e-6)
    np.testing.assert_allclose(out.max(axis=(0, 1)), 1.0, atol=1e-6)
    lo, hi = x.min(axis=(0, 1)), x.max(axis=(0, 1))
    np.testing.assert_allclose(out, (x - lo) / (hi - lo), atol=1e-6)
    flat = jnp.full((4, 4, 1), 0.3)
    np.testing.assert_array_equal(A.autocontrast(flat), flat)


def test_cutout_square_area_and_fill():
    x = jnp.ones((10, 10, 1))
    out = A.cutout_at(x, 5, 5, 4, fill=0.0)
    assert float((out == 0).sum()) == 16
    np.testing.assert_array_equal(np.asarray(out)[3:7, 3:7], 0.0)
    corner = A.cutout_at(x, 0, 0, 4, fill=0.5)  # hangs over the border: 2 x 2 inside
    assert float((corner == 0.5).sum()) == 4


# ---------------------------------------------------------------------------- batch ops: label mixing

@jax.jit
def run_pipeline(pipe, key, x, y):
    return pipe(key, x, y)


def test_mixup_labels_sum_to_one_and_match_pixel_weights(digits):
    pipe = A.compose([{"name": "mixup", "alpha": 0.4}])
    labels = jnp.eye(N)  # each example its own class: the label row shows (lam_i, partner)
    x, y = run_pipeline(pipe, jax.random.key(0), digits, labels)
    assert x.shape == digits.shape and y.shape == labels.shape
    np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-6)
    lam = np.asarray(jnp.diagonal(y))
    assert np.all((lam >= 0) & (lam <= 1)) and np.ptp(lam) > 0
    for i in range(N):
        rest = np.asarray(y[i]).copy()
        rest[i] = 0
        j = int(np.argmax(rest)) if rest.max() > 0 else i
        np.testing.assert_allclose(x[i], lam[i] * digits[i] + (1 - lam[i]) * digits[j], atol=1e-5)
    x0, y0 = run_pipeline(pipe.with_params(0, p=0.0), jax.random.key(0), digits, labels)  # p = 0: unchanged
    np.testing.assert_array_equal(x0, digits)
    np.testing.assert_array_equal(y0, labels)
    x2, _ = run_pipeline(pipe, jax.random.key(0), digits, labels)
    x3, _ = run_pipeline(pipe, jax.random.key(1), digits, labels)
    np.testing.assert_array_equal(x, x2)
    assert not np.array_equal(x, x3)
    with pytest.raises(ValueError, match="batch ops"):
        pipe.example(jax.random.key(0), digits[0])
    with pytest.raises(ValueError, match="one-hot"):
        A.mixup(jax.random.key(0), digits, jnp.arange(N))


def test_cutmix_label_weight_is_pasted_area():
    x = jnp.broadcast_to(jnp.arange(1.0, N + 1)[:, None, None, None] / (N + 1), (N, 16, 16, 1))  # image i = const
    labels = jnp.eye(N)
    pipe = A.compose([{"name": "cutmix", "alpha": 1.0, "p": 1.0}])
    for seed in range(3):
        out, y = run_pipeline(pipe, jax.random.key(seed), x, labels)
        np.testing.assert_allclose(y.sum(-1), 1.0, atol=1e-6)
        for i in range(N):
            own = np.isclose(np.asarray(out[i]), float(x[i, 0, 0, 0]))
            pasted_area = 1.0 - own.mean()
            np.testing.assert_allclose(1.0 - float(y[i, i]), pasted_area, atol=1e-6)
            if pasted_area > 0:  # the pasted pixels all come from the one partner the label names
                j = int(np.argmax(np.where(np.arange(N) == i, -1, y[i])))
                np.testing.assert_allclose(np.asarray(out[i])[~own], float(x[j, 0, 0, 0]), atol=1e-6)
    out0, y0 = run_pipeline(pipe.with_params(0, p=0.0), jax.random.key(0), x, labels)
    np.testing.assert_array_equal(out0, x)
    np.testing.assert_array_equal(y0, labels)


# ---------------------------------------------------------------------------- PixMix


def test_pixmix_mixing_sets():
    ms = A.photo_mixing_set(12, 16, 3)
    assert ms.shape == (12, 12, 16, 3) and ms.min() >= 0 and ms.max() <= 1
    assert A.photo_mixing_set(12, 16, 1).shape == (12, 12, 16, 1)
    pat = A.fractal_pattern(jax.random.key(0), (12, 16, 3))
    assert pat.shape == (12, 16, 3)
    np.testing.assert_allclose(pat.min(axis=(0, 1)), 0.0, atol=1e-6)
    np.testing.assert_allclose(pat.max(axis=(0, 1)), 1.0, atol=1e-6)
    img = jnp.asarray(ms[0])
    f = jax.jit(lambda k, im: A.pixmix(k, im, ms[1:]))
    outs = [f(jax.random.key(s), img) for s in range(4)]
    assert all(o.shape == img.shape and float(o.min()) >= 0 and float(o.max()) <= 1 for o in outs)
    assert any(not np.allclose(o, img) for o in outs)
    np.testing.assert_array_equal(f(jax.random.key(2), img), outs[2])


# ---------------------------------------------------------------------------- config -> pipeline


def test_compose_pipeline_jit_and_traced_probability(digits):
    pipe = A.compose([{"name": "hflip", "p": 0.5}, {"name": "autocontrast", "p": 0.0}])
    labels = jax.nn.one_hot(jnp.arange(N) % 10, 10)
    traces = []

    @jax.jit
    def step(pipe, key):
        traces.append(1)
        return pipe(key, digits, labels)

    x, y = step(pipe, jax.random.key(0))
    np.testing.assert_array_equal(y, labels)  # per-example ops keep labels
    flipped = np.array([np.array_equal(x[i], A.hflip(digits[i])) for i in range(N)])
    kept = np.array([np.array_equal(x[i], digits[i]) for i in range(N)])
    assert np.all(flipped | kept) and flipped.any() and kept.any()
    # change the traced probability: no recompile; p = 1 flips all, p = 0 none
    ones = pipe.with_params(0, p=1.0)
    x1, _ = step(ones, jax.random.key(0))
    np.testing.assert_array_equal(x1, jax.vmap(A.hflip)(digits))
    assert len(traces) == 1
    # vmap over the probability: a sweep of p in one call
    ps = jnp.array([0.0, 1.0])
    xs = jax.vmap(lambda p: pipe.with_params(0, p=p)(jax.random.key(0), digits, labels)[0])(ps)
    np.testing.assert_array_equal(xs[0], digits)
    np.testing.assert_array_equal(xs[1], jax.vmap(A.hflip)(digits))
    # one example with its own key
    np.testing.assert_array_equal(ones.example(jax.random.key(3), digits[0]), A.hflip(digits[0]))


def test_compose_errors_name_the_key():
    with pytest.raises(ConfigError) as e:
        A.compose(["hflip", "solarise"])
    assert e.value.key == "augment.ops" and "solarise" in str(e.value)
    with pytest.raises(ConfigError) as e:
        A.compose([{"name": "rotate", "p": 1.5}])
    assert e.value.key == "augment.ops[0].p"
    with pytest.raises(ConfigError) as e:
        A.compose(["hflip", {"name": "posterize", "bits": 9}])
    assert e.value.key == "augment.ops[1].bits"
    with pytest.raises(ConfigError) as e:
        A.compose([{"name": "mixup", "alpah": 0.2}])
    assert e.value.key == "augment.ops[0].alpah"
    with pytest.raises(ConfigError) as e:
        A.compose("hflip")
    assert e.value.key == "augment.ops"
    import ml_collections

    cfg = ml_collections.ConfigDict({"ops": ["hflip", {"name": "cutout", "size": 2}]})
    assert A.compose(cfg).names == ("hflip", "cutout")
