"""What the layers over channels-last images ``(N, H, W, C)`` share: their base class and argument checks."""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import numpy as np

from ...utils.checks import is_int
from ...utils.types import Array
from ..checks import check_float_input
from ..module import Layer

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
