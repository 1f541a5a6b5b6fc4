"""Activations: `Tanh`, `Sigmoid`, `ReLU`, `LeakyReLU`, `Softmax`, `LogSoftmax`; each keeps its output and
derives its gradient from it, as the seed does. The smooth ones of later networks (GELU, SiLU, ...) are
in `nnlayers.nn.layers.smooth`."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

from ...utils.checks import is_real
from ...utils.types import Array
from ..checks import check_float_input, check_grad_shape
from ..functional import elementwise, log_softmax, sigmoid, softmax
from ..module import Layer


class Activation(Layer):
    """Base of the element-wise activations: no parameters, output shape = input shape.

    Each keeps its output as ``saved("y")`` (the seed derives the gradients from ``A``).
    """

    takes_images = None  # any shape: rows or images

    def _input(self, x: Array) -> Array:
        return check_float_input(type(self).__name__, x)

    def _output(self, y: Array) -> Array:
        self.save_for_backward(y=y)
        return y

    def _grad(self, grad_y: Array) -> Tuple[Array, Array]:
        """The checked incoming gradient and the saved output."""
        y = self.saved("y")
        return check_grad_shape(self, grad_y, y.shape), y


class Tanh(Activation):
    """Hyperbolic tangent, ``a = tanh(z)``; the seed's hidden activation.

    Keeps its output ``a`` and derives the gradient from it: ``1 - a**2``.

    Shape:
        - Input: ``(N, *)``, floating point.
        - Output: same shape and dtype.

    Examples:
        >>> Tanh()(np.array([[0.0, 1.0]])).round(4)
        array([[0.    , 0.7616]])
    """

    def forward(self, x: Array) -> Array:
        return self._output(np.tanh(self._input(x)))  # seed: A1 = tanh(Z1)

    def backward(self, grad_y: Array) -> Array:
        grad_y, a = self._grad(grad_y)
        return grad_y * (1 - a * a)  # seed: dZ1 = (W2.T dZ2) * (1 - A1**2)


class Sigmoid(Activation):
    """Logistic sigmoid, ``a = 1 / (1 + exp(-z))``; the seed's output activation.

    Stable for large ``|z|`` (no overflow). Keeps its output and derives ``a * (1 - a)``.
    Followed by `BCELoss`, the two gradients multiply to the seed's ``dZ2 = A2 - Y``.

    Shape:
        - Input: ``(N, *)``, floating point.
        - Output: same shape and dtype, values in [0, 1].

    Examples:
        >>> Sigmoid()(np.array([[-1000.0, 0.0, 1000.0]]))
        array([[0. , 0.5, 1. ]])
    """

    def forward(self, x: Array) -> Array:
        return self._output(sigmoid(self._input(x)))  # seed: A2 = sigmoid(Z2)

    def backward(self, grad_y: Array) -> Array:
        grad_y, a = self._grad(grad_y)
        return grad_y * (a * (1 - a))


def _relu(x: Array, out: Array) -> None:
    np.maximum(x, 0, out=out)


def _relu_grad(grad_y: Array, y: Array, out: Array) -> None:
    np.multiply(grad_y, y > 0, out=out)  # the gradient passes where the output is positive


class ReLU(Activation):
    """Rectified linear unit, ``max(x, 0)``.

    Keeps its output; the gradient passes where it is positive (``x > 0``: at exactly 0 the
    gradient is 0, as in PyTorch).

    Shape:
        - Input: ``(N, *)``, floating point.
        - Output: same shape and dtype.

    Examples:
        >>> ReLU()(np.array([[-2.0, 3.0]]))
        array([[0., 3.]])
    """

    def forward(self, x: Array) -> Array:
        x = self._input(x)
        return self._output(elementwise(_relu, np.empty_like(x), x))

    def backward(self, grad_y: Array) -> Array:
        grad_y, y = self._grad(grad_y)
        return elementwise(_relu_grad, np.empty(y.shape, grad_y.dtype), grad_y, y)

    def _forward_in_place(self, x: Array) -> Array:
        """`forward`, its output written over ``x`` (a max pooling's output: `nnlayers.nn.fusion`)."""
        x = self._input(x)
        return self._output(elementwise(_relu, x, x))


class LeakyReLU(Activation):
    """Leaky rectified linear unit: ``x`` where positive, ``negative_slope * x`` elsewhere (``torch.nn.LeakyReLU``).

    Args:
        negative_slope: The slope for negative inputs (default 0.01).

    Shape:
        - Input: ``(N, *)``, floating point.
        - Output: same shape and dtype.

    Examples:
        >>> LeakyReLU(0.1)(np.array([[-2.0, 3.0]]))
        array([[-0.2,  3. ]])
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if not is_real(negative_slope):
            raise ValueError(f"LeakyReLU negative_slope must be a number, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x: Array) -> Array:
        x = self._input(x)
        positive = x > 0  # the gradient at exactly 0 is the slope, as in torch
        self.save_for_backward(positive=positive)
        return np.where(positive, x, x * x.dtype.type(self.negative_slope))

    def backward(self, grad_y: Array) -> Array:
        positive = self.saved("positive")
        grad_y = check_grad_shape(self, grad_y, positive.shape)
        return np.where(positive, grad_y, grad_y * grad_y.dtype.type(self.negative_slope))

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this layer."""
        return {"negative_slope": self.negative_slope}

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


def _check_axis(name: str, axis: Any) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name} axis must be an int, got {axis!r}")
    return int(axis)


