"""The built-in layers: `Dense` and the activations `Tanh`, `Sigmoid`, `ReLU`.

Where the seed's six backward equations live (the seed is column-major, ``(features, N)``;
here rows are examples, so every product appears transposed):

* ``dZ2 = A2 - Y``: `nnlayers.losses.BCEWithLogitsLoss.backward` (or `Sigmoid` after `BCELoss`).
* ``dW2 = 1/m dZ2 A1.T`` and ``dW1 = 1/m dZ1 X.T``: `Dense.backward_params`, ``weight.grad``
  (the ``1/m`` is already in the loss gradient).
* ``db2 = 1/m sum(dZ2)`` and ``db1 = 1/m sum(dZ1)``: `Dense.backward_params`, ``bias.grad``.
* ``dZ1 = W2.T dZ2 * (1 - A1**2)``: `Dense.backward` (``W2.T dZ2``) then `Tanh.backward`.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple, Union

import numpy as np
from numpy.typing import DTypeLike

from .functional import sigmoid, softmax
from .init import Initializer, RandomSource, initial_weights, make_rng
from .module import Array, Layer, Parameter, check_float_input
from .util import check_positive_int, is_real


def _check_grad_shape(layer: Layer, grad_y: Array, expected: tuple) -> Array:
    grad_y = np.asarray(grad_y)
    if grad_y.dtype.kind != "f":
        raise TypeError(f"{layer}.backward expected a floating-point gradient, got dtype {grad_y.dtype}")
    if grad_y.shape != expected:
        raise ValueError(f"{layer}.backward expected a gradient of shape {expected} (the output's), got {grad_y.shape}")
    return grad_y


class Dense(Layer):
    """Fully connected layer: ``y = x @ weight.T + bias`` (``torch.nn.Linear``, Keras ``Dense``).

    Args:
        in_features: Size of each input example.
        out_features: Size of each output example.
        bias: Whether to add a learned bias.
        init: Weight initialiser: ``"xavier_uniform"`` (the default; Glorot, suits tanh and
            sigmoid and trains the seed's model well), ``"normal"`` (the seed's
            ``randn * 0.01``), ``"xavier_normal"``, ``"he_normal"``, ``"he_uniform"`` (for ReLU),
            ``"torch"`` (``torch.nn.Linear``'s own, biases included), or a callable
            ``f((out, in), rng) -> array``. Biases start at zero, as in the seed.
        dtype: ``np.float32`` (default) or ``np.float64``.
        rng: A ``numpy.random.Generator``, a ``RandomState`` or an int seed, for reproducible
            weights; ``None`` draws fresh ones.

    Shape:
        - Input: ``(N, in_features)``, floating point (cast to ``dtype``).
        - Output: ``(N, out_features)``, ``dtype``.

    Attributes:
        weight: `Parameter` of shape ``(out_features, in_features)``: the seed's ``W1``.
        bias: `Parameter` of shape ``(out_features,)``, or ``None``.

    Examples:
        >>> layer = Dense(4, 2, rng=0)
        >>> layer
        Dense(in_features=4, out_features=2, bias=True)
        >>> layer(np.ones((3, 4), dtype=np.float32)).shape
        (3, 2)
        >>> layer.weight.shape, layer.bias.shape
        ((2, 4), (2,))
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        init: Union[str, Initializer] = "xavier_uniform",
        dtype: DTypeLike = np.float32,
        rng: Union[None, int, RandomSource] = None,
    ) -> None:
        super().__init__()
        check_positive_int("Dense in_features", in_features)
        check_positive_int("Dense out_features", out_features)
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.floating):
            raise TypeError(f"Dense dtype must be floating point, got {dtype}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        weight, bias_values = initial_weights(init, (self.out_features, self.in_features), bias, make_rng(rng), dtype)
        self.weight = Parameter(weight)
        self.bias = Parameter(bias_values) if bias_values is not None else None

    def forward(self, x: Array) -> Array:
        x = check_float_input(self._name(), x, self.weight.data.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"{self._name()} expected input of shape (N, {self.in_features}), got {x.shape}")
        self.save_for_backward(x=x)
        y = x @ self.weight.data.T  # the seed's Z = W X, with examples as rows
        if self.bias is not None:
            y += self.bias.data
        return y

    def backward_params(self, grad_y: Array) -> None:
        """Accumulate ``dW`` and ``db`` without computing the input gradient."""
        x = self.saved("x")
        grad_y = _check_grad_shape(self, grad_y, (x.shape[0], self.out_features)).astype(x.dtype, copy=False)
        self.weight.add_matmul(grad_y.T, x)  # seed: dW = 1/m dZ A_prev.T
        if self.bias is not None:
            self.bias.grad += grad_y.sum(axis=0)  # seed: db = 1/m sum(dZ)

    def backward(self, grad_y: Array) -> Array:
        self.backward_params(grad_y)
        return np.asarray(grad_y, dtype=self.weight.data.dtype) @ self.weight.data  # seed: W2.T dZ2

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this layer (weights aside)."""
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "dtype": self.weight.data.dtype.name,
        }

    def _name(self) -> str:
        return f"Dense({self.in_features} -> {self.out_features})"

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Activation(Layer):
    """Base of the element-wise activations: no parameters, output shape = input shape.

    Each keeps its output as ``saved("y")`` (the seed derives the gradients from ``A``).
    """

    def _input(self, x: Array) -> Array:
        return check_float_input(type(self).__name__, x)

    def _output(self, y: Array) -> Array:
        self.save_for_backward(y=y)
        return y

    def _grad(self, grad_y: Array) -> Tuple[Array, Array]:
        """The checked incoming gradient and the saved output."""
        y = self.saved("y")
        return _check_grad_shape(self, grad_y, y.shape), y


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
        return self._output(np.maximum(self._input(x), 0))

    def backward(self, grad_y: Array) -> Array:
        grad_y, y = self._grad(grad_y)
        return grad_y * (y > 0)


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
        grad_y = _check_grad_shape(self, grad_y, positive.shape)
        return np.where(positive, grad_y, grad_y * grad_y.dtype.type(self.negative_slope))

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this layer."""
        return {"negative_slope": self.negative_slope}

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Softmax(Activation):
    """``exp(x) / sum(exp(x))`` over the last axis: class probabilities (``torch.nn.Softmax(dim=-1)``).

    Stable for large inputs (shifted by the maximum). For training, prefer ending the model with
    the last `Dense` and using `nnlayers.CrossEntropyLoss`, which takes the raw scores and fuses
    the softmax exactly; `nnlayers.predict_proba` applies the softmax for you.

    Shape:
        - Input: ``(N, K)``, floating point.
        - Output: same shape, each row summing to 1.

    Examples:
        >>> Softmax()(np.array([[0.0, np.log(3.0)]])).round(3)
        array([[0.25, 0.75]])
    """

    def forward(self, x: Array) -> Array:
        return self._output(softmax(self._input(x)))

    def backward(self, grad_y: Array) -> Array:
        grad_y, s = self._grad(grad_y)
        return s * (grad_y - np.sum(grad_y * s, axis=-1, keepdims=True))  # the Jacobian diag(s) - s s^T
