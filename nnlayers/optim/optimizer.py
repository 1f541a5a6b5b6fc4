"""Optimizers: they take ``model.parameters()`` and update ``param.data`` in place.

`Optimizer` owns the parameters, their per-parameter state, the learning rate and the state
dict; each optimizer only says how one parameter is updated (`Optimizer.update`), as in PyTorch.
`SGD`, `Adam`, `AdamW` and `RMSprop` follow ``torch.optim``'s definitions, defaults and argument
names, so the same run gives the same numbers.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Tuple

import numpy as np

from ..nn.module import Layer, Parameter
from ..utils.checks import is_real
from ..utils.types import Array


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
