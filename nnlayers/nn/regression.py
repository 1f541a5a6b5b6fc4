"""Regression losses: `MSELoss`, `L1Loss`, `HuberLoss`, `SmoothL1Loss`, on float targets of the output's shape.

As PyTorch's: element-wise over any shape, ``reduction="mean"`` divides by the number of
elements, ``"sum"`` adds them, ``"none"`` returns them (then ``backward(grad)`` is the gradient of
``sum(grad * losses)``, ``grad`` ones by default). Targets are floats of the output's shape;
``(N,)`` targets for an ``(N, 1)`` output are taken as a column, and uint8 images (an autoencoder
trained on ``(x, x)``) are scaled by 1/255 as the inputs are.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from ..utils.checks import check_number
from ..utils.types import Array
from .checks import check_float_input
from .losses import Loss


class _Regression(Loss):
    task = "regression"

    def targets(self, labels: Array, dtype: np.dtype) -> Array:
        values = np.asarray(labels)
        scaled = values.astype(dtype) / dtype.type(255) if values.dtype == np.uint8 else values.astype(dtype)
        return scaled.reshape(-1, 1) if scaled.ndim == 1 else scaled

    def total_weight(self, target: Array) -> float:
        """The mean divides by the number of elements."""
        return float(np.size(target))

    def _pair(self, pred: Array, target: Array) -> Tuple[Array, Array]:
        name = type(self).__name__
        pred = check_float_input(f"{name} pred", pred)
        y = np.asarray(target)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{name} expected real numeric targets, got dtype {y.dtype}")
        if y.shape != pred.shape and y.shape == pred.shape[:1] and pred.shape[1:] == (1,):
            y = y.reshape(pred.shape)
        if y.shape != pred.shape or pred.size == 0:
            raise ValueError(f"{name} expected targets of the output's shape {pred.shape}, got {y.shape}")
        y = y.astype(pred.dtype, copy=False)
        if not np.isfinite(y).all():
            raise ValueError(f"{name} got NaN or infinite targets")
        return pred, y

    def _finish(self, per_element: Array, slope: Array, pred: Array) -> Any:
        """Reduce the element losses; keep ``d(loss)/d(pred)`` from their slopes."""
        loss, scale = self._reduce(per_element, per_element.size)
        self._grad = (slope * scale).astype(pred.dtype, copy=False)
        return loss.astype(pred.dtype, copy=False) if self.reduction == "none" else loss


class MSELoss(_Regression):
    """Mean squared error, ``(pred - target)^2`` per element (``torch.nn.MSELoss``); its gradient ``2 (pred - target)``.

    Args:
        reduction: ``"mean"`` (over every element), ``"sum"`` or ``"none"``.

    Examples:
        >>> loss_fn = MSELoss()
        >>> loss_fn(np.array([[1.0], [3.0]]), np.array([[0.0], [0.0]]))
        5.0
        >>> loss_fn.backward()
        array([[1.],
               [3.]])
    """

    def forward(self, pred: Array, target: Array) -> Any:
        pred, y = self._pair(pred, target)
        error = pred - y
        return self._finish(error * error, 2 * error, pred)


class L1Loss(_Regression):
    """Mean absolute error, ``|pred - target|`` (``torch.nn.L1Loss``); its gradient the error's sign (0 at 0, as torch).

    Examples:
        >>> L1Loss()(np.array([1.0, -3.0]), np.array([0.0, 0.0]))
        2.0
    """

    def forward(self, pred: Array, target: Array) -> Any:
        pred, y = self._pair(pred, target)
        error = pred - y
        return self._finish(np.abs(error), np.sign(error), pred)


class HuberLoss(_Regression):
    """Squared near zero, linear beyond ``delta`` (Huber, 1964; ``torch.nn.HuberLoss``): robust to outliers.

    ``0.5 e^2`` where ``|e| <= delta``, else ``delta (|e| - 0.5 delta)``; the gradient is ``e``
    clipped to ``[-delta, delta]``.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        delta: Where the square turns into a line (positive).

    Examples:
        >>> HuberLoss(delta=1.0)(np.array([0.5, 3.0]), np.zeros(2))
        1.3125
    """

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = check_number("HuberLoss delta", delta, inclusive=False)

    def forward(self, pred: Array, target: Array) -> Any:
        pred, y = self._pair(pred, target)
        e, d = pred - y, self.delta
        small = np.abs(e) <= d
        per_element = np.where(small, 0.5 * e * e, d * (np.abs(e) - 0.5 * d))
        return self._finish(per_element, np.clip(e, -d, d), pred)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r}, delta={self.delta})"


class SmoothL1Loss(_Regression):
    """The Huber loss divided by ``beta`` (``torch.nn.SmoothL1Loss``, Fast R-CNN's box loss).

    ``0.5 e^2 / beta`` where ``|e| < beta``, else ``|e| - 0.5 beta``; ``beta=0`` is the L1 loss.

    Examples:
        >>> SmoothL1Loss(beta=2.0)(np.array([1.0, 3.0]), np.zeros(2))
        1.125
    """

    def __init__(self, reduction: str = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = check_number("SmoothL1Loss beta", beta)

    def forward(self, pred: Array, target: Array) -> Any:
        pred, y = self._pair(pred, target)
        e, b = pred - y, self.beta
        if b == 0:
            return self._finish(np.abs(e), np.sign(e), pred)
        small = np.abs(e) < b
        per_element = np.where(small, 0.5 * e * e / b, np.abs(e) - 0.5 * b)
        return self._finish(per_element, np.where(small, e / b, np.sign(e)), pred)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r}, beta={self.beta})"
