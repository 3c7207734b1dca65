"""Metrics against direct NumPy computations."""
import jax
import numpy as np
import pytest

from dlnotes.train import metrics


def _np_softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_ece(p, y, n_bins):
    conf, pred = p.max(-1), p.argmax(-1)
    edges = np.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return ece


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 7)) * 2.0
    labels = rng.integers(0, 7, size=500)
    return logits.astype(np.float32), labels


def test_accuracy_vs_numpy(data):
    logits, labels = data
    want = np.mean(logits.argmax(-1) == labels)
    assert float(metrics.accuracy(logits, labels)) == pytest.approx(want)
    assert float(metrics.accuracy(logits, np.eye(7)[labels])) == pytest.approx(want)
    assert float(jax.jit(metrics.accuracy)(logits, labels)) == pytest.approx(want)


def test_ece_vs_numpy_logits_and_probs(data):
    logits, labels = data
    p = _np_softmax(logits.astype(np.float64))
    want = _np_ece(p, labels, 15)
    assert float(metrics.expected_calibration_error(logits, labels)) == pytest.approx(want, abs=1e-5)
    assert float(metrics.expected_calibration_error(p.astype(np.float32), labels)) == pytest.approx(want, abs=1e-5)
    assert float(metrics.expected_calibration_error(logits, labels, from_logits=True)) == pytest.approx(want, abs=1e-5)
    got10 = jax.jit(metrics.expected_calibration_error, static_argnums=2)(logits, labels, 10)
    assert float(got10) == pytest.approx(_np_ece(p, labels, 10), abs=1e-5)


def test_ece_zero_when_perfectly_calibrated():
    # conf 0.6 for 10 examples, 6 right; conf 0.9 for 10 examples, 9 right
    p = np.array([[0.6, 0.4]] * 10 + [[0.1, 0.9]] * 10, np.float32)
    y = np.array([0] * 6 + [1] * 4 + [1] * 9 + [0], np.int32)
    assert float(metrics.expected_calibration_error(p, y)) == pytest.approx(0.0, abs=1e-6)
    # overconfident: every prediction at 0.9 but only half right -> ECE 0.4
    p2 = np.array([[0.9, 0.1]] * 10, np.float32)
    y2 = np.array([0, 1] * 5)
    assert float(metrics.expected_calibration_error(p2, y2)) == pytest.approx(0.4, abs=1e-6)


def test_reliability_diagram_bins(data):
    logits, labels = data
    d = metrics.reliability_diagram(logits, labels, n_bins=15)
    p = _np_softmax(logits.astype(np.float64))
    conf = p.max(-1)
    counts = np.histogram(conf, bins=np.linspace(0, 1, 16))[0]
    assert d["bin_edges"].shape == (16,)
    np.testing.assert_array_equal(np.asarray(d["count"]), counts)  # no confidences on interior edges here
    nz = counts > 0
    ece = np.sum(d["count"][nz] / len(conf) * np.abs(d["accuracy"][nz] - d["confidence"][nz]))
    assert float(d["ece"]) == pytest.approx(float(ece), abs=1e-6)
    assert np.all((d["confidence"][nz] > d["bin_edges"][:-1][nz]) & (d["confidence"][nz] <= d["bin_edges"][1:][nz] + 1e-6))


def test_confusion_matrix(data):
    logits, labels = data
    c = np.asarray(metrics.confusion_matrix(logits, labels, 7))
    want = np.zeros((7, 7), int)
    np.add.at(want, (labels, logits.argmax(-1)), 1)
    np.testing.assert_array_equal(c, want)
    assert np.trace(c) / c.sum() == pytest.approx(float(metrics.accuracy(logits, labels)))
