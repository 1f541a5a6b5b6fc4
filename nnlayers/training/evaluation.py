"""Using a model: `predict_proba`, `predict` and `evaluate`, for binary and K-class models."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from ..data.batching import iter_batches
from ..data.image import load_images
from ..data.sources import Data, as_subset, check_labels
from ..data.splits import Subset
from ..nn.container import evaluation_mode
from ..nn.functional import sigmoid, softmax
from ..nn.grad_mode import no_grad
from ..nn.layers.activation import Sigmoid, Softmax
from ..nn.losses import CrossEntropyLoss, Loss, loss_for
from ..nn.module import Layer
from ..nn.structure import first_layer, flattens_input, last_layer
from ..utils.types import Array, PathLike
from .metrics import classification_metrics


def inference_batch(model: Layer, batch_size: Optional[int]) -> int:
    """``batch_size``, or by default 256 rows for a dense model and 64 images for a convolutional one
    (the activations of 256 photos of 64x64 take over a gigabyte)."""
    return batch_size if batch_size is not None else (256 if flattens_input(model) else 64)


def _forward(model: Layer, data: Subset, batch_size: Optional[int]) -> Array:
    """The model's outputs on ``data`` in their own shape, in evaluation mode, batch by batch."""
    dtype = model.dtype or np.dtype(np.float32)
    batches = iter_batches(
        data.x, data.indices, inference_batch(model, batch_size), dtype=dtype, flatten=flattens_input(model),
        reuse_buffer=True,
    )  # fmt: skip
    with evaluation_mode(model), no_grad():  # copies: the input buffer is reused, and an output may be a view of it
        outputs = [np.array(model(xb)) for xb, _ in batches]
    return np.concatenate(outputs) if outputs else np.zeros((0, 1), dtype)


def model_outputs(model: Layer, data: Subset, batch_size: Optional[int] = None) -> Array:
    """The model's raw outputs ``(N, K)`` in evaluation mode, batch by batch; NaN or infinity is an error."""
    return _finite_rows(_forward(model, data, batch_size))


def _finite_rows(raw: Array) -> Array:
    """Outputs as rows ``(N, K)``; NaN or infinity is an error naming the likely cause."""
    raw = raw.reshape(len(raw), -1)
    bad = ~np.isfinite(raw).all(axis=1)
    if bad.any():
        raise ValueError(
            f"the model's outputs are NaN or infinite for {int(bad.sum())} of {len(raw)} examples: its weights are "
            "probably NaN or infinite (a diverged training run, or a damaged model); retrain it with a smaller learning rate"
        )
    return raw


def probabilities(model: Layer, raw: Array) -> Array:
    """Raw outputs ``(N, K)`` as probabilities: ``(N,)`` for a binary model, ``(N, K)`` for K classes."""
    last = last_layer(model)
    if raw.shape[1] == 1:
        column = raw[:, 0]
        return column if isinstance(last, Sigmoid) else sigmoid(column)
    if isinstance(last, Sigmoid):
        raise ValueError(
            f"the model ends in a Sigmoid with {raw.shape[1]} outputs: a binary model has one output column; "
            f"for {raw.shape[1]} classes end it with Dense(..., {raw.shape[1]}) and train with CrossEntropyLoss"
        )
    return raw if isinstance(last, Softmax) else softmax(raw)


def class_table(proba: Array) -> Array:
    """Probabilities as `predict_proba` gives them, one row per example and one column per class:
    ``(N,)`` of class 1 becomes ``(N, 2)``, ``(N, K)`` stays."""
    return np.stack([1 - proba, proba], axis=1) if proba.ndim == 1 else proba


def predict_proba(model: Layer, x: Union[np.ndarray, Sequence[PathLike]], *, batch_size: Optional[int] = None) -> Array:
    """Class probabilities: ``(N,)`` for a binary model (of class 1), ``(N, K)`` for a K-class one.

    Args:
        model: A trained model; outputs after a final `Sigmoid` or `Softmax` are probabilities,
            any other outputs are taken as logits.
        x: uint8 images ``(N, H, W, 3)``, float inputs ``(N, ...)``, or a list of image files
            (decoded with ``model.preprocessing``, as saved in the model file).
        batch_size: Examples per forward pass, which bounds memory (default: 256 rows, or 64 images
            for a convolutional model).

    Raises:
        ValueError: The model's outputs are NaN or infinite, or it ends in a `Sigmoid` with more
            than one output.
    """
    if isinstance(x, (list, tuple)) and (not x or isinstance(x[0], (str, os.PathLike))):
        x = load_images(x, getattr(model, "preprocessing", None))
    x = np.asarray(x)
    data = Subset(x, np.zeros(len(x), np.int8), np.arange(len(x)))
    raw = _forward(model, data, batch_size)
    if raw.ndim == 3 and getattr(first_layer(model), "takes_sequences", False):  # (N, T, K): a distribution per step
        _finite_rows(raw)
        return raw if isinstance(last_layer(model), Softmax) else softmax(raw, axis=-1)
    return probabilities(model, _finite_rows(raw))


def predict_values(model: Layer, x: np.ndarray, *, batch_size: Optional[int] = None) -> Array:
    """The model's outputs as they are, in evaluation mode, batch by batch: a regression's predictions.

    ``(N, ...)`` in the model's output shape (images for an autoencoder); uint8 images in are scaled by 1/255.
    """
    x = np.asarray(x)
    return _forward(model, Subset(x, np.zeros(len(x), np.int8), np.arange(len(x))), batch_size)


