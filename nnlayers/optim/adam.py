"""`Adam` and `AdamW`, as ``torch.optim.Adam`` and ``torch.optim.AdamW``."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import numpy as np

from ..nn.module import Parameter
from ..utils.checks import check_number, is_real
from .optimizer import Optimizer, ParamsOrGroups, decayed


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), as ``torch.optim.Adam`` defines it.

    With ``g = grad + weight_decay * w``: ``m = beta1 m + (1 - beta1) g``,
    ``v = beta2 v + (1 - beta2) g**2`` (``amsgrad`` keeps the running maximum of ``v``), and
    ``w -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``.

    Args:
        params: The parameters to update, usually ``model.parameters()``.
        lr: Learning rate (default 1e-3).
        betas: Decay rates of the first and second moment estimates.
        eps: Added to the denominator.
        weight_decay: L2 penalty added to the gradient (default 0; use `AdamW` for decoupled decay).
        amsgrad: Use the maximum of past second moments (Reddi et al., 2018).

    Examples:
        >>> import numpy as np
        >>> from nnlayers import Parameter
        >>> w = Parameter(np.array([1.0]))
        >>> w.grad[:] = 0.5
        >>> Adam([w], lr=0.1).step()  # the first step moves by lr, whatever the gradient's size
        >>> w.data.round(6)
        array([0.9])
    """

    hyperparameters = ("betas", "eps", "weight_decay", "amsgrad")
    state_name = "moment estimates"
    decoupled_weight_decay = False
    default_weight_decay = 0.0

    def __init__(
        self,
        params: ParamsOrGroups,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: Optional[float] = None,
        amsgrad: bool = False,
    ) -> None:
        weight_decay = self.default_weight_decay if weight_decay is None else weight_decay
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    def check_group(self, group: Dict[str, Any]) -> None:
        name, betas = type(self).__name__, group["betas"]
        if len(betas) != 2 or not all(is_real(b) and 0 <= b < 1 for b in betas):
            raise ValueError(f"{name} betas must be two numbers in [0, 1), got {betas!r}")
        group["betas"] = (float(betas[0]), float(betas[1]))
        group["eps"] = check_number(f"{name} eps", group["eps"])
        group["weight_decay"] = check_number(f"{name} weight_decay", group["weight_decay"])
        group["amsgrad"] = bool(group["amsgrad"])

    def update(self, param: Parameter, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        (beta1, beta2), lr = group["betas"], group["lr"]
        if self.decoupled_weight_decay:
            param.data *= 1 - lr * group["weight_decay"]  # AdamW: decay the weights, not the gradient
            grad = param.grad
        else:
            grad = decayed(param, group["weight_decay"])
        if not state:
            state.update(exp_avg=np.zeros_like(param.data), exp_avg_sq=np.zeros_like(param.data))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(param.data)
        t = self.step_count  # every parameter steps together: torch's per-parameter step
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)  # torch's lerp: m + (1 - beta1) (g - m)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]
        denom = np.sqrt(exp_avg_sq) / math.sqrt(1 - beta2**t) + group["eps"]
        param.data -= (lr / (1 - beta1**t)) * exp_avg / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    Each step first shrinks the weights, ``w *= 1 - lr * weight_decay``, then takes the Adam step
    without any penalty in the gradient. The default ``weight_decay`` is 0.01, as in PyTorch.
    To leave biases and normalisation parameters undecayed, give them a parameter group of their
    own, as in PyTorch::

        decay = [p for p in model.parameters() if p.data.ndim > 1]
        no_decay = [p for p in model.parameters() if p.data.ndim <= 1]
        AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
    """

    decoupled_weight_decay = True
    default_weight_decay = 1e-2
