"""The element-wise kernels of `nnlayers.utils.fastmath`: OpenCV's give numpy's numbers, numpy's are the fallback."""

import warnings

import numpy as np
import pytest

from nnlayers import LSTM
from nnlayers.utils import fastmath
from nnlayers.utils.fastmath import NUMPY, kernels, sigmoid_of_negated_, tanh_into

DTYPES = [np.float32, np.float64]


def blocks(dtype, seed=0):
    """Two column blocks of wide arrays (rows not adjacent), as a recurrent cell's gates are."""
    rng = np.random.default_rng(seed)
    wide = rng.normal(size=(2, 6, 20)).astype(dtype) * 3
    return wide[0][:, 5:10], wide[1][:, 10:15]


@pytest.mark.parametrize("dtype", DTYPES)
def test_opencv_kernels_give_numpys_numbers_on_column_blocks(dtype):
    k = kernels(dtype)
    assert k is not NUMPY  # OpenCV is a dependency: its kernels are the ones used
    a, b = blocks(dtype)
    out = np.zeros((7, 30), dtype)[1:, 3:8]  # written in place, a block of a wider array too
    assert k.multiply(a, b, out) is out
    np.testing.assert_array_equal(out, a * b)
    k.affine(a, 2.0, -1.0, out)
    np.testing.assert_array_equal(out, a * dtype(2) - dtype(1))
    k.affine(a, -1.0, 1.0, out)
    np.testing.assert_array_equal(out, dtype(1) - a)
    assert not np.zeros((7, 30), dtype)[:1].any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_within_three_ulp_and_overflow_is_quiet(dtype):
    x = np.linspace(-80, 80, 20001).astype(dtype).reshape(1, -1)
    out = np.empty_like(x)
    kernels(dtype).exp(x, out)
    exact = np.exp(x.astype(np.longdouble))
    ulp = np.spacing(exact.astype(dtype)).astype(np.longdouble)
    assert np.max(np.abs(out - exact) / ulp) <= 3  # numpy's float32 exp: 2.3 ulp on the same inputs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in (kernels(dtype), NUMPY):
            big = np.array([[1000.0, -1000.0]], dtype)
            np.testing.assert_array_equal(k.exp(big, np.empty_like(big)), [[np.inf, 0.0]])


@pytest.mark.parametrize("k", [kernels(np.float64), NUMPY], ids=["opencv", "numpy"])
def test_sigmoid_and_tanh_from_exp(k):
    z = np.linspace(-30, 30, 600).reshape(3, -1)
    s = sigmoid_of_negated_(-z, k)
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-z)), rtol=1e-14, atol=0)
    np.testing.assert_array_equal(sigmoid_of_negated_(np.array([[-1000.0, 1000.0]]), k), [[1.0, 0.0]])
    t = tanh_into(z, np.empty_like(z), k)
    np.testing.assert_allclose(t, np.tanh(z), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(tanh_into(np.array([[-1000.0, 1000.0]]), np.empty((1, 2)), k), [[-1.0, 1.0]])


def test_other_dtypes_and_a_machine_without_opencv_use_numpy(monkeypatch):
    assert kernels(np.float16) is NUMPY
    monkeypatch.setattr(fastmath, "_OPENCV", [None])
    assert kernels(np.float32) is NUMPY


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_without_opencv_gives_the_same_numbers(monkeypatch, dtype):
    rng = np.random.default_rng(0)
    x, grad = rng.normal(size=(3, 6, 4)).astype(dtype), rng.normal(size=(3, 6, 10)).astype(dtype)
    lengths = np.array([6, 2, 4])
    results = []
    for opencv in (True, False):
        if not opencv:
            monkeypatch.setattr(fastmath, "_OPENCV", [None])
        lstm = LSTM(4, 5, num_layers=2, bidirectional=True, dtype=dtype, rng=0)
        out, (h_n, c_n) = lstm(x, lengths=lengths)
        results.append([out, h_n, c_n, lstm.backward(grad)] + [p.grad.copy() for p in lstm.parameters()])
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    for with_opencv, without in zip(*results):
        np.testing.assert_allclose(with_opencv, without, rtol=0, atol=tolerance)
