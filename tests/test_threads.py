"""nnlayers' own threads: products and element-wise passes split over a pool give numpy's results,
BLAS is single-threaded only inside nnlayers' work, and a seeded run repeats exactly."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import nnlayers
from nnlayers import SGD, BatchNorm2D, Conv2D, CrossEntropyLoss, Dense, Flatten, MaxPool2D, ReLU, Sequential, fit
from nnlayers.nn import functional as F
from nnlayers.utils import threads


@pytest.fixture(autouse=True)
def restore_threads():
    before = nnlayers.get_num_threads()
    yield
    nnlayers.set_num_threads(before)


@pytest.fixture
def split_everything(monkeypatch):
    """Every product and pass of the tests' small arrays split, as a batch of photos would be."""
    monkeypatch.setattr(threads, "MIN_ELEMENTS", 8)
    monkeypatch.setattr(threads, "MIN_PRODUCT_FLOPS", 8)


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2", None])
def test_set_num_threads_refuses_what_is_not_a_positive_integer(bad):
    with pytest.raises(ValueError, match="positive integer"):
        nnlayers.set_num_threads(bad)


def test_set_num_threads_is_what_get_num_threads_gives():
    nnlayers.set_num_threads(3)
    assert nnlayers.get_num_threads() == 3
    nnlayers.set_num_threads(1)
    assert nnlayers.get_num_threads() == 1


@pytest.mark.parametrize(
    "variable, value, expected",
    [("NNLAYERS_NUM_THREADS", "1", 1), ("OMP_NUM_THREADS", "3", 3), ("OPENBLAS_NUM_THREADS", "2", 2)],
)
def test_the_thread_count_follows_the_environment_variables_users_set_for_blas(variable, value, expected):
    env = {k: v for k, v in os.environ.items() if k not in threads._ENVIRONMENT}
    env[variable] = value
    code = "import nnlayers; print(nnlayers.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == expected


def test_blas_is_single_threaded_inside_nnlayers_work_only():
    if threads._blas_functions() is None:
        pytest.skip("numpy's BLAS is not an OpenBLAS this process can reach")
    get_blas = threads._blas_functions()[1]
    nnlayers.set_num_threads(2)
    assert get_blas() == 2
    seen = []
    threads.for_ranges(4, lambda s, e: seen.append(get_blas()), cost=10**9)
    assert seen and set(seen) == {1}
    assert get_blas() == 2  # numpy's own products outside nnlayers keep both threads
    model = Sequential([Conv2D(3, 4, 3, rng=0), ReLU(), Flatten(), Dense(4 * 6 * 6, 2, rng=1)])
    model(np.zeros((2, 8, 8, 3), np.float32))
    assert get_blas() == 2


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize(
    "a_shape, b_shape",
    [
        ((37, 11), (11, 5)),
        ((3, 200), (200, 4)),
        ((5, 6), (6, 41)),
        ((6, 5, 7), (6, 7, 3)),
        ((2, 3, 9, 4), (2, 3, 4, 5)),
    ],
)
def test_split_products_are_numpys_products(split_everything, n_threads, a_shape, b_shape):
    nnlayers.set_num_threads(n_threads)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    np.testing.assert_allclose(F.matmul(a, b), a @ b, rtol=1e-12, atol=1e-12)
    bias = rng.standard_normal(b_shape[-1])
    np.testing.assert_allclose(F.matmul(a, b, bias=bias), a @ b + bias, rtol=1e-12, atol=1e-12)
    out = np.empty((*a_shape[:-1], b_shape[-1]))
    assert F.matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12)


