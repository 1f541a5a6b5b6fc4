"""Convolutional layers on channels-last images ``(N, H, W, C)``: `Conv2D`, `MaxPool2D`,
`AvgPool2D`, `GlobalAvgPool2D` and `Flatten`.

Activations are channels-last, as the image loader gives them and Keras computes them; weights
keep PyTorch's layout (``Conv2D.weight`` is ``(out_channels, in_channels, kh, kw)``) and state-dict
keys, so a model's weights load into the ``torch.nn`` model of the same layers. A convolution is
an im2col copy and one matrix product (`nnlayers.functional.im2col`); its backward is one
product for the weights and, unless the layer is the first, one product per kernel offset for
the input (`nnlayers.functional.conv_input_grad`).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
from numpy.typing import DTypeLike

from .functional import column_sums, conv_input_grad, im2col, output_size, pad_hw, windows
from .init import Initializer, RandomSource, initial_weights, make_rng
from .module import Array, Layer, Parameter, check_float_input
from .util import check_positive_int, is_int

IntPair = Union[int, Tuple[int, int]]


def _pair(name: str, value: Any, minimum: int = 1) -> Tuple[int, int]:
    """An int or a pair of ints as ``(height, width)``, each at least ``minimum``."""
    pair = (value, value) if is_int(value) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(is_int(v) and v >= minimum for v in pair):
        raise ValueError(f"{name} must be an int >= {minimum} or a pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_images(layer: Layer, x: Any, channels: Optional[int], dtype: Optional[np.dtype] = None) -> Array:
    """``x`` as a float ``(N, H, W, C)`` array, or an error that says what the layer takes."""
    x = check_float_input(layer, x, dtype)
    if x.ndim != 4 or (channels is not None and x.shape[3] != channels):
        c = channels if channels is not None else "C"
        hint = " (channels last: images are (N, height, width, channels))" if x.ndim == 4 else ""
        raise ValueError(f"{layer} expected input of shape (N, H, W, {c}), got {x.shape}{hint}")
    return x


class SpatialLayer(Layer):
    """Base of the layers that take images ``(N, H, W, C)``: `fit` and `predict` give them images, not rows."""

    takes_images = True


class Conv2D(SpatialLayer):
    """2-D convolution over channels-last images (``torch.nn.Conv2d``, Keras ``Conv2D``).

    ``y[n, i, j, o] = bias[o] + sum over (di, dj, c) of x[n, s*i + di, s*j + dj, c] * weight[o, c, di, dj]``
    (cross-correlation, as every framework computes it), after zero padding.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output (number of filters).
        kernel_size: An int or ``(kh, kw)``.
        stride: An int or ``(sh, sw)``.
        padding: An int, ``(ph, pw)``, or ``"same"`` (output as large as the input; odd kernels,
            stride 1).
        bias: Whether to add a learned bias.
        init: Weight initialiser: ``"he_normal"`` (default, suits ReLU), ``"torch"``
            (``torch.nn.Conv2d``'s own, biases included), ``"xavier_uniform"``, ... or a callable
            ``f((out, in, kh, kw), rng) -> array``.
        dtype: ``np.float32`` (default) or ``np.float64``.
        rng: An int seed, a ``Generator`` or a ``RandomState``, for reproducible weights.

    Shape:
        - Input: ``(N, H, W, in_channels)``, floating point.
        - Output: ``(N, Ho, Wo, out_channels)`` with ``Ho = (H + 2 ph - kh) // sh + 1``.

    Attributes:
        weight: `Parameter` ``(out_channels, in_channels, kh, kw)``, PyTorch's layout.
        bias: `Parameter` ``(out_channels,)`` or ``None``.

    Examples:
        >>> conv = Conv2D(3, 8, 3, padding="same", rng=0)
        >>> conv
        Conv2D(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))
        >>> conv(np.zeros((2, 32, 32, 3), np.float32)).shape
        (2, 32, 32, 8)
        >>> conv.weight.shape
        (8, 3, 3, 3)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: Union[IntPair, str] = 0,
        bias: bool = True,
        *,
        init: Union[str, Initializer] = "he_normal",
        dtype: DTypeLike = np.float32,
        rng: Union[None, int, RandomSource] = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("Conv2D in_channels", in_channels)
        self.out_channels = check_positive_int("Conv2D out_channels", out_channels)
        self.kernel_size = _pair("Conv2D kernel_size", kernel_size)
        self.stride = _pair("Conv2D stride", stride)
        if padding == "same":
            if self.stride != (1, 1) or any(k % 2 == 0 for k in self.kernel_size):
                raise ValueError(
                    f"Conv2D padding='same' needs stride 1 and odd kernels, got {self.kernel_size}, stride {self.stride}"
                )
            self.padding = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
        else:
            self.padding = _pair("Conv2D padding", padding, minimum=0)
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"Conv2D dtype must be floating point, got {dtype}")
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        weight, bias_values = initial_weights(init, shape, bias, make_rng(rng), dtype)
        self.weight = Parameter(weight)
        self.bias = Parameter(bias_values) if bias_values is not None else None
        self._cols: Optional[Array] = None  # the im2col buffer, reused from call to call

    def _weight_matrix(self) -> Array:
        """The weight as ``(kh * kw * in, out)``, in the order of `im2col`'s columns."""
        kh, kw = self.kernel_size
        return self.weight.data.transpose(2, 3, 1, 0).reshape(kh * kw * self.in_channels, self.out_channels)

    def forward(self, x: Array) -> Array:
        x = _check_images(self, x, self.in_channels, self.weight.dtype)
        ho = output_size(x.shape[1], self.kernel_size[0], self.stride[0], self.padding[0])
        wo = output_size(x.shape[2], self.kernel_size[1], self.stride[1], self.padding[1])
        if ho < 1 or wo < 1:
            raise ValueError(
                f"{self} got images of {x.shape[1]}x{x.shape[2]}, smaller than its kernel {self.kernel_size}"
            )
        cols = self._cols = im2col(x, self.kernel_size, self.stride, self.padding, out=self._cols)
        y = cols @ self._weight_matrix()  # every output pixel of every filter in one product
        if self.bias is not None:
            y += self.bias.data
        self.save_for_backward(cols=cols, x_shape=x.shape)
        return y.reshape(x.shape[0], ho, wo, self.out_channels)

    def backward_params(self, grad_y: Array) -> None:
        """Accumulate ``weight.grad`` and ``bias.grad`` without computing the input gradient."""
        self._param_grads(grad_y)

    def _param_grads(self, grad_y: Array) -> Array:
        cols = self.saved("cols")
        g = np.asarray(grad_y, dtype=cols.dtype).reshape(cols.shape[0], self.out_channels)
        kh, kw = self.kernel_size
        grad_w = (cols.T @ g).reshape(kh, kw, self.in_channels, self.out_channels).transpose(3, 2, 0, 1)
        self.weight.accumulate(grad_w)
        if self.bias is not None:
            self.bias.accumulate(column_sums(g))
        return g

    def backward(self, grad_y: Array) -> Array:
        g = self._param_grads(grad_y)
        return conv_input_grad(g, self.weight.data, self.saved("x_shape"), self.stride, self.padding)

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this layer (weights aside)."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "bias": self.bias is not None,
            "dtype": self.weight.dtype.name,
        }

    def __str__(self) -> str:
        return f"Conv2D({self.in_channels} -> {self.out_channels}, {self.kernel_size[0]}x{self.kernel_size[1]})"

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        text += f", padding={self.padding}"
        return text if self.bias is not None else text + ", bias=False"


