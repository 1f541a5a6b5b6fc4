"""A ``ReLU -> MaxPool2D`` pair in a `Sequential` runs as pooling, then ReLU (`nnlayers.nn.fusion`).

The oracle is the same layers called one by one in the order written, forward then backward in
reverse: the model's output, every parameter's gradient and the input's gradient must be the same
bit for bit, ties and padding included. The swap must happen (the ReLU keeps a pooled-size output)
and must not happen where a probe or a subclass could tell. The ReLU writes over the pooling's
output, which the pooling keeps: its backward must still route every gradient right.
"""

import numpy as np
import pytest

from nnlayers import BatchNorm2D, Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, no_grad
from nnlayers.nn.fusion import run_order


def integer_images(shape, dtype, seed=0):
    """Small integers: many exact ties inside the windows, and many outputs of exactly 0 after the ReLU."""
    return np.random.default_rng(seed).integers(-3, 4, size=shape).astype(dtype)


def layers(pool, dtype, batchnorm=False):
    conv = Conv2D(2, 3, 3, padding=1, rng=0, dtype=dtype)
    conv.weight.data[...] = np.round(conv.weight.data * 4)  # integer weights keep the ties of the input
    norm = [BatchNorm2D(3, dtype=dtype)] if batchnorm else []
    side = pool.forward(np.zeros((1, 7, 7, 3), dtype)).shape[1]
    return [conv, *norm, ReLU(), pool, Flatten(), Dense(3 * side * side, 2, rng=1, dtype=dtype)]


def written_order(parts, x, grad_out):
    """Forward in the order written, backward in reverse, one layer at a time: the oracle."""
    for layer in parts:
        x = layer(x)
    grad = grad_out
    for layer in reversed(parts):
        grad = layer.backward(grad)
    return x, grad, [p.grad.copy() for layer in parts for p in layer.parameters()]


POOLS = {
    "2x2": lambda: MaxPool2D(2),
    "3x3 stride 2 padded": lambda: MaxPool2D(3, stride=2, padding=1),
    "2x2 ceil mode": lambda: MaxPool2D(2, ceil_mode=True),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.parametrize("batchnorm", [False, True])
def test_pooling_first_gives_the_same_numbers_and_gradients_bit_for_bit(pool, dtype, batchnorm):
    parts = layers(POOLS[pool](), dtype, batchnorm)
    model = Sequential(parts)
    x = integer_images((4, 7, 7, 2), dtype)
    grad_out = integer_images((4, 2), dtype, seed=1)
    expected, expected_dx, expected_grads = written_order(parts, x, grad_out)
    model.zero_grad()
    y = model(x)
    dx = model.backward(grad_out, input_grad=True)
    relu = next(layer for layer in parts if type(layer) is ReLU)
    pool_kept = parts[parts.index(relu) + 1].saved("y")
    assert relu.saved("y") is pool_kept  # it ran on the pooled output, in its memory
    assert (relu.saved("y") == 0).any()  # some windows' maximum was not positive
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(dx, expected_dx)
    for got, want in zip([p.grad for p in model.parameters()], expected_grads):
        np.testing.assert_array_equal(got, want)


def test_predictions_pool_first_too_and_agree_with_training_mode_forward():
    parts = layers(MaxPool2D(2), np.float64)
    model = Sequential(parts)
    x = integer_images((3, 7, 7, 2), np.float64)
    expected = model(x)
    with no_grad():
        np.testing.assert_array_equal(model(x), expected)


def test_a_nan_reaches_the_output_in_either_order():
    model = Sequential([ReLU(), MaxPool2D(2)])
    x = integer_images((1, 4, 4, 1), np.float64)
    x[0, 1, 2, 0] = np.nan
    y = model(x)
    expected = MaxPool2D(2)(ReLU()(x))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    assert np.isnan(y[0, 0, 1, 0])


class WatchedReLU(ReLU):
    """A subclass may do anything with its input: it must see the full-size images."""


def probed(relu):
    original = relu.forward
    seen = []

    def watching(x):
        seen.append(x.shape)
        return original(x)

    relu.__dict__["forward"] = watching  # as `nnlayers.explain` watches a layer
    return seen


@pytest.mark.parametrize("how", ["subclass", "probe"])
def test_no_swap_where_the_relu_could_tell(how):
    relu = WatchedReLU() if how == "subclass" else ReLU()
    seen = probed(relu) if how == "probe" else None
    parts = [Conv2D(2, 3, 3, padding=1, rng=0, dtype=np.float64), relu, MaxPool2D(2)]
    x = integer_images((2, 6, 6, 2), np.float64)
    assert run_order(parts) == [0, 1, 2]
    y = Sequential(parts)(x)
    assert relu.saved("y").shape == (2, 6, 6, 3)
    if seen is not None:
        assert seen == [(2, 6, 6, 3)]
    np.testing.assert_array_equal(y, MaxPool2D(2)(np.maximum(parts[0](x), 0)))


def test_run_order_swaps_each_pair_once():
    relu, pool = ReLU, lambda: MaxPool2D(2)
    assert run_order([relu(), pool(), relu(), pool()]) == [1, 0, 3, 2]
    assert run_order([relu(), relu(), pool()]) == [0, 2, 1]
    assert run_order([pool(), relu()]) == [0, 1]
    assert run_order([]) == []
