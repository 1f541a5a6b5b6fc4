"""What `fit` records and the hooks it calls: `History`, `Callback`, `EarlyStopping`, `ModelCheckpoint`.

A callback receives the running `nnlayers.training.fit.Trainer` (``trainer.model``, ``.optimizer``,
``.history``, ``.epoch``) and each epoch's metrics. Watching one metric in ``min`` or ``max``
mode is shared by `EarlyStopping` and `ModelCheckpoint` through `MonitorCallback`, as in Keras.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence

from ..utils.files import atomic_write_bytes
from ..utils.types import Array, PathLike

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Trainer


class TrainingStopped(Exception):
    """Raised inside `fit` by a callback that wants training to end; `fit` catches it."""


@dataclass
class History:
    """Per-epoch metrics of a `fit` run, as Keras' ``History``.

    Attributes:
        history: ``{"loss": [...], "accuracy": [...], "val_loss": [...], "val_accuracy": [...],
            "seconds": [...]}``, one entry per epoch (validation keys only with validation data).
        epochs: The epoch numbers, from 1.
        stop_reason: Why training ended early (early stopping, divergence), or ``None``.
        diverged: Training stopped because the loss became non-finite or exploded.
    """

    history: Dict[str, List[float]] = field(default_factory=dict)
    epochs: List[int] = field(default_factory=list)
    stop_reason: Optional[str] = None
    diverged: bool = False

    def append(self, epoch: int, logs: Mapping[str, float]) -> None:
        self.epochs.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def last(self) -> Dict[str, float]:
        """The metrics of the last epoch."""
        return {key: values[-1] for key, values in self.history.items() if values}

    def to_dict(self) -> Dict[str, Any]:
        return {
            "epochs": self.epochs,
            "history": self.history,
            "stop_reason": self.stop_reason,
            "diverged": self.diverged,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        history = {k: [float(v) for v in vs] for k, vs in data["history"].items()}
        return cls(history, list(data["epochs"]), data.get("stop_reason"), bool(data.get("diverged", False)))

    def save(self, path: PathLike) -> None:
        """Write the history as JSON (atomically)."""
        atomic_write_bytes(path, [json.dumps(self.to_dict(), indent=2).encode()])

    @classmethod
    def load(cls, path: PathLike) -> History:
        """Read a history written by `save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


class Callback:
    """Base class: override the hooks you need. ``trainer`` is the running `Trainer`."""

    def on_train_begin(self, trainer: Trainer) -> None:
        """Called once before the first epoch (also after a resume)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Dict[str, float]) -> None:
        """Called after each epoch with its metrics; raise `TrainingStopped` to end training."""

    def on_train_end(self, trainer: Trainer) -> None:
        """Called once when training ends, however it ends."""

    def state_dict(self) -> Dict[str, Any]:
        """What must be saved in a checkpoint to resume exactly (JSON values and arrays)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned."""


def mode_for(monitor: str, mode: str) -> str:
    """``"min"`` or ``"max"``: ``mode`` itself, or for ``"auto"``, ``"max"`` for accuracies."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class MonitorCallback(Callback):
    """Watch one metric and tell whether it improved, in ``min`` or ``max`` mode.

    ``monitor=None`` watches ``val_loss`` when there is validation data and ``loss`` otherwise.
    A metric that is named but not logged is an error when training begins, before any epoch.

    Args:
        monitor: A `History` key (``"val_loss"``, ``"val_accuracy"``, ``"loss"``, ...) or ``None``.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (``max`` for accuracies), applied to the metric
            actually watched.
        min_delta: Smallest change that counts as an improvement.
    """

    def __init__(self, monitor: Optional[str], mode: str = "auto", min_delta: float = 0.0) -> None:
        self.requested_monitor = monitor
        self.requested_mode = mode
        self.monitor = monitor or "val_loss"
        self.mode = mode_for(self.monitor, mode)
        self.min_delta = float(min_delta)
        self.best: Optional[float] = None

    def on_train_begin(self, trainer: Trainer) -> None:
        self.resolve_monitor(trainer.metric_names)

    def resolve_monitor(self, logged: Sequence[str]) -> None:
        """Pick the metric to watch among those ``logged``, or raise naming what is missing."""
        if self.requested_monitor is None:
            self.monitor = "val_loss" if "val_loss" in logged else "loss"
        if self.monitor not in logged:
            hint = "pass validation data to fit, or " if self.monitor.startswith("val_") else ""
            raise ValueError(
                f"{type(self).__name__}: {self.monitor} is not logged ({', '.join(logged)} are): {hint}monitor one of those"
            )
        self.mode = mode_for(self.monitor, self.requested_mode)

    def improved(self, logs: Mapping[str, float]) -> bool:
        """Whether this epoch's value beats the best so far (a first finite value always does)."""
        if self.monitor not in logs:
            self.resolve_monitor(list(logs))
        value = logs[self.monitor]
        if self.best is None:
            return math.isfinite(value)
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = state["best"]


class RestoreBest(MonitorCallback):
    """Keep the weights of the best epoch by ``monitor`` and put them back when training ends.

    What ``nnlayers train`` uses so that the saved model is the best epoch, not the last one
    (Keras' ``restore_best_weights`` without early stopping).

    Args:
        monitor: A `History` key; by default ``"val_loss"``, or ``"loss"`` without validation data.
        mode: ``"min"``, ``"max"`` or ``"auto"``.

    Attributes:
        best_epoch: The epoch whose weights are kept (0 before the first).
    """

    def __init__(self, monitor: Optional[str] = None, mode: str = "auto") -> None:
        super().__init__(monitor, mode)
        self.best_epoch = 0
        self.best_weights: Optional[Dict[str, Array]] = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Dict[str, float]) -> None:
        if self.improved(logs):
            self.best, self.best_epoch = logs[self.monitor], epoch
            self.best_weights = trainer.model.state_dict()

    def on_train_end(self, trainer: Trainer) -> None:
        if self.best_weights is not None and not trainer.history.diverged:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> Dict[str, Any]:
        state: Dict[str, Any] = {"best": self.best, "best_epoch": self.best_epoch}
        if self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], int(state["best_epoch"])
        self.best_weights = state.get("best_weights")


class EarlyStopping(RestoreBest):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras' ``EarlyStopping``).

    Args:
        monitor: A `History` key, ``"val_loss"`` by default (stopping on the training loss is
            rarely wanted: name ``"loss"`` to do it).
        patience: Epochs without improvement before stopping.
        min_delta: Smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (``max`` for accuracies).
        restore_best: At the end, put back the weights of the best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best: bool = True,
    ) -> None:
        if patience < 0:
            raise ValueError(f"patience must be >= 0, got {patience}")
        super().__init__(monitor, mode)
        self.min_delta = float(min_delta)
        self.patience = int(patience)
        self.restore_best = restore_best

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Dict[str, float]) -> None:
        if self.improved(logs):
            self.best, self.best_epoch = logs[self.monitor], epoch
            if self.restore_best:
                self.best_weights = trainer.model.state_dict()
        elif epoch - self.best_epoch >= self.patience:
            raise TrainingStopped(
                f"early stopping: {self.monitor} has not improved for {self.patience} epochs (best {self.best:.4f} at epoch {self.best_epoch})"
            )


class ModelCheckpoint(MonitorCallback):
    """Write ``last.nnl`` after every epoch and ``best.nnl`` when ``monitor`` improves.

    Both are complete checkpoints (weights, optimizer state, the shuffling RNG state, history,
    callbacks' state, best metric), loadable with `nnlayers.load` as a model and usable with
    ``fit(..., resume=path)``. Writes are atomic.

    Args:
        directory: Where the two files go (created if needed).
        monitor: A `History` key; by default ``"val_loss"``, or ``"loss"`` when there is no
            validation data.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (for the metric actually watched).
    """

    def __init__(self, directory: PathLike, monitor: Optional[str] = None, mode: str = "auto") -> None:
        super().__init__(monitor, mode)
        self.directory = Path(directory)

    @property
    def last_path(self) -> Path:
        return self.directory / "last.nnl"

    @property
    def best_path(self) -> Path:
        return self.directory / "best.nnl"

    def on_train_begin(self, trainer: Trainer) -> None:
        super().on_train_begin(trainer)
        self.directory.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Dict[str, float]) -> None:
        improved = self.improved(logs)
        if improved:
            self.best = logs[self.monitor]
        # the state written includes this callback's updated best, so a resume continues exactly
        trainer.save_checkpoint(self.last_path)
        if improved:
            trainer.save_checkpoint(self.best_path)