def test_split_products_of_transposed_views(split_everything):
    rng = np.random.default_rng(1)
    cols, g = rng.standard_normal((301, 9)), rng.standard_normal((301, 4))
    np.testing.assert_allclose(F.matmul(cols.T, g), cols.T @ g, rtol=1e-12, atol=1e-12)  # split by 301
    np.testing.assert_allclose(F.column_sums(g), g.sum(axis=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_threads", [2, 3])
def test_element_wise_passes_over_the_threads_are_numpys(split_everything, n_threads):
    nnlayers.set_num_threads(n_threads)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((7, 3, 5)), rng.standard_normal((7, 3, 5))
    np.testing.assert_array_equal(F.add(x, y), x + y)
    np.testing.assert_array_equal(ReLU()(x), np.maximum(x, 0))
    np.testing.assert_array_equal(F.pad_hw(x.reshape(7, 3, 5, 1), (2, 1), value=-1.0), np.pad(
        x.reshape(7, 3, 5, 1), ((0, 0), (2, 2), (1, 1), (0, 0)), constant_values=-1.0))  # fmt: skip


def test_an_error_in_one_part_reaches_the_caller_and_the_pool_goes_on(split_everything):
    nnlayers.set_num_threads(2)

    def work(start, stop):
        if start > 0:
            raise RuntimeError(f"part {start}:{stop} failed")

    with pytest.raises(RuntimeError, match="failed"):
        threads.for_ranges(10, work, cost=10**9)
    done = []
    threads.for_ranges(10, lambda s, e: done.append((s, e)), cost=10**9)
    assert sorted(done) == [(0, 5), (5, 10)]


@pytest.mark.parametrize("block_bytes", [64, 40_000, 1 << 20])  # rows of one image, several images, the batch
@pytest.mark.parametrize("stride, padding, dilation", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 0, 1)])
def test_convolutions_in_blocks_are_the_whole_im2col_product(monkeypatch, block_bytes, stride, padding, dilation):
    monkeypatch.setattr(F, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 9, 7, 4))
    weight = rng.standard_normal((5, 4, 3, 3))
    k, s, p, d = (3, 3), (stride, stride), (padding, padding), (dilation, dilation)
    ho, wo = F.output_size(9, 3, stride, padding, dilation), F.output_size(7, 3, stride, padding, dilation)
    cols = F.im2col(x, k, s, p, dilation=d)
    rows = weight.transpose(2, 3, 1, 0).reshape(36, 5)
    y = F.conv2d(F.pad_hw(x, p), rows, k, s, (ho, wo), d)
    np.testing.assert_allclose(y, cols @ rows, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(F.conv2d_weight_grad(F.pad_hw(x, p), g, k, s, (ho, wo), d), cols.T @ g, atol=1e-11)
    # the input gradient is the adjoint of im2col: <im2col(x) W, g> = <x, grad_x> for every x
    grad_x = F.conv_input_grad(g, weight, x.shape, s, p, d)
    assert np.isclose(np.sum((cols @ rows) * g), np.sum(x * grad_x), rtol=1e-12)


def _seeded_run(n_threads: int):
    nnlayers.set_num_threads(n_threads)
    rng = np.random.default_rng(0)
    x = rng.random((64, 16, 16, 3), dtype=np.float32)
    y = (x[:, :8].mean(axis=(1, 2, 3)) > x[:, 8:].mean(axis=(1, 2, 3))).astype(np.int64)
    model = Sequential(
        [Conv2D(3, 8, 3, padding=1, rng=1), BatchNorm2D(8), ReLU(), MaxPool2D(2)]
        + [Conv2D(8, 16, 3, padding=1, rng=2), BatchNorm2D(16), ReLU(), MaxPool2D(2)]
        + [Flatten(), Dense(16 * 4 * 4, 2, rng=3)]
    )
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
    fit(model, CrossEntropyLoss(), optimizer, (x, y), epochs=3, batch_size=16, seed=0, verbose=0)
    return {k: v.copy() for k, v in model.state_dict().items()}


def test_a_seeded_run_repeats_exactly_and_one_thread_agrees_with_two(split_everything):
    two, again = _seeded_run(2), _seeded_run(2)
    one = _seeded_run(1)
    for key in two:
        np.testing.assert_array_equal(two[key], again[key], err_msg=key)  # the same split, the same sums
        np.testing.assert_allclose(one[key], two[key], rtol=1e-4, atol=1e-5, err_msg=key)  # float32 rounding
    assert any(not np.array_equal(one[k], two[k]) for k in two if two[k].dtype.kind == "f"), "nothing was split"


def test_inside_blas_threads_nothing_is_split_and_blas_keeps_its_threads(split_everything):
    nnlayers.set_num_threads(2)
    parts = []
    functions = threads._blas_functions()
    with threads.blas_threads():
        threads.for_ranges(10, lambda s, e: parts.append((s, e, functions[1]() if functions else 2)), cost=10**9)
        np.testing.assert_allclose(F.matmul(np.ones((40, 3)), np.ones((3, 50))), np.full((40, 50), 3.0))
    assert parts == [(0, 10, 2)]


class _Probe(nnlayers.Layer):
    """Records whether its forward and backward ran with BLAS's own threads."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list = []

    def forward(self, x):
        self.seen.append(getattr(threads._inside, "blas_threads", False))
        return x

    def backward(self, grad_y):
        self.seen.append(getattr(threads._inside, "blas_threads", False))
        return grad_y


@pytest.mark.parametrize("with_conv", [False, True])
def test_a_model_without_convolutions_keeps_blas_threads(with_conv):
    probe = _Probe()
    layers = [Conv2D(3, 2, 3, rng=0), Flatten()] if with_conv else [Flatten()]
    model = Sequential([*layers, probe, Dense(2 * 6 * 6 if with_conv else 8 * 8 * 3, 2, rng=1)])
    y = model(np.ones((2, 8, 8, 3), np.float32))
    model.backward(np.ones_like(y))
    assert probe.seen == [not with_conv, not with_conv]
