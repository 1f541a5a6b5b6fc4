"""The smooth activations of later networks: `GELU`, `SiLU`, `ELU`, `Softplus`, `Hardswish`.

Each has PyTorch's definition and arguments, and writes its derivative at the line that uses it.
They keep their input (their derivatives are not functions of the output alone).
"""

from __future__ import annotations

import math
from typing import Any, Dict

import numpy as np

from ...utils.checks import check_number, is_real
from ...utils.types import Array
from ..checks import check_grad_shape
from ..functional import log1p_exp, sigmoid
from .activation import Activation


class _FromInput(Activation):
    """An activation whose backward needs its input ``x``."""

    def _keep(self, x: Array) -> Array:
        x = self._input(x)
        self.save_for_backward(x=x)
        return x

    def _grad_x(self, grad_y: Array) -> Any:
        x = self.saved("x")
        return check_grad_shape(self, grad_y, x.shape), x


class GELU(_FromInput):
    """Gaussian error linear unit, ``x * Phi(x)`` (Hendrycks & Gimpel, 2016; ``torch.nn.GELU``).

    ``Phi`` is the standard normal's distribution function, ``(1 + erf(x / sqrt 2)) / 2``; with
    ``approximate="tanh"`` it is ``(1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))) / 2``, as BERT and
    GPT-2 compute it.

    Args:
        approximate: ``"none"`` (exact, with ``erf``) or ``"tanh"``.

    Examples:
        >>> GELU()(np.array([[-1.0, 0.0, 1.0]])).round(4)
        array([[-0.1587,  0.    ,  0.8413]])
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: Array) -> Array:
        x = self._keep(x)
        if self.approximate == "tanh":
            inner = x.dtype.type(math.sqrt(2 / math.pi)) * (x + x.dtype.type(0.044715) * x**3)
            return x * (1 + np.tanh(inner)) / 2
        return x * _normal_cdf(x)

    def backward(self, grad_y: Array) -> Array:
        grad_y, x = self._grad_x(grad_y)
        if self.approximate == "tanh":
            c = x.dtype.type(math.sqrt(2 / math.pi))
            t = np.tanh(c * (x + x.dtype.type(0.044715) * x**3))
            # d/dx [x (1 + t) / 2] = (1 + t) / 2 + x (1 - t^2) c (1 + 3 * 0.044715 x^2) / 2
            return grad_y * ((1 + t) / 2 + x * (1 - t * t) * c * (1 + x.dtype.type(3 * 0.044715) * x * x) / 2)
        pdf = np.exp(-x * x / 2) * x.dtype.type(1 / math.sqrt(2 * math.pi))
        return grad_y * (_normal_cdf(x) + x * pdf)  # d/dx [x Phi(x)] = Phi(x) + x phi(x)

    def get_config(self) -> Dict[str, Any]:
        return {"approximate": self.approximate} if self.approximate != "none" else {}

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}" if self.approximate != "none" else ""


#: Numerical Recipes' ``erfcc`` (Chebyshev fit): ``erfc(z) = t exp(-z^2 + P(t))``, ``t = 1 / (1 + z / 2)``,
#: relative error below 1.2e-7 for every ``z >= 0``: float32's rounding.
_ERFC_COEFFICIENTS = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)  # fmt: skip


def _normal_cdf(x: Array) -> Array:
    """``Phi(x) = erfc(-x / sqrt 2) / 2``.

    float64 takes ``math.erf`` element by element (exact: the parity tests' 1e-10); float32 a
    vectorised ``erfc`` to float32's rounding, relative error included on the far negative side
    where ``Phi`` is tiny, some 30x faster.
    """
    if x.dtype != np.float32:
        erf = np.frompyfunc(math.erf, 1, 1)
        return ((1 + erf(x * x.dtype.type(1 / math.sqrt(2))).astype(x.dtype)) / 2).astype(x.dtype)
    z = np.abs(x) * np.float32(1 / math.sqrt(2))
    t = 1 / (1 + z / 2)
    poly = np.full_like(t, _ERFC_COEFFICIENTS[-1])
    for c in _ERFC_COEFFICIENTS[-2::-1]:  # Horner
        poly *= t
        poly += np.float32(c)
    half_erfc = t * np.exp(poly - z * z) / 2  # Phi(-|x|)
    return np.where(x < 0, half_erfc, 1 - half_erfc)


class SiLU(_FromInput):
    """Sigmoid linear unit (swish), ``x * sigmoid(x)`` (``torch.nn.SiLU``).

    Examples:
        >>> SiLU()(np.array([[0.0, 1.0]])).round(4)
        array([[0.    , 0.7311]])
    """

    def forward(self, x: Array) -> Array:
        x = self._keep(x)
        return x * sigmoid(x)

    def backward(self, grad_y: Array) -> Array:
        grad_y, x = self._grad_x(grad_y)
        s = sigmoid(x)
        return grad_y * (s * (1 + x * (1 - s)))  # d/dx [x s(x)] = s + x s (1 - s)


class ELU(_FromInput):
    """Exponential linear unit: ``x`` where positive, ``alpha (exp(x) - 1)`` elsewhere (``torch.nn.ELU``).

    Args:
        alpha: The value the negative side tends to is ``-alpha``.

    Examples:
        >>> ELU()(np.array([[-1.0, 2.0]])).round(4)
        array([[-0.6321,  2.    ]])
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        if not is_real(alpha):
            raise ValueError(f"ELU alpha must be a number, got {alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x: Array) -> Array:
        x = self._keep(x)
        return np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype, copy=False)

    def backward(self, grad_y: Array) -> Array:
        grad_y, x = self._grad_x(grad_y)
        # 1 where positive, alpha exp(x) elsewhere (at exactly 0: alpha, as torch)
        return grad_y * np.where(x > 0, 1, self.alpha * np.exp(np.minimum(x, 0))).astype(x.dtype, copy=False)

    def get_config(self) -> Dict[str, Any]:
        return {"alpha": self.alpha}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softplus(_FromInput):
    """``log(1 + exp(beta x)) / beta``, a smooth ReLU (``torch.nn.Softplus``); linear above ``threshold / beta``.

    Args:
        beta: The sharpness.
        threshold: Where ``beta x`` exceeds it, the output is ``x`` (as torch, for stability).

    Examples:
        >>> Softplus()(np.array([[0.0, 30.0]])).round(4)
        array([[ 0.6931, 30.    ]])
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = check_number("Softplus beta", beta, inclusive=False)
        if not is_real(threshold):
            raise ValueError(f"Softplus threshold must be a number, got {threshold!r}")
        self.threshold = float(threshold)

    def forward(self, x: Array) -> Array:
        x = self._keep(x)
        bx = x * x.dtype.type(self.beta)
        return np.where(bx > self.threshold, x, log1p_exp(bx) / x.dtype.type(self.beta)).astype(x.dtype, copy=False)

    def backward(self, grad_y: Array) -> Array:
        grad_y, x = self._grad_x(grad_y)
        bx = x * x.dtype.type(self.beta)
        return grad_y * np.where(bx > self.threshold, 1, sigmoid(bx)).astype(x.dtype, copy=False)  # d/dx = sigmoid(bx)

    def get_config(self) -> Dict[str, Any]:
        return {"beta": self.beta, "threshold": self.threshold}

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardswish(_FromInput):
    """``x * relu6(x + 3) / 6`` (Howard et al., 2019, MobileNetV3; ``torch.nn.Hardswish``).

    Examples:
        >>> Hardswish()(np.array([[-4.0, 1.0, 4.0]])).round(4)
        array([[-0.    ,  0.6667,  4.    ]])
    """

    def forward(self, x: Array) -> Array:
        x = self._keep(x)
        return x * np.clip(x + 3, 0, 6) / 6

    def backward(self, grad_y: Array) -> Array:
        grad_y, x = self._grad_x(grad_y)
        # 0 below -3, 1 above 3, (2x + 3) / 6 between (torch's choice at the two kinks: the inner side at -3,
        # the outer at +3)
        slope = np.where(x < -3, 0, np.where(x > 3, 1, (2 * x + 3) / 6))
        return grad_y * slope.astype(x.dtype, copy=False)