def regression_scores(pred: Array, target: Array) -> Dict[str, float]:
    """``mse``, ``mae`` and ``r2`` (scikit-learn's ``r2_score``, averaged uniformly over the outputs)."""
    pred, target = pred.reshape(len(pred), -1).astype(np.float64), target.reshape(len(target), -1).astype(np.float64)
    error = pred - target
    total = ((target - target.mean(axis=0)) ** 2).sum(axis=0)
    residual = (error**2).sum(axis=0)
    r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1), np.where(residual > 0, 0.0, 1.0))
    return {"mse": float((error**2).mean()), "mae": float(np.abs(error).mean()), "r2": float(r2.mean())}


def predict(
    model: Layer, x: Union[np.ndarray, Sequence[PathLike]], *, threshold: float = 0.5, batch_size: Optional[int] = None
) -> Array:
    """Predicted class index for each example: ``predict_proba > threshold`` (binary) or the most likely class."""
    p = predict_proba(model, x, batch_size=batch_size)
    return (p > threshold).astype(np.int64) if p.ndim == 1 else p.argmax(axis=-1)


def evaluate(
    model: Layer,
    data: Data,
    loss_fn: Optional[Loss] = None,
    *,
    threshold: float = 0.5,
    batch_size: Optional[int] = None,
    classes: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """Loss and classification metrics of ``model`` on ``data``.

    Args:
        model: The model.
        data: An `ImageDataset`, a `Subset` or ``(x, y)`` as for `fit`.
        loss_fn: The loss to report (default: `BCELoss` after a final `Sigmoid`,
            `BCEWithLogitsLoss` for one raw output, `CrossEntropyLoss` for K outputs). A regression
            loss (`MSELoss`, ...) takes float targets and reports ``loss``, ``mse``, ``mae``, ``r2``, ``n``.
        threshold: For a binary model, the probability above which class 1 is predicted.
        batch_size: Examples per forward pass (default: 256 rows, or 64 images for a convolutional model).
        classes: The class names (default: ``data.classes`` of an `ImageDataset`); the model must
            give an output per class (one for two classes).

    Returns:
        ``loss``, ``accuracy``, ``confusion_matrix`` (rows: true class, columns: predicted, as
        scikit-learn), ``per_class`` (precision, recall, F1, support of each class), their macro
        means and ``n``. For a binary model also ``precision``, ``recall`` and ``f1`` of class 1;
        for K classes those keys hold the macro means.

    Raises:
        ValueError: The labels name more classes than the model has outputs, the model's outputs
            do not match the class names, or its outputs are NaN or infinite.
    """
    if getattr(loss_fn, "task", None) == "regression":  # float targets: mse, mae, r2
        assert loss_fn is not None
        split = as_subset(data, values=True)
        pred = _forward(model, split, batch_size)
        target = loss_fn.targets(split.y[split.indices], pred.dtype)
        return {"loss": float(loss_fn(pred, target)), **regression_scores(pred, target), "n": len(pred)}
    split = as_subset(data)
    if split.y.ndim > 1:  # a label per step
        return _evaluate_steps(model, split, loss_fn, batch_size)
    raw = model_outputs(model, split, batch_size)
    names = classes if classes is not None else getattr(data, "classes", None)
    if names is not None and max(2, raw.shape[1]) != len(names):
        raise ValueError(
            f"the model gives {raw.shape[1]} outputs for {len(names)} classes {list(names)}: metrics over classes "
            "without names would be wrong; use the model with the classes it was trained on"
        )
    count = max(2, raw.shape[1])
    check_labels(split, count)  # a binary model must not count class 2 as positive
    truth = split.labels().astype(np.int64)
    loss_fn = loss_fn or loss_for(model, raw.shape[1])
    scored = raw
    if isinstance(last_layer(model), Softmax) and isinstance(loss_fn, CrossEntropyLoss):
        scored = np.log(np.maximum(raw, np.finfo(raw.dtype).tiny))  # probabilities: CE of log p is -log p[y]
    loss = loss_fn(scored, loss_fn.targets(truth, raw.dtype))
    proba = probabilities(model, raw)
    predicted = (proba > threshold).astype(np.int64) if proba.ndim == 1 else proba.argmax(axis=1)
    scores = {"loss": float(loss), **classification_metrics(truth, predicted, count), "n": len(truth)}
    if proba.ndim == 1:  # the binary figures of class 1, and the matrix as [[tn, fp], [fn, tp]]
        scores.update({k: scores["per_class"][1][k] for k in ("precision", "recall", "f1")})
    else:
        scores.update(precision=scores["macro_precision"], recall=scores["macro_recall"], f1=scores["macro_f1"])
    return scores


def _evaluate_steps(model: Layer, data: Subset, loss_fn: Optional[Loss], batch_size: Optional[int]) -> Dict[str, Any]:
    """`evaluate` for a label per step: scores ``(N, T, K)``, the metrics over the steps that are not padding."""
    raw = _forward(model, data, batch_size)
    truth = data.y[data.indices].astype(np.int64)
    if raw.shape[:2] != truth.shape or raw.ndim != 3:
        raise ValueError(f"labels per step {truth.shape} need scores (N, T, K) per step, the model gave {raw.shape}")
    loss_fn = loss_fn or CrossEntropyLoss()
    loss = float(loss_fn(raw, truth))
    counted = truth != getattr(loss_fn, "ignore_index", -100)
    count = raw.shape[-1]
    scores = classification_metrics(truth[counted], raw.argmax(axis=-1)[counted], count)
    scores.update(precision=scores["macro_precision"], recall=scores["macro_recall"], f1=scores["macro_f1"])
    return {"loss": loss, **scores, "n": int(counted.sum())}
