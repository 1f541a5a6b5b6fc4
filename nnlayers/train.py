"""Training, evaluation and prediction: `fit`, `evaluate`, `predict`, `predict_proba`, `History`
and the callbacks `EarlyStopping` and `ModelCheckpoint`.

`fit` is the seed's "connect all of them into a model and train" as one call, like Keras'
``model.fit``: mini-batches, a progress bar or one line per epoch, validation, callbacks, a
guard against non-finite losses, and checkpoints that resume bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .container import Sequential
from .data import ImageDataset, as_inputs, load_image, split_indices
from .layers import Sigmoid, sigmoid
from .losses import BCELoss, BCEWithLogitsLoss, Loss
from .module import Array, Layer
from .optim import SGD

PathLike = Union[str, "os.PathLike[str]"]
#: What `fit` and `evaluate` take as data: a dataset, or ``(x, y)`` with ``x`` uint8 images
#: ``(N, H, W, 3)`` (scaled by 1/255 batch by batch) or float features ``(N, D)``, ``y`` 0/1 labels.
Data = Union[ImageDataset, Tuple[np.ndarray, np.ndarray]]


#: An epoch whose mean training loss is above this (10x the binary cross-entropy of guessing
#: 50/50) has diverged: the model is confidently wrong on most examples, as after too large a
#: learning rate, where the clamped loss stays finite but training is lost.
DIVERGED_LOSS = 10 * math.log(2)


class TrainingStopped(Exception):
    """Raised inside `fit` by a callback that wants training to end; `fit` catches it."""


# --- data plumbing ------------------------------------------------------------------------------


@dataclass
class _Split:
    """Inputs, labels and the indices of the examples that belong to this split (no copies)."""

    x: np.ndarray
    y: np.ndarray
    indices: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    def batches(
        self, batch_size: int, dtype: np.dtype, rng: Optional[np.random.Generator]
    ) -> Iterator[Tuple[Array, Array]]:
        """Batches in order (or shuffled by ``rng``); one input array is reused batch after batch."""
        order = self.indices if rng is None else rng.permutation(self.indices)
        # one kept input buffer: a fresh multi-megabyte array every batch costs page faults
        inputs = np.empty((min(batch_size, len(order)), int(np.prod(self.x.shape[1:]))), dtype)
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            yield as_inputs(self.x[chosen], dtype, inputs), self.y[chosen].astype(dtype).reshape(-1, 1)


def _unpack(data: Data, name: str) -> Tuple[np.ndarray, np.ndarray]:
    if isinstance(data, ImageDataset):
        return data.images, data.labels
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = np.asarray(data[0]), np.asarray(data[1])
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        if y.ndim != 1 or len(x) != len(y):
            raise ValueError(
                f"{name}: expected x of shape (N, ...) and labels of shape (N,) or (N, 1), got {x.shape} and {y.shape}"
            )
        if len(x) == 0:
            raise ValueError(f"{name} is empty")
        bad = ~np.isin(y, (0, 1))
        if bad.any():
            raise ValueError(f"{name}: labels must be 0 or 1, got {np.unique(y[bad])[:5].tolist()}")
        return x, y
    raise TypeError(f"{name} must be an ImageDataset or a tuple (x, y), got {type(data).__name__}")


def _splits(train_data: Data, validation: Union[None, float, Data], seed: int) -> Tuple[_Split, Optional[_Split]]:
    x, y = _unpack(train_data, "train_data")
    if validation is None:
        return _Split(x, y, np.arange(len(y))), None
    if isinstance(validation, float):
        train_idx, val_idx = split_indices(y, validation, seed)
        return _Split(x, y, train_idx), _Split(x, y, val_idx)
    vx, vy = _unpack(validation, "validation")
    return _Split(x, y, np.arange(len(y))), _Split(vx, vy, np.arange(len(vy)))


def _outputs_probabilities(model: Layer) -> bool:
    """A model ending in `Sigmoid` gives probabilities; otherwise its outputs are logits."""
    last = model[len(model) - 1] if isinstance(model, Sequential) and len(model) else model
    return isinstance(last, Sigmoid)


# --- history ------------------------------------------------------------------------------------


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
        """Write the history as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: PathLike) -> History:
        """Read a history written by `save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


# --- callbacks ----------------------------------------------------------------------------------


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


def _improved(value: float, best: Optional[float], mode: str, min_delta: float = 0.0) -> bool:
    if best is None:
        return math.isfinite(value)
    return value < best - min_delta if mode == "min" else value > best + min_delta


def _mode_for(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (Keras' ``EarlyStopping``).

    Args:
        monitor: A `History` key, e.g. ``"val_loss"`` (default) or ``"val_accuracy"``.
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
        self.monitor = monitor
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.mode = _mode_for(monitor, mode)
        self.restore_best = restore_best
        self.best: Optional[float] = None
        self.best_epoch = 0
        self.best_weights: Optional[Dict[str, Array]] = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Dict[str, float]) -> None:
        if self.monitor not in logs:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r}, which is not among the metrics {sorted(logs)}"
            ) from None
        if _improved(logs[self.monitor], self.best, self.mode, self.min_delta):
            self.best, self.best_epoch = logs[self.monitor], epoch
            if self.restore_best:
                self.best_weights = trainer.model.state_dict()
        elif epoch - self.best_epoch >= self.patience:
            raise TrainingStopped(
                f"early stopping: {self.monitor} has not improved for {self.patience} epochs (best {self.best:.4f} at epoch {self.best_epoch})"
            )

    def on_train_end(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> Dict[str, Any]:
        state: Dict[str, Any] = {"best": self.best, "best_epoch": self.best_epoch}
        if self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], int(state["best_epoch"])
        self.best_weights = state.get("best_weights")


class ModelCheckpoint(Callback):
    """Write ``last.nnl`` after every epoch and ``best.nnl`` when ``monitor`` improves.

    Both are complete checkpoints (weights, optimizer state with momentum buffers, the shuffling
    RNG state, history, callbacks' state, best metric), loadable with `nnlayers.load` as a
    model and usable with ``fit(..., resume=path)``. Writes are atomic.

    Args:
        directory: Where the two files go (created if needed).
        monitor: A `History` key (default ``"val_loss"``; ``"loss"`` when there is no validation).
        mode: ``"min"``, ``"max"`` or ``"auto"``.
    """

    def __init__(self, directory: PathLike, monitor: str = "val_loss", mode: str = "auto") -> None:
        self.directory = Path(directory)
        self.monitor = monitor
        self.mode = _mode_for(monitor, mode)
        self.best: Optional[float] = None

    @property
    def last_path(self) -> Path:
        return self.directory / "last.nnl"

    @property
    def best_path(self) -> Path:
        return self.directory / "best.nnl"

    def on_train_begin(self, trainer: Trainer) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Dict[str, float]) -> None:
        monitor = self.monitor if self.monitor in logs else "loss"
        improved = _improved(logs[monitor], self.best, self.mode)
        if improved:
            self.best = logs[monitor]
        # the state written includes this callback's updated best, so a resume continues exactly
        trainer.save_checkpoint(self.last_path)
        if improved:
            trainer.save_checkpoint(self.best_path)

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = state["best"]


# --- the trainer --------------------------------------------------------------------------------


class Trainer:
    """The state of one training run; `fit` creates and runs one.

    Attributes:
        model, loss_fn, optimizer: What is trained and how.
        history: The `History` so far.
        rng: The generator that shuffles each epoch (its state is saved in checkpoints).
        epoch: Epochs completed.
        metadata: Extra header entries for saved files (class names, preprocessing).
    """

    def __init__(
        self,
        model: Layer,
        loss_fn: Loss,
        optimizer: SGD,
        *,
        seed: int = 0,
        callbacks: Sequence[Callback] = (),
        metadata: Optional[Dict[str, Any]] = None,
    ) -> None:
        if not isinstance(model, Layer):
            raise TypeError(f"model must be a Layer (e.g. a Sequential), got {type(model).__name__}")
        if not isinstance(loss_fn, Loss):
            raise TypeError(f"loss_fn must be a Loss (e.g. BCELoss()), got {type(loss_fn).__name__}")
        if not isinstance(optimizer, SGD):
            raise TypeError(f"optimizer must be an optimizer (e.g. SGD), got {type(optimizer).__name__}")
        if not {id(p) for p in optimizer.params} & {
            id(p) for p in model.parameters()
        }:  # a subset is fine (frozen layers)
            raise ValueError(
                "the optimizer updates none of this model's parameters; build it as SGD(model.parameters(), ...) for this model"
            )
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.callbacks = list(callbacks)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.history = History()
        self.epoch = 0
        self.metadata = dict(metadata or {})

    # checkpoints ------------------------------------------------------------------------------

    def training_state(self) -> Dict[str, Any]:
        """Everything beyond the weights that a bit-identical resume needs."""
        return {
            "epoch": self.epoch,
            "seed": self.seed,
            "rng_state": self.rng.bit_generator.state,
            "optimizer": self.optimizer.state_dict(),
            "loss": {"type": type(self.loss_fn).__name__, "reduction": self.loss_fn.reduction},
            "history": self.history.to_dict(),
            "callbacks": [cb.state_dict() for cb in self.callbacks],
        }

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])
        self.rng.bit_generator.state = state["rng_state"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = History.from_dict(state["history"])
        saved = state["callbacks"]
        if len(saved) != len(self.callbacks):
            raise ValueError(
                f"the checkpoint holds the state of {len(saved)} callbacks, but {len(self.callbacks)} were given"
            )
        for callback, cb_state in zip(self.callbacks, saved):
            callback.load_state_dict(cb_state)

    def save_checkpoint(self, path: PathLike) -> None:
        """Write the model, optimizer, RNG, history and callbacks to ``path`` (atomically)."""
        from .serialize import save

        save(
            self.model,
            path,
            training=self.training_state(),
            classes=self.metadata.get("classes"),
            preprocessing=self.metadata.get("preprocessing"),
        )

    def resume(self, path: PathLike) -> None:
        """Load a checkpoint written by `save_checkpoint` into this trainer's objects."""
        from .serialize import read_checkpoint

        state_dict, training = read_checkpoint(path)
        if training is None:
            raise ValueError(
                f"{path} is a model file without training state; resume needs a checkpoint (last.nnl or best.nnl)"
            )
        self.model.load_state_dict(state_dict)
        self.load_training_state(training)

    # the loop -----------------------------------------------------------------------------------

    def run_epoch(self, data: _Split, batch_size: int, show_progress: bool, epochs: int) -> Dict[str, float]:
        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        model.train()
        dtype = model.dtype or np.dtype(np.float32)
        threshold = 0.5 if _outputs_probabilities(model) else 0.0
        total_loss, correct, seen = 0.0, 0, 0
        steps = self._progress(data.batches(batch_size, dtype, self.rng), len(data), batch_size, show_progress, epochs)
        for x, y in steps:
            pred = model(x)
            loss = loss_fn(pred, y)
            if not math.isfinite(loss):
                return {"loss": loss}
            grad = loss_fn.backward()
            model.backward_params(grad)  # nobody needs the gradient of the pixels
            optimizer.step()
            optimizer.zero_grad()
            total_loss += loss * len(y) if loss_fn.reduction == "mean" else loss
            correct += int(np.count_nonzero((pred > threshold) == (y > 0.5)))
            seen += len(y)
        return {"loss": total_loss / seen, "accuracy": correct / seen}

    def _progress(
        self, steps: Iterator[Tuple[Array, Array]], n: int, batch_size: int, show: bool, epochs: int
    ) -> Iterator[Tuple[Array, Array]]:
        if not show:
            return steps
        from tqdm import tqdm

        return iter(
            tqdm(steps, total=-(-n // batch_size), desc=f"epoch {self.epoch + 1}/{epochs}", unit="batch", leave=False)
        )

    def fit(self, train: _Split, validation: Optional[_Split], epochs: int, batch_size: int, verbose: int) -> History:
        show_bar = verbose == 1 and sys.stderr.isatty()
        for callback in self.callbacks:
            callback.on_train_begin(self)
        try:
            best_loss, best_state = math.inf, self.model.state_dict()
            while self.epoch < epochs:
                start = time.perf_counter()
                logs = self.run_epoch(train, batch_size, show_bar, epochs)
                # a binary cross-entropy far above guessing has diverged; any other loss only when not finite
                limit = DIVERGED_LOSS if isinstance(self.loss_fn, (BCELoss, BCEWithLogitsLoss)) else math.inf
                if not logs["loss"] <= limit:  # also true for NaN
                    self.model.load_state_dict(best_state)
                    self.history.stop_reason = _diverged_message(self.epoch + 1, logs["loss"], self.optimizer)
                    self.history.diverged = True
                    _say(self.history.stop_reason, verbose)
                    break
                if logs["loss"] < best_loss:
                    best_loss, best_state = logs["loss"], self.model.state_dict()
                if validation is not None:
                    scores = evaluate(self.model, validation, self.loss_fn, batch_size=max(batch_size, 256))
                    logs["val_loss"], logs["val_accuracy"] = scores["loss"], scores["accuracy"]
                logs["seconds"] = time.perf_counter() - start
                self.epoch += 1
                self.history.append(self.epoch, logs)
                if verbose:
                    _say(_epoch_line(self.epoch, epochs, logs), verbose)
                self._epoch_end_callbacks(logs)
        except TrainingStopped as stop:
            self.history.stop_reason = str(stop)
            _say(str(stop), verbose)
        finally:
            for callback in self.callbacks:
                callback.on_train_end(self)
            self.model.eval()
        return self.history

    def _epoch_end_callbacks(self, logs: Dict[str, float]) -> None:
        """Run every callback, checkpoints last so that they save the others' updated state."""
        ordered = sorted(self.callbacks, key=lambda cb: isinstance(cb, ModelCheckpoint))
        stop: Optional[TrainingStopped] = None
        for callback in ordered:
            try:
                callback.on_epoch_end(self, self.epoch, logs)
            except TrainingStopped as request:
                stop = stop or request
        if stop is not None:
            raise stop


def _say(message: str, verbose: int) -> None:
    if verbose:
        print(message, file=sys.stderr, flush=True)


def _epoch_line(epoch: int, epochs: int, logs: Mapping[str, float]) -> str:
    parts = [f"epoch {epoch}/{epochs}", f"loss {logs['loss']:.4f}", f"accuracy {logs['accuracy']:.3f}"]
    if "val_loss" in logs:
        parts += [f"val_loss {logs['val_loss']:.4f}", f"val_accuracy {logs['val_accuracy']:.3f}"]
    parts.append(f"{logs['seconds']:.1f}s")
    return "  ".join(parts)


def _diverged_message(epoch: int, loss: float, optimizer: SGD) -> str:
    what = (
        "became NaN or infinite"
        if not math.isfinite(loss)
        else f"rose to {loss:.3g}, over 10x that of guessing (0.693)"
    )
    return (
        f"stopped: training diverged in epoch {epoch}: the loss {what} (learning rate {optimizer.lr:g}); "
        f"the weights of the best epoch so far are kept. Try a smaller learning rate (e.g. {optimizer.lr / 10:g}), "
        f"less momentum, or check the inputs for NaN and that images are scaled to [0, 1]."
    )


def fit(
    model: Layer,
    loss_fn: Loss,
    optimizer: SGD,
    train_data: Data,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    validation: Union[None, float, Data] = None,
    seed: int = 0,
    callbacks: Sequence[Callback] = (),
    verbose: int = 1,
    resume: Optional[PathLike] = None,
    metadata: Optional[Dict[str, Any]] = None,
) -> History:
    """Train ``model`` with mini-batch gradient descent, like Keras' ``model.fit``.

    Each epoch visits every training example once in a seeded random order; after it, the
    validation data (if any) is evaluated and the callbacks run. A NaN, infinite or exploding
    loss (`DIVERGED_LOSS`) stops training, keeps the weights of the best epoch so far and says
    what to change.

    Args:
        model: The model, e.g. ``Sequential([Dense(12288, 64), Tanh(), Dense(64, 1), Sigmoid()])``.
        loss_fn: `BCELoss` after a `Sigmoid`, or `BCEWithLogitsLoss` on raw scores.
        optimizer: An optimizer over ``model.parameters()``.
        train_data: An `ImageDataset`, or ``(x, y)``: uint8 images ``(N, H, W, 3)`` (scaled by
            1/255 one batch at a time) or float inputs ``(N, D)``, and labels 0/1 ``(N,)``.
        epochs: Train until this many epochs are done (counting those before a resume).
        batch_size: Examples per gradient step.
        validation: Data like ``train_data``, or a fraction (e.g. ``0.2``) of ``train_data`` held
            out, stratified and seeded.
        seed: Seeds the shuffling (and a fractional validation split).
        callbacks: `EarlyStopping`, `ModelCheckpoint` or your own `Callback` subclasses.
        verbose: 0 silent; 1 a progress bar on a terminal and one line per epoch (on stderr);
            2 one line per epoch only.
        resume: A checkpoint from `ModelCheckpoint` to continue from; the result is bit-identical
            to a run that was never interrupted.
        metadata: ``classes`` and ``preprocessing`` to write in checkpoint headers.

    Returns:
        The `History`.

    Examples:
        >>> from nnlayers import Sequential, Dense, Tanh, Sigmoid, BCELoss, SGD
        >>> rng = np.random.default_rng(0)
        >>> x = rng.random((200, 10)); y = (x[:, 0] > 0.5).astype(int)
        >>> model = Sequential([Dense(10, 8, rng=0), Tanh(), Dense(8, 1, rng=1), Sigmoid()])
        >>> history = fit(model, BCELoss(), SGD(model.parameters(), lr=0.5), (x, y), epochs=30, verbose=0)
        >>> history.history["accuracy"][-1] > 0.9
        True
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    train, val = _splits(train_data, validation, seed)
    trainer = Trainer(model, loss_fn, optimizer, seed=seed, callbacks=callbacks, metadata=metadata)
    if resume is not None:
        trainer.resume(resume)
    return trainer.fit(train, val, int(epochs), int(batch_size), verbose)


# --- evaluation and prediction ----------------------------------------------------------------


def _raw_outputs(model: Layer, split: _Split, batch_size: int) -> Array:
    """The model's outputs ``(N,)`` in evaluation mode, batch by batch (never converted whole)."""
    dtype = model.dtype or np.dtype(np.float32)
    was_training = model.training
    model.eval()
    try:  # copies: the input buffer is reused, and an output may be a view of it
        outputs = [np.array(model(xb)).reshape(-1) for xb, _ in split.batches(batch_size, dtype, None)]
    finally:
        model.train(was_training)
    return np.concatenate(outputs) if outputs else np.zeros(0, dtype)


def predict_proba(model: Layer, x: Union[np.ndarray, Sequence[PathLike]], *, batch_size: int = 256) -> Array:
    """The probability of class 1 for each example, ``(N,)``.

    Args:
        model: A trained model; a model ending in `Sigmoid` gives probabilities, any other
            output is taken as a logit and passed through the sigmoid.
        x: uint8 images ``(N, H, W, 3)``, float inputs ``(N, D)``, or a list of image files
            (decoded with ``model.preprocessing``, as saved in the model file).
        batch_size: Examples per forward pass (bounds memory).
    """
    if isinstance(x, (list, tuple)) and (not x or isinstance(x[0], (str, os.PathLike))):
        x = load_images(x, getattr(model, "preprocessing", None))
    x = np.asarray(x)
    raw = _raw_outputs(model, _Split(x, np.zeros(len(x), np.int8), np.arange(len(x))), batch_size)
    return raw if _outputs_probabilities(model) else sigmoid(raw)


def predict(
    model: Layer, x: Union[np.ndarray, Sequence[PathLike]], *, threshold: float = 0.5, batch_size: int = 256
) -> Array:
    """Predicted class index (0 or 1) for each example: ``predict_proba > threshold``."""
    return (predict_proba(model, x, batch_size=batch_size) > threshold).astype(np.int64)


def load_images(paths: Sequence[PathLike], preprocessing: Optional[Mapping[str, Any]] = None) -> np.ndarray:
    """Decode image files with a model's preprocessing (size, backend, interpolation, reduce)."""
    options = dict(preprocessing or {})
    size = tuple(options.get("size", (64, 64)))
    kwargs = {k: options[k] for k in ("backend", "interpolation", "reduce") if k in options}
    return np.stack([load_image(p, size, **kwargs) for p in paths]) if paths else np.zeros((0, *size, 3), np.uint8)


def evaluate(
    model: Layer,
    data: Union[Data, _Split],
    loss_fn: Optional[Loss] = None,
    *,
    threshold: float = 0.5,
    batch_size: int = 256,
) -> Dict[str, Any]:
    """Loss and classification metrics of ``model`` on ``data``.

    Args:
        model: The model.
        data: An `ImageDataset` or ``(x, y)`` as for `fit`.
        loss_fn: The loss to report (default: `BCELoss`, or `BCEWithLogitsLoss` for a model
            without a final `Sigmoid`).
        threshold: Probability above which an example is predicted as class 1.
        batch_size: Examples per forward pass.

    Returns:
        ``{"loss", "accuracy", "precision", "recall", "f1", "confusion_matrix", "n"}``; the
        confusion matrix is ``[[tn, fp], [fn, tp]]`` (rows: true class, as scikit-learn).
    """
    if isinstance(data, _Split):
        split = data
    else:
        x, y = _unpack(data, "data")
        split = _Split(x, y, np.arange(len(y)))
    if loss_fn is None:
        loss_fn = BCELoss() if _outputs_probabilities(model) else BCEWithLogitsLoss()
    raw = _raw_outputs(model, split, batch_size)
    truth = split.y[split.indices] > 0.5
    loss = loss_fn(raw.reshape(-1, 1), truth.astype(raw.dtype).reshape(-1, 1))
    proba = raw if _outputs_probabilities(model) else sigmoid(raw)
    pred = proba > threshold
    tp, fp = int(np.sum(pred & truth)), int(np.sum(pred & ~truth))
    fn, tn = int(np.sum(~pred & truth)), int(np.sum(~pred & ~truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "loss": float(loss),
        "accuracy": (tp + tn) / len(truth),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "n": len(truth),
    }
