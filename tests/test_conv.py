"""Conv2D, the pools and Flatten: hand-worked values, gradcheck over many shapes, PyTorch parity."""

import numpy as np
import pytest

from nnlayers import AvgPool2D, Conv2D, Dense, Flatten, GlobalAvgPool2D, MaxPool2D, ReLU, Sequential, gradcheck
from nnlayers.nn.functional import conv_input_grad, im2col

RNG = np.random.default_rng(0)


def conv64(*args, **kwargs):
    return Conv2D(*args, dtype=np.float64, rng=1, **kwargs)


def test_conv_by_hand():
    """A 2x2 kernel of ones over a 3x3 image of 1..9 sums each window."""
    conv = conv64(1, 1, 2, bias=False)
    conv.weight.data[...] = 1.0
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    np.testing.assert_array_equal(conv(x)[0, :, :, 0], [[12, 16], [24, 28]])
    grad = conv.backward(np.ones((1, 2, 2, 1)))
    np.testing.assert_array_equal(grad[0, :, :, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])  # windows covering each pixel
    np.testing.assert_array_equal(conv.weight.grad[0, 0], [[12, 16], [24, 28]])  # sums of each offset's pixels


def test_the_input_gradient_is_the_adjoint_of_the_convolution():
    """<conv(x), g> == <x, conv_input_grad(g)> for every shape: the input gradient is exact."""
    for kernel, stride, padding in (((3, 3), (1, 1), (1, 1)), ((2, 3), (2, 1), (0, 1)), ((5, 5), (2, 2), (2, 2))):
        x = RNG.normal(size=(2, 7, 6, 3))
        weight = RNG.normal(size=(4, 3, *kernel))
        cols = im2col(x, kernel, stride, padding)
        y = cols @ weight.transpose(2, 3, 1, 0).reshape(-1, 4)
        g = RNG.normal(size=y.shape)
        back = conv_input_grad(g, weight, x.shape, stride, padding)
        assert np.sum(y * g) == pytest.approx(np.sum(x * back), rel=1e-12)


CONVS = [
    dict(kernel_size=1),
    dict(kernel_size=3),
    dict(kernel_size=3, padding=1),
    dict(kernel_size=3, padding="same"),
    dict(kernel_size=3, stride=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=5, padding=2),
    dict(kernel_size=5, stride=2),
    dict(kernel_size=(3, 1), stride=(1, 2), padding=(1, 0)),
    dict(kernel_size=2, stride=2, bias=False),
]


@pytest.mark.parametrize("options", CONVS, ids=str)
@pytest.mark.parametrize("size", [(7, 7), (8, 6)], ids=["odd", "even"])
def test_conv_gradcheck(options, size):
    layer = conv64(3, 4, **options)
    assert gradcheck(layer, RNG.normal(size=(2, *size, 3))).passed


@pytest.mark.parametrize(
    "layer",
    [MaxPool2D(2), MaxPool2D(3, stride=2), MaxPool2D(3, stride=1, padding=1), MaxPool2D((2, 3), stride=(1, 2))]
    + [AvgPool2D(2), AvgPool2D(3, stride=2, padding=1), AvgPool2D((3, 2), stride=1), GlobalAvgPool2D(), Flatten()],
    ids=repr,
)
@pytest.mark.parametrize("size", [(7, 7), (8, 6)], ids=["odd", "even"])
def test_pool_and_flatten_gradcheck(layer, size):
    x = RNG.permutation(np.arange(2 * size[0] * size[1] * 3, dtype=np.float64)).reshape(2, *size, 3) / 10
    assert gradcheck(layer, x).passed  # distinct values: no tie within eps in a max window


def test_a_small_cnn_gradchecks():
    model = Sequential(
        [conv64(2, 3, 3, padding=1), ReLU(), MaxPool2D(2), conv64(3, 2, 3), Flatten(), Dense(2, 1, dtype=np.float64)]
    )
    x = RNG.normal(size=(3, 6, 6, 2))
    assert gradcheck(model, x).passed


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = np.zeros((1, 2, 2, 1))
    pool = MaxPool2D(2)
    pool(x)
    np.testing.assert_array_equal(pool.backward(np.ones((1, 1, 1, 1)))[0, :, :, 0], [[1, 0], [0, 0]])


def test_flatten_order_is_torch_order():
    x = np.arange(24.0).reshape(1, 2, 3, 4)  # (N, H, W, C)
    np.testing.assert_array_equal(Flatten()(x)[0], x.transpose(0, 3, 1, 2).ravel())


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: Conv2D(3, 4, 3)(np.zeros((2, 3, 8, 8), np.float32)),
            r"expected input of shape \(N, H, W, 3\), got \(2, 3, 8, 8\)",
        ),
        (lambda: Conv2D(3, 4, 3)(np.zeros((2, 12), np.float32)), r"expected input of shape \(N, H, W, 3\)"),
        (lambda: Conv2D(3, 4, 5)(np.zeros((1, 3, 3, 3), np.float32)), "smaller than its kernel"),
        (lambda: Conv2D(3, 4, 4, padding="same"), "padding='same' needs stride 1 and odd kernels"),
        (lambda: Conv2D(3, 4, 0), "kernel_size must be an int >= 1"),
        (lambda: Conv2D(3, 4, 3, padding=-1), "padding must be an int >= 0"),
        (lambda: Conv2D(0, 4, 3), "in_channels must be a positive int"),
        (lambda: MaxPool2D(2, padding=2), "at most half the kernel"),
        (lambda: MaxPool2D(4)(np.zeros((1, 3, 3, 1))), "smaller than its window"),
        (lambda: Conv2D(3, 4, 3)(np.zeros((1, 8, 8, 3), np.uint8)), "floating-point"),
    ],
)
def test_bad_shapes_and_arguments_are_clear(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_conv_repr_config_and_init():
    conv = Conv2D(3, 8, 3, stride=2, padding=1, bias=False, rng=0)
    assert repr(conv) == "Conv2D(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)"
    again = Conv2D(**conv.get_config())
    assert again.get_config() == conv.get_config() and again.weight.dtype == np.float32
    he = Conv2D(64, 64, 3, rng=0).weight.data
    assert he.std() == pytest.approx(np.sqrt(2 / (64 * 9)), rel=0.05)  # He: fan_in = in * kh * kw
    torch_like = Conv2D(64, 64, 3, init="torch", rng=0)
    bound = 1 / np.sqrt(64 * 9)
    assert np.abs(torch_like.weight.data).max() <= bound and np.abs(torch_like.bias.data).max() <= bound
    assert torch_like.bias.data.std() > bound / 3  # drawn, not zero


def test_summary_of_a_cnn():
    lines = []
    model = Sequential([Conv2D(3, 8, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(8 * 16 * 16, 1)])
    model.summary((32, 32, 3), print_fn=lines.append)
    assert "(None, 32, 32, 8)" in lines[2] and lines[2].endswith(f"{8 * 27 + 8:,}")
    assert "(None, 16, 16, 8)" in lines[4] and "(None, 2048)" in lines[5]


def test_max_pool_with_a_window_of_256_entries():
    """16x16 windows: the tie-breaking ranks need more than 8 bits."""
    x = -np.arange(256.0).reshape(1, 16, 16, 1)  # the largest entry is the first of the window
    pool = MaxPool2D(16)
    assert pool(x)[0, 0, 0, 0] == 0.0
    grad = pool.backward(np.ones((1, 1, 1, 1)))
    assert grad[0, 0, 0, 0] == 1.0 and grad.sum() == 1.0
