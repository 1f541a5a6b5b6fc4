"""Training: `fit` and the `Trainer` it runs.

`fit` is the seed's "connect all of them into a model and train" as one call, like Keras'
``model.fit``: mini-batches, a progress bar or one line per epoch, validation, callbacks, a
learning-rate schedule, augmentation, a guard against a diverging loss, and checkpoints that
resume bit for bit. Evaluation and prediction live in `nnlayers.training.evaluation`, the callbacks and
`History` in `nnlayers.training.callbacks`.
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.augment import Transform, parse_augment
from ..data.batching import iter_batches
from ..data.sources import Data, check_labels, training_split
from ..data.splits import Subset
from ..nn.layers.activation import Sigmoid, Softmax
from ..nn.layers.normalization import BatchNorm1D
from ..nn.losses import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, Loss
from ..nn.module import Layer
from ..nn.structure import flattens_input, last_layer
from ..optim.clipping import clip_grad_norm, grad_norm_limit
from ..optim.optimizer import Optimizer
from ..optim.schedules import LRScheduler, ReduceLROnPlateau
from ..utils.checks import check_positive_int
from ..utils.progress import show_progress
from ..utils.types import Array, PathLike
from . import checkpoint
from .callbacks import Callback, History, ModelCheckpoint, TrainingStopped
from .distributed import Distributed, resolve
from .evaluation import evaluate, model_outputs
from .report import diverged_message, epoch_line, say

#: An epoch whose mean training loss is above this many times the loss of guessing (ln 2 for two
#: classes, ln K for K) has diverged: the model is confidently wrong on most examples, as after
#: too large a learning rate, where the clamped loss stays finite but training is lost.
DIVERGED_FACTOR = 10


DIVERGED_LOSS = DIVERGED_FACTOR * math.log(2)


Scheduler = Union[LRScheduler, ReduceLROnPlateau]


class Trainer:
    """The state of one training run; `fit` creates and runs one.

    Attributes:
        model, loss_fn, optimizer, scheduler, augment: What is trained and how.
        history: The `History` so far.
        rng: The generator that shuffles each epoch; ``augment_rng`` the one of the
            augmentation (both saved in checkpoints).
        epoch: Epochs completed.
        metadata: Extra header entries for saved files (class names, preprocessing, ...).
    """

    def __init__(
        self,
        model: Layer,
        loss_fn: Loss,
        optimizer: Optimizer,
        *,
        seed: int = 0,
        callbacks: Sequence[Callback] = (),
        metadata: Optional[Dict[str, Any]] = None,
        scheduler: Optional[Scheduler] = None,
        augment: Optional[Transform] = None,
        distributed: Optional[Distributed] = None,
        max_grad_norm: Optional[float] = None,
    ) -> None:
        if not isinstance(model, Layer):
            raise TypeError(f"model must be a Layer (e.g. a Sequential), got {type(model).__name__}")
        if not isinstance(loss_fn, Loss):
            raise TypeError(f"loss_fn must be a Loss (e.g. BCELoss()), got {type(loss_fn).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be an optimizer (e.g. SGD or Adam), got {type(optimizer).__name__}")
        if not {id(p) for p in optimizer.params} & {id(p) for p in model.parameters()}:  # a subset is fine
            raise ValueError(
                "the optimizer updates none of this model's parameters; build it as SGD(model.parameters(), ...) for this model"
            )
        if loss_fn.reduction == "none":
            raise ValueError(
                f"fit needs a loss reduced to one number: {type(loss_fn).__name__}(reduction='mean' or 'sum')"
            )
        if scheduler is not None and getattr(scheduler, "optimizer", None) is not optimizer:
            raise ValueError("the scheduler changes another optimizer's learning rate; build it on this optimizer")
        if isinstance(loss_fn, CrossEntropyLoss) and isinstance(last_layer(model), Softmax):
            raise ValueError(
                "CrossEntropyLoss takes raw scores (logits) and applies the softmax itself: remove the model's final "
                "Softmax (predict_proba still gives probabilities)"
            )
        if isinstance(loss_fn, BCEWithLogitsLoss) and isinstance(last_layer(model), Sigmoid):
            raise ValueError(
                "BCEWithLogitsLoss takes a raw score (a logit) and applies the sigmoid itself: remove the model's "
                "final Sigmoid, or train with BCELoss (predict_proba gives probabilities either way)"
            )
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.scheduler, self.augment, self.distributed = scheduler, augment, distributed
        self.max_grad_norm = max_grad_norm
        self.callbacks = list(callbacks)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.augment_rng = np.random.default_rng([seed, 1])
        self.history = History()
        self.epoch = 0
        self.metadata = dict(metadata or {})
        self.has_validation = False
        self.epochs = 0
        self.outputs = 1  # the model's output columns (K classes), seen at the first batch
        #: The second number each epoch logs: the accuracy, or for a regression the mean absolute error.
        self.metric = "mae" if loss_fn.task == "regression" else "accuracy"

    # checkpoints (what they hold: nnlayers.training.checkpoint) -------------------------------------

    def save_checkpoint(self, path: PathLike) -> None:
        """Write the run's state (weights, optimizer, schedule, generators, history, callbacks) to ``path``."""
        checkpoint.save_checkpoint(self, path)

    def resume(self, path: PathLike) -> None:
        """Continue from a checkpoint written by `save_checkpoint`; a mismatched run leaves the weights untouched."""
        checkpoint.resume(self, path)

    # the loop -----------------------------------------------------------------------------------

    @property
    def metric_names(self) -> List[str]:
        """The metrics each epoch logs (what callbacks can monitor)."""
        names = ["loss", self.metric]
        return names + [f"val_{n}" for n in names] if self.has_validation else names

    def batches(
        self, data: Subset, batch_size: int, shuffle: bool, drop_last: bool = False
    ) -> Iterator[Tuple[Array, Array, float, int]]:
        """Per batch: inputs in the form the model takes, targets in the form the loss takes (this process's
        part), that part's share of the batch's mean loss, and the whole batch's size; one reused input buffer."""
        dtype = self.model.dtype or np.dtype(np.float32)
        order = self.rng.permutation(data.indices) if shuffle else data.indices
        if drop_last and shuffle:  # training batches only: validation sees every example
            order = order[: len(order) - len(order) % batch_size]
        flatten = flattens_input(self.model)
        augment = self.augment if shuffle and data.x.ndim == 4 else None  # training batches of images only
        # one kept input buffer: a fresh multi-megabyte array every batch costs page faults
        shard = (self.distributed.rank, self.distributed.size) if self.distributed is not None else None
        batches = iter_batches(
            data.x, order, batch_size, dtype=dtype, flatten=flatten and augment is None, reuse_buffer=True, shard=shard
        )
        for start, (x, chosen) in zip(range(0, len(order), batch_size), batches):
            if augment is not None:
                x = augment(x, self.augment_rng)
                x = x.reshape(len(x), -1) if flatten else x
            targets = self.loss_fn.targets(data.y[chosen], dtype)
            whole = order[start : start + batch_size]  # the batch all the processes share
            yield x, targets, self._share(targets, whole, data), len(whole)

    def _share(self, targets: Array, whole: np.ndarray, data: Subset) -> float:
        """The part of the whole batch's mean loss this process's targets hold (1 on one process).

        The mean divides by the batch's total weight (its count, or a weighted loss's sum of class
        weights), so each process's mean counts by its share of that total: then the shares' gradients
        add up to the whole batch's gradient, weighted or not.
        """
        if self.distributed is None or self.loss_fn.reduction != "mean":
            return 1.0
        total = self.loss_fn.total_weight(self.loss_fn.targets(data.y[whole], targets.dtype))
        return self.loss_fn.total_weight(targets) / total if len(targets) else 0.0

    def _hits(self, pred: Array, y: Array) -> Tuple[float, int]:
        """How many predictions of the batch are right, and of how many (a regression: the sum of each example's
        mean absolute error, of the examples; a label per step: the steps that are not padding)."""
        if self.loss_fn.task == "regression":
            return float(np.abs(pred - y).reshape(len(y), -1).mean(axis=1).sum()), len(y)
        if self.loss_fn.task == "classes":
            counted = y != getattr(self.loss_fn, "ignore_index", -100)
            return int(np.count_nonzero((pred.argmax(axis=-1) == y) & counted)), int(np.count_nonzero(counted))
        threshold = 0.5 if isinstance(last_layer(self.model), Sigmoid) else 0.0
        return int(np.count_nonzero((pred > threshold) == (y > 0.5))), len(y)

    def check_batches(self, examples: int, batch_size: int, drop_last: bool) -> None:
        """Before training: refuse batches of one example (or a process's part of one) for a `BatchNorm1D`,
        which cannot normalise a single row in training, naming the batch and the remedy."""
        if drop_last and examples < batch_size:
            raise ValueError(
                f"drop_last=True leaves no batch to train on: {examples} examples in batches of {batch_size}"
            )
        norm = next((layer for _, layer in self.model.named_modules() if isinstance(layer, BatchNorm1D)), None)
        if norm is None:
            return
        processes = self.distributed.size if self.distributed is not None else 1
        last = 0 if drop_last else examples % batch_size
        for size, which in ((batch_size, "every batch"), (last, "the last batch of each epoch")):
            if size and 1 in (size // processes, -(-size // processes)):
                part = f"{which} holds 1 example" if processes == 1 else f"a process's part of {which} holds 1 example"
                raise ValueError(
                    f"{part} ({examples} examples in batches of {batch_size}"
                    + (f" over {processes} processes" if processes > 1 else "")
                    + f"), and {norm} needs more than one in training: pass drop_last=True to leave the last batch "
                    "out, or choose a batch size that leaves no single example"
                )

    def run_epoch(self, data: Subset, batch_size: int, show_bar: bool, drop_last: bool = False) -> Dict[str, float]:
        model, loss_fn, optimizer, group = self.model, self.loss_fn, self.optimizer, self.distributed
        model.train()
        total_loss, correct, seen, scored = 0.0, 0.0, 0, 0
        kept = len(data) - len(data) % batch_size if drop_last else len(data)
        steps = self._progress(self.batches(data, batch_size, True, drop_last), kept, batch_size, show_bar)
        for x, y, share, whole in steps:
            if len(y):  # a process's part of the last batch may be empty
                pred = model(x)
                self.outputs = pred.shape[-1] if pred.ndim > 1 else 1
                loss = loss_fn(pred, y)
                if not math.isfinite(loss) and group is None:  # (distributed: every process must keep stepping)
                    return {"loss": loss}
                model.backward_params(loss_fn.backward())  # nobody needs the gradient of the pixels
                # the epoch's loss is the mean over examples of each batch's mean: this part's share of it
                total_loss += loss * share * whole if loss_fn.reduction == "mean" else loss
                hits, count = self._hits(pred, y)
                correct, scored, seen = correct + hits, scored + count, seen + len(y)
            if group is not None:  # the whole batch's gradient, on every process
                group.allreduce_gradients(optimizer.params, share)
            if self.max_grad_norm is not None:
                clip_grad_norm(optimizer.params, self.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad()
        if group is not None:
            summed = group.sum([total_loss, correct, seen, scored])
            total_loss, correct, seen, scored = summed[0], summed[1], int(summed[2]), int(summed[3])
            group.average_buffers(model)
        return {"loss": total_loss / seen, self.metric: correct / max(scored, 1)}

    def _progress(
        self, steps: Iterator[Tuple[Array, Array, float, int]], n: int, batch_size: int, show: bool
    ) -> Iterator[Tuple[Array, Array, float, int]]:
        if not show:
            return steps
        from tqdm.auto import tqdm  # a widget in notebooks, text in terminals

        bar = tqdm(
            steps, total=-(-n // batch_size), desc=f"epoch {self.epoch + 1}/{self.epochs}", unit="batch", leave=False
        )
        return iter(bar)

    def diverged(self, loss: float, classes: int = 2) -> bool:
        """A non-finite loss, or for the cross-entropy losses one far above guessing's (ln 2, or ln K for K classes)."""
        if not math.isfinite(loss):
            return True
        if isinstance(self.loss_fn, (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss)):  # the epoch's loss is a mean
            return loss > DIVERGED_FACTOR * math.log(max(2, classes))
        return False

    def fit(
        self,
        train: Subset,
        validation: Optional[Subset],
        epochs: int,
        batch_size: int,
        verbose: int,
        progress: Optional[bool] = None,
        drop_last: bool = False,
    ) -> History:
        self.check_batches(len(train), batch_size, drop_last)  # on every process alike, before any collective call
        if self.distributed is not None:
            self.distributed.broadcast_model(self.model)  # every process starts from process 0's weights
            verbose = verbose if self.distributed.is_root else 0  # one process speaks
        show_bar = verbose == 1 and show_progress(progress)
        self.has_validation, self.epochs = validation is not None, epochs
        for callback in self.callbacks:
            callback.on_train_begin(self)
        try:
            best_loss, best_state, best_epoch = math.inf, self.model.state_dict(), self.epoch
            while self.epoch < epochs:
                start = time.perf_counter()
                streams = self.distributed.own_streams(self.seed, self.epoch, self.model) if self.distributed else None
                if streams is not None:  # (process 0 keeps the run's generator)
                    self.augment_rng = streams
                lr = self.optimizer.lr
                logs = self.run_epoch(train, batch_size, show_bar, drop_last)
                if self.diverged(logs["loss"], self.outputs):
                    self.model.load_state_dict(best_state)
                    self.history.stop_reason = diverged_message(
                        self.epoch + 1, logs["loss"], lr, best_epoch, DIVERGED_FACTOR
                    )
                    self.history.diverged = True
                    say(self.history.stop_reason, verbose)
                    break
                if logs["loss"] < best_loss:
                    best_loss, best_state, best_epoch = logs["loss"], self.model.state_dict(), self.epoch + 1
                if validation is not None:
                    logs["val_loss"], logs[f"val_{self.metric}"] = self.validate(validation, batch_size)
                logs["lr"] = lr
                logs["seconds"] = time.perf_counter() - start
                self.epoch += 1
                self.history.append(self.epoch, logs)
                self._step_scheduler(logs)
                if verbose:
                    say(epoch_line(self.epoch, epochs, logs), verbose)
                self._epoch_end_callbacks(logs)
        except TrainingStopped as stop:
            self.history.stop_reason = str(stop)
            say(str(stop), verbose)
        except Exception as error:
            if self.distributed is not None:  # the other processes would wait for this one for ever
                self.distributed.abort(error)
            raise
        finally:
            for callback in self.callbacks:
                callback.on_train_end(self)
            self.model.eval()
        return self.history

    def validate(self, validation: Subset, batch_size: int) -> Tuple[float, float]:
        """Validation loss and accuracy, in evaluation mode; with several processes, each takes a share."""
        # images: batches of the training size (activations of 256 photos take over a gigabyte)
        size = batch_size if not flattens_input(self.model) else max(batch_size, 256)  # see inference_batch
        group = self.distributed
        if group is None:
            scores = evaluate(self.model, validation, self.loss_fn, batch_size=size)
            return scores["loss"], scores[self.metric]
        part = Subset(validation.x, validation.y, group.shard(validation.indices))
        loss_sum = correct = weight = scored = 0.0
        if len(part):
            raw = model_outputs(self.model, part, size)
            targets = self.loss_fn.targets(part.labels(), raw.dtype)
            loss = self.loss_fn(raw, targets)
            weight = self.loss_fn.total_weight(targets)  # a mean's denominator: the parts' means add up by it
            loss_sum = loss * weight if self.loss_fn.reduction == "mean" else loss
            correct, scored = self._hits(raw, targets)
        loss_sum, correct, count, weight, scored = group.sum([loss_sum, correct, len(part), weight, scored])
        return loss_sum / (weight if self.loss_fn.reduction == "mean" else count), correct / scored

    def _step_scheduler(self, logs: Mapping[str, float]) -> None:
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(logs["val_loss"] if "val_loss" in logs else logs["loss"])
        elif self.scheduler is not None:
            self.scheduler.step()

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


def fit(
    model: Layer,
    loss_fn: Loss,
    optimizer: Optimizer,
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
    scheduler: Optional[Scheduler] = None,
    augment: Union[None, str, Transform] = None,
    progress: Optional[bool] = None,
    distributed: Any = None,
    drop_last: bool = False,
    max_grad_norm: Union[None, float, str] = "auto",
) -> History:
    """Train ``model`` with mini-batch gradient descent, like Keras' ``model.fit``.

    Each epoch visits every training example once in a seeded random order; after it, the
    validation data (if any) is evaluated, the schedule steps and the callbacks run. A NaN,
    infinite or exploding loss (`DIVERGED_LOSS`) stops training, puts back the weights of the
    epoch with the lowest training loss and says what to change.

    Args:
        model: The model, e.g. ``Sequential([Dense(12288, 64), Tanh(), Dense(64, 1), Sigmoid()])``.
        loss_fn: `BCELoss` after a `Sigmoid`, `BCEWithLogitsLoss` on one raw output, or
            `CrossEntropyLoss` on K raw outputs.
        optimizer: An optimizer over ``model.parameters()`` (`SGD`, `Adam`, ...).
        train_data: An `ImageDataset`, a `Subset`, or ``(x, y)``: uint8 images ``(N, H, W, 3)``
            (scaled by 1/255 one batch at a time) or float inputs, and class indices ``(N,)``
            (0/1 for the binary losses); with a regression loss (`MSELoss`, ...), float targets of
            the model's output shape (``(x, x)`` trains an autoencoder).
        epochs: Train until this many epochs are done (counting those before a resume).
        batch_size: Examples per gradient step.
        validation: Data like ``train_data``, or a fraction (e.g. ``0.2``) of ``train_data`` held
            out, stratified and seeded.
        seed: Seeds the shuffling, the augmentation (and a fractional validation split).
        callbacks: `EarlyStopping`, `ModelCheckpoint` or your own `Callback` subclasses.
        verbose: 0 silent; 1 a progress bar (see ``progress``) and one line per epoch (on stderr);
            2 one line per epoch only.
        resume: A checkpoint from `ModelCheckpoint` to continue from; the result is bit-identical
            to a run that was never interrupted.
        metadata: ``classes``, ``preprocessing`` and free ``metadata`` to write in checkpoint headers.
        scheduler: A learning-rate schedule on ``optimizer`` (`nnlayers.optim.schedules`), stepped
            after every epoch; `ReduceLROnPlateau` is given ``val_loss`` (``loss`` without
            validation data).
        augment: Random changes to each training batch of images: a transform
            (`nnlayers.data.augment`) or names such as ``"flip,crop"``; never applied to validation.
        progress: Show a progress bar: ``None`` (default) in a terminal or a notebook, and one
            line per epoch when the output is piped; ``True`` or ``False`` to choose.
        distributed: Train data-parallel over MPI (`nnlayers.training.distributed`): ``True`` for all the
            processes ``mpiexec`` started, or a `nnlayers.training.distributed.Distributed` group. Each
            process takes its share of every batch; only process 0 prints and writes files.
        drop_last: Leave out the last training batch of each epoch when it is smaller than
            ``batch_size`` (PyTorch's ``DataLoader(drop_last=True)``): a `BatchNorm1D` cannot train on
            a batch of one example.
        max_grad_norm: Clip the gradients' global norm to this before each step (`clip_grad_norm`);
            ``"auto"`` (default): 1.0 for a model with a recurrent layer (whose gradients can explode
            through time), none for the others; ``None``: never.

    Returns:
        The `History`; each epoch logs ``loss``, ``accuracy`` (a regression: ``mae``) (and ``val_`` ones), ``lr`` and
        ``seconds``.

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
    train, val = training_split(train_data, validation, seed, values=getattr(loss_fn, "task", None) == "regression")
    if getattr(loss_fn, "task", None) == "binary":  # a binary loss takes 0/1 labels: a third class is a mistake
        check_labels(train, 2, "train_data")
        if val is not None:
            check_labels(val, 2, "validation")
    trainer = Trainer(
        model, loss_fn, optimizer, seed=seed, callbacks=callbacks, metadata=metadata, scheduler=scheduler,
        augment=parse_augment(augment), distributed=resolve(distributed),
        max_grad_norm=grad_norm_limit(model, max_grad_norm),
    )  # fmt: skip
    if resume is not None:
        trainer.resume(resume)
    return trainer.fit(train, val, int(epochs), int(batch_size), verbose, progress, bool(drop_last))
