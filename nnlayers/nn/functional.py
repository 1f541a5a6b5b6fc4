"""Pure array math shared by layers and losses (as ``torch.nn.functional``): no state, no caches.

Layers are thin objects over these functions: they call them in ``forward``, keep what
``backward`` needs, and apply the matching derivative.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..utils.types import Array


def sigmoid(z: Array) -> Array:
    """Numerically stable logistic function ``1 / (1 + exp(-z))``.

    ``exp`` only ever sees ``-|z|``, so it cannot overflow: inputs of +-1000 give exactly 1 and 0
    without a warning.

    Examples:
        >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
        array([0. , 0.5, 1. ])
    """
    e = np.exp(-np.abs(z))  # in (0, 1]
    r = 1 / (1 + e)
    return np.where(z >= 0, r, e * r)


def log_softmax(z: Array, axis: int = -1) -> Array:
    """``log(softmax(z))`` without overflow: ``z - max - log(sum(exp(z - max)))``."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(z: Array, axis: int = -1) -> Array:
    """``exp(z) / sum(exp(z))`` along ``axis``, shifted by the maximum so that ``exp`` never overflows.

    Examples:
        >>> softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]])).round(3)
        array([[0.5 , 0.5 ],
               [0.25, 0.75]])
    """
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def column_sums(rows: Array) -> Array:
    """``rows.sum(axis=0)`` of a 2-D array, as one BLAS product with a vector of ones.

    numpy sums the columns of a tall ``(M, C)`` array one row at a time on one core; the product
    ``ones @ rows`` reads it once on every core, several times faster for activations of
    millions of entries (batch norm's means, a convolution's bias gradient).
    """
    return np.ones(len(rows), rows.dtype) @ rows


def log1p_exp(z: Array) -> Array:
    """``log(1 + exp(z))`` (softplus) without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Spatial size after a window of ``kernel`` moved by ``stride`` over ``size`` padded by ``padding``."""
    return (size + 2 * padding - kernel) // stride + 1


def pad_hw(x: Array, padding: Tuple[int, int], value: float = 0.0) -> Array:
    """``x`` ``(N, H, W, C)`` with ``padding = (ph, pw)`` rows and columns of ``value`` on each side."""
    ph, pw = padding
    if not ph and not pw:
        return x
    return np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=value)


def windows(xp: Array, kernel: Tuple[int, int], stride: Tuple[int, int], out_hw: Tuple[int, int]) -> Array:
    """A read-only view ``(N, Ho, Wo, kh, kw, C)`` of every window of the padded input (no copy)."""
    n, _, _, c = xp.shape
    s_n, s_h, s_w, s_c = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp,
        shape=(n, out_hw[0], out_hw[1], kernel[0], kernel[1], c),
        strides=(s_n, s_h * stride[0], s_w * stride[1], s_h, s_w, s_c),
        writeable=False,
    )


def im2col(
    x: Array, kernel: Tuple[int, int], stride: Tuple[int, int], padding: Tuple[int, int], out: Optional[Array] = None
) -> Array:
    """Every window of ``x`` ``(N, H, W, C)`` as one row: ``(N * Ho * Wo, kh * kw * C)``.

    In channels-last the rows come out in the order the input is stored, so a convolution is
    this copy and one matrix product, with no transposes. ``out`` is a buffer to reuse.
    """
    xp = pad_hw(x, padding)
    n, c = x.shape[0], x.shape[3]
    ho = output_size(x.shape[1], kernel[0], stride[0], padding[0])
    wo = output_size(x.shape[2], kernel[1], stride[1], padding[1])
    shape = (n, ho, wo, kernel[0], kernel[1], c)
    cols = (
        out.reshape(shape)
        if out is not None and out.size == np.prod(shape) and out.dtype == x.dtype
        else np.empty(shape, x.dtype)
    )
    np.copyto(cols, windows(xp, kernel, stride, (ho, wo)))
    return cols.reshape(n * ho * wo, kernel[0] * kernel[1] * c)


def conv_input_grad(
    grad: Array, weight: Array, x_shape: Tuple[int, ...], stride: Tuple[int, int], padding: Tuple[int, int]
) -> Array:
    """The gradient of a convolution's input: each kernel offset's product added where it came from.

    ``grad`` is the output gradient as rows ``(N * Ho * Wo, out)``, ``weight`` is ``(out, in, kh,
    kw)``. For every offset ``(i, j)`` one product ``grad @ weight[:, :, i, j]`` (rows of ``in``
    values, contiguous) is added to the input pixels that offset read: the adjoint of `im2col`,
    without building its ``kh * kw`` times larger matrix.
    """
    n, h, w, c = x_shape
    _, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = output_size(h, kh, sh, ph), output_size(w, kw, sw, pw)
    dxp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), grad.dtype)
    part = np.empty((grad.shape[0], c), grad.dtype)
    for i in range(kh):
        for j in range(kw):
            np.matmul(grad, weight[:, :, i, j], out=part)
            dxp[:, i : i + sh * ho : sh, j : j + sw * wo : sw, :] += part.reshape(n, ho, wo, c)
    return dxp[:, ph : ph + h, pw : pw + w, :]
