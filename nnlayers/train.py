"""Training, evaluation and prediction: `fit`, `evaluate`, `predict`, `predict_proba`.

`fit` is the seed's "connect all of them into a model and train" as one call, like Keras'
``model.fit``: mini-batches, a progress bar or one line per epoch, validation, callbacks, a
guard against non-finite losses, and checkpoints that resume bit for bit. The callbacks and
`History` live in `nnlayers.callbacks`.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .batching import Subset, iter_batches, split_indices
from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint, TrainingStopped
from .container import Sequential
from .data import ImageDataset
from .functional import sigmoid
from .images import image_size, load_image
from .layers import Sigmoid
from .losses import BCELoss, BCEWithLogitsLoss, Loss
from .module import Array, Layer
from .optim import SGD
from .util import PathLike, check_positive_int

__all__ = [  # the callbacks are re-exported: they lived here before nnlayers.callbacks
    "DIVERGED_LOSS",
    "Callback",
    "Data",
    "EarlyStopping",
    "History",
    "ModelCheckpoint",
    "Trainer",
    "TrainingStopped",
    "evaluate",
    "fit",
    "predict",
    "predict_proba",
]

#: What `fit` and `evaluate` take as data: an `ImageDataset`, a `Subset`, or ``(x, y)`` with ``x``
#: uint8 images ``(N, H, W, 3)`` (scaled by 1/255 batch by batch) or float features, ``y`` labels.
Data = Union[ImageDataset, Subset, Tuple[np.ndarray, np.ndarray]]


#: An epoch whose mean training loss is above this (10x the binary cross-entropy of guessing
#: 50/50) has diverged: the model is confidently wrong on most examples, as after too large a
#: learning rate, where the clamped loss stays finite but training is lost.
DIVERGED_LOSS = 10 * math.log(2)


# --- data plumbing ------------------------------------------------------------------------------


def as_subset(data: Data, name: str = "data") -> Subset:
    """Any accepted form of data as a `Subset`, checked: matching lengths, not empty, 0/1 labels."""
    if isinstance(data, Subset):
        return data
    if isinstance(data, ImageDataset):
        x, y = data.images, data.labels
    elif isinstance(data, (tuple, list)) and len(data) == 2:
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
    else:
        raise TypeError(f"{name} must be an ImageDataset or a tuple (x, y) (or a Subset), got {type(data).__name__}")
    return Subset(x, y, np.arange(len(y)))


def training_split(
    train_data: Data, validation: Union[None, float, Data], seed: int
) -> Tuple[Subset, Optional[Subset]]:
    """The examples `fit` trains on and those it validates on (a fraction is split off, stratified)."""
    train = as_subset(train_data, "train_data")
    if validation is None:
        return train, None
    if isinstance(validation, float):
        train_idx, val_idx = split_indices(train.labels(), validation, seed)
        return Subset(train.x, train.y, train.indices[train_idx]), Subset(train.x, train.y, train.indices[val_idx])
    return train, as_subset(validation, "validation")


def last_layer(model: Layer) -> Layer:
    """The layer that makes the model's output: the last leaf, inside nested `Sequential` models too."""
    while isinstance(model, Sequential) and len(model):
        model = model[len(model) - 1]
    return model


def _outputs_probabilities(model: Layer) -> bool:
    """A model ending in `Sigmoid` gives probabilities; otherwise its outputs are logits."""
    return isinstance(last_layer(model), Sigmoid)


