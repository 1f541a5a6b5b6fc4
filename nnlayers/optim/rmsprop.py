"""`RMSprop`, as ``torch.optim.RMSprop``."""

from __future__ import annotations

from typing import Any, Dict, Iterable

import numpy as np

from ..nn.module import Parameter
from ..utils.checks import check_number
from .fused import axpy
from .optimizer import Optimizer, _decayed


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012), as ``torch.optim.RMSprop`` defines it.

    With ``g = grad + weight_decay * w``: ``v = alpha v + (1 - alpha) g**2``; centered, the
    running mean ``a`` of ``g`` is kept and ``v - a**2`` used instead; ``d = sqrt(v) + eps``;
    then ``w -= lr * g / d``, or with momentum ``buf = momentum buf + g / d; w -= lr * buf``.

    Args:
        params: The parameters to update, usually ``model.parameters()``.
        lr: Learning rate (default 1e-2).
        alpha: Smoothing constant of the squared-gradient average.
        eps: Added to the denominator.
        weight_decay: L2 penalty.
        momentum: Momentum factor.
        centered: Normalise by the estimated variance of the gradient.
    """

    hyperparameters = ("alpha", "eps", "weight_decay", "momentum", "centered")
    state_name = "running averages"

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(params, lr)
        self.alpha = check_number("RMSprop alpha", alpha, high=1.0)
        self.eps = check_number("RMSprop eps", eps)
        self.weight_decay = check_number("RMSprop weight_decay", weight_decay)
        self.momentum = check_number("RMSprop momentum", momentum)
        self.centered = bool(centered)

    def update(self, param: Parameter, state: Dict[str, Any]) -> None:
        grad = _decayed(param, self.weight_decay)
        if not state:
            state["square_avg"] = np.zeros_like(param.data)
            if self.centered:
                state["grad_avg"] = np.zeros_like(param.data)
            if self.momentum:
                state["momentum_buffer"] = np.zeros_like(param.data)
        square_avg = state["square_avg"]
        square_avg *= self.alpha
        square_avg += (1 - self.alpha) * grad * grad
        if self.centered:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - self.alpha) * (grad - grad_avg)
            avg = np.sqrt(square_avg - grad_avg * grad_avg) + self.eps
        else:
            avg = np.sqrt(square_avg) + self.eps
        if self.momentum:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += grad / avg
            axpy(-self.lr, buf, param.data)
        else:
            param.data -= self.lr * grad / avg
