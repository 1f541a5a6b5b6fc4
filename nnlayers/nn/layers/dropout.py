"""`Dropout`: inverted dropout, active in training mode only."""

from __future__ import annotations

from typing import Any, Dict, Union

import numpy as np

from ...utils.checks import check_number, make_rng
from ...utils.types import Array, RandomSource
from ..checks import check_float_input
from ..module import Layer


class Dropout(Layer):
    """Zero each input with probability ``p`` in training and scale the rest by ``1 / (1 - p)``.

    Inverted dropout (``torch.nn.Dropout``): the expected value is unchanged, so evaluation
    (`Layer.eval`) is the identity. The mask comes from ``rng``; a subclass can override
    `sample_mask` (to fix the mask in a test, for one).

    Args:
        p: Probability of zeroing an element, in [0, 1).
        rng: An int seed, a ``Generator`` or a ``RandomState``: the same seed gives the same masks.

    Shape:
        - Input: any.
        - Output: the same.

    Examples:
        >>> drop = Dropout(0.5, rng=0)
        >>> drop(np.ones((1, 6)))  # training: kept entries doubled
        array([[2., 0., 0., 0., 2., 2.]])
        >>> drop.eval()(np.ones((1, 6)))
        array([[1., 1., 1., 1., 1., 1.]])
    """

    takes_images = None  # element-wise: rows or images

    def __init__(self, p: float = 0.5, *, rng: Union[None, int, RandomSource] = None) -> None:
        super().__init__()
        self.p = check_number("Dropout p", p, high=1.0)
        if self.p == 1.0:
            raise ValueError("Dropout p must be below 1 (p=1 would drop every input)")
        self.rng = make_rng(rng)

    def sample_mask(self, shape: tuple, dtype: np.dtype) -> Array:
        """The scaled keep-mask for one forward pass: ``1 / (1 - p)`` where kept, 0 where dropped."""
        keep = self.rng.random(shape) >= self.p
        return keep.astype(dtype) * dtype.type(1.0 / (1.0 - self.p))

    def forward(self, x: Array) -> Array:
        x = check_float_input(type(self).__name__, x)
        if not self.training or self.p == 0:
            self.save_for_backward(mask=None)
            return x
        mask = self.sample_mask(x.shape, x.dtype)
        self.save_for_backward(mask=mask)
        return x * mask

    def backward(self, grad_y: Array) -> Array:
        mask = self.saved("mask")
        grad_y = np.asarray(grad_y)
        if mask is None:
            return grad_y
        if grad_y.shape != mask.shape:
            raise ValueError(f"Dropout.backward expected a gradient of shape {mask.shape}, got {grad_y.shape}")
        return grad_y * mask

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this layer (the random state aside)."""
        return {"p": self.p}

    def extra_repr(self) -> str:
        return f"p={self.p}"
