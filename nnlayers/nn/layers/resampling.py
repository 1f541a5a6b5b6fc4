"""Resizing images: `Upsample2D` (nearest or bilinear) and `AdaptiveAvgPool2D`.

Each is separable: a matrix ``A_h`` (output rows x input rows) acts on the height and ``A_w`` on
the width, ``y[n, i, j, c] = sum over (h, w) of A_h[i, h] x[n, h, w, c] A_w[j, w]``. The backward is
the same product with the matrices transposed; the matrices are built once per input size, with
PyTorch's coordinates, so the numbers are PyTorch's.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from ...utils.checks import check_number, is_int
from ...utils.types import Array
from ..checks import check_grad_shape
from .spatial import SpatialLayer, _check_images, _pair


def _nearest(size_in: int, size_out: int, scale: Optional[float]) -> np.ndarray:
    """torch's ``nearest``: output ``i`` takes input ``floor(i * in / out)`` (or ``floor(i / scale)``)."""
    ratio = 1.0 / scale if scale is not None else size_in / size_out
    source = np.minimum(np.floor(np.arange(size_out) * ratio).astype(np.int64), size_in - 1)
    matrix = np.zeros((size_out, size_in))
    matrix[np.arange(size_out), source] = 1.0
    return matrix


def _linear(size_in: int, size_out: int, scale: Optional[float], align_corners: bool) -> np.ndarray:
    """torch's ``bilinear`` along one axis: each output is a mix of the two nearest inputs."""
    i = np.arange(size_out, dtype=np.float64)
    if align_corners:
        source = i * ((size_in - 1) / (size_out - 1)) if size_out > 1 else np.zeros(size_out)
    else:
        ratio = 1.0 / scale if scale is not None else size_in / size_out
        source = np.maximum((i + 0.5) * ratio - 0.5, 0.0)  # half-pixel centres, clamped at the border
    low = np.minimum(np.floor(source).astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    frac = source - low
    matrix = np.zeros((size_out, size_in))
    np.add.at(matrix, (np.arange(size_out), low), 1 - frac)
    np.add.at(matrix, (np.arange(size_out), high), frac)
    return matrix


def _adaptive(size_in: int, size_out: int) -> np.ndarray:
    """torch's adaptive average: output ``i`` averages inputs ``floor(i in / out)`` to ``ceil((i + 1) in / out)``."""
    matrix = np.zeros((size_out, size_in))
    for i in range(size_out):
        start, end = (i * size_in) // size_out, -(-((i + 1) * size_in) // size_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


class _Separable(SpatialLayer):
    """A layer ``y = A_h x A_w^T`` over height and width, with matrices made for each input size."""

    def _matrices(self, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def matrices(self, h: int, w: int, dtype: np.dtype) -> Tuple[Array, Array]:
        """``(A_h, A_w)`` for ``h x w`` images, in ``dtype`` (kept for the last size seen)."""
        key = (h, w, np.dtype(dtype))
        if getattr(self, "_key", None) != key:
            a_h, a_w = self._matrices(h, w)
            self.__dict__.update(_key=key, _a=(a_h.astype(dtype), a_w.astype(dtype)))
        return self.__dict__["_a"]

    def forward(self, x: Array) -> Array:
        x = _check_images(self, x, None)
        a_h, a_w = self.matrices(x.shape[1], x.shape[2], x.dtype)
        self.save_for_backward(x_shape=x.shape, a_h=a_h, a_w=a_w)
        return np.einsum("ih,nhwc,jw->nijc", a_h, x, a_w, optimize=True)

    def backward(self, grad_y: Array) -> Array:
        x_shape, a_h, a_w = self.saved("x_shape", "a_h", "a_w")
        g = check_grad_shape(self, grad_y, (x_shape[0], a_h.shape[0], a_w.shape[0], x_shape[3]))
        return np.einsum("ih,nijc,jw->nhwc", a_h, g, a_w, optimize=True)  # the same maps, transposed


class Upsample2D(_Separable):
    """Enlarge images by ``scale_factor`` (or to ``size``), channels-last (``torch.nn.Upsample``).

    Args:
        size: The output ``(height, width)`` (or an int), instead of ``scale_factor``.
        scale_factor: How much larger (a number, or one per axis).
        mode: ``"nearest"`` (each output pixel copies the nearest input pixel) or ``"bilinear"``.
        align_corners: For ``"bilinear"``: map the corner pixels' centres onto each other (torch's
            ``align_corners=True``) rather than the pixels' edges (``False``, the default).

    Shape:
        - Input: ``(N, H, W, C)``.
        - Output: ``(N, floor(H * s), floor(W * s), C)``, or ``size``.

    Examples:
        >>> Upsample2D(scale_factor=2)(np.arange(4.0).reshape(1, 2, 2, 1))[0, :, :, 0]
        array([[0., 0., 1., 1.],
               [0., 0., 1., 1.],
               [2., 2., 3., 3.],
               [2., 2., 3., 3.]])
    """

    def __init__(
        self,
        size: Union[None, int, Tuple[int, int]] = None,
        scale_factor: Union[None, float, Tuple[float, float]] = None,
        mode: str = "nearest",
        align_corners: Optional[bool] = None,
    ) -> None:
        super().__init__()
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample2D needs either size or scale_factor, not both")
        if mode not in ("nearest", "bilinear"):
            raise ValueError(f"Upsample2D mode must be 'nearest' or 'bilinear', got {mode!r}")
        if mode == "nearest" and align_corners is not None:
            raise ValueError("Upsample2D align_corners applies to mode='bilinear' only")
        self.size = _pair("Upsample2D size", size) if size is not None else None
        factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor, scale_factor)
        self.scale_factor = (
            tuple(check_number("Upsample2D scale_factor", f, inclusive=False) for f in factors)
            if scale_factor is not None
            else None
        )
        self.mode, self.align_corners = mode, bool(align_corners) if align_corners is not None else None

    def output_size(self, h: int, w: int) -> Tuple[int, int]:
        if self.size is not None:
            return self.size
        assert self.scale_factor is not None
        return math.floor(h * self.scale_factor[0]), math.floor(w * self.scale_factor[1])

    def _matrices(self, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
        ho, wo = self.output_size(h, w)
        if ho < 1 or wo < 1:
            raise ValueError(f"{self} would make images of {ho}x{wo} from {h}x{w}")
        scales = self.scale_factor if self.scale_factor is not None else (None, None)
        if self.mode == "nearest":
            return _nearest(h, ho, scales[0]), _nearest(w, wo, scales[1])
        corners = bool(self.align_corners)
        return _linear(h, ho, scales[0], corners), _linear(w, wo, scales[1], corners)

    def get_config(self) -> Dict[str, Any]:
        return {
            "size": list(self.size) if self.size is not None else None,
            "scale_factor": list(self.scale_factor) if self.scale_factor is not None else None,
            "mode": self.mode,
            "align_corners": self.align_corners,
        }

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        corners = f", align_corners={self.align_corners}" if self.align_corners is not None else ""
        return f"{what}, mode={self.mode!r}{corners}"


class AdaptiveAvgPool2D(_Separable):
    """Average pooling to a fixed output size, whatever the input's (``torch.nn.AdaptiveAvgPool2d``).

    Output pixel ``(i, j)`` averages rows ``floor(i H / Ho)`` to ``ceil((i + 1) H / Ho)`` (and likewise
    columns): the windows tile the image and overlap where ``H`` is not a multiple of ``Ho``.
    ``AdaptiveAvgPool2D(1)`` is `GlobalAvgPool2D` keeping the image axes.

    Args:
        output_size: ``(Ho, Wo)`` or an int.

    Examples:
        >>> AdaptiveAvgPool2D(2)(np.ones((1, 5, 7, 3))).shape
        (1, 2, 2, 3)
    """

    def __init__(self, output_size: Union[int, Tuple[int, int]]) -> None:
        super().__init__()
        if not (is_int(output_size) or isinstance(output_size, (tuple, list))):
            raise TypeError(f"AdaptiveAvgPool2D output_size must be an int or a pair, got {output_size!r}")
        self.output_size = _pair("AdaptiveAvgPool2D output_size", output_size)

    def _matrices(self, h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
        if h < 1 or w < 1:
            raise ValueError(f"{self} got empty images of {h}x{w}")
        return _adaptive(h, self.output_size[0]), _adaptive(w, self.output_size[1])

    def get_config(self) -> Dict[str, Any]:
        return {"output_size": list(self.output_size)}

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
