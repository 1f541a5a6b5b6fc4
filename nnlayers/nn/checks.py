"""What a layer checks of what it is given: a float input in forward, a gradient of its output's shape in backward.

Every layer calls these, so that a wrong shape or dtype is an error that names the layer and what
it expected, never numpy's broadcasting of a gradient that merely has the same size.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ..utils.types import Array


def check_float_input(layer: object, x: Any, dtype: Optional[np.dtype] = None) -> Array:
    """Return ``x`` as a floating-point ndarray, or raise a `TypeError` naming ``layer``.

    Integer, boolean, complex and object arrays are refused rather than silently converted: raw
    uint8 pixels fed to a network are a bug (scale them to [0, 1] first). When ``dtype`` is
    given, the array is cast to it, so a float32 model never computes in float64.
    """
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        hint = " (scale images to floats in [0, 1] first)" if arr.dtype.kind in "ui" else ""
        raise TypeError(f"{layer} expected a floating-point array, got dtype {arr.dtype}{hint}")
    if dtype is not None and arr.dtype != dtype:
        arr = arr.astype(dtype)
    return arr


def check_grad_shape(layer: object, grad_y: Any, expected: Tuple[int, ...]) -> Array:
    """``grad_y`` as a float array of the output's shape, or an error naming ``layer`` and both shapes."""
    grad_y = np.asarray(grad_y)
    if grad_y.dtype.kind != "f":
        raise TypeError(f"{layer}.backward expected a floating-point gradient, got dtype {grad_y.dtype}")
    if grad_y.shape != expected:
        raise ValueError(f"{layer}.backward expected a gradient of shape {expected} (the output's), got {grad_y.shape}")
    return grad_y
