"""Gradient clipping over all parameters together."""

from __future__ import annotations

import math
from typing import Iterable, Optional, Union

import numpy as np

from ..nn.layers.recurrent import _Recurrent
from ..nn.module import Layer, Parameter
from ..utils.checks import check_number


def clip_grad_norm(parameters: Iterable[Parameter], max_norm: float, norm_type: float = 2.0) -> float:
    """Scale the gradients so that their global norm is at most ``max_norm``; return the norm before.

    As ``torch.nn.utils.clip_grad_norm_``: the norm is taken over all gradients together, and
    when it exceeds ``max_norm`` every gradient is multiplied by ``max_norm / (norm + 1e-6)``.

    Args:
        parameters: Usually ``model.parameters()``.
        max_norm: The largest norm allowed.
        norm_type: The p of the p-norm (``inf`` for the largest absolute entry).

    Examples:
        >>> from nnlayers import Parameter
        >>> p = Parameter(np.zeros(2)); p.grad[:] = [3.0, 4.0]
        >>> clip_grad_norm([p], 1.0)
        5.0
        >>> p.grad.round(4)
        array([0.6, 0.8])
    """
    params = list(parameters)
    max_norm = check_number("clip_grad_norm max_norm", max_norm)
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)) or not norm_type > 0:
        raise ValueError(f"clip_grad_norm norm_type must be a positive number or math.inf, got {norm_type!r}")
    if not params:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(p.grad))) if p.size else 0.0 for p in params)
    else:
        total = float(sum(float(np.sum(np.abs(p.grad) ** norm_type)) for p in params) ** (1.0 / norm_type))
    coefficient = max_norm / (total + 1e-6)
    if coefficient < 1:
        for p in params:
            p.grad *= coefficient
    return total


#: The global norm `fit` clips a recurrent model's gradients to by default (as Hugging Face's Trainer does
#: every model's): backpropagation through time multiplies by ``W_hh`` at every step, so gradients can explode.
RECURRENT_MAX_GRAD_NORM = 1.0


def grad_norm_limit(model: Layer, max_grad_norm: Union[None, float, str]) -> Optional[float]:
    """What `fit`'s ``max_grad_norm`` means for ``model``: ``"auto"`` is `RECURRENT_MAX_GRAD_NORM` when the model
    has a recurrent layer and no clipping otherwise; a number is checked."""
    if max_grad_norm == "auto":
        if not isinstance(model, Layer):
            return None  # (fit refuses it next, naming what it got)
        recurrent = any(isinstance(layer, _Recurrent) for _, layer in model.named_modules())
        return RECURRENT_MAX_GRAD_NORM if recurrent else None
    if max_grad_norm is None:
        return None
    if isinstance(max_grad_norm, str):
        raise ValueError(f"max_grad_norm must be a positive number, None or 'auto', got {max_grad_norm!r}")
    return check_number("max_grad_norm", max_grad_norm, inclusive=False)
