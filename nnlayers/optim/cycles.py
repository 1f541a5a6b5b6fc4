"""Schedules users chain and cycle: `LambdaLR`, `CosineAnnealingWarmRestarts`, `OneCycleLR`, `SequentialLR`.

PyTorch's names, arguments and rates. `fit` steps a schedule once per epoch, so there a
`OneCycleLR` takes ``total_steps=epochs`` (the step after the last epoch holds the final rate, where
PyTorch would raise); a loop of your own may step it once per batch, as PyTorch's examples do.

Examples:
    >>> from nnlayers import SGD, Parameter, LinearLR, CosineAnnealingLR
    >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
    >>> warm_then_cosine = SequentialLR(opt, [LinearLR(opt, 0.25, total_iters=2), CosineAnnealingLR(opt, 4)], [2])
    >>> from nnlayers.optim.schedules import schedule_values
    >>> schedule_values(warm_then_cosine, 6).round(3).tolist()
    [0.25, 0.625, 1.0, 0.854, 0.5, 0.146]
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Callable, Dict, List, Mapping, Sequence, Union

import numpy as np  # noqa: F401 - the examples use it

from ..utils.checks import check_number, check_positive_int, is_int
from .optimizer import Optimizer
from .schedules import LRScheduler


class LambdaLR(LRScheduler):
    """``lr = base * lr_lambda(epoch)`` (``torch.optim.lr_scheduler.LambdaLR``).

    Args:
        optimizer: The optimizer.
        lr_lambda: A function of the epoch, or one per parameter group. (It is not saved in
            checkpoints: build the schedule with the same function to resume.)

    Examples:
        >>> from nnlayers import SGD, Parameter
        >>> opt = SGD([Parameter(np.zeros(1))], lr=0.1)
        >>> schedule = LambdaLR(opt, lambda epoch: 0.5 ** epoch)
        >>> schedule.step(); opt.lr
        0.05
    """

    def __init__(
        self, optimizer: Optimizer, lr_lambda: Union[Callable[[int], float], Sequence[Callable[[int], float]]]
    ) -> None:
        groups = len(optimizer.param_groups)
        lambdas: List[Callable[[int], float]] = (
            list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * groups  # type: ignore[list-item]
        )
        if len(lambdas) != groups or not all(callable(f) for f in lambdas):
            raise ValueError(f"LambdaLR expects a function, or one per parameter group ({groups}), got {lr_lambda!r}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer)

    def get_lr(self) -> List[float]:
        return [base * float(f(self.last_epoch)) for f, base in zip(self.lr_lambdas, self.base_lrs)]

    def rate(self, lr: float, base: float) -> float:
        return base * float(self.lr_lambdas[0](self.last_epoch))

    def rates_at_start(self) -> List[float]:
        return self.get_lr()

    def __repr__(self) -> str:
        return "LambdaLR()"


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine from the base rate to ``eta_min`` over ``T_0`` epochs, then again from the base rate, each
    cycle ``T_mult`` times longer (SGDR, Loshchilov & Hutter, 2017; ``torch.optim.lr_scheduler``'s).

    Args:
        optimizer: The optimizer.
        T_0: Epochs of the first cycle.
        T_mult: How much longer each next cycle is (an int >= 1).
        eta_min: The lowest rate.

    Examples:
        >>> from nnlayers import SGD, Parameter
        >>> from nnlayers.optim.schedules import schedule_values
        >>> opt = SGD([Parameter(np.zeros(1))], lr=1.0)
        >>> schedule_values(CosineAnnealingWarmRestarts(opt, T_0=2), 5).round(3).tolist()
        [1.0, 0.5, 1.0, 0.5, 1.0]
    """

    arguments = ("T_0", "T_mult", "eta_min")

    def __init__(self, optimizer: Optimizer, T_0: int, T_mult: int = 1, eta_min: float = 0.0) -> None:  # noqa: N803
        self.T_0 = check_positive_int("CosineAnnealingWarmRestarts T_0", T_0)
        self.T_mult = check_positive_int("CosineAnnealingWarmRestarts T_mult", T_mult)
        self.eta_min = check_number("CosineAnnealingWarmRestarts eta_min", eta_min)
        super().__init__(optimizer)

    def _position(self) -> tuple:
        """``(T_cur, T_i)``: epochs into the current cycle, and its length."""
        epoch, length = self.last_epoch, self.T_0
        if self.T_mult == 1:
            return epoch % length, length
        while epoch >= length:
            epoch, length = epoch - length, length * self.T_mult
        return epoch, length

    def rate(self, lr: float, base: float) -> float:
        t_cur, t_i = self._position()
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin, 2018; ``torch.optim.lr_scheduler.OneCycleLR``).

    The rate climbs from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    ``total_steps``, then anneals to ``max_lr / div_factor / final_div_factor``; with
    ``cycle_momentum`` the momentum (SGD's ``momentum``, Adam's first beta) moves the other way,
    between ``max_momentum`` and ``base_momentum``.

    Args:
        optimizer: The optimizer.
        max_lr: The peak rate (or one per parameter group).
        total_steps: How many times `step` will be called (``fit``: the epochs).
        pct_start: The part of the cycle spent climbing.
        anneal_strategy: ``"cos"`` or ``"linear"``.
        cycle_momentum: Move the momentum inversely to the rate.
        base_momentum, max_momentum: The momentum's range.
        div_factor: ``max_lr / div_factor`` is the starting rate.
        final_div_factor: The final rate is the starting one divided by this.
        three_phase: Climb, come back down symmetrically, then anneal to the final rate.
    """

    arguments = ("total_steps", "pct_start", "anneal_strategy", "div_factor", "final_div_factor", "three_phase")

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: Union[float, Sequence[float]],
        total_steps: int,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        groups = optimizer.param_groups
        peaks = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr] * len(groups)
        if len(peaks) != len(groups):
            raise ValueError(f"OneCycleLR max_lr has {len(peaks)} values for {len(groups)} parameter groups")
        self.total_steps = check_positive_int("OneCycleLR total_steps", total_steps)
        self.pct_start = check_number("OneCycleLR pct_start", pct_start, high=1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy, self.three_phase = anneal_strategy, bool(three_phase)
        self.div_factor = check_number("OneCycleLR div_factor", div_factor, inclusive=False)
        self.final_div_factor = check_number("OneCycleLR final_div_factor", final_div_factor, inclusive=False)
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum and not all("momentum" in g or "betas" in g for g in groups):
            raise ValueError("OneCycleLR cycle_momentum needs an optimizer with momentum (SGD) or betas (Adam)")
        for group, peak in zip(groups, peaks):
            peak = check_number("OneCycleLR max_lr", peak, inclusive=False)
            start = peak / self.div_factor  # (torch sets initial_lr itself, over any earlier schedule's)
            group.update(lr=start, initial_lr=start, scheduled=True, max_lr=peak, min_lr=start / self.final_div_factor)
            if self.cycle_momentum:
                group.update(base_momentum=float(base_momentum), max_momentum=float(max_momentum))
        end = float(self.pct_start * self.total_steps) - 1
        if self.three_phase:
            self._phases = [(end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                            (2 * float(self.pct_start * self.total_steps) - 2, "max_lr", "initial_lr",
                             "base_momentum", "max_momentum"),
                            (self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]  # fmt: skip
        else:
            self._phases = [(end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                            (self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]  # fmt: skip
        super().__init__(optimizer)

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _at(self, group: Mapping[str, Any], step: int) -> tuple:
        """The rate and momentum of ``group`` at ``step``."""
        start = 0.0
        for i, (end, lr_from, lr_to, m_from, m_to) in enumerate(self._phases):
            if step <= end or i == len(self._phases) - 1:
                pct = (step - start) / (end - start)
                momentum = self._anneal(group[m_from], group[m_to], pct) if self.cycle_momentum else None
                return self._anneal(group[lr_from], group[lr_to], pct), momentum
            start = end
        raise AssertionError("unreachable")

    def get_lr(self) -> List[float]:
        # one step past the end holds the final rate: fit steps the schedule after its last epoch too
        if self.last_epoch > self.total_steps:
            raise ValueError(
                f"OneCycleLR stepped {self.last_epoch + 1} times, more than total_steps={self.total_steps}"
            )
        rates = []
        for group in self.optimizer.param_groups:
            lr, momentum = self._at(group, min(self.last_epoch, self.total_steps - 1))
            if momentum is not None:
                if "betas" in group:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
            rates.append(lr)
        return rates

    def rate(self, lr: float, base: float) -> float:  # (get_lr handles every group at once)
        raise NotImplementedError

    def rates_at_start(self) -> List[float]:
        return self.get_lr()

    def continue_from(self, state: Mapping[str, Any]) -> None:
        raise ValueError("a OneCycleLR cannot be given more steps when resuming: its cycle is fixed by total_steps")


class SequentialLR:
    """One schedule after another, switching at the ``milestones`` epochs (``torch.optim.lr_scheduler.SequentialLR``):
    a linear warm-up, then a cosine. At each milestone the next schedule starts from its beginning.

    Args:
        optimizer: The optimizer all the schedules were built on.
        schedulers: The schedules, in order.
        milestones: The epochs at which the next one takes over (one fewer than the schedules).
    """

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int]) -> None:
        if not schedulers or any(not isinstance(s, LRScheduler) or s.optimizer is not optimizer for s in schedulers):
            raise ValueError("SequentialLR takes schedules (not ReduceLROnPlateau) built on this optimizer")
        if len(milestones) != len(schedulers) - 1 or not all(is_int(m) and m > 0 for m in milestones):
            raise ValueError(f"SequentialLR needs {len(schedulers) - 1} positive milestones, got {list(milestones)!r}")
        self.optimizer, self.schedulers, self.milestones = optimizer, list(schedulers), [int(m) for m in milestones]
        for group in optimizer.param_groups:  # as torch: back to the start, undo each schedule's first step
            group["lr"] = group["initial_lr"]
        for schedule in self.schedulers:
            schedule.last_epoch -= 1
        self.schedulers[0].step()
        self.last_epoch = 0

    @property
    def base_lrs(self) -> List[float]:
        return self.schedulers[0].base_lrs

    def step(self) -> None:
        self.last_epoch += 1
        index = bisect.bisect_right(self.milestones, self.last_epoch)
        schedule = self.schedulers[index]
        if index > 0 and self.milestones[index - 1] == self.last_epoch:
            schedule.restart()  # torch's step(0): its epoch-0 rate, in closed form
        else:
            schedule.step()

    def get_last_lr(self) -> List[float]:
        return [float(group["lr"]) for group in self.optimizer.param_groups]

    def replay(self, stand_in: Any) -> SequentialLR:
        """A copy that starts again on ``stand_in`` (an optimizer of rates only), for `schedule_values`."""
        import copy

        copies = []
        for schedule in self.schedulers:
            probe = copy.copy(schedule)
            probe.optimizer, probe.last_epoch = stand_in, 0  # as if just built on it
            copies.append(probe)
        return SequentialLR(stand_in, copies, self.milestones)

    def state_dict(self) -> Dict[str, Any]:
        return {
            "type": "SequentialLR",
            "last_epoch": self.last_epoch,
            "milestones": list(self.milestones),
            "schedulers": [s.state_dict() for s in self.schedulers],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        saved = state["schedulers"]
        if len(saved) != len(self.schedulers):
            raise ValueError(f"the SequentialLR state holds {len(saved)} schedules, this one {len(self.schedulers)}")
        for schedule, entry in zip(self.schedulers, saved):
            schedule.load_state_dict(entry)
        self.last_epoch, self.milestones = int(state["last_epoch"]), [int(m) for m in state["milestones"]]

    def continue_from(self, state: Mapping[str, Any]) -> None:
        raise ValueError("a SequentialLR with other milestones or schedules cannot take over a checkpoint's")

    def __repr__(self) -> str:
        return f"SequentialLR({self.schedulers!r}, milestones={self.milestones})"
