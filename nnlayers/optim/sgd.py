"""`SGD`, with momentum, Nesterov and weight decay, as ``torch.optim.SGD``."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

from ..nn.module import Parameter
from ..utils.checks import check_number, is_real
from .fused import axpy
from .optimizer import Optimizer, ParamsOrGroups, decayed


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, as ``torch.optim.SGD`` defines it.

    Each `step` computes ``d = grad + weight_decay * w``; with momentum,
    ``buf = momentum * buf + (1 - dampening) * d`` (``buf = d`` on the first step) and
    ``d = buf`` (or ``d + momentum * buf`` with Nesterov); then ``w -= lr * d``. Without
    momentum and weight decay it is the seed's ``W = W - learning_rate * dW``.

    Args:
        params: The parameters to update, usually ``model.parameters()``.
        lr: Learning rate, > 0.
        momentum: Momentum factor, >= 0.
        weight_decay: L2 penalty, >= 0.
        nesterov: Use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        dampening: Dampening of the momentum, in [0, 1].

    Examples:
        >>> import numpy as np
        >>> from nnlayers import Parameter
        >>> w = Parameter(np.array([1.0, 2.0]))
        >>> w.grad[:] = [0.5, -0.5]
        >>> opt = SGD([w], lr=0.1)
        >>> opt.step()
        >>> w.data
        array([0.95, 2.05])
    """

    hyperparameters = ("momentum", "weight_decay", "dampening", "nesterov")
    state_name = "momentum buffers"

    def __init__(
        self,
        params: ParamsOrGroups,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        dampening: float = 0.0,
    ) -> None:
        super().__init__(
            params, lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov, dampening=dampening
        )

    def check_group(self, group: Dict[str, Any]) -> None:
        group["momentum"] = check_number("SGD momentum", group["momentum"])
        group["weight_decay"] = check_number("SGD weight_decay", group["weight_decay"])
        dampening = group["dampening"]
        if not is_real(dampening) or not 0 <= dampening <= 1:
            raise ValueError(f"SGD dampening must be in [0, 1], got {dampening!r}")
        group["dampening"] = float(dampening)
        if group["nesterov"] and (group["momentum"] <= 0 or dampening != 0):
            raise ValueError("SGD with nesterov=True needs momentum > 0 and dampening = 0")
        group["nesterov"] = bool(group["nesterov"])

    @property
    def momentum_buffers(self) -> List[Any]:
        """The momentum buffer of each parameter (``None`` before the first step or without momentum)."""
        return [s.get("momentum_buffer") for s in self.state]

    def update(self, param: Parameter, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        momentum = group["momentum"]
        d = decayed(param, group["weight_decay"])
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.copy()
            else:
                buf *= momentum
                axpy(1 - group["dampening"], d, buf)  # buf = momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if group["nesterov"] else buf
        axpy(-group["lr"], d, param.data)  # seed: W = W - learning_rate * dW

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "momentum_buffers" in state:  # checkpoints written by nnlayers 0.1
            buffers = list(state["momentum_buffers"])
            state = {**state, "state": [{} if b is None else {"momentum_buffer": b} for b in buffers]}
        super().load_state_dict(state)
