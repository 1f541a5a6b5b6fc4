"""Batch normalisation: `BatchNorm1D` over rows, `BatchNorm2D` over the channels of images.

They normalise with the batch's statistics in training mode and the running ones in evaluation
mode. `Layer.train` and `Layer.eval` switch them; `fit` trains in training mode and evaluates, predicts
and validates in evaluation mode by itself.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
from numpy.typing import DTypeLike

from ...utils.checks import check_number, check_positive_int
from ...utils.types import Array
from ..checks import check_float_input, check_grad_shape
from ..functional import column_sums
from ..init import filled
from ..module import Layer, Parameter


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
            mean = column_sums(rows) / len(rows)
            centred = rows - mean
            var = np.einsum("ij,ij->j", centred, centred) / len(rows)  # biased, for normalising
            if self.training and self.track_running_stats:
                self._update_running(mean, var, len(rows))
        else:
            mean, var, centred = self.running_mean, self.running_var, None
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(rows.dtype)
        scale = inv_std * self.weight.data if self.weight is not None else inv_std
        shift = self.bias.data if self.bias is not None else 0
        # y = (x - mean) * inv_std * weight + bias, as few passes over the activations as possible
        if centred is not None:
            out = centred * scale
            out += shift
        else:
            out = rows * scale
            out += shift - mean * scale
        self.save_for_backward(
            rows=rows, centred=centred, mean=mean, inv_std=inv_std, batch_stats=batch_stats, x_shape=np.shape(x)
        )
        return out.astype(out_dtype, copy=False).reshape(np.shape(x))

    def _update_running(self, mean: Array, var: Array, count: int) -> None:
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * (count / (count - 1))
        self.running_mean *= 1 - factor
        self.running_mean += factor * mean
        self.running_var *= 1 - factor
        self.running_var += factor * unbiased

    def backward(self, grad_y: Array) -> Array:
        rows, centred, mean, inv_std, batch_stats, x_shape = self.saved(
            "rows", "centred", "mean", "inv_std", "batch_stats", "x_shape"
        )
        grad_y = check_grad_shape(self, grad_y, x_shape)  # the output has the input's shape
        g = grad_y.reshape(rows.shape).astype(rows.dtype, copy=False)
        grad_bias = column_sums(g)
        # sum(g * normalised) without building normalised: inv_std * (sum(g x) - mean sum(g))
        g_dot_x = np.einsum("ij,ij->j", g, centred if centred is not None else rows)
        grad_weight = inv_std * (g_dot_x if centred is not None else g_dot_x - mean * grad_bias)
        if self.weight is not None and self.bias is not None:
            self.weight.accumulate(grad_weight)
            self.bias.accumulate(grad_bias)
        scale = inv_std * self.weight.data if self.weight is not None else inv_std
        if not batch_stats:  # running statistics are constants: a per-channel scale
            return (g * scale).astype(grad_y.dtype, copy=False).reshape(grad_y.shape)
        m = len(g)
        # the batch mean and variance depend on every input:
        # dx = scale * (g - mean(g) - normalised * mean(g * normalised)), normalised = centred * inv_std
        grad_x = g * scale
        grad_x -= scale * grad_bias / m
        grad_x -= centred * (scale * inv_std * grad_weight / m)
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
