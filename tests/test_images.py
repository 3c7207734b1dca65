"""Offline image data: digits splits, npz loader errors, sample photos, shifted test sets, mnist1d."""
import random
import socket

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dlnotes.data import images
from dlnotes.errors import ConfigError


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# ---------------------------------------------------------------------------- digits


def test_digits_split_disjoint_deterministic_and_stratified(no_network):
    a = images.load_digits_split(0)
    b = images.load_digits_split(0)
    c = images.load_digits_split(1)
    assert [len(a[s]["y"]) for s in ("train", "val", "test")] == [1797 - 180 - 360, 180, 360]
    for s in ("train", "val", "test"):
        x, y = a[s]["x"], a[s]["y"]
        assert x.shape[1:] == (8, 8, 1) and x.dtype == np.float32 and y.dtype == np.int32
        assert x.min() >= 0 and x.max() <= 1 and x.max() == 1
        np.testing.assert_array_equal(x, b[s]["x"])
        np.testing.assert_array_equal(y, b[s]["y"])
        assert not np.array_equal(y, c[s]["y"])
        counts = np.bincount(y, minlength=10)
        assert counts.max() - counts.min() <= max(2, len(y) // 60)  # stratified
    # disjoint and covering: identify each image by its bytes
    keys = {s: {r.tobytes() + bytes([l]) for r, l in zip(a[s]["x"], a[s]["y"])} for s in a}
    assert not (keys["train"] & keys["test"]) and not (keys["train"] & keys["val"]) and not (keys["val"] & keys["test"])
    # the test set depends only on (seed, n_test): a smaller train set keeps it
    small = images.load_digits_split(0, n_train=200, n_val=0)
    assert len(small["train"]["y"]) == 200 and len(small["val"]["y"]) == 0
    np.testing.assert_array_equal(small["test"]["x"], a["test"]["x"])


def test_digits_resize_and_bad_sizes():
    d = images.load_digits_split(3, n_train=50, n_val=10, n_test=20, size=(16, 16))
    assert d["train"]["x"].shape == (50, 16, 16, 1) and d["val"]["x"].shape == (10, 16, 16, 1)
    assert d["train"]["x"].min() >= 0 and d["train"]["x"].max() <= 1
    with pytest.raises(ConfigError) as e:
        images.load_digits_split(0, n_train=1500)
    assert e.value.key == "data.n_train"
    with pytest.raises(ConfigError) as e:
        images.load_digits_split(0, n_val=-1)
    assert e.value.key == "data.n_val"


# ---------------------------------------------------------------------------- npz


def test_load_npz_nhw_uint8_and_nhwc(tmp_path):
    p = tmp_path / "mine.npz"
    x = np.random.default_rng(0).integers(0, 256, size=(5, 6, 7), dtype=np.uint8)
    np.savez(p, x=x, y=np.arange(5))
    d = images.load_npz(p)
    assert d["x"].shape == (5, 6, 7, 1) and d["x"].dtype == np.float32 and d["y"].dtype == np.int32
    np.testing.assert_allclose(d["x"][..., 0], x / 255.0, atol=1e-7)
    q = tmp_path / "rgb.npz"
    np.savez(q, images=np.random.default_rng(1).random((3, 4, 4, 3)), labels=np.array([0.0, 2.0, 1.0]))
    d = images.load_npz(q, x_key="images", y_key="labels")
    assert d["x"].shape == (3, 4, 4, 3)
    np.testing.assert_array_equal(d["y"], [0, 2, 1])


@pytest.mark.parametrize("arrays, what", [
    ({"y": np.arange(3)}, "'x'"),
    ({"x": np.zeros((3, 4, 4))}, "'y'"),
    ({"x": np.full((2, 4, 4), np.nan), "y": np.arange(2)}, "NaN"),
    ({"x": np.zeros((0, 4, 4)), "y": np.zeros(0, int)}, "empty"),
    ({"x": np.zeros((3, 4, 4)), "y": np.arange(4)}, "3 rows but"),
    ({"x": np.zeros((3, 4)), "y": np.arange(3)}, "NHWC or NHW"),
    ({"x": np.zeros((3, 4, 4)), "y": np.array([0.5, 1, 2])}, "integer class labels"),
])
def test_load_npz_errors_name_the_file(tmp_path, arrays, what):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(ConfigError) as e:
        images.load_npz(p)
    assert e.value.key == str(p) and what in str(e.value)
    assert "\n" not in str(e.value)


def test_load_npz_missing_or_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file") as e:
        images.load_npz(tmp_path / "nope.npz")
    assert e.value.key == str(tmp_path / "nope.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ConfigError, match="cannot read") as e:
        images.load_npz(junk)
    assert e.value.key == str(junk)


# ---------------------------------------------------------------------------- photos and shifts


def test_sample_photos_offline(no_network):
    p = images.sample_photos()
    assert set(p) == {"china", "flower"}
    for img in p.values():
        assert img.shape == (427, 640, 3) and img.dtype == np.float32 and img.min() >= 0 and img.max() <= 1
    small = images.sample_photos((32, 48))
    assert small["china"].shape == (32, 48, 3)
    assert abs(float(small["china"].mean()) - float(p["china"].mean())) < 0.02


def _np_shift(x, dx, dy, fill):
    out = np.full_like(x, fill)
    h, w = x.shape[:2]
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[i, j] = x[i - dy, j - dx]
    return out


def test_shift_images_matches_numpy_per_image_shifts():
    x = np.random.default_rng(0).random((4, 6, 5, 2)).astype(np.float32)
    dx, dy = np.array([1, -2, 0, 3]), np.array([0, 1, -1, -2])
    out = np.asarray(jax.jit(images.shift_images)(x, dx, dy, 0.5))
    for n in range(4):
        np.testing.assert_array_equal(out[n], _np_shift(x[n], dx[n], dy[n], 0.5))
    np.testing.assert_array_equal(images.shift_images(x, 2, 1), np.stack([_np_shift(im, 2, 1, 0.0) for im in x]))
    np.testing.assert_array_equal(images.shift_images(x[0], -1, 2), _np_shift(x[0], -1, 2, 0.0))


def test_random_shift_images_moves_every_image_1_to_2_pixels():
    x = jnp.asarray(np.random.default_rng(1).random((16, 8, 8, 1)).astype(np.float32)) + 0.1  # no zeros
    out = np.asarray(images.random_shift_images(jax.random.key(0), x, 1, 2))
    for n in range(16):
        matches = [(dx, dy) for dx in range(-2, 3) for dy in range(-2, 3)
                   if np.array_equal(out[n], _np_shift(np.asarray(x[n]), dx, dy, 0.0))]
        assert len(matches) == 1 and 1 <= max(map(abs, matches[0])) <= 2


# ---------------------------------------------------------------------------- mnist1d


def test_mnist1d_offline_shapes_deterministic_and_keeps_global_rng(no_network):
    from dlnotes.data.mnist1d import load_mnist1d

    np.random.seed(123)
    random.seed(123)
    want_np, want_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    a = load_mnist1d(seed=0, num_samples=500, n_val=50)
    assert np.random.rand() == want_np and random.random() == want_py  # global RNGs untouched
    assert [len(a[s]["y"]) for s in ("train", "val", "test")] == [350, 50, 100]
    for s in a:
        assert a[s]["x"].shape[1:] == (40, 1) and a[s]["x"].dtype == np.float32 and a[s]["y"].dtype == np.int32
        assert np.all(np.isfinite(a[s]["x"]))
    assert set(np.unique(a["train"]["y"])) == set(range(10))
    b = load_mnist1d(seed=0, num_samples=500, n_val=50)
    c = load_mnist1d(seed=1, num_samples=500, n_val=50)
    np.testing.assert_array_equal(a["train"]["x"], b["train"]["x"])
    assert not np.array_equal(a["train"]["x"], c["train"]["x"])
    with pytest.raises(ConfigError) as e:
        load_mnist1d(seed=0, num_samples=500, n_val=400)
    assert e.value.key == "data.n_val"


# ---------------------------------------------------------------------------- augmentation gallery


@pytest.mark.slow
def test_augment_gallery_script_draws_png(tmp_path):
    """scripts/augment_gallery.py (draw_gallery): every augmentation on real digits and photos."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "scripts" / "augment_gallery.py"
    spec = importlib.util.spec_from_file_location("augment_gallery", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--out", str(tmp_path / "missing_dir" / "g.png")]) == 2  # one-line error, nothing drawn
    out = tmp_path / "gallery.png"
    assert script.main(["--out", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
