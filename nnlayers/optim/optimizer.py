"""`Optimizer`: the base every optimizer shares (parameter groups, per-parameter state, state dicts).

`Optimizer` owns the parameters, their groups, their per-parameter state, the learning rates and
the state dict; each optimizer only says how one parameter is updated (`Optimizer.update`), as in
PyTorch. `SGD`, `Adam`, `AdamW` and `RMSprop` follow ``torch.optim``'s definitions, defaults and
argument names, so the same run gives the same numbers.

Parameter groups are ``torch.optim``'s: pass dicts instead of parameters, each with its
``"params"`` and any hyper-parameter that differs from the optimizer's arguments::

    decay = [p for p in model.parameters() if p.data.ndim > 1]      # weights
    no_decay = [p for p in model.parameters() if p.data.ndim <= 1]  # biases, BatchNorm's scale and shift
    opt = AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, weight_decay=0.05)
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, Iterable, List, Mapping, Tuple, Union

import numpy as np

from ..nn.module import Layer, Parameter
from ..utils.checks import is_real
from ..utils.types import Array

#: What an optimizer takes: parameters, or parameter groups (dicts with ``"params"``).
ParamsOrGroups = Union[Iterable[Parameter], Iterable[Dict[str, Any]]]


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``step``, ``zero_grad`` and state dicts.

    A subclass passes its hyper-parameters to ``__init__`` as defaults (each parameter group may
    override them), checks a group's values in `check_group`, and implements `update` for one
    parameter, reading its group's values (``group["lr"]``, ...). ``lr`` may be changed at any time
    (schedules change each group's ``"lr"``).

    Args:
        params: The parameters to update, usually ``model.parameters()``, or a list of parameter
            groups: dicts with ``"params"`` and any hyper-parameters of their own.
        lr: Learning rate, > 0 (the default of groups that give none).
        **defaults: The subclass's hyper-parameters (the defaults of every group).

    Attributes:
        param_groups: One dict per group: ``"params"`` and every hyper-parameter, ``"lr"`` first.
        params: Every parameter, group after group.
        state: The per-parameter state (moment estimates, momentum buffers), in the order of
            ``params``, created at the first step.
    """

    #: Names of the hyper-parameters saved in `state_dict` (besides ``lr``).
    hyperparameters: Tuple[str, ...] = ()
    #: What the per-parameter state is called in messages.
    state_name = "parameter states"

    def __init__(self, params: ParamsOrGroups, lr: float, **defaults: Any) -> None:
        name = type(self).__name__
        if isinstance(params, (Layer, str, bytes, np.ndarray, dict)) or not isinstance(params, Iterable):
            raise TypeError(f"{name} expects model.parameters(), got {type(params).__name__}; pass model.parameters()")
        self.defaults: Dict[str, Any] = {"lr": lr, **defaults}
        entries: List[Any] = list(params)
        given = entries if entries and all(isinstance(e, dict) for e in entries) else [{"params": entries}]
        self.param_groups: List[Dict[str, Any]] = [self._group(g, i, len(given) > 1) for i, g in enumerate(given)]
        self.params: List[Parameter] = [p for group in self.param_groups for p in group["params"]]
        if not self.params:
            raise ValueError(f"{name} got an empty parameter list")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError(f"{name} got the same parameter twice; each would be updated twice per step")
        self.state: List[Dict[str, Any]] = [{} for _ in self.params]
        self.step_count = 0
        # an update(param, state) written before parameter groups reads self.lr and its own attributes
        self._takes_group = len(inspect.signature(self.update).parameters) >= 3

    def _group(self, given: Mapping[str, Any], index: int, several: bool) -> Dict[str, Any]:
        name = type(self).__name__
        where = f" in parameter group {index}" if several else ""
        if "params" not in given:
            raise ValueError(f"{name}: parameter group {index} has no 'params'")
        unknown = sorted(set(given) - {"params", "name", *self.defaults})
        if unknown:
            raise ValueError(
                f"{name}: unknown setting {unknown} in parameter group {index}; known: {sorted(self.defaults)}"
            )
        params = given["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for i, param in enumerate(params):
            if not isinstance(param, Parameter):
                raise TypeError(
                    f"{name} expected Parameters (from model.parameters()), got {type(param).__name__} at position {i}{where}"
                )
        group = {**self.defaults, **{k: v for k, v in given.items() if k != "params"}, "params": params}
        if not is_real(group["lr"]) or not group["lr"] > 0:
            raise ValueError(f"{name} learning rate must be a positive number, got {group['lr']!r}{where}")
        group["lr"] = float(group["lr"])
        self.check_group(group)
        group.setdefault("initial_lr", group["lr"])
        return group

    def check_group(self, group: Dict[str, Any]) -> None:
        """Check (and normalise in place) one group's hyper-parameters; raise a `ValueError` naming the bad one."""

    def update(self, param: Parameter, state: Dict[str, Any], group: Dict[str, Any]) -> None:
        """Update one parameter in place from ``param.grad``, its ``state`` and its ``group``'s settings."""
        raise NotImplementedError(f"{type(self).__name__} must implement update(param, state, group)")

    @property
    def lr(self) -> float:
        """The learning rate of the first group; setting it sets every group's (as Keras' ``learning_rate``)."""
        return float(self.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        for group in self.param_groups:
            group["lr"] = float(value)

    @property
    def initial_lr(self) -> float:
        """The learning rate the first group was given at construction."""
        return float(self.param_groups[0]["initial_lr"])

    def __getattr__(self, name: str) -> Any:
        """A hyper-parameter read as an attribute (``opt.momentum``) is the first group's."""
        groups = self.__dict__.get("param_groups")
        if groups and name in self.__dict__.get("defaults", {}):
            return groups[0][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def step(self) -> None:
        """Update every parameter from its gradient, in place."""
        self.step_count += 1
        index = 0
        for group in self.param_groups:
            for param in group["params"]:
                _match_dtype(self.state[index], param)
                if self._takes_group:
                    self.update(param, self.state[index], group)
                else:
                    self.update(param, self.state[index])  # type: ignore[call-arg]
                index += 1

    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero (do it after each `step`)."""
        for param in self.params:
            param.zero_grad()

    def state_dict(self) -> Dict[str, Any]:
        """Groups (their settings and which parameters), step count and per-parameter state (copies), for checkpoints."""
        groups, start = [], 0
        for group in self.param_groups:
            count = len(group["params"])
            groups.append(
                {**{k: v for k, v in group.items() if k != "params"}, "params": list(range(start, start + count))}
            )
            start += count
        return {
            "type": type(self).__name__,
            "lr": self.lr,
            "initial_lr": self.initial_lr,
            "step_count": self.step_count,
            **{name: getattr(self, name) for name in self.hyperparameters},
            "param_groups": groups,
            "state": [{k: np.array(v, copy=True) for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned (for the same parameters, in the same groups and order).

        Everything is checked before anything changes: a mismatch leaves the optimizer as it was.
        """
        per_param, saved_groups = self.check_state(state)
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: _restore(v) for k, v in saved.items() if k != "params"})
        self.step_count = int(state.get("step_count", 0))
        for hyper in self.hyperparameters:
            if hyper not in self.defaults:  # a custom optimizer's own attribute
                setattr(self, hyper, _restore(state[hyper]))
        self.state = [
            {k: np.array(v, dtype=p.dtype) for k, v in entry.items()} for p, entry in zip(self.params, per_param)
        ]

    def check_state(self, state: Mapping[str, Any]) -> Tuple[List[Any], List[Dict[str, Any]]]:
        """Refuse a `state_dict` that does not fit this optimizer (type, parameters, groups, shapes), changing nothing.

        Returns the per-parameter states and the parameter groups it holds.
        """
        name = type(self).__name__
        saved_type = state.get("type", name)
        if saved_type != name:
            raise ValueError(f"cannot load the state of a {saved_type} optimizer into {name}")
        per_param = list(state["state"])
        if len(per_param) != len(self.params):
            raise ValueError(f"{name} state has {len(per_param)} {self.state_name}, expected {len(self.params)}")
        saved_groups = state.get("param_groups")
        if saved_groups is None:  # checkpoints written before parameter groups: one group, settings at the top
            top = {k: _restore(state[k]) for k in self.hyperparameters if k in self.defaults}
            saved_groups = [{**top, "lr": state["lr"], "initial_lr": state.get("initial_lr", state["lr"])}]
        sizes = [len(g["params"]) if "params" in g else len(self.params) for g in saved_groups]
        if sizes != self._sizes():
            raise ValueError(
                f"{name} state has parameter groups of {sizes} parameters, this optimizer {self._sizes()}: "
                "build the optimizer with the same groups as the run that saved it"
            )
        for param, entry in zip(self.params, per_param):
            for key, value in entry.items():
                if np.shape(value) != param.shape:
                    raise ValueError(
                        f"{name} state {key!r} of shape {np.shape(value)} does not match parameter {param.shape}"
                    )
        return per_param, saved_groups

    def _sizes(self) -> List[int]:
        return [len(g["params"]) for g in self.param_groups]

    def __repr__(self) -> str:
        settings = [f"lr={self.lr}"] + [f"{n}={getattr(self, n)}" for n in self.hyperparameters]
        text = f"{type(self).__name__}({', '.join(settings)}"
        return text + (f", groups={len(self.param_groups)})" if len(self.param_groups) > 1 else ")")


def _match_dtype(state: Dict[str, Any], param: Parameter) -> None:
    """Cast a parameter's state to its dtype after ``model.to(dtype)`` (the state must not stay float32)."""
    for key, value in state.items():
        if isinstance(value, np.ndarray) and value.dtype != param.data.dtype:
            state[key] = value.astype(param.data.dtype)


def _restore(value: Any) -> Any:
    """Hyper-parameters come back from JSON as lists: betas is a tuple."""
    return tuple(value) if isinstance(value, list) else value


def decayed(param: Parameter, weight_decay: float) -> Array:
    """The gradient with the L2 penalty added (``grad + weight_decay * w``, as torch's coupled decay)."""
    return param.grad + weight_decay * param.data if weight_decay else param.grad


def no_decay_groups(model: Any) -> List[Dict[str, Any]]:
    """Two parameter groups: the weights (matrices and kernels), and the biases and normalisation
    scales and shifts (vectors), and the learned tokens and positions of a Transformer (layers with
    ``no_weight_decay = True``: `ClassToken`, `PositionalEmbedding`), which get ``weight_decay=0``
    (the usual recipe for AdamW, ResNets and ViTs).

    Examples:
        >>> from nnlayers import AdamW, BatchNorm1D, Dense, Sequential
        >>> model = Sequential([Dense(4, 3, rng=0), BatchNorm1D(3)])
        >>> [len(g["params"]) for g in no_decay_groups(model)]
        [1, 3]
        >>> opt = AdamW(no_decay_groups(model), lr=1e-3, weight_decay=0.05)
    """
    params = model.parameters()
    # tokens and positions are not weights either (timm's no_weight_decay: cls_token, pos_embed)
    kept = {
        id(p)
        for _, layer in model.named_modules()
        if getattr(layer, "no_weight_decay", False)
        for p in layer.parameters()
    }
    decayed = [p for p in params if p.data.ndim > 1 and id(p) not in kept]
    chosen = {id(p) for p in decayed}
    return [
        {"params": decayed},
        {"params": [p for p in params if id(p) not in chosen], "weight_decay": 0.0},
    ]
