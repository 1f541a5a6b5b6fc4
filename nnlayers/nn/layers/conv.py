"""`Conv2D`: convolution over channels-last images ``(N, H, W, C)``; `ConvTranspose2D`, its adjoint.

Activations are channels-last, as the image loader gives them and Keras computes them; weights
keep PyTorch's layout (``Conv2D.weight`` is ``(out_channels, in_channels, kh, kw)``) and state-dict
keys, so a model's weights load into the ``torch.nn`` model of the same layers. A convolution is
an im2col copy and one matrix product (`nnlayers.nn.functional.im2col`); its backward is one
product for the weights and, unless the layer is the first, one product per kernel offset for
the input (`nnlayers.nn.functional.conv_input_grad`).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple, Union

import numpy as np
from numpy.typing import DTypeLike

from ...utils.checks import check_positive_int, make_rng
from ...utils.types import Array, RandomSource
from ..checks import check_grad_shape
from ..functional import (
    PADDING_MODES,
    column_sums,
    conv2d,
    conv2d_weight_grad,
    conv_input_grad,
    im2col,
    matmul,
    output_size,
    pad_hw,
)
from ..init import Initializer, initial_weights
from ..module import Parameter
from .spatial import IntPair, SpatialLayer, _check_images, _pair


class Conv2D(SpatialLayer):
    """2-D convolution over channels-last images (``torch.nn.Conv2d``, Keras ``Conv2D``).

    ``y[n, i, j, o] = bias[o] + sum over (di, dj, c) of x[n, s*i + d*di, s*j + d*dj, c] * weight[o, c, di, dj]``
    (cross-correlation, as every framework computes it), after padding; with ``groups``, each group
    of output channels sees only its own group of input channels (depthwise when ``groups`` is the
    number of input channels).

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output (number of filters).
        kernel_size: An int or ``(kh, kw)``.
        stride: An int or ``(sh, sw)``.
        padding: An int, ``(ph, pw)``, ``"valid"`` (none) or ``"same"`` (output as large as the input;
            stride 1, and an even ``dilation * (kernel - 1)``).
        bias: Whether to add a learned bias.
        dilation: Spacing between the kernel's taps (an int or a pair): 2 sees a 5x5 area with a 3x3 kernel.
        groups: Split the channels into this many independent groups (it must divide both channel counts).
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``, as PyTorch.
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

    #: A model holding one splits its work over nnlayers' threads (`nnlayers.utils.threads`)
    splits_over_threads = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: Union[IntPair, str] = 0,
        bias: bool = True,
        dilation: IntPair = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
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
        self.dilation = _pair("Conv2D dilation", dilation)
        self.groups = check_positive_int("Conv2D groups", groups)
        if in_channels % self.groups or out_channels % self.groups:
            raise ValueError(
                f"Conv2D groups ({groups}) must divide in_channels ({in_channels}) and out_channels ({out_channels})"
            )
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"Conv2D padding_mode must be one of {sorted(PADDING_MODES)}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        extent = tuple(d * (k - 1) for d, k in zip(self.dilation, self.kernel_size))
        if padding == "same":
            if self.stride != (1, 1) or any(e % 2 for e in extent):
                raise ValueError(
                    f"Conv2D padding='same' needs stride 1 and odd kernels, got {self.kernel_size}, stride {self.stride}"
                )
            self.padding = (extent[0] // 2, extent[1] // 2)
        else:
            self.padding = (0, 0) if padding == "valid" else _pair("Conv2D padding", padding, minimum=0)
        if any(p > e + 1 for p, e in zip(self.padding, extent)):  # wider would add outputs of padding only
            raise ValueError(
                f"Conv2D padding must be at most the kernel's extent, got {self.padding} for {self.kernel_size}"
            )
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"Conv2D dtype must be floating point, got {dtype}")
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        weight, bias_values = initial_weights(init, shape, bias, make_rng(rng), dtype)
        self.weight = Parameter(weight)
        self.bias = Parameter(bias_values) if bias_values is not None else None

    def _kernel(self) -> Array:
        """The weight as ``(out, in / groups, kh, kw)`` (`Conv1D` keeps ``(out, in / groups, k)`` and views it so)."""
        return self.weight.data

    def _weight_matrix(self) -> Array:
        """The weight as ``(kh * kw * in, out)``, in the order of `im2col`'s columns."""
        kh, kw = self.kernel_size
        return self._kernel().transpose(2, 3, 1, 0).reshape(kh * kw * self.in_channels, self.out_channels)

    def _grouped_weight(self) -> Array:
        """The weight as ``(groups, out / groups, in / groups, kh * kw)``, for the grouped products."""
        kh, kw = self.kernel_size
        return self.weight.data.reshape(self.groups, self.out_channels // self.groups, -1, kh * kw)

    def _by_group(self, cols: Array) -> Array:
        """im2col's rows as ``(rows, kh * kw, groups, in / groups)``: each group's inputs apart."""
        return cols.reshape(len(cols), -1, self.groups, self.in_channels // self.groups)

    def _checked(self, x: Array) -> Tuple[Array, Tuple[int, int]]:
        """``x`` checked and cast to the weight's dtype, and the output's height and width."""
        x = _check_images(self, x, self.in_channels, self.weight.dtype)
        ho = output_size(x.shape[1], self.kernel_size[0], self.stride[0], self.padding[0], self.dilation[0])
        wo = output_size(x.shape[2], self.kernel_size[1], self.stride[1], self.padding[1], self.dilation[1])
        if ho < 1 or wo < 1:
            size = f"{x.shape[1]}x{x.shape[2]}"
            raise ValueError(f"{self} got images of {size}, smaller than its kernel {self.kernel_size}")
        return x, (ho, wo)

    def forward(self, x: Array) -> Array:
        x, (ho, wo) = self._checked(x)
        bias = self.bias.data if self.bias is not None else None
        y_shape = (x.shape[0], ho, wo, self.out_channels)
        if self.groups == 1:  # every output pixel of every filter: im2col and one product, block by block
            xp = pad_hw(x, self.padding, mode=self.padding_mode)
            y = conv2d(xp, self._weight_matrix(), self.kernel_size, self.stride, (ho, wo), self.dilation, bias)
            self.save_for_backward(xp=xp, x_shape=x.shape, y_shape=y_shape)
            return y.reshape(y_shape)
        # one product per group, of its own input channels
        cols = im2col(x, self.kernel_size, self.stride, self.padding, dilation=self.dilation, mode=self.padding_mode)
        y = np.einsum("rkgc,gock->rgo", self._by_group(cols), self._grouped_weight(), optimize=True)
        y = y.reshape(len(cols), self.out_channels)
        if bias is not None:
            y += bias
        self.save_for_backward(cols=cols, x_shape=x.shape, y_shape=y_shape)
        return y.reshape(y_shape)

    def backward_params(self, grad_y: Array) -> None:
        """Accumulate ``weight.grad`` and ``bias.grad`` without computing the input gradient."""
        self._param_grads(grad_y)

    def _param_grads(self, grad_y: Array) -> Array:
        y_shape, x_shape = self.saved("y_shape", "x_shape")
        dtype = self.weight.data.dtype
        g = check_grad_shape(self, grad_y, y_shape).astype(dtype, copy=False).reshape(-1, self.out_channels)
        kh, kw = self.kernel_size
        if self.groups == 1:
            xp = self.saved("xp")
            grad_w = conv2d_weight_grad(xp, g, self.kernel_size, self.stride, y_shape[1:3], self.dilation)
            grad_w = grad_w.reshape(kh, kw, self.in_channels, self.out_channels).transpose(3, 2, 0, 1)
        else:
            per_group = g.reshape(len(g), self.groups, -1)
            grad_w = np.einsum("rkgc,rgo->gock", self._by_group(self.saved("cols")), per_group, optimize=True)
        self.weight.accumulate(grad_w.reshape(self.weight.shape))
        if self.bias is not None:
            self.bias.accumulate(column_sums(g))
        return g

    def backward(self, grad_y: Array) -> Array:
        g = self._param_grads(grad_y)
        return conv_input_grad(
            g,
            self._kernel(),
            self.saved("x_shape"),
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.padding_mode,
        )

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this layer (weights aside)."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "bias": self.bias is not None,
            **({"dilation": list(self.dilation)} if self.dilation != (1, 1) else {}),
            **({"groups": self.groups} if self.groups != 1 else {}),
            **({"padding_mode": self.padding_mode} if self.padding_mode != "zeros" else {}),
            "dtype": self.weight.dtype.name,
        }

    def __str__(self) -> str:
        return f"Conv2D({self.in_channels} -> {self.out_channels}, {self.kernel_size[0]}x{self.kernel_size[1]})"

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        text += f", padding={self.padding}"
        text += f", dilation={self.dilation}" if self.dilation != (1, 1) else ""
        text += f", groups={self.groups}" if self.groups != 1 else ""
        text += f", padding_mode={self.padding_mode!r}" if self.padding_mode != "zeros" else ""
        return text if self.bias is not None else text + ", bias=False"


class Conv1D(Conv2D):
    """1-D convolution over sequences ``(N, L, C)``, channels last (``torch.nn.Conv1d``, Keras ``Conv1D``).

    A `Conv2D` over a height of one: the same arguments (ints, not pairs), with PyTorch's weight
    ``(out_channels, in_channels / groups, kernel_size)`` and state-dict keys.

    Shape:
        - Input: ``(N, L, in_channels)``.
        - Output: ``(N, (L + 2 p - d (k - 1) - 1) // s + 1, out_channels)``.

    Examples:
        >>> conv = Conv1D(4, 8, 3, padding=1, rng=0)
        >>> conv(np.zeros((2, 10, 4), np.float32)).shape, conv.weight.shape
        ((2, 10, 8), (8, 4, 3))
    """

    takes_images = True  # (not rows: a sequence is given as it is, as images are)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: Union[int, str] = 0,
        bias: bool = True,
        dilation: int = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        *,
        init: Union[str, Initializer] = "he_normal",
        dtype: DTypeLike = np.float32,
        rng: Union[None, int, RandomSource] = None,
    ) -> None:
        for name, value in (("kernel_size", kernel_size), ("stride", stride), ("dilation", dilation)):
            check_positive_int(f"Conv1D {name}", value)
        pad: Union[Tuple[int, int], str] = padding if isinstance(padding, str) else (0, padding)
        super().__init__(in_channels, out_channels, (1, kernel_size), (1, stride), pad, bias, (1, dilation), groups,
                         padding_mode, init=init, dtype=dtype, rng=rng)  # fmt: skip
        self.weight = Parameter(self.weight.data.reshape(out_channels, in_channels // groups, kernel_size))

    def _kernel(self) -> Array:
        return self.weight.data[:, :, None, :]  # a view with a height of one

    def forward(self, x: Array) -> Array:
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.in_channels:
            raise ValueError(f"{self} expected sequences (N, L, {self.in_channels}), channels last, got {x.shape}")
        y = super().forward(x[:, None])
        return y[:, 0]

    def backward(self, grad_y: Array) -> Array:
        return super().backward(np.asarray(grad_y)[:, None])[:, 0]

    def backward_params(self, grad_y: Array) -> None:
        super().backward_params(np.asarray(grad_y)[:, None])

    def get_config(self) -> Dict[str, Any]:
        config = super().get_config()
        for key in ("kernel_size", "stride", "padding", "dilation"):
            if key in config:
                config[key] = config[key][1]
        return config

    def __str__(self) -> str:
        return f"Conv1D({self.in_channels} -> {self.out_channels}, {self.kernel_size[1]})"

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size[1]}, stride={self.stride[1]}"
        text += f", padding={self.padding[1]}"
        text += f", dilation={self.dilation[1]}" if self.dilation != (1, 1) else ""
        text += f", groups={self.groups}" if self.groups != 1 else ""
        text += f", padding_mode={self.padding_mode!r}" if self.padding_mode != "zeros" else ""
        return text if self.bias is not None else text + ", bias=False"


class ConvTranspose2D(SpatialLayer):
    """Transposed convolution over channels-last images (``torch.nn.ConvTranspose2d``): upsampling that learns.

    The adjoint of `Conv2D`: each input pixel adds its ``in_channels`` values, through the
    kernel, into a ``kh x kw`` patch of the output, patches ``stride`` apart; so its forward is a
    convolution's input gradient and its backward a convolution. With ``stride=2`` it doubles the
    size, as in a U-Net's decoder or an autoencoder's.

    Args:
        in_channels, out_channels: Channels of the input and of the output.
        kernel_size, stride: Ints or pairs.
        padding: Rows and columns taken off each side of the output.
        output_padding: Rows and columns added at the bottom and right (to pick among the sizes a
            stride makes ambiguous); less than the stride or the dilation.
        bias: Whether to add a learned bias.
        dilation: Spacing between the kernel's taps.
        init, dtype, rng: As `Conv2D` (``"torch"`` draws PyTorch's own initial weights).

    Shape:
        - Input: ``(N, H, W, in_channels)``.
        - Output: ``(N, (H - 1) sh - 2 ph + dh (kh - 1) + oph + 1, ..., out_channels)``.

    Attributes:
        weight: ``(in_channels, out_channels, kh, kw)``, PyTorch's layout.

    Examples:
        >>> up = ConvTranspose2D(8, 4, 2, stride=2, rng=0)
        >>> up(np.zeros((1, 5, 5, 8), np.float32)).shape
        (1, 10, 10, 4)
    """

    #: A model holding one splits its work over nnlayers' threads (`nnlayers.utils.threads`)
    splits_over_threads = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        output_padding: IntPair = 0,
        bias: bool = True,
        dilation: IntPair = 1,
        *,
        init: Union[str, Initializer] = "he_normal",
        dtype: DTypeLike = np.float32,
        rng: Union[None, int, RandomSource] = None,
    ) -> None:
        super().__init__()
        name = "ConvTranspose2D"
        self.in_channels = check_positive_int(f"{name} in_channels", in_channels)
        self.out_channels = check_positive_int(f"{name} out_channels", out_channels)
        self.kernel_size = _pair(f"{name} kernel_size", kernel_size)
        self.stride = _pair(f"{name} stride", stride)
        self.padding = _pair(f"{name} padding", padding, minimum=0)
        self.output_padding = _pair(f"{name} output_padding", output_padding, minimum=0)
        self.dilation = _pair(f"{name} dilation", dilation)
        if any(op >= max(s, d) for op, s, d in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(
                f"{name} output_padding must be less than the stride or the dilation, got {self.output_padding}"
            )
        if any(p > d * (k - 1) for p, d, k in zip(self.padding, self.dilation, self.kernel_size)):
            raise ValueError(
                f"{name} padding must be at most the kernel's extent, got {self.padding} for {self.kernel_size}"
            )
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"{name} dtype must be floating point, got {dtype}")
        # torch's fans for this layout: the initialiser sees (in, out, kh, kw) as conv weights do
        generator = make_rng(rng)
        weight, _ = initial_weights(init, (in_channels, out_channels, *self.kernel_size), False, generator, dtype)
        self.weight = Parameter(weight)
        self.bias = Parameter(np.zeros(out_channels, dtype)) if bias else None
        if (
            self.bias is not None and init == "torch"
        ):  # torch bounds the bias by the weight's fan_in, out * kh * kw here
            limit = 1.0 / np.sqrt(out_channels * self.kernel_size[0] * self.kernel_size[1])
            self.bias.data[...] = generator.uniform(-limit, limit, out_channels)

    def _output_hw(self, h: int, w: int) -> Tuple[int, int]:
        return tuple(
            (n - 1) * s - 2 * p + d * (k - 1) + op + 1
            for n, s, p, d, k, op in zip(
                (h, w), self.stride, self.padding, self.dilation, self.kernel_size, self.output_padding
            )  # fmt: skip
        )

    def forward(self, x: Array) -> Array:
        x = _check_images(self, x, self.in_channels, self.weight.dtype)
        n, h, w, _ = x.shape
        ho, wo = self._output_hw(h, w)
        if ho < 1 or wo < 1:
            raise ValueError(f"{self} would make images of {ho}x{wo} from {h}x{w}")
        y_shape = (n, ho, wo, self.out_channels)
        rows = x.reshape(-1, self.in_channels)
        # the input gradient of a convolution from out_channels to in_channels with this weight
        y = conv_input_grad(rows, self.weight.data, y_shape, self.stride, self.padding, self.dilation)
        if self.bias is not None:
            y = y + self.bias.data
        self.save_for_backward(rows=rows, x_shape=x.shape, y_shape=y_shape)
        return np.ascontiguousarray(y)

    def backward(self, grad_y: Array) -> Array:
        rows, x_shape, y_shape = self.saved("rows", "x_shape", "y_shape")
        g = check_grad_shape(self, grad_y, y_shape).astype(rows.dtype, copy=False)
        kh, kw = self.kernel_size
        cols = im2col(g, self.kernel_size, self.stride, self.padding, dilation=self.dilation)  # (N H W, kh kw out)
        grad_w = matmul(cols.T, rows).reshape(kh, kw, self.out_channels, self.in_channels).transpose(3, 2, 0, 1)
        self.weight.accumulate(grad_w)
        if self.bias is not None:
            self.bias.accumulate(column_sums(g.reshape(-1, self.out_channels)))
        as_conv = self.weight.data.transpose(2, 3, 1, 0).reshape(kh * kw * self.out_channels, self.in_channels)
        return matmul(cols, as_conv).reshape(x_shape)  # a convolution of the output's gradient

    def get_config(self) -> Dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "output_padding": list(self.output_padding),
            "bias": self.bias is not None,
            "dilation": list(self.dilation),
            "dtype": self.weight.dtype.name,
        }

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        text += f", padding={self.padding}" if self.padding != (0, 0) else ""
        text += f", output_padding={self.output_padding}" if self.output_padding != (0, 0) else ""
        text += f", dilation={self.dilation}" if self.dilation != (1, 1) else ""
        return text if self.bias is not None else text + ", bias=False"
