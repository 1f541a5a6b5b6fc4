"""Element-wise kernels for small arrays, from OpenCV where it is installed: ``exp``, products, ``a x + b``.

A recurrent layer's step applies a dozen operations to arrays of a few thousand numbers, often to
column blocks of a wider array (one gate of four). There numpy is slow in two ways, measured on a
64 x 128 float32 block: its float32 ``exp`` takes 2 ns an element (OpenCV's 0.5 ns; both within
2.5 ulp of the exact value in float32, OpenCV's also in float64), and on a block whose rows are not
adjacent its loop restarts at every row (a product takes 8.6 us, OpenCV's 2.1 us, which reads such
a block as one matrix with a row stride). Products and ``a x + b`` are the same numbers as numpy's,
one correctly rounded operation each (the tests compare them bit for bit).

`kernels(dtype)` gives the set for a dtype, OpenCV's for float32 and float64 2-D arrays whose
rows are contiguous, numpy's otherwise. OpenCV is imported at the first call, not with the package.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, List, NamedTuple, Optional

import numpy as np
from numpy.typing import DTypeLike

from .types import Array

_OPENCV: List[Optional[ModuleType]] = []  # [cv2 or None], filled at the first call


def opencv() -> Optional[ModuleType]:
    """The ``cv2`` module, or ``None`` where OpenCV cannot be imported."""
    if not _OPENCV:
        try:
            import cv2

            _OPENCV.append(cv2)
        except ImportError:  # pragma: no cover - opencv is a dependency; the fallback keeps the math usable
            _OPENCV.append(None)
    return _OPENCV[0]


class Kernels(NamedTuple):
    """Each writes ``out`` and returns it; ``out`` may be an input. Arguments: 2-D arrays of one shape."""

    multiply: Callable[[Array, Array, Array], Array]  #: ``out = a * b``
    exp: Callable[[Array, Array], Array]  #: ``out = exp(x)``; overflow gives ``inf`` without a warning
    affine: Callable[[Array, float, float, Array], Array]  #: ``out = alpha * x + beta``


def _numpy_exp(x: Array, out: Array) -> Array:
    with np.errstate(over="ignore"):  # exp(-z) of a very negative z is inf, and 1 / (1 + inf) the right 0
        return np.exp(x, out=out)


def _numpy_affine(x: Array, alpha: float, beta: float, out: Array) -> Array:
    np.multiply(x, x.dtype.type(alpha), out=out)
    return np.add(out, out.dtype.type(beta), out=out)


NUMPY = Kernels(np.multiply, _numpy_exp, _numpy_affine)


_OPENCV_KERNELS: List[Kernels] = []


def _opencv_kernels(cv2: Any) -> Kernels:
    if not _OPENCV_KERNELS:

        def affine(x: Array, alpha: float, beta: float, out: Array) -> Array:
            return cv2.addWeighted(x, alpha, x, 0.0, beta, out)

        _OPENCV_KERNELS.append(Kernels(cv2.multiply, cv2.exp, affine))
    return _OPENCV_KERNELS[0]


def kernels(dtype: DTypeLike) -> Kernels:
    """OpenCV's kernels for float32 and float64 (2-D arrays with contiguous rows), else numpy's."""
    cv2 = opencv() if np.dtype(dtype) in (np.float32, np.float64) else None
    return NUMPY if cv2 is None else _opencv_kernels(cv2)


def exp_(x: Array) -> Array:
    """``x = exp(x)`` in place, any shape: OpenCV's for a contiguous float32 or float64 array, else numpy's."""
    k = kernels(x.dtype)
    if k is NUMPY or not x.flags.c_contiguous or not x.size:
        return _numpy_exp(x, x)
    flat = x.reshape(1, -1)  # a view: one row (OpenCV would read a third axis as channels)
    k.exp(flat, flat)
    return x


def sigmoid_of_negated_(x: Array, k: Kernels) -> Array:
    """``x = 1 / (1 + exp(x))`` in place: the sigmoid of ``-x``, from an array that holds ``-z``."""
    k.exp(x, x)
    x += x.dtype.type(1)
    return np.reciprocal(x, out=x)


def tanh_into(z: Array, out: Array, k: Kernels) -> Array:
    """``out = tanh(z) = 2 sigmoid(2 z) - 1`` (``out`` may be ``z``): within a few ulp of ``np.tanh`` in
    absolute terms (near 0, where tanh(z) ~ z, more in relative ones), and twice as fast."""
    np.multiply(z, z.dtype.type(-2), out=out)
    sigmoid_of_negated_(out, k)
    return k.affine(out, 2.0, -1.0, out)
