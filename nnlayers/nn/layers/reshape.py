"""`Flatten`: images to rows, in PyTorch's order."""

from __future__ import annotations

import numpy as np

from ...utils.types import Array
from ..checks import check_float_input
from .spatial import SpatialLayer


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
