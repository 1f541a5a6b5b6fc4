"""Optimizers: they take ``model.parameters()`` and update ``param.data`` in place."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from .module import Array, Layer, Parameter


class SGD:
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
        dampening: Dampening of the momentum, in [0, 1].
        nesterov: Use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).

    Examples:
        >>> from nnlayers import Parameter
        >>> w = Parameter(np.array([1.0, 2.0]))
        >>> w.grad[:] = [0.5, -0.5]
        >>> opt = SGD([w], lr=0.1)
        >>> opt.step()
        >>> w.data
        array([0.95, 2.05])
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        dampening: float = 0.0,
    ) -> None:
        if isinstance(params, (Layer, str, bytes, np.ndarray)) or not isinstance(params, Iterable):
            raise TypeError(f"SGD expects model.parameters(), got {type(params).__name__}; pass model.parameters()")
        self.params: List[Parameter] = list(params)
        if not self.params:
            raise ValueError("SGD got an empty parameter list")
        for i, param in enumerate(self.params):
            if not isinstance(param, Parameter):
                raise TypeError(
                    f"SGD expected Parameters (from model.parameters()), got {type(param).__name__} at position {i}"
                )
        if not _is_real(lr) or not lr > 0:
            raise ValueError(f"SGD learning rate must be a positive number, got {lr!r}")
        if not _is_real(momentum) or not momentum >= 0:
            raise ValueError(f"SGD momentum must be >= 0, got {momentum!r}")
        if not _is_real(weight_decay) or not weight_decay >= 0:
            raise ValueError(f"SGD weight_decay must be >= 0, got {weight_decay!r}")
        if not _is_real(dampening) or not 0 <= dampening <= 1:
            raise ValueError(f"SGD dampening must be in [0, 1], got {dampening!r}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD with nesterov=True needs momentum > 0 and dampening = 0")
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.dampening = float(dampening)
        self.nesterov = bool(nesterov)
        self.momentum_buffers: List[Optional[Array]] = [None] * len(self.params)

    def step(self) -> None:
        """Update every parameter from its gradient, in place."""
        for i, param in enumerate(self.params):
            d = param.grad
            if self.weight_decay:
                d = d + self.weight_decay * param.data
            if self.momentum:
                buf = self.momentum_buffers[i]
                if buf is None:
                    buf = self.momentum_buffers[i] = d.copy()
                else:
                    buf *= self.momentum
                    buf += (1 - self.dampening) * d if self.dampening else d
                d = d + self.momentum * buf if self.nesterov else buf
            param.data -= self.lr * d  # seed: W = W - learning_rate * dW

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero (do it after each `step`)."""
        for param in self.params:
            param.zero_grad()

    def state_dict(self) -> Dict[str, Any]:
        """Hyper-parameters and momentum buffers (copies), for checkpoints."""
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "dampening": self.dampening,
            "nesterov": self.nesterov,
            "momentum_buffers": [None if b is None else b.copy() for b in self.momentum_buffers],
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what `state_dict` returned (for the same parameters, in the same order)."""
        buffers = list(state["momentum_buffers"])
        if len(buffers) != len(self.params):
            raise ValueError(f"SGD state has {len(buffers)} momentum buffers, expected {len(self.params)}")
        for param, buf in zip(self.params, buffers):
            if buf is not None and np.shape(buf) != param.shape:
                raise ValueError(f"SGD momentum buffer of shape {np.shape(buf)} does not match parameter {param.shape}")
        self.lr = float(state["lr"])
        self.momentum = float(state["momentum"])
        self.weight_decay = float(state["weight_decay"])
        self.dampening = float(state["dampening"])
        self.nesterov = bool(state["nesterov"])
        self.momentum_buffers = [
            None if b is None else np.array(b, dtype=p.dtype) for p, b in zip(self.params, buffers)
        ]

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay}, nesterov={self.nesterov})"
        )


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and np.isfinite(value)
    )
