"""Optimizers: they take ``model.parameters()`` and update ``param.data`` in place.

`Optimizer` owns the parameters, their per-parameter state, the learning rate and the state
dict; each optimizer only says how one parameter is updated (`Optimizer.update`), as in PyTorch.
`SGD`, `Adam`, `AdamW` and `RMSprop` follow ``torch.optim``'s definitions, defaults and argument
names, so the same run gives the same numbers.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import cv2
import numpy as np

from .module import Array, Layer, Parameter
from .util import check_number, is_real

#: Arrays smaller than this are updated with numpy; larger ones with OpenCV's fused ``a*x + y``.
_FUSED_MIN_SIZE = 4096


def axpy(alpha: float, x: Array, y: Array) -> None:
    """``y += alpha * x`` in place, in one pass over memory when the arrays are large.

    numpy has no fused multiply-add: ``y -= lr * g`` writes a temporary array and reads it back,
    which on a 3 MB weight is half the cost of an SGD step. OpenCV's ``scaleAdd`` does it in one
    pass (float32 and float64), so large contiguous arrays go through it.
    """
    if y.size >= _FUSED_MIN_SIZE and x.dtype == y.dtype and x.flags.c_contiguous and y.flags.c_contiguous:
        y_row = y.reshape(1, -1)  # a view: one long row, whatever the shape
        cv2.scaleAdd(x.reshape(1, -1), float(alpha), y_row, dst=y_row)
    else:
        y += alpha * x


class Optimizer:
    """Base class: the parameters, their state, the learning rate, ``step``, ``zero_grad`` and state dicts.

    A subclass sets its hyper-parameters as attributes, lists their names in ``hyperparameters``
    and implements `update` for one parameter; ``lr`` may be changed at any time (schedules do).

    Args:
        params: The parameters to update, usually ``model.parameters()``.
        lr: Learning rate, > 0.
    """

    #: Names of the hyper-parameters saved in `state_dict` (besides ``lr``).
    hyperparameters: Tuple[str, ...] = ()
    #: What the per-parameter state is called in messages.
    state_name = "parameter states"

    def __init__(self, params: Iterable[Parameter], lr: float) -> None:
        name = type(self).__name__
        if isinstance(params, (Layer, str, bytes, np.ndarray)) or not isinstance(params, Iterable):
            raise TypeError(f"{name} expects model.parameters(), got {type(params).__name__}; pass model.parameters()")
        self.params: List[Parameter] = list(params)
        if not self.params:
            raise ValueError(f"{name} got an empty parameter list")
        for i, param in enumerate(self.params):
            if not isinstance(param, Parameter):
                raise TypeError(
                    f"{name} expected Parameters (from model.parameters()), got {type(param).__name__} at position {i}"
                )
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{name} got the same parameter twice; each would be updated twice per step")
        if not is_real(lr) or not lr > 0:
            raise ValueError(f"{name} learning rate must be a positive number, got {lr!r}")
        self.lr = float(lr)
        #: The learning rate given at construction (schedules start from it).
        self.initial_lr = self.lr
        #: Per-parameter state (moment estimates, momentum buffers), created at the first step.
        self.state: List[Dict[str, Any]] = [{} for _ in self.params]
        self.step_count = 0

    def update(self, param: Parameter, state: Dict[str, Any]) -> None:
        """Update one parameter in place from ``param.grad`` and its ``state`` (the rule of each optimizer)."""
        raise NotImplementedError(f"{type(self).__name__} must implement update(param, state)")

    def step(self) -> None:
        """Update every parameter from its gradient, in place."""
        self.step_count += 1
        for param, state in zip(self.params, self.state):
            self.update(param, state)

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero (do it after each `step`)."""
        for param in self.params:
            param.zero_grad()

    def state_dict(self) -> Dict[str, Any]:
        """Hyper-parameters, step count and per-parameter state (copies), for checkpoints."""
        return {
            "type": type(self).__name__,
            "lr": self.lr,
            "initial_lr": self.initial_lr,
            "step_count": self.step_count,
            **{name: getattr(self, name) for name in self.hyperparameters},
            "state": [{k: np.array(v, copy=True) for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned (for the same parameters, in the same order)."""
        name = type(self).__name__
        saved_type = state.get("type", name)
        if saved_type != name:
            raise ValueError(f"cannot load the state of a {saved_type} optimizer into {name}")
        per_param = list(state["state"])
        if len(per_param) != len(self.params):
            raise ValueError(f"{name} state has {len(per_param)} {self.state_name}, expected {len(self.params)}")
        for param, entry in zip(self.params, per_param):
            for key, value in entry.items():
                if np.shape(value) != param.shape:
                    raise ValueError(
                        f"{name} state {key!r} of shape {np.shape(value)} does not match parameter {param.shape}"
                    )
        self.lr = float(state["lr"])
        self.initial_lr = float(state.get("initial_lr", self.lr))
        self.step_count = int(state.get("step_count", 0))
        for hyper in self.hyperparameters:
            setattr(self, hyper, _restore(state[hyper]))
        self.state = [
            {k: np.array(v, dtype=p.dtype) for k, v in entry.items()} for p, entry in zip(self.params, per_param)
        ]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(lr={self.lr}, "
            + ", ".join(f"{n}={getattr(self, n)}" for n in self.hyperparameters)
            + ")"
        )


def _restore(value: Any) -> Any:
    """Hyper-parameters come back from JSON as lists: betas is a tuple."""
    return tuple(value) if isinstance(value, list) else value


def _decayed(param: Parameter, weight_decay: float) -> Array:
    """The gradient with the L2 penalty added (``grad + weight_decay * w``, as torch's coupled decay)."""
    return param.grad + weight_decay * param.data if weight_decay else param.grad


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
        params: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        dampening: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.momentum = check_number("SGD momentum", momentum)
        self.weight_decay = check_number("SGD weight_decay", weight_decay)
        if not is_real(dampening) or not 0 <= dampening <= 1:
            raise ValueError(f"SGD dampening must be in [0, 1], got {dampening!r}")
        self.dampening = float(dampening)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD with nesterov=True needs momentum > 0 and dampening = 0")
        self.nesterov = bool(nesterov)

    @property
    def momentum_buffers(self) -> List[Any]:
        """The momentum buffer of each parameter (``None`` before the first step or without momentum)."""
        return [s.get("momentum_buffer") for s in self.state]

    def update(self, param: Parameter, state: Dict[str, Any]) -> None:
        d = _decayed(param, self.weight_decay)
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.copy()
            else:
                buf *= self.momentum
                axpy(1 - self.dampening, d, buf)  # buf = momentum * buf + (1 - dampening) * d
            d = d + self.momentum * buf if self.nesterov else buf
        axpy(-self.lr, d, param.data)  # seed: W = W - learning_rate * dW

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if "momentum_buffers" in state:  # checkpoints written by nnlayers 0.1
            buffers = list(state["momentum_buffers"])
            state = {**state, "state": [{} if b is None else {"momentum_buffer": b} for b in buffers]}
        super().load_state_dict(state)


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
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: Optional[float] = None,
        amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr)
        weight_decay = self.default_weight_decay if weight_decay is None else weight_decay
        name = type(self).__name__
        if len(betas) != 2 or not all(is_real(b) and 0 <= b < 1 for b in betas):
            raise ValueError(f"{name} betas must be two numbers in [0, 1), got {betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = check_number(f"{name} eps", eps)
        self.weight_decay = check_number(f"{name} weight_decay", weight_decay)
        self.amsgrad = bool(amsgrad)

    def update(self, param: Parameter, state: Dict[str, Any]) -> None:
        beta1, beta2 = self.betas
        if self.decoupled_weight_decay:
            param.data *= 1 - self.lr * self.weight_decay  # AdamW: decay the weights, not the gradient
            grad = param.grad
        else:
            grad = _decayed(param, self.weight_decay)
        if not state:
            state.update(exp_avg=np.zeros_like(param.data), exp_avg_sq=np.zeros_like(param.data))
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(param.data)
        t = self.step_count  # every parameter steps together: torch's per-parameter step
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (grad - exp_avg)  # torch's lerp: m + (1 - beta1) (g - m)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * grad * grad
        if self.amsgrad:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]
        denom = np.sqrt(exp_avg_sq) / math.sqrt(1 - beta2**t) + self.eps
        param.data -= (self.lr / (1 - beta1**t)) * exp_avg / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    Each step first shrinks the weights, ``w *= 1 - lr * weight_decay``, then takes the Adam step
    without any penalty in the gradient. The default ``weight_decay`` is 0.01, as in PyTorch.
    To leave biases and normalisation parameters undecayed, give them their own optimizer::

        decay = [p for n, p in model.named_parameters() if p.data.ndim > 1]
        no_decay = [p for n, p in model.named_parameters() if p.data.ndim <= 1]
    """

    decoupled_weight_decay = True
    default_weight_decay = 1e-2


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
