"""Normalisation: `BatchNorm1D` over rows, `BatchNorm2D` over the channels of images (batch statistics),
`LayerNorm` and `GroupNorm` over each example's own features (no batch statistics).

They normalise with the batch's statistics in training mode and the running ones in evaluation
mode. `Layer.train` and `Layer.eval` switch them; `fit` trains in training mode and evaluates, predicts
and validates in evaluation mode by itself.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import DTypeLike

from ...utils.checks import check_number, check_positive_int
from ...utils.types import Array
from ..checks import check_float_input, check_grad_shape
from ..functional import column_sums, elementwise, row_sums
from ..init import filled
from ..module import Layer, Parameter


def _scale_shift(scale: Array, shift: Any) -> Any:
    """``out = x * scale + shift`` per channel, as a function of one part of the rows."""

    def apply(x: Array, out: Array) -> None:
        np.multiply(x, scale, out=out)
        out += shift

    return apply


def _input_grad(scale: Array, k_rows: Array, k_shift: Array) -> Any:
    """``out = g * scale + x * k_rows + k_shift`` per channel (batch norm's input gradient), part by part."""

    def apply(g: Array, x: Array, out: Array) -> None:
        np.multiply(g, scale, out=out)
        out += x * k_rows
        out += k_shift

    return apply


class _BatchNorm(Layer):
    """Normalise each feature (channel) with batch statistics in training, running ones in evaluation.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, per feature. In training ``mean`` and
    ``var`` are the batch's (the biased variance), and the running estimates move towards them:
    ``running = (1 - momentum) * running + momentum * batch`` with the *unbiased* variance, as
    PyTorch does (``momentum=None``: a cumulative average). In evaluation the running estimates
    are used. State-dict keys are PyTorch's: ``weight``, ``bias``, ``running_mean``,
    ``running_var``, ``num_batches_tracked``.
    """

    #: The number of dimensions of the input (2 for `BatchNorm1D`, 4 for `BatchNorm2D`).
    input_ndim = 2
    weight: Optional[Parameter]  # None without affine, as in torch
    bias: Optional[Parameter]
    running_mean: Array  # buffers, with track_running_stats=True
    running_var: Array
    num_batches_tracked: Array

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: Optional[float] = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = check_positive_int(f"{name} num_features", num_features)
        self.eps = check_number(f"{name} eps", eps, inclusive=False)
        self.momentum = None if momentum is None else check_number(f"{name} momentum", momentum, high=1.0)
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        dtype = np.dtype(dtype)
        # filled: a model file's claim of a size is checked against the file's arrays before any allocation
        self.weight = Parameter(filled(num_features, 1.0, dtype)) if affine else None
        self.bias = Parameter(filled(num_features, 0.0, dtype)) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", filled(num_features, 0.0, dtype))
            self.register_buffer("running_var", filled(num_features, 1.0, dtype))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))

    def _array_dtype(self) -> Optional[np.dtype]:
        """The dtype of the layer's parameters or buffers (``None`` when it has neither)."""
        arrays = [a for _, a in self.named_buffers() if a.dtype.kind == "f"] + [p.data for p in self.parameters()]
        return arrays[0].dtype if arrays else None

    def _features(self, x: Array) -> Array:
        """``x`` as rows of features ``(M, C)`` (a view), after checking its shape."""
        x = check_float_input(type(self).__name__, x, self._array_dtype())
        if x.ndim != self.input_ndim or x.shape[-1] != self.num_features:
            layout = "(N, C)" if self.input_ndim == 2 else "(N, H, W, C), channels last"
            raise ValueError(f"{self} expected input {layout} with C = {self.num_features}, got {x.shape}")
        return x.reshape(-1, self.num_features)

    def forward(self, x: Array) -> Array:
        rows = self._features(x)
        out_dtype = rows.dtype
        if rows.dtype == np.float16:  # sums over a batch of photos overflow float16 (65504): statistics in float32
            rows = rows.astype(np.float32)
        batch_stats = self.training or not self.track_running_stats
        if batch_stats:
            if len(rows) < 2 and self.training:
                raise ValueError(
                    f"{self} needs more than one value per channel in training, got input of shape {np.shape(x)}"
                )
            mean = (column_sums(rows) / len(rows)).astype(rows.dtype, copy=False)
            centred = np.empty_like(rows)

            def centre(s: int, e: int) -> Array:  # rows s:e centred, and their share of the squares
                np.subtract(rows[s:e], mean, out=centred[s:e])
                return np.einsum("ij,ij->j", centred[s:e], centred[s:e])

            var = row_sums(len(rows), centre, rows.size) / len(rows)  # biased, for normalising
            if self.training and self.track_running_stats:
                self._update_running(mean, var, len(rows))
        else:
            mean, var, centred = self.running_mean, self.running_var, None
        inv_std, scale, shift = self._normalisation(var, rows.dtype)
        # y = (x - mean) * inv_std * weight + bias, as few passes over the activations as possible
        if centred is not None:
            out = centred  # the output takes the centred values' memory: backward needs x and the mean only
            elementwise(_scale_shift(scale, shift), out, centred)
        else:
            out = elementwise(_scale_shift(scale, shift - mean * scale), np.empty_like(rows), rows)
        self.save_for_backward(rows=rows, mean=mean, inv_std=inv_std, batch_stats=batch_stats, x_shape=np.shape(x))
        return out.astype(out_dtype, copy=False).reshape(np.shape(x))

    def _normalisation(self, var: Array, dtype: np.dtype) -> Tuple[Array, Array, Any]:
        """``(inv_std, scale, offset)`` per channel, with which ``y = (x - mean) * scale + offset``."""
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(dtype)
        scale = inv_std * self.weight.data if self.weight is not None else inv_std
        return inv_std, scale, self.bias.data if self.bias is not None else 0

    def _update_running(self, mean: Array, var: Array, count: int) -> None:
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (count / (count - 1))
        self.running_mean *= 1 - factor
        self.running_mean += factor * mean
        self.running_var *= 1 - factor
        self.running_var += factor * unbiased

    def backward(self, grad_y: Array) -> Array:
        rows, mean, inv_std, batch_stats, x_shape = self.saved("rows", "mean", "inv_std", "batch_stats", "x_shape")
        grad_y = check_grad_shape(self, grad_y, x_shape)  # the output has the input's shape
        g = grad_y.reshape(rows.shape).astype(rows.dtype, copy=False)
        grad_bias = column_sums(g)
        # sum(g * normalised) without building normalised: inv_std * (sum(g x) - mean sum(g))
        products = row_sums(len(g), lambda s, e: np.einsum("ij,ij->j", g[s:e], rows[s:e]), g.size * 2)
        grad_weight = inv_std * (products - mean * grad_bias)
        if self.weight is not None and self.bias is not None:
            self.weight.accumulate(grad_weight)
            self.bias.accumulate(grad_bias)
        scale = inv_std * self.weight.data if self.weight is not None else inv_std
        if not batch_stats:  # running statistics are constants: a per-channel scale
            return (g * scale).astype(grad_y.dtype, copy=False).reshape(grad_y.shape)
        m = len(g)
        # the batch mean and variance depend on every input:
        # dx = scale * (g - mean(g) - normalised * mean(g * normalised)), normalised = (x - mean) * inv_std,
        #    = g * scale + x * k_rows + k_shift, with these per-channel constants
        k_rows = -scale * inv_std * grad_weight / m
        k_shift = -scale * grad_bias / m - mean * k_rows
        grad_x = elementwise(_input_grad(scale, k_rows, k_shift), np.empty_like(g), g, rows)
        return grad_x.astype(grad_y.dtype, copy=False).reshape(grad_y.shape)

    def get_config(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this layer (statistics aside)."""
        dtype = self._array_dtype() or np.dtype(np.float32)
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
            "dtype": dtype.name,
        }

    def extra_repr(self) -> str:
        text = f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
        if not self.affine:
            text += ", affine=False"
        if not self.track_running_stats:
            text += ", track_running_stats=False"
        return text


class BatchNorm1D(_BatchNorm):
    """Batch normalisation of features ``(N, C)`` (``torch.nn.BatchNorm1d``).

    Args:
        num_features: ``C``.
        eps: Added to the variance.
        momentum: Weight of the batch in the running estimates (``None``: cumulative average).
        affine: Learn a per-feature ``weight`` and ``bias``.
        track_running_stats: Keep running estimates for evaluation (otherwise batch statistics
            are used in evaluation too).
        dtype: ``np.float32`` (default) or ``np.float64``.

    Shape:
        - Input: ``(N, C)``.
        - Output: ``(N, C)``.

    Examples:
        >>> bn = BatchNorm1D(3)
        >>> y = bn(np.array([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]]))
        >>> y.round(3)
        array([[-1., -1., -1.],
               [ 1.,  1.,  1.]], dtype=float32)
        >>> bn.running_mean.round(3)  # moved 10% towards the batch mean
        array([0.2, 0.4, 0.6], dtype=float32)
    """


class BatchNorm2D(_BatchNorm):
    """Batch normalisation of each channel of images ``(N, H, W, C)`` (``torch.nn.BatchNorm2d``).

    Statistics are over the batch and every pixel, per channel. Arguments as `BatchNorm1D`.

    Shape:
        - Input: ``(N, H, W, C)``, channels last.
        - Output: the same.

    Examples:
        >>> BatchNorm2D(8)(np.random.default_rng(0).normal(size=(4, 5, 5, 8))).shape
        (4, 5, 5, 8)
    """

    input_ndim = 4
    takes_images = True


def _normalized(x: Array, axes: Tuple[int, ...], eps: float) -> Tuple[Array, Array]:
    """``(x - mean) / sqrt(var + eps)`` over ``axes`` (biased variance), and ``1 / sqrt(var + eps)``."""
    work = x.astype(np.float32) if x.dtype == np.float16 else x  # float16 sums overflow: statistics in float32
    mean = work.mean(axis=axes, keepdims=True)
    centred = work - mean
    inv_std = 1.0 / np.sqrt((centred * centred).mean(axis=axes, keepdims=True) + eps)
    return centred * inv_std, inv_std


def _normalized_grad(g_hat: Array, x_hat: Array, inv_std: Array, axes: Tuple[int, ...]) -> Array:
    """The input gradient of `_normalized` from that of its output: the mean and variance depend on every
    input of the group, so ``dx = inv_std (g - mean(g) - x_hat mean(g x_hat))`` over ``axes``."""
    return inv_std * (
        g_hat - g_hat.mean(axis=axes, keepdims=True) - x_hat * (g_hat * x_hat).mean(axis=axes, keepdims=True)
    )


def _normalized_rows(rows: Array, eps: float) -> Tuple[Array, Array]:
    """`_normalized` of each row of a 2-D array (a `LayerNorm`'s groups): the row sums as einsums,
    which read the rows once without a temporary, and the result in the centred copy's memory."""
    n = rows.shape[1]
    centred = rows - np.einsum("ij->i", rows)[:, None] / n
    inv_std = 1.0 / np.sqrt(np.einsum("ij,ij->i", centred, centred)[:, None] / n + eps)
    centred *= inv_std
    return centred, inv_std


def _normalized_rows_grad(g_hat: Array, x_hat: Array, inv_std: Array) -> Array:
    """`_normalized_grad` of each row: ``dx = inv_std (g - mean(g) - x_hat mean(g x_hat))``."""
    n = g_hat.shape[1]
    dx = x_hat * (np.einsum("ij,ij->i", g_hat, x_hat)[:, None] / n)
    np.subtract(g_hat, dx, out=dx)
    dx -= np.einsum("ij->i", g_hat)[:, None] / n
    dx *= inv_std
    return dx


class LayerNorm(Layer):
    """Normalise each example over its last dimensions (Ba et al., 2016; ``torch.nn.LayerNorm``).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, the mean and (biased) variance taken over
    the last ``len(normalized_shape)`` axes of each example: the same in training and evaluation,
    with no running statistics, so it suits sequences and small batches (every Transformer block).

    Args:
        normalized_shape: The trailing shape to normalise over: an int (the features) or a tuple.
        eps: Added to the variance.
        elementwise_affine: Learn a ``weight`` and ``bias`` of ``normalized_shape``.
        bias: With ``elementwise_affine``, learn the ``bias`` too.
        dtype: ``np.float32`` (default) or ``np.float64``.

    Shape:
        - Input: ``(*, *normalized_shape)``.
        - Output: the same.

    Examples:
        >>> LayerNorm(3)(np.array([[1.0, 2.0, 3.0]])).round(3)
        array([[-1.225,  0.   ,  1.225]], dtype=float32)
    """

    takes_images = None

    def __init__(
        self,
        normalized_shape: Union[int, Sequence[int]],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        self.normalized_shape = tuple(check_positive_int("LayerNorm normalized_shape", n) for n in shape)
        if not self.normalized_shape:
            raise ValueError("LayerNorm normalized_shape must name at least one axis")
        self.eps = check_number("LayerNorm eps", eps, inclusive=False)
        self.elementwise_affine = bool(elementwise_affine)
        dtype = np.dtype(dtype)
        self.weight = Parameter(filled(self.normalized_shape, 1.0, dtype)) if elementwise_affine else None
        self.bias = Parameter(filled(self.normalized_shape, 0.0, dtype)) if elementwise_affine and bias else None

    def forward(self, x: Array) -> Array:
        x = check_float_input(type(self).__name__, x, self.weight.dtype if self.weight is not None else None)
        k = len(self.normalized_shape)
        if x.ndim <= k or x.shape[-k:] != self.normalized_shape:
            raise ValueError(
                f"{self} expected input (N, ..., {', '.join(map(str, self.normalized_shape))}), got {x.shape}"
            )
        rows = x.reshape(-1, math.prod(self.normalized_shape))  # each example's group as a row
        x_hat, inv_std = _normalized_rows(rows.astype(np.float32) if x.dtype == np.float16 else rows, self.eps)
        self.save_for_backward(x_hat=x_hat, inv_std=inv_std, shape=x.shape)
        y = x_hat * self.weight.data.reshape(-1) if self.weight is not None else x_hat  # no weight, no bias
        if self.bias is not None:
            y += self.bias.data.reshape(-1)
        return y.astype(x.dtype, copy=False).reshape(x.shape)

    def backward(self, grad_y: Array) -> Array:
        x_hat, inv_std, shape = self.saved("x_hat", "inv_std", "shape")
        g = check_grad_shape(self, grad_y, shape).astype(x_hat.dtype, copy=False).reshape(x_hat.shape)
        if self.weight is not None:
            self.weight.accumulate(np.einsum("ij,ij->j", g, x_hat).reshape(self.normalized_shape))
            g_hat = g * self.weight.data.reshape(-1)
        else:
            g_hat = g
        if self.bias is not None:
            self.bias.accumulate(column_sums(g).reshape(self.normalized_shape))
        return _normalized_rows_grad(g_hat, x_hat, inv_std).astype(np.asarray(grad_y).dtype, copy=False).reshape(shape)

    def get_config(self) -> Dict[str, Any]:
        params = self.parameters()
        return {
            "normalized_shape": list(self.normalized_shape),
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
            "bias": self.bias is not None,
            "dtype": (params[0].dtype if params else np.dtype(np.float32)).name,
        }

    def extra_repr(self) -> str:
        text = f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        return text if self.bias is not None or not self.elementwise_affine else text + ", bias=False"


class GroupNorm(Layer):
    """Normalise groups of channels of each example (Wu & He, 2018; ``torch.nn.GroupNorm``).

    The ``num_channels`` channels (the last axis: channels-last) are split into ``num_groups``
    groups of consecutive channels; each example's group is normalised over its channels and all
    positions, then scaled and shifted per channel. One group is a LayerNorm over the whole
    example, one group per channel an InstanceNorm. Batch-independent, like LayerNorm.

    Args:
        num_groups: How many groups (must divide ``num_channels``).
        num_channels: Channels of the input (its last axis).
        eps: Added to the variance.
        affine: Learn a per-channel ``weight`` and ``bias``.
        dtype: ``np.float32`` (default) or ``np.float64``.

    Shape:
        - Input: ``(N, ..., C)``: rows, sequences ``(N, L, C)`` or images ``(N, H, W, C)``.
        - Output: the same.

    Examples:
        >>> GroupNorm(2, 4)(np.random.default_rng(0).normal(size=(2, 5, 5, 4))).shape
        (2, 5, 5, 4)
    """

    takes_images = None

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        *,
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        self.num_groups = check_positive_int("GroupNorm num_groups", num_groups)
        self.num_channels = check_positive_int("GroupNorm num_channels", num_channels)
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.eps = check_number("GroupNorm eps", eps, inclusive=False)
        self.affine = bool(affine)
        dtype = np.dtype(dtype)
        self.weight = Parameter(filled(num_channels, 1.0, dtype)) if affine else None
        self.bias = Parameter(filled(num_channels, 0.0, dtype)) if affine else None

    def forward(self, x: Array) -> Array:
        x = check_float_input(type(self).__name__, x, self.weight.dtype if self.weight is not None else None)
        if x.ndim < 2 or x.shape[-1] != self.num_channels:
            raise ValueError(f"{self} expected input (N, ..., {self.num_channels}), channels last, got {x.shape}")
        groups = x.reshape(x.shape[0], -1, self.num_groups, self.num_channels // self.num_groups)
        x_hat, inv_std = _normalized(groups, (1, 3), self.eps)
        self.save_for_backward(x_hat=x_hat, inv_std=inv_std, x_shape=x.shape)
        y = x_hat.reshape(x.shape)
        if self.weight is not None and self.bias is not None:
            y = y * self.weight.data + self.bias.data
        return y.astype(x.dtype, copy=False)

    def backward(self, grad_y: Array) -> Array:
        x_hat, inv_std, x_shape = self.saved("x_hat", "inv_std", "x_shape")
        g = check_grad_shape(self, grad_y, x_shape).astype(x_hat.dtype, copy=False)
        rows = g.reshape(-1, self.num_channels)
        if self.weight is not None and self.bias is not None:
            self.weight.accumulate((rows * x_hat.reshape(rows.shape)).sum(axis=0))
            self.bias.accumulate(rows.sum(axis=0))
            g = g * self.weight.data
        g_hat = g.reshape(x_hat.shape)
        return (
            _normalized_grad(g_hat, x_hat, inv_std, (1, 3))
            .reshape(x_shape)
            .astype(np.asarray(grad_y).dtype, copy=False)
        )

    def get_config(self) -> Dict[str, Any]:
        return {
            "num_groups": self.num_groups,
            "num_channels": self.num_channels,
            "eps": self.eps,
            "affine": self.affine,
            "dtype": (self.weight.dtype if self.weight is not None else np.dtype(np.float32)).name,
        }

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