class Softmax(Activation):
    """``exp(x) / sum(exp(x))`` along ``axis``: class probabilities (``torch.nn.Softmax(dim=axis)``).

    Stable for large inputs (shifted by the maximum). For training, prefer ending the model with
    the last `Dense` and using `nnlayers.CrossEntropyLoss`, which takes the raw scores and fuses
    the softmax exactly; `nnlayers.predict_proba` applies the softmax for you.

    Args:
        axis: The axis that sums to 1 (default: the last, the classes).

    Shape:
        - Input: ``(N, K)`` (or any shape), floating point.
        - Output: same shape, summing to 1 along ``axis``.

    Examples:
        >>> Softmax()(np.array([[0.0, np.log(3.0)]])).round(3)
        array([[0.25, 0.75]])
    """

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = _check_axis("Softmax", axis)

    def forward(self, x: Array) -> Array:
        return self._output(softmax(self._input(x), axis=self.axis))

    def backward(self, grad_y: Array) -> Array:
        grad_y, s = self._grad(grad_y)
        return s * (grad_y - np.sum(grad_y * s, axis=self.axis, keepdims=True))  # the Jacobian diag(s) - s s^T

    def get_config(self) -> Dict[str, Any]:
        return {"axis": self.axis} if self.axis != -1 else {}

    def extra_repr(self) -> str:
        return f"axis={self.axis}" if self.axis != -1 else ""


class LogSoftmax(Activation):
    """``x - log(sum(exp(x)))`` along ``axis`` (``torch.nn.LogSoftmax(dim=axis)``): log-probabilities, for `NLLLoss`.

    Computed without forming the softmax's small numbers first, so it neither underflows nor
    overflows. Its gradient: ``grad - softmax(x) * sum(grad)`` along ``axis``.

    Args:
        axis: The axis of the classes (default: the last).

    Examples:
        >>> np.exp(LogSoftmax()(np.array([[0.0, np.log(3.0)]]))).round(3)
        array([[0.25, 0.75]])
    """

    def __init__(self, axis: int = -1) -> None:
        super().__init__()
        self.axis = _check_axis("LogSoftmax", axis)

    def forward(self, x: Array) -> Array:
        return self._output(log_softmax(self._input(x), axis=self.axis))

    def backward(self, grad_y: Array) -> Array:
        grad_y, log_p = self._grad(grad_y)
        return grad_y - np.exp(log_p) * np.sum(grad_y, axis=self.axis, keepdims=True)

    def get_config(self) -> Dict[str, Any]:
        return {"axis": self.axis} if self.axis != -1 else {}

    def extra_repr(self) -> str:
        return f"axis={self.axis}" if self.axis != -1 else ""
