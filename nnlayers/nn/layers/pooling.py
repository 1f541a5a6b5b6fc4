"""Pooling over channels-last images: `MaxPool2D`, `AvgPool2D`, `GlobalAvgPool2D`."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from ...utils.types import Array
from ..checks import check_grad_shape
from ..functional import for_ranges, output_size, pad_hw, windows
from .spatial import IntPair, SpatialLayer, _check_images, _pair


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
        (h, w), (kh, kw), (ph, pw) = x.shape[1:3], self.kernel_size, self.padding
        ho = output_size(h, kh, self.stride[0], ph)
        wo = output_size(w, kw, self.stride[1], pw)
        # a window mostly of padding is of no use, and it costs the window's size: at most one side's padding
        if ho < 1 or wo < 1 or kh > h + ph or kw > w + pw:
            less = f" less its padding {self.padding} (a window may reach past the image by one side's padding)"
            raise ValueError(
                f"{type(self).__name__} got images of {h}x{w}, smaller than its window {self.kernel_size}"
                + (less if ph or pw else "")
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
        config = {"kernel_size": list(self.kernel_size), "stride": list(self.stride), "padding": list(self.padding)}
        return {**config, "ceil_mode": True} if getattr(self, "ceil_mode", False) else config

    def extra_repr(self) -> str:
        text = f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
        return text + (", ceil_mode=True" if getattr(self, "ceil_mode", False) else "")


def _ceil_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """torch's ``ceil_mode`` output size: a last, partial window, if it starts inside the input or its left padding."""
    out = -(-(size + 2 * padding - kernel) // stride) + 1
    return out - 1 if (out - 1) * stride >= size + padding else out


class MaxPool2D(_Pool2D):
    """Largest value of each window, per channel (``torch.nn.MaxPool2d``, Keras ``MaxPooling2D``).

    Padding counts as minus infinity. The gradient goes to the first largest entry of each
    window (in row-major order), as in PyTorch: with ties (common after a ReLU) exactly one
    input gets it.

    Args:
        kernel_size: Window, an int or ``(kh, kw)``.
        stride: Step between windows (default: the window, so they do not overlap).
        padding: Implicit border, at most half the window.
        ceil_mode: Round the output size up: a last window that covers only part of the image (as
            torch's ``ceil_mode=True``; 5 pixels pooled by 2 give 3, not 2).

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

    def __init__(
        self, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0, ceil_mode: bool = False
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.ceil_mode = bool(ceil_mode)

    def forward(self, x: Array) -> Array:
        x = _check_images(self, x, None)
        out_hw = self._out_hw(x)
        xp = pad_hw(x, self.padding, value=-np.inf)
        if self.ceil_mode:  # the last windows run past the padding: more minus infinity at the bottom and right
            out_hw = tuple(_ceil_size(n, k, st, p) for n, k, st, p in zip(x.shape[1:3], self.kernel_size, self.stride,
                                                                          self.padding))  # type: ignore[assignment]  # fmt: skip
            extra = [
                max(0, (o - 1) * st + k - n)
                for o, st, k, n in zip(out_hw, self.stride, self.kernel_size, xp.shape[1:3])
            ]
            xp = np.pad(xp, ((0, 0), (0, extra[0]), (0, extra[1]), (0, 0)), constant_values=-np.inf)
        views = [view for _, view in self._offsets(xp, out_hw)]
        y = np.empty(views[0].shape, xp.dtype)

        def images(s: int, e: int) -> None:  # kh * kw - 1 passes over the output: no window array is built
            np.copyto(y[s:e], views[0][s:e])
            for view in views[1:]:
                np.maximum(y[s:e], view[s:e], out=y[s:e])

        for_ranges(len(y), images, y.size * len(views))
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
        grad_x = np.empty(blocks.shape, np.result_type(grad_y.dtype, np.uint8))

        def images(s: int, e: int) -> None:
            score = (blocks[s:e] == y[s:e][expand]) * rank
            best = score[:, :, 0, :, 0, :].copy()
            for i in range(kh):
                for j in range(kw):
                    np.maximum(best, score[:, :, i, :, j, :], out=best)
            np.multiply(score == best[expand], grad_y[s:e][expand], out=grad_x[s:e])

        for_ranges(n, images, x.size * 4)
        return grad_x.reshape(x.shape)

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
        self.save_for_backward(x_shape=x.shape, y_shape=(x.shape[0], ho, wo, x.shape[3]))
        view = windows(pad_hw(x, self.padding), self.kernel_size, self.stride, (ho, wo))
        return view.mean(axis=(3, 4))

    def backward(self, grad_y: Array) -> Array:
        x_shape, y_shape = self.saved("x_shape", "y_shape")
        grad_y = check_grad_shape(self, grad_y, y_shape)
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
        if x.shape[1] == 0 or x.shape[2] == 0:
            raise ValueError(f"{self} got empty images of {x.shape[1]}x{x.shape[2]}; their mean is undefined")
        self.save_for_backward(x_shape=x.shape)
        return x.mean(axis=(1, 2))

    def backward(self, grad_y: Array) -> Array:
        n, h, w, c = self.saved("x_shape")
        grad_y = np.asarray(grad_y)
        if grad_y.shape != (n, c):
            raise ValueError(f"GlobalAvgPool2D.backward expected a gradient of shape {(n, c)}, got {grad_y.shape}")
        return np.broadcast_to((grad_y / (h * w))[:, None, None, :], (n, h, w, c)).copy()
