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
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ..utils.checks import check_number, check_positive_int, is_int
from .optimizer import Optimizer


class LRScheduler:
    """Base class: ``last_epoch`` counts the calls to `step`; each sets every parameter group's ``"lr"``.

    A subclass implements `rate` (PyTorch's recursive form: the next rate of a group from its
    current one and its base rate) and lists its arguments in ``arguments`` so that `state_dict`
    saves them. Each group of the optimizer follows the schedule from its own base rate, as in
    PyTorch.
    """

    arguments: Sequence[str] = ()

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__} expects an optimizer (e.g. SGD(...)), got {type(optimizer).__name__}"
            )
        self.optimizer = optimizer
        #: Each group's rate when its first schedule was made (PyTorch's ``initial_lr``): where it starts from.
        #: A second schedule on the same optimizer (chained, or in a `SequentialLR`) starts there too.
        for group in optimizer.param_groups:  # as torch's setdefault: only the first schedule sets it
            if not group.get("scheduled"):
                group.update(initial_lr=float(group["lr"]), scheduled=True)
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = -1
        self.step()  # as PyTorch: the rate of epoch 0 is set when the schedule is made

    @property
    def base_lr(self) -> float:
        """The first group's base rate."""
        return self.base_lrs[0]

    def rate(self, lr: float, base: float) -> float:
        """The rate of a group for ``last_epoch``, from its current rate ``lr`` and its base rate."""
        raise NotImplementedError(f"{type(self).__name__} must implement rate(lr, base)")

    def get_lr(self) -> List[float]:
        """The rate of each group for ``last_epoch``, from the current ones."""
        return [self.rate(g["lr"], base) for g, base in zip(self.optimizer.param_groups, self.base_lrs)]

    def step(self) -> None:
        """Move to the next epoch and set its learning rates."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = float(lr)

    def restart(self) -> None:
        """Go back to epoch 0 and its rates (what `SequentialLR` does when this schedule takes over)."""
        self.last_epoch = 0
        for group, lr in zip(self.optimizer.param_groups, self.rates_at_start()):
            group["lr"] = float(lr)

    def rates_at_start(self) -> List[float]:
        """Each group's rate at epoch 0, in closed form: its base rate unless the schedule scales it."""
        return list(self.base_lrs)

    def get_last_lr(self) -> List[float]:
        """The rates set by the last `step`, one per parameter group (as PyTorch's)."""
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        """What resumes the schedule exactly: its arguments, epoch and base rates."""
        state = {name: getattr(self, name) for name in self.arguments}
        return {"type": type(self).__name__, "last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs), **state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        if state.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"cannot load the state of a {state.get('type')} schedule into {type(self).__name__}")
        groups = len(self.optimizer.param_groups)
        bases = [float(b) for b in state["base_lrs"]] if "base_lrs" in state else [float(state["base_lr"])] * groups
        if len(bases) != groups:
            raise ValueError(f"the schedule's state has {len(bases)} parameter groups, the optimizer {groups}")
        self.last_epoch, self.base_lrs = int(state["last_epoch"]), bases
        for name in self.arguments:
            value = state[name]
            setattr(self, name, list(value) if isinstance(value, (list, tuple)) else value)

    def continue_from(self, state: Mapping[str, Any]) -> None:
        """Continue a saved schedule with this one's own arguments (a resumed run given more epochs).

        The epoch and base rates are the saved ones; the arguments stay this schedule's, and each
        group's rate becomes the one this schedule sets at that epoch (replayed from the base rates), so
        a cosine over 6 epochs resumed after 2 of a cosine over 2 goes on down the 6-epoch curve.
        """
        own = {name: getattr(self, name) for name in self.arguments}
        self.load_state_dict(state)
        for name, value in own.items():
            setattr(self, name, value)
        rates = np.atleast_1d(schedule_values(self, self.last_epoch + 1)[-1])
        for group, lr in zip(self.optimizer.param_groups, rates):
            group["lr"] = float(lr)

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

    def rate(self, lr: float, base: float) -> float:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return lr
        return lr * self.gamma


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each epoch in ``milestones`` (``torch.optim.lr_scheduler.MultiStepLR``)."""

    arguments = ("milestones", "gamma")

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1) -> None:
        if not all(is_int(m) and m > 0 for m in milestones):
            raise ValueError(f"MultiStepLR milestones must be positive ints, got {milestones!r}")
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = check_number("MultiStepLR gamma", gamma, inclusive=False)
        super().__init__(optimizer)

    def rate(self, lr: float, base: float) -> float:
        return lr * self.gamma ** self.milestones.count(self.last_epoch)


class ExponentialLR(LRScheduler):
    """Multiply the rate by ``gamma`` every epoch (``torch.optim.lr_scheduler.ExponentialLR``)."""

    arguments = ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = check_number("ExponentialLR gamma", gamma, inclusive=False)
        super().__init__(optimizer)

    def rate(self, lr: float, base: float) -> float:
        return lr if self.last_epoch == 0 else lr * self.gamma


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

    def rate(self, lr: float, base: float) -> float:
        t, low = self.last_epoch, self.eta_min
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

    def rates_at_start(self) -> List[float]:
        return [base * self.start_factor for base in self.base_lrs]

    def rate(self, lr: float, base: float) -> float:
        t = self.last_epoch
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
        self.base_lrs = [float(group["lr"]) for group in optimizer.param_groups]  # where schedule_values starts

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
            for group in self.optimizer.param_groups:
                new_lr = max(group["lr"] * self.factor, self.min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def get_last_lr(self) -> List[float]:
        """The current rate of each parameter group."""
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def state_dict(self) -> Dict[str, Any]:
        state = {name: getattr(self, name) for name in self.arguments}
        counters = {k: getattr(self, k) for k in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch")}
        return {"type": "ReduceLROnPlateau", **state, **counters}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("type", "ReduceLROnPlateau") != "ReduceLROnPlateau":
            raise ValueError(f"cannot load the state of a {state.get('type')} schedule into ReduceLROnPlateau")
        for name in (*self.arguments, "best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
            setattr(self, name, state[name])

    def continue_from(self, state: Mapping[str, Any]) -> None:
        """Continue a saved schedule with this one's own arguments: its counters, and the rates the optimizer has."""
        own = {name: getattr(self, name) for name in self.arguments}
        self.load_state_dict(state)
        for name, value in own.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        return f"ReduceLROnPlateau(mode={self.mode!r}, factor={self.factor}, patience={self.patience})"


class _Rates:
    """A stand-in optimizer that holds only the groups' settings (no parameters), at the base rates: what
    `schedule_values` steps a copy of a schedule on."""

    def __init__(self, rates: Sequence[float], groups: Optional[Sequence[Mapping[str, Any]]] = None) -> None:
        settings = [{k: v for k, v in g.items() if k != "params"} for g in groups] if groups else [{}] * len(rates)
        self.param_groups = [{**g, "lr": float(rate), "initial_lr": float(rate)} for g, rate in zip(settings, rates)]


def schedule_values(
    scheduler: Union[LRScheduler, ReduceLROnPlateau], epochs: int, metrics: Optional[Sequence[float]] = None
) -> np.ndarray:
    """The rates ``scheduler`` sets over ``epochs`` epochs from its start (for a plot); nothing is changed.

    The schedule is replayed on a copy from its base rates (the optimizer's rates when the schedule
    was made), not from the optimizer's current ones, and without copying any weights.

    Args:
        scheduler: A schedule, e.g. ``CosineAnnealingLR(opt, T_max=20)``.
        epochs: How many epochs.
        metrics: For `ReduceLROnPlateau` only, the watched metric of each epoch (its rates follow them).

    Returns:
        ``(epochs,)`` rates, or ``(epochs, groups)`` for an optimizer with several parameter groups.

    Examples:
        >>> from nnlayers import SGD, Parameter, StepLR
        >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
        >>> schedule = StepLR(opt, step_size=2, gamma=0.5)
        >>> schedule_values(schedule, 5).tolist()
        [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    import copy

    epochs = check_positive_int("epochs", epochs)
    stand_in = _Rates(scheduler.base_lrs, scheduler.optimizer.param_groups)
    if hasattr(scheduler, "schedulers"):  # a SequentialLR: its own replay over copies of its schedules
        chained = scheduler.replay(stand_in)  # type: ignore[union-attr]
        rates = [chained.get_last_lr()]
        for _ in range(epochs - 1):
            chained.step()
            rates.append(chained.get_last_lr())
        values = np.array(rates)
        return values[:, 0] if values.shape[1] == 1 else values
    probe = copy.copy(scheduler)
    probe.optimizer = stand_in  # type: ignore[assignment]
    if isinstance(probe, ReduceLROnPlateau):
        if metrics is None or len(metrics) < epochs:
            raise ValueError(
                "ReduceLROnPlateau's rates follow the watched metric: pass metrics= with one value per epoch "
                f"({epochs}), e.g. history.history['val_loss']"
            )
        probe.best = math.inf if probe.mode == "min" else -math.inf
        probe.num_bad_epochs = probe.cooldown_counter = probe.last_epoch = 0
        rates = [probe.get_last_lr()]
        for value in metrics[: epochs - 1]:  # the rate of epoch e is set after the metric of epoch e - 1
            probe.step(value)
            rates.append(probe.get_last_lr())
    else:
        probe.last_epoch = -1
        rates = []
        for _ in range(epochs):
            probe.step()
            rates.append(probe.get_last_lr())
    values = np.array(rates)
    return values[:, 0] if values.shape[1] == 1 else values
