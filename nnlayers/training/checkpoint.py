"""What a training run saves and restores: a `nnlayers.training.fit.Trainer`'s checkpoints.

A checkpoint holds the weights and everything else a bit-identical resume needs: the epoch, the
shuffling and augmentation generators, the generators of random layers (Dropout), the optimizer's
buffers, the schedule, the history and the callbacks' state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Mapping

import numpy as np

from ..nn.structure import random_generators
from ..saving.serialize import read_checkpoint, save
from ..utils.types import PathLike
from .callbacks import History

if TYPE_CHECKING:  # pragma: no cover
    from .fit import Trainer


def training_state(trainer: Trainer) -> Dict[str, Any]:
    """Everything beyond the weights that a bit-identical resume needs."""
    return {
        "epoch": trainer.epoch,
        "seed": trainer.seed,
        "rng_state": trainer.rng.bit_generator.state,
        "augment_rng_state": trainer.augment_rng.bit_generator.state,
        "layer_rng_states": {name: _rng_state(rng) for name, rng in random_generators(trainer.model)},
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "loss": {"type": type(trainer.loss_fn).__name__, "reduction": trainer.loss_fn.reduction},
        "history": trainer.history.to_dict(),
        "callbacks": [cb.state_dict() for cb in trainer.callbacks],
    }


def check_training_state(trainer: Trainer, state: Mapping[str, Any]) -> None:
    """Refuse a checkpoint whose run does not match the trainer's, before anything is changed."""
    saved = state["callbacks"]
    if len(saved) != len(trainer.callbacks):
        raise ValueError(
            f"the checkpoint holds the state of {len(saved)} callbacks, but {len(trainer.callbacks)} were given"
        )
    saved_schedule = state.get("scheduler")
    if (saved_schedule is None) != (trainer.scheduler is None):
        raise ValueError(
            "the checkpoint was written with a learning-rate schedule and this run has none, or the reverse"
        )
    optimizer_type = state["optimizer"].get("type", "SGD")
    if optimizer_type != type(trainer.optimizer).__name__:
        raise ValueError(
            f"the checkpoint was written by a {optimizer_type} optimizer, this run uses {type(trainer.optimizer).__name__}"
        )
    trainer.optimizer.check_state(state["optimizer"])  # shapes and groups, before any weight is loaded
    kind = type(trainer.scheduler).__name__
    if saved_schedule is not None and saved_schedule.get("type", kind) != kind:
        raise ValueError(
            f"the checkpoint was written with a {saved_schedule.get('type')} schedule, this run uses {kind}"
        )


def same_schedule(scheduler: Any, saved: Mapping[str, Any]) -> bool:
    """Whether a checkpoint's schedule has the arguments of ``scheduler`` (a cosine over as many epochs)."""
    names = [name for name in getattr(scheduler, "arguments", ()) if name in saved]
    return all(_plain(getattr(scheduler, name)) == _plain(saved[name]) for name in names)


def _plain(value: Any) -> Any:
    """A schedule argument as JSON keeps it (tuples as lists, numpy numbers as Python ones)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def load_training_state(trainer: Trainer, state: Mapping[str, Any]) -> None:
    """Put the checkpoint's run state (epoch, generators, optimizer, schedule, history, callbacks) into ``trainer``."""
    check_training_state(trainer, state)
    trainer.epoch = int(state["epoch"])
    trainer.seed = int(state["seed"])
    trainer.rng.bit_generator.state = state["rng_state"]
    if "augment_rng_state" in state:
        trainer.augment_rng.bit_generator.state = state["augment_rng_state"]
    saved_rngs = state.get("layer_rng_states", {})
    for name, rng in random_generators(trainer.model):
        if name in saved_rngs:
            _set_rng_state(rng, saved_rngs[name])
    trainer.optimizer.load_state_dict(state["optimizer"])
    if trainer.scheduler is not None and same_schedule(trainer.scheduler, state["scheduler"]):
        trainer.scheduler.load_state_dict(state["scheduler"])  # exactly where the run was
    elif trainer.scheduler is not None:  # e.g. a cosine over more epochs: its rates from the checkpoint's epoch on
        trainer.scheduler.continue_from(state["scheduler"])
    trainer.history = History.from_dict(state["history"])
    for callback, cb_state in zip(trainer.callbacks, state["callbacks"]):
        callback.load_state_dict(cb_state)


def save_checkpoint(trainer: Trainer, path: PathLike) -> None:
    """Write the model, optimizer, schedule, RNGs, history and callbacks to ``path`` (atomically).

    With several processes only process 0 writes.
    """
    if trainer.distributed is not None and not trainer.distributed.is_root:
        return
    save(
        trainer.model,
        path,
        training=training_state(trainer),
        classes=trainer.metadata.get("classes"),
        preprocessing=trainer.metadata.get("preprocessing"),
        metadata=trainer.metadata.get("metadata"),
    )


def resume(trainer: Trainer, path: PathLike) -> None:
    """Load a checkpoint written by `save_checkpoint` into the trainer's objects.

    The run's state is checked against the trainer's callbacks and optimizer first, so a
    mismatch leaves the model's weights untouched.
    """
    state_dict, training = read_checkpoint(path)
    if training is None:
        raise ValueError(
            f"{path} is a model file without training state; resume needs a checkpoint (last.nnl or best.nnl)"
        )
    check_training_state(trainer, training)  # the optimizer's state too: a mismatch changes no weight
    trainer.model.load_state_dict(state_dict)
    load_training_state(trainer, training)


def _rng_state(rng: Any) -> Any:
    return rng.bit_generator.state if isinstance(rng, np.random.Generator) else list(rng.get_state())


def _set_rng_state(rng: Any, state: Any) -> None:
    if isinstance(rng, np.random.Generator):
        rng.bit_generator.state = state
    else:
        rng.set_state(tuple(state))
