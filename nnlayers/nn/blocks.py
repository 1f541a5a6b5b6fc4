"""Blocks of the networks users build: `BasicBlock`, the residual block of ResNet-18 and -34.

A block is a layer with named children and its own ``forward``; its ``backward`` sends the
gradient back through the same children in reverse, adding the gradients where the input forked.
That is all a block of your own needs too (see "Residual networks" in the docs).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Union

import numpy as np
from numpy.typing import DTypeLike

from ..utils.checks import check_positive_int, make_rng
from ..utils.types import Array, RandomSource
from .container import Sequential
from .functional import add
from .fusion import can_fuse, conv_bn
from .layers.activation import ReLU
from .layers.conv import Conv2D
from .layers.normalization import BatchNorm2D
from .module import Layer


class BasicBlock(Layer):
    """torchvision's ``BasicBlock``: two 3x3 convolutions with BatchNorm, and a shortcut around them.

    ``y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, where the shortcut is the identity,
    or ``downsample`` (a 1x1 convolution with the block's stride and a BatchNorm, a *projection*)
    when the block changes the number of channels or the size. The children and their state-dict
    keys are torchvision's (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``downsample.0``,
    ``downsample.1``), so a block's weights load strictly into ``torchvision.models.resnet.BasicBlock``.

    Args:
        in_channels: Channels of the input (torchvision's ``inplanes``).
        channels: Channels of the output (``planes``).
        stride: Stride of the first convolution and of the projection (2 halves the size).
        dtype: ``np.float32`` (default) or ``np.float64``.
        rng: Seed or generator for the convolutions' weights (He initialisation).

    Shape:
        - Input: ``(N, H, W, in_channels)``.
        - Output: ``(N, ceil(H / stride), ceil(W / stride), channels)``.

    Examples:
        >>> block = BasicBlock(16, 32, stride=2, rng=0)
        >>> block(np.zeros((2, 8, 8, 16), np.float32)).shape
        (2, 4, 4, 32)
        >>> [name for name, _ in block.named_children()]
        ['conv1', 'bn1', 'relu1', 'conv2', 'bn2', 'downsample', 'relu2']
    """

    takes_images = True
    expansion = 1

    def __init__(
        self,
        in_channels: int,
        channels: int,
        stride: int = 1,
        *,
        dtype: DTypeLike = np.float32,
        rng: Union[None, int, RandomSource] = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("BasicBlock in_channels", in_channels)
        self.channels = check_positive_int("BasicBlock channels", channels)
        self.stride = check_positive_int("BasicBlock stride", stride)
        generator = make_rng(rng)
        conv = dict(bias=False, dtype=dtype, rng=generator)
        self.conv1 = Conv2D(in_channels, channels, 3, stride, padding=1, **conv)  # type: ignore[arg-type]
        self.bn1 = BatchNorm2D(channels, dtype=dtype)
        self.relu1 = ReLU()  # (torchvision uses one ReLU twice; here each use is its own layer: one cache each)
        self.conv2 = Conv2D(channels, channels, 3, 1, padding=1, **conv)  # type: ignore[arg-type]
        self.bn2 = BatchNorm2D(channels, dtype=dtype)
        self.downsample: Optional[Layer] = None
        if stride != 1 or in_channels != channels:
            projection = Conv2D(in_channels, channels, 1, stride, **conv)  # type: ignore[arg-type]
            self.downsample = Sequential([projection, BatchNorm2D(channels, dtype=dtype)])
        self.relu2 = ReLU()

    def forward(self, x: Array) -> Array:
        if self._fusable(x):  # a prediction (`no_grad`): each convolution with its batch norm in one pass
            h = conv_bn(self.conv1, self.bn1, x, relu=True)
            shortcut = self.downsample(x) if self.downsample is not None else x
            return conv_bn(self.conv2, self.bn2, h, relu=True, residual=shortcut)
        body = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        shortcut = self.downsample(x) if self.downsample is not None else x
        return self.relu2(add(body, shortcut))

    def _fusable(self, x: Array) -> bool:
        same_dtype = getattr(x, "dtype", None) == self.conv1.weight.dtype  # else the sum is in the wider dtype
        fusable = can_fuse(self.conv1, self.bn1, self.relu1) and can_fuse(self.conv2, self.bn2, self.relu2)
        return fusable and same_dtype

    def _backward(self, grad_y: Array, input_grad: bool) -> Optional[Array]:
        g = self.relu2.backward(grad_y)  # the sum passes its gradient to both paths unchanged
        g_body = self.relu1.backward(self.conv2.backward(self.bn2.backward(g)))  # the body, last layer first
        g_body = self.bn1.backward(g_body)
        if not input_grad:  # the first layer of a model: no gradient of the input is needed
            self.conv1.backward_params(g_body)
            if self.downsample is not None:
                self.downsample.backward_params(g)
            return None
        g_x = self.conv1.backward(g_body)
        # the input fed both paths: its gradient is the sum of theirs
        return add(g_x, self.downsample.backward(g) if self.downsample is not None else g)

    def backward(self, grad_y: Array) -> Array:
        grad_x = self._backward(grad_y, input_grad=True)
        assert grad_x is not None
        return grad_x

    def backward_params(self, grad_y: Array) -> None:
        self._backward(grad_y, input_grad=False)

    def get_config(self) -> Dict[str, Any]:
        return {
            "in_channels": self.in_channels,
            "channels": self.channels,
            "stride": self.stride,
            "dtype": self.conv1.weight.dtype.name,
        }

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.channels}, stride={self.stride}"
