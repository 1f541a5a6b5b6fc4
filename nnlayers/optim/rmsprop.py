"""`RMSprop`, as ``torch.optim.RMSprop``."""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..nn.module import Parameter
from ..utils.checks import check_number
from .fused import axpy
from .optimizer import Optimizer, ParamsOrGroups, decayed


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
        params: ParamsOrGroups,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ) -> None:
        super().__init__(
            params, lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered
        )

    def check_group(self, group: Dict[str, Any]) -> None:
        group["alpha"] = check_number("RMSprop alpha", group["alpha"], high=1.0)
        group["eps"] = check_number("RMSprop eps", group["eps"])
        group["weight_decay"] = check_number("RMSprop weight_decay", group["weight_decay"])
        group["momentum"] = check_number("RMSprop momentum", group["momentum"])
        group["centered"] = bool(group["centered"])

    def update(self, param: Parameter, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        alpha, eps, momentum, lr = group["alpha"], group["eps"], group["momentum"], group["lr"]
        grad = decayed(param, group["weight_decay"])
        if not state:
            state["square_avg"] = np.zeros_like(param.data)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(param.data)
            if momentum:
                state["momentum_buffer"] = np.zeros_like(param.data)
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - alpha) * (grad - grad_avg)
            avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
        else:
            avg = np.sqrt(square_avg) + eps
        if momentum:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += grad / avg
            axpy(-lr, buf, param.data)
        else:
            param.data -= lr * grad / avg
