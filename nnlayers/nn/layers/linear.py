"""The fully connected layer, `Dense` (``torch.nn.Linear``): the seed's ``Z = W A + b``."""

from __future__ import annotations

from typing import Any, Dict, Union

import numpy as np
from numpy.typing import DTypeLike

from ...utils.checks import check_positive_int, make_rng
from ...utils.types import Array, RandomSource
from ..checks import check_float_input, check_grad_shape
from ..functional import column_sums, matmul
from ..init import Initializer, initial_weights
from ..module import Layer, Parameter


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
        - Input: ``(N, in_features)``, floating point (cast to ``dtype``); or ``(N, *, in_features)``,
          every position a row (the steps of a sequence), as ``torch.nn.Linear``.
        - Output: ``(N, out_features)`` (``(N, *, out_features)``), ``dtype``.

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
        if x.ndim < 2 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self._name()} expected input of shape (N, {self.in_features}), got {x.shape}")
        self.save_for_backward(x=x)
        rows = x.reshape(-1, self.in_features)  # (N, T, F) sequences: every step is a row
        bias = self.bias.data if self.bias is not None else None
        y = matmul(rows, self.weight.data.T, bias=bias)  # the seed's Z = W X + b, with examples as rows
        return y.reshape(*x.shape[:-1], self.out_features)

    def backward_params(self, grad_y: Array) -> None:
        """Accumulate ``dW`` and ``db`` without computing the input gradient."""
        x = self.saved("x")
        grad_y = check_grad_shape(self, grad_y, (*x.shape[:-1], self.out_features)).astype(x.dtype, copy=False)
        grad_rows = grad_y.reshape(-1, self.out_features)
        self.weight.add_matmul(grad_rows.T, x.reshape(-1, self.in_features))  # seed: dW = 1/m dZ A_prev.T
        if self.bias is not None:
            self.bias.grad += column_sums(grad_rows)  # seed: db = 1/m sum(dZ)

    def backward(self, grad_y: Array) -> Array:
        self.backward_params(grad_y)
        grad = np.asarray(grad_y, dtype=self.weight.data.dtype)
        rows = matmul(grad.reshape(-1, self.out_features), self.weight.data)  # seed: W2.T dZ2, every step
        return rows.reshape(*grad.shape[:-1], self.in_features)

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