def flattens_input(model: Layer) -> bool:
    """Whether the model takes flattened rows ``(N, D)`` (a dense first layer) rather than images."""
    first = model
    while isinstance(first, Sequential) and len(first):
        first = first[0]
    return not getattr(first, "takes_images", False)


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
        self.has_validation = False

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

    @property
    def metric_names(self) -> List[str]:
        """The metrics each epoch logs (what callbacks can monitor)."""
        names = ["loss", "accuracy"]
        return names + [f"val_{n}" for n in names] if self.has_validation else names

    def batches(self, data: Subset, batch_size: int, shuffle: bool) -> Iterator[Tuple[Array, Array]]:
        """Inputs in the form the model takes and targets in the form the loss takes; one reused input buffer."""
        dtype = self.model.dtype or np.dtype(np.float32)
        order = self.rng.permutation(data.indices) if shuffle else data.indices
        flatten = flattens_input(self.model)
        # one kept input buffer: a fresh multi-megabyte array every batch costs page faults
        for x, chosen in iter_batches(data.x, order, batch_size, dtype=dtype, flatten=flatten, reuse_buffer=True):
            yield x, data.y[chosen].astype(dtype).reshape(-1, 1)

    def run_epoch(self, data: Subset, batch_size: int, show_progress: bool, epochs: int) -> Dict[str, float]:
        model, loss_fn, optimizer = self.model, self.loss_fn, self.optimizer
        model.train()
        threshold = 0.5 if _outputs_probabilities(model) else 0.0
        total_loss, correct, seen = 0.0, 0, 0
        steps = self._progress(self.batches(data, batch_size, True), len(data), batch_size, show_progress, epochs)
        for x, y in steps:
            pred = model(x)
            loss = loss_fn(pred, y)
            if not math.isfinite(loss):
                return {"loss": loss}
            model.backward_params(loss_fn.backward())  # nobody needs the gradient of the pixels
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

    def fit(self, train: Subset, validation: Optional[Subset], epochs: int, batch_size: int, verbose: int) -> History:
        show_bar = verbose == 1 and sys.stderr.isatty()
        self.has_validation = validation is not None
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
    epochs, batch_size = check_positive_int("epochs", epochs), check_positive_int("batch_size", batch_size)
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    train, val = training_split(train_data, validation, seed)
    trainer = Trainer(model, loss_fn, optimizer, seed=seed, callbacks=callbacks, metadata=metadata)
    if resume is not None:
        trainer.resume(resume)
    return trainer.fit(train, val, int(epochs), int(batch_size), verbose)


# --- evaluation and prediction ----------------------------------------------------------------


def _raw_outputs(model: Layer, data: Subset, batch_size: int) -> Array:
    """The model's outputs ``(N,)`` in evaluation mode, batch by batch (never converted whole)."""
    dtype = model.dtype or np.dtype(np.float32)
    was_training = model.training
    model.eval()
    flatten = flattens_input(model)
    batches = iter_batches(data.x, data.indices, batch_size, dtype=dtype, flatten=flatten, reuse_buffer=True)
    try:  # copies: the input buffer is reused, and an output may be a view of it
        outputs = [np.array(model(xb)).reshape(-1) for xb, _ in batches]
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
    raw = _raw_outputs(model, Subset(x, np.zeros(len(x), np.int8), np.arange(len(x))), batch_size)
    return raw if _outputs_probabilities(model) else sigmoid(raw)


def predict(
    model: Layer, x: Union[np.ndarray, Sequence[PathLike]], *, threshold: float = 0.5, batch_size: int = 256
) -> Array:
    """Predicted class index (0 or 1) for each example: ``predict_proba > threshold``."""
    return (predict_proba(model, x, batch_size=batch_size) > threshold).astype(np.int64)


def load_images(paths: Sequence[PathLike], preprocessing: Optional[Mapping[str, Any]] = None) -> np.ndarray:
    """Decode image files with a model's preprocessing (size, backend, interpolation, reduce)."""
    options = dict(preprocessing or {})
    size = image_size(tuple(options.get("size", (64, 64))))
    kwargs = {k: options[k] for k in ("backend", "interpolation", "reduce") if k in options}
    return np.stack([load_image(p, size, **kwargs) for p in paths]) if paths else np.zeros((0, *size, 3), np.uint8)


def evaluate(
    model: Layer,
    data: Data,
    loss_fn: Optional[Loss] = None,
    *,
    threshold: float = 0.5,
    batch_size: int = 256,
) -> Dict[str, Any]:
    """Loss and classification metrics of ``model`` on ``data``.

    Args:
        model: The model.
        data: An `ImageDataset`, a `Subset` or ``(x, y)`` as for `fit`.
        loss_fn: The loss to report (default: `BCELoss`, or `BCEWithLogitsLoss` for a model
            without a final `Sigmoid`).
        threshold: Probability above which an example is predicted as class 1.
        batch_size: Examples per forward pass.

    Returns:
        ``{"loss", "accuracy", "precision", "recall", "f1", "confusion_matrix", "n"}``; the
        confusion matrix is ``[[tn, fp], [fn, tp]]`` (rows: true class, as scikit-learn).
    """
    split = as_subset(data)
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
