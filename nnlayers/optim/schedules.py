"""Learning-rate schedules, with PyTorch's names, arguments and lr sequences.

A schedule changes ``optimizer.lr``. Call ``scheduler.step()`` once per epoch (after the
optimizer's steps), as in PyTorch, or give it to ``fit(..., scheduler=...)``, which does that and
saves the schedule in checkpoints. `ReduceLROnPlateau` takes the watched metric:
``scheduler.step(val_loss)``.

Examples:
    >>> from nnlayers import SGD, Parameter
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> scheduler = StepLR(opt, step_size=2, gamma=0.5)
    >>> lrs = []
    >>> for epoch in range(6):
    ...     lrs.append(opt.lr)  # train one epoch with this rate
    ...     scheduler.step()
    >>> lrs
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from ..utils.checks import check_number, check_positive_int, is_int
from .optimizer import Optimizer


class LRScheduler:
    """Base class: ``last_epoch`` counts the calls to `step`; each sets ``optimizer.lr`` to `get_lr`.

    A subclass implements `get_lr` (PyTorch's recursive form, from the current rate) and lists its
    arguments in ``arguments`` so that `state_dict` saves them.
    """

    arguments: Sequence[str] = ()

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__} expects an optimizer (e.g. SGD(...)), got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        self.base_lr = optimizer.lr  # PyTorch's initial_lr: the rate when the schedule is made
        self.last_epoch = -1
        self.step()  # as PyTorch: the rate of epoch 0 is set when the schedule is made

    def get_lr(self) -> float:
        """The rate for ``last_epoch``, from the current one."""
        raise NotImplementedError(f"{type(self).__name__} must implement get_lr()")

    def step(self) -> None:
        """Move to the next epoch and set its learning rate."""
        self.last_epoch += 1
        self.optimizer.lr = float(self.get_lr())

    def get_last_lr(self) -> List[float]:
        """The rate set by the last `step` (a list, as PyTorch's one entry per parameter group)."""
        return [self.optimizer.lr]

    def state_dict(self) -> Dict[str, Any]:
        """What resumes the schedule exactly: its arguments, epoch and base rate."""
        state = {name: getattr(self, name) for name in self.arguments}
        return {"type": type(self).__name__, "last_epoch": self.last_epoch, "base_lr": self.base_lr, **state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        if state.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"cannot load the state of a {state.get('type')} schedule into {type(self).__name__}")
        self.last_epoch, self.base_lr = int(state["last_epoch"]), float(state["base_lr"])
        for name in self.arguments:
            value = state[name]
            setattr(self, name, list(value) if isinstance(value, (list, tuple)) else value)

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.arguments)
        return f"{type(self).__name__}({args})"


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs (``torch.optim.lr_scheduler.StepLR``)."""

    arguments = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = check_positive_int("StepLR step_size", step_size)
        self.gamma = check_number("StepLR gamma", gamma, inclusive=False)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each epoch in ``milestones`` (``torch.optim.lr_scheduler.MultiStepLR``)."""

    arguments = ("milestones", "gamma")

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1) -> None:
        if not all(is_int(m) and m > 0 for m in milestones):
            raise ValueError(f"MultiStepLR milestones must be positive ints, got {milestones!r}")
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = check_number("MultiStepLR gamma", gamma, inclusive=False)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        return self.optimizer.lr * self.gamma ** self.milestones.count(self.last_epoch)


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch (``torch.optim.lr_scheduler.ExponentialLR``)."""

    arguments = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = check_number("ExponentialLR gamma", gamma, inclusive=False)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        return self.optimizer.lr if self.last_epoch == 0 else self.optimizer.lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    """Cosine from the base rate down to ``eta_min`` over ``T_max`` epochs (``torch.optim.lr_scheduler.CosineAnnealingLR``).

    ``lr = eta_min + (base - eta_min) (1 + cos(pi epoch / T_max)) / 2``, computed recursively from
    the current rate as PyTorch does (so that the numbers agree to the last digits); past
    ``T_max`` the cosine goes back up.
    """

    arguments = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:  # noqa: N803 - torch's name
        self.T_max = check_positive_int("CosineAnnealingLR T_max", T_max)
        self.eta_min = check_number("CosineAnnealingLR eta_min", eta_min)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        t, lr, base, low = self.last_epoch, self.optimizer.lr, self.base_lr, self.eta_min
        if t == 0:
            return lr
        if (t - 1 - self.T_max) % (2 * self.T_max) == 0:
            return lr + (base - low) * (1 - math.cos(math.pi / self.T_max)) / 2
        return (1 + math.cos(math.pi * t / self.T_max)) / (1 + math.cos(math.pi * (t - 1) / self.T_max)) * (
            lr - low
        ) + low


class LinearLR(LRScheduler):
    """A linear warm-up: the rate goes from ``start_factor * base`` to ``end_factor * base`` over ``total_iters`` epochs.

    As ``torch.optim.lr_scheduler.LinearLR``; afterwards the rate stays at ``end_factor * base``.
    """

    arguments = ("start_factor", "end_factor", "total_iters")

    def __init__(
        self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5
    ) -> None:
        self.start_factor = check_number("LinearLR start_factor", start_factor, inclusive=False, high=1.0)
        self.end_factor = check_number("LinearLR end_factor", end_factor, high=1.0)
        self.total_iters = check_positive_int("LinearLR total_iters", total_iters)
        super().__init__(optimizer)

    def get_lr(self) -> float:
        t, lr = self.last_epoch, self.optimizer.lr
        if t == 0:
            return lr * self.start_factor
        if t > self.total_iters:
            return lr
        change = (self.end_factor - self.start_factor) / (
            self.total_iters * self.start_factor + (t - 1) * (self.end_factor - self.start_factor)
        )
        return lr * (1.0 + change)


class ReduceLROnPlateau:
    """Divide the rate when a metric stops improving (``torch.optim.lr_scheduler.ReduceLROnPlateau``).

    Call ``step(value)`` once per epoch with the watched metric (``fit`` passes ``val_loss``, or
    ``loss`` without validation data). After ``patience`` epochs without an improvement larger than
    ``threshold`` the rate is multiplied by ``factor`` (not below ``min_lr``), then ``cooldown``
    epochs pass before counting again.

    Args:
        optimizer: The optimizer whose ``lr`` changes.
        mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
        factor: Multiplier of the rate, in (0, 1).
        patience: Epochs without improvement tolerated.
        threshold: Smallest change that counts as an improvement.
        threshold_mode: ``"rel"`` (relative to the best) or ``"abs"``.
        cooldown: Epochs to wait after a reduction.
        min_lr: The rate never goes below this.
        eps: A reduction smaller than this is skipped.
    """

    arguments = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr", "eps")

    def __init__(
        self,
        optimizer: Optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr: float = 0.0,
        eps: float = 1e-8,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ReduceLROnPlateau expects an optimizer (e.g. SGD(...)), got {type(optimizer).__name__}")
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError(
                f"ReduceLROnPlateau mode must be 'min' or 'max' and threshold_mode 'rel' or 'abs', got {mode!r}, {threshold_mode!r}"
            )
        if not 0 < factor < 1:
            raise ValueError(f"ReduceLROnPlateau factor must be in (0, 1), got {factor!r}")
        self.optimizer = optimizer
        self.mode, self.threshold_mode = mode, threshold_mode
        self.factor = float(factor)
        self.patience = int(patience)
        self.threshold, self.cooldown = float(threshold), int(cooldown)
        self.min_lr, self.eps = float(min_lr), float(eps)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0

    def _better(self, value: float) -> bool:
        if self.mode == "min":
            bound = self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold
            return value < bound
        bound = self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold
        return value > bound

    def step(self, metrics: float) -> None:
        """Record this epoch's value of the watched metric and reduce the rate if it has stalled."""
        value = float(metrics)
        self.last_epoch += 1
        if self._better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new_lr = max(self.optimizer.lr * self.factor, self.min_lr)
            if self.optimizer.lr - new_lr > self.eps:
                self.optimizer.lr = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def get_last_lr(self) -> List[float]:
        return [self.optimizer.lr]

    def state_dict(self) -> Dict[str, Any]:
        state = {name: getattr(self, name) for name in self.arguments}
        counters = {k: getattr(self, k) for k in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch")}
        return {"type": "ReduceLROnPlateau", **state, **counters}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("type", "ReduceLROnPlateau") != "ReduceLROnPlateau":
            raise ValueError(f"cannot load the state of a {state.get('type')} schedule into ReduceLROnPlateau")
        for name in (*self.arguments, "best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
            setattr(self, name, state[name])

    def __repr__(self) -> str:
        return f"ReduceLROnPlateau(mode={self.mode!r}, factor={self.factor}, patience={self.patience})"


def schedule_values(scheduler: LRScheduler, epochs: int) -> np.ndarray:
    """The rates a fresh copy of ``scheduler`` would set over ``epochs`` epochs (for a plot); the original is unchanged."""
    import copy

    probe = copy.deepcopy(scheduler)
    probe.optimizer.lr = probe.optimizer.initial_lr
    probe.last_epoch = -1
    values = []
    for _ in range(epochs):
        probe.step()
        values.append(probe.optimizer.lr)
    return np.array(values)