class _Pool2D(SpatialLayer):
    """Shared by the pools: window size, stride (default: the window), padding."""

    def __init__(self, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size = _pair(f"{name} kernel_size", kernel_size)
        self.stride = _pair(f"{name} stride", stride) if stride is not None else self.kernel_size
        self.padding = _pair(f"{name} padding", padding, minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(
                f"{name} padding must be at most half the kernel, got {self.padding} for {self.kernel_size}"
            )

    def _out_hw(self, x: Array) -> Tuple[int, int]:
        ho = output_size(x.shape[1], self.kernel_size[0], self.stride[0], self.padding[0])
        wo = output_size(x.shape[2], self.kernel_size[1], self.stride[1], self.padding[1])
        if ho < 1 or wo < 1:
            raise ValueError(
                f"{type(self).__name__} got images of {x.shape[1]}x{x.shape[2]}, smaller than its window {self.kernel_size}"
            )
        return ho, wo

    def _scatter(self, per_offset: Any, x_shape: Tuple[int, ...], dtype: np.dtype) -> Array:
        """Sum ``per_offset(i, j)`` (the gradient for window position ``(i, j)``) back onto the input."""
        n, h, w, c = x_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ho, wo = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
        dxp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype)
        for i in range(kh):
            for j in range(kw):
                dxp[:, i : i + sh * ho : sh, j : j + sw * wo : sw, :] += per_offset(i, j)
        return dxp[:, ph : ph + h, pw : pw + w, :]

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this layer."""
        return {"kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding)}

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2D(_Pool2D):
    """Largest value of each window, per channel (``torch.nn.MaxPool2d``, Keras ``MaxPooling2D``).

    Padding counts as minus infinity. The gradient goes to the first largest entry of each
    window (in row-major order), as in PyTorch: with ties (common after a ReLU) exactly one
    input gets it.

    Args:
        kernel_size: Window, an int or ``(kh, kw)``.
        stride: Step between windows (default: the window, so they do not overlap).
        padding: Implicit border, at most half the window.

    Shape:
        - Input: ``(N, H, W, C)``.
        - Output: ``(N, Ho, Wo, C)``, ``Ho = (H + 2 ph - kh) // sh + 1``.

    Examples:
        >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
        >>> MaxPool2D(2)(x)[0, :, :, 0]
        array([[ 5.,  7.],
               [13., 15.]])
    """

    def _offsets(self, xp: Array, out_hw: Tuple[int, int]) -> Any:
        """``((i, j), view)`` for each window position: the strided view of what it sees in every window."""
        (kh, kw), (sh, sw), (ho, wo) = self.kernel_size, self.stride, out_hw
        for i in range(kh):
            for j in range(kw):
                yield (i, j), xp[:, i : i + sh * ho : sh, j : j + sw * wo : sw, :]

    def forward(self, x: Array) -> Array:
        x = _check_images(self, x, None)
        out_hw = self._out_hw(x)
        xp = pad_hw(x, self.padding, value=-np.inf)
        views = self._offsets(xp, out_hw)
        y = np.array(next(views)[1])
        for _, view in views:  # kh * kw - 1 passes over the output: no window array is built
            np.maximum(y, view, out=y)
        self.save_for_backward(xp=xp, y=y, x_shape=x.shape)
        return y

    def backward(self, grad_y: Array) -> Array:
        xp, y, x_shape = self.saved("xp", "y", "x_shape")
        grad_y = np.asarray(grad_y)
        if grad_y.shape != y.shape:
            raise ValueError(
                f"{type(self).__name__}.backward expected a gradient of shape {y.shape}, got {grad_y.shape}"
            )
        (kh, kw), (h, w) = self.kernel_size, x_shape[1:3]
        if self.stride == self.kernel_size and xp.shape == x_shape and h == y.shape[1] * kh and w == y.shape[2] * kw:
            return self._tiled_backward(xp, y, grad_y)
        return self._general_backward(xp, y, grad_y, x_shape)

    def _tiled_backward(self, x: Array, y: Array, grad_y: Array) -> Array:
        """Windows that tile the image: a few whole-array passes, each pixel compared with its window's maximum."""
        (kh, kw), (n, ho, wo, c) = self.kernel_size, y.shape
        blocks = x.reshape(n, ho, kh, wo, kw, c)  # a view: window rows and columns as axes 2 and 4
        expand = (slice(None), slice(None), None, slice(None), None, slice(None))
        # among the entries equal to the maximum, the first in row-major order wins (as torch):
        # score each position kh*kw - p where it equals the maximum, and keep the best score
        rank = np.arange(kh * kw, 0, -1, dtype=np.uint8 if kh * kw < 256 else np.uint16).reshape(1, 1, kh, 1, kw, 1)
        score = (blocks == y[expand]) * rank
        best = score[:, :, 0, :, 0, :].copy()
        for i in range(kh):
            for j in range(kw):
                np.maximum(best, score[:, :, i, :, j, :], out=best)
        return ((score == best[expand]) * grad_y[expand]).reshape(x.shape)

    def _general_backward(self, xp: Array, y: Array, grad_y: Array, x_shape: Tuple[int, ...]) -> Array:
        """Overlapping or padded windows: find each window's winning offset, then add the gradients there."""
        views = list(self._offsets(xp, y.shape[1:3]))
        winner = np.zeros(y.shape, np.uint8 if len(views) < 256 else np.int32)
        running = np.array(views[0][1])
        for k, (_, view) in enumerate(views[1:], 1):
            np.putmask(winner, view > running, k)  # strictly greater: ties stay with the earlier one
            np.maximum(running, view, out=running)
        (ph, pw), (h, w) = self.padding, x_shape[1:3]
        dxp = np.zeros(xp.shape, grad_y.dtype)
        for k, (_, destination) in enumerate(self._offsets(dxp, y.shape[1:3])):
            destination += np.where(winner == k, grad_y, 0)
        return dxp[:, ph : ph + h, pw : pw + w, :]


class AvgPool2D(_Pool2D):
    """Mean of each window, per channel (``torch.nn.AvgPool2d`` with ``count_include_pad=True``).

    Args:
        kernel_size: Window, an int or ``(kh, kw)``.
        stride: Step between windows (default: the window).
        padding: Implicit zero border, at most half the window (counted in the mean, as torch).

    Shape:
        - Input: ``(N, H, W, C)``.
        - Output: ``(N, Ho, Wo, C)``.

    Examples:
        >>> AvgPool2D(2)(np.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]
        array([[ 2.5,  4.5],
               [10.5, 12.5]])
    """

    def forward(self, x: Array) -> Array:
        x = _check_images(self, x, None)
        ho, wo = self._out_hw(x)
        self.save_for_backward(x_shape=x.shape)
        view = windows(pad_hw(x, self.padding), self.kernel_size, self.stride, (ho, wo))
        return view.mean(axis=(3, 4))

    def backward(self, grad_y: Array) -> Array:
        x_shape = self.saved("x_shape")
        grad_y = np.asarray(grad_y)
        expected = (x_shape[0], *grad_y.shape[1:3], x_shape[3])
        if grad_y.ndim != 4 or grad_y.shape != expected:
            raise ValueError(f"AvgPool2D.backward expected a gradient of shape like {expected}, got {grad_y.shape}")
        share = grad_y / (self.kernel_size[0] * self.kernel_size[1])
        return self._scatter(lambda i, j: share, x_shape, grad_y.dtype)


class GlobalAvgPool2D(SpatialLayer):
    """Mean over height and width: ``(N, H, W, C)`` to ``(N, C)`` (Keras ``GlobalAveragePooling2D``).

    PyTorch writes it ``nn.AdaptiveAvgPool2d(1)`` followed by ``nn.Flatten()``.

    Shape:
        - Input: ``(N, H, W, C)``.
        - Output: ``(N, C)``.

    Examples:
        >>> GlobalAvgPool2D()(np.ones((2, 5, 5, 3))).shape
        (2, 3)
    """

    def forward(self, x: Array) -> Array:
        x = _check_images(self, x, None)
        self.save_for_backward(x_shape=x.shape)
        return x.mean(axis=(1, 2))

    def backward(self, grad_y: Array) -> Array:
        n, h, w, c = self.saved("x_shape")
        grad_y = np.asarray(grad_y)
        if grad_y.shape != (n, c):
            raise ValueError(f"GlobalAvgPool2D.backward expected a gradient of shape {(n, c)}, got {grad_y.shape}")
        return np.broadcast_to((grad_y / (h * w))[:, None, None, :], (n, h, w, c)).copy()


class Flatten(SpatialLayer):
    """Images ``(N, H, W, C)`` to rows ``(N, C * H * W)``, in PyTorch's order (channel first).

    Rows come out in the order ``torch.nn.Flatten`` gives for the same images in NCHW, so the
    `Dense` layer after it has exactly the weights of the ``torch.nn.Linear`` in the same place:
    a state dict moves between the two frameworks unchanged. Inputs that are already rows pass
    through.

    Shape:
        - Input: ``(N, H, W, C)`` (or ``(N, D)``).
        - Output: ``(N, C * H * W)``.

    Examples:
        >>> x = np.arange(8.0).reshape(1, 2, 2, 2)  # 2x2 pixels, 2 channels
        >>> Flatten()(x)  # channel 0's four pixels, then channel 1's
        array([[0., 2., 4., 6., 1., 3., 5., 7.]])
    """

    def forward(self, x: Array) -> Array:
        x = check_float_input(self, x)
        self.save_for_backward(x_shape=x.shape)
        if x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)  # NHWC -> NCHW order, as torch flattens
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)

    def backward(self, grad_y: Array) -> Array:
        x_shape = self.saved("x_shape")
        grad_y = np.asarray(grad_y)
        if grad_y.shape != (x_shape[0], int(np.prod(x_shape[1:]))):
            raise ValueError(
                f"Flatten.backward expected a gradient of shape {(x_shape[0], int(np.prod(x_shape[1:])))}, got {grad_y.shape}"
            )
        if len(x_shape) == 4:
            n, h, w, c = x_shape
            return grad_y.reshape(n, c, h, w).transpose(0, 2, 3, 1)
        return grad_y.reshape(x_shape)
