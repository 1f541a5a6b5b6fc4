"""What a training run saves and restores: the checkpoint half of `nnlayers.training.fit.Trainer`.

A checkpoint holds the weights and everything else a bit-identical resume needs: the epoch, the
shuffling and augmentation generators, the generators of random layers (Dropout), the optimizer's
buffers, the schedule, the history and the callbacks' state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from ..nn.module import Layer
from ..utils.types import PathLike
from .callbacks import Callback, History

if TYPE_CHECKING:  # pragma: no cover
    from ..nn.losses import Loss
    from ..optim.optimizer import Optimizer
    from .distributed import Distributed


class Checkpointing:
    """Saving and restoring a run's state; `Trainer` sets the attributes declared here."""

    model: Layer
    loss_fn: Loss
    optimizer: Optimizer
    scheduler: Any
    callbacks: List[Callback]
    distributed: Optional[Distributed]
    history: History
    metadata: Dict[str, Any]
    rng: np.random.Generator
    augment_rng: np.random.Generator
    seed: int
    epoch: int

    def training_state(self) -> Dict[str, Any]:
        """Everything beyond the weights that a bit-identical resume needs."""
        return {
            "epoch": self.epoch,
            "seed": self.seed,
            "rng_state": self.rng.bit_generator.state,
            "augment_rng_state": self.augment_rng.bit_generator.state,
            "layer_rng_states": {name: _rng_state(rng) for name, rng in self._layer_generators()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "loss": {"type": type(self.loss_fn).__name__, "reduction": self.loss_fn.reduction},
            "history": self.history.to_dict(),
            "callbacks": [cb.state_dict() for cb in self.callbacks],
        }

    def check_training_state(self, state: Mapping[str, Any]) -> None:
        """Refuse a checkpoint whose run does not match this one, before anything is changed."""
        saved = state["callbacks"]
        if len(saved) != len(self.callbacks):
            raise ValueError(
                f"the checkpoint holds the state of {len(saved)} callbacks, but {len(self.callbacks)} were given"
            )
        saved_schedule = state.get("scheduler")
        if (saved_schedule is None) != (self.scheduler is None):
            raise ValueError(
                "the checkpoint was written with a learning-rate schedule and this run has none, or the reverse"
            )
        optimizer_type = state["optimizer"].get("type", "SGD")
        if optimizer_type != type(self.optimizer).__name__:
            raise ValueError(
                f"the checkpoint was written by a {optimizer_type} optimizer, this run uses {type(self.optimizer).__name__}"
            )

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        self.check_training_state(state)
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])
        self.rng.bit_generator.state = state["rng_state"]
        if "augment_rng_state" in state:
            self.augment_rng.bit_generator.state = state["augment_rng_state"]
        saved_rngs = state.get("layer_rng_states", {})
        for name, rng in self._layer_generators():
            if name in saved_rngs:
                _set_rng_state(rng, saved_rngs[name])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.history = History.from_dict(state["history"])
        for callback, cb_state in zip(self.callbacks, state["callbacks"]):
            callback.load_state_dict(cb_state)

    def _layer_generators(self) -> Iterator[Tuple[str, Any]]:
        """The generators of layers that draw random numbers in training (Dropout): they resume with the run."""
        for name, layer in self.model.named_modules():
            rng = getattr(layer, "rng", None)
            if isinstance(rng, (np.random.Generator, np.random.RandomState)):
                yield name, rng

    def save_checkpoint(self, path: PathLike) -> None:
        """Write the model, optimizer, schedule, RNGs, history and callbacks to ``path`` (atomically).

        With several processes only process 0 writes.
        """
        from ..saving.serialize import save

        if self.distributed is not None and not self.distributed.is_root:
            return
        save(
            self.model,
            path,
            training=self.training_state(),
            classes=self.metadata.get("classes"),
            preprocessing=self.metadata.get("preprocessing"),
            metadata=self.metadata.get("metadata"),
        )

    def resume(self, path: PathLike) -> None:
        """Load a checkpoint written by `save_checkpoint` into this trainer's objects.

        The run's state is checked against this trainer's callbacks and optimizer first, so a
        mismatch leaves the model's weights untouched.
        """
        from ..saving.serialize import read_checkpoint

        state_dict, training = read_checkpoint(path)
        if training is None:
            raise ValueError(
                f"{path} is a model file without training state; resume needs a checkpoint (last.nnl or best.nnl)"
            )
        self.check_training_state(training)
        self.model.load_state_dict(state_dict)
        self.load_training_state(training)


def _rng_state(rng: Any) -> Any:
    return rng.bit_generator.state if isinstance(rng, np.random.Generator) else list(rng.get_state())


def _set_rng_state(rng: Any, state: Any) -> None:
    if isinstance(rng, np.random.Generator):
        rng.bit_generator.state = state
    else:
        rng.set_state(tuple(state))
