"""The one mechanism every explanation uses: a class score's gradient, from the layers' own backward.

`Probe` runs a model in evaluation mode on images, seeds its backward with the chosen class's
score, and hands back the gradient of the input (or of a watched layer's output), without
touching what training relies on: the weights, the parameters' gradients and every layer's mode
are as they were afterwards. Only the forward caches are overwritten, as by any forward pass.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.batching import iter_batches
from ..data.image import load_images
from ..nn.container import Sequential, evaluation_mode
from ..nn.functional import sigmoid, softmax
from ..nn.grad_mode import no_grad
from ..nn.layers.activation import Sigmoid, Softmax
from ..nn.module import Layer
from ..nn.structure import flattens_input, last_layer
from ..training.evaluation import class_table
from ..utils.types import Array, PathLike

#: Images as `explain` takes them: uint8 photos or float inputs ``(N, H, W, C)``, or image files.
Images = Union[np.ndarray, Sequence[PathLike]]
#: The class to explain: ``None`` (each image's predicted class), one class for all, or one per image.
Target = Union[None, int, Sequence[int], np.ndarray]


def as_images(model: Layer, images: Images) -> Array:
    """Float inputs ``(N, H, W, C)`` in the model's dtype: files decoded with ``model.preprocessing``,
    uint8 photos scaled by 1/255 (as `fit` and `predict_proba` do)."""
    if isinstance(images, (list, tuple)) and (not images or isinstance(images[0], (str, os.PathLike))):
        images = load_images(images, getattr(model, "preprocessing", None))
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"explanations take images (N, H, W, C), got an array of shape {x.shape}")
    if len(x) == 0:
        raise ValueError("no images to explain")
    dtype = model.dtype or np.dtype(np.float32)
    (batch, _), *_ = iter_batches(x, np.arange(len(x)), len(x), dtype=dtype, flatten=False)
    return np.array(batch)


def _watched(layer: Layer, record: Dict[str, Array]) -> Dict[str, Callable[..., Any]]:
    """Instance methods that keep ``layer``'s output and the gradient that reaches it."""
    forward, backward, backward_params = layer.forward, layer.backward, layer.backward_params

    def watched_forward(x: Array) -> Array:
        y = forward(x)
        record["activation"] = np.array(y)  # a copy: a layer may reuse its output buffer
        return y

    def watched_backward(grad_y: Array) -> Array:
        record["gradient"] = np.array(grad_y)
        return backward(grad_y)

    def watched_backward_params(grad_y: Array) -> None:
        record["gradient"] = np.array(grad_y)
        backward_params(grad_y)

    return {"forward": watched_forward, "backward": watched_backward, "backward_params": watched_backward_params}


class Probe:
    """A model opened for explanations, as a context manager (see the module's docstring).

    Args:
        model: A trained classifier: one output (binary) or K (classes), raw scores or ending in a
            `Sigmoid` or `Softmax`, whose input the scores are taken before (the logits).
        watch: A layer of the model whose output and output gradient to keep (Grad-CAM's).
    """

    def __init__(self, model: Layer, watch: Optional[Layer] = None) -> None:
        self.model, self.watch = model, watch
        self.record: Dict[str, Array] = {}
        self._kept: List[Tuple[Any, Any, bool]] = []
        self._modes: Any = None
        self._out_shape: Tuple[int, ...] = ()
        self.flattens = flattens_input(model)

    def __enter__(self) -> Probe:
        for p in self.model.parameters():  # gradients go to scratch arrays, the user's stay as they are
            self._kept.append((p, p._grad, p._grad_is_stale))
            p._grad, p._grad_is_stale = np.zeros_like(p.data), False
        self._modes = evaluation_mode(self.model)
        self._modes.__enter__()
        last = last_layer(self.model)
        if isinstance(last, (Sigmoid, Softmax)):  # explain the logits: keep the final squashing's input,
            squash = last.forward  # and let its backward pass the seed on unchanged

            def keep_logits(z: Array) -> Array:
                self.record["logits"] = np.array(z)
                return squash(z)

            last.__dict__.update(forward=keep_logits, backward=lambda grad_y: grad_y)
        if self.watch is not None:
            self.watch.__dict__.update(_watched(self.watch, self.record))
        return self

    def __exit__(self, *exc: Any) -> None:
        for layer in (last_layer(self.model), self.watch):
            for name in ("forward", "backward", "backward_params"):
                if layer is not None:
                    layer.__dict__.pop(name, None)
        self._modes.__exit__(*exc)
        for p, grad, stale in self._kept:
            p._grad, p._grad_is_stale = grad, stale
        self._kept.clear()

    def outputs(self, x: Array) -> Array:
        """The model's scores ``(N, K)`` on images ``(N, H, W, C)``: logits, before a final `Sigmoid` or `Softmax`."""
        out = np.asarray(self.model(x.reshape(len(x), -1) if self.flattens else x))
        out = self.record.pop("logits", out)
        self._out_shape = out.shape  # the backward's seed takes it
        return out.reshape(len(x), -1)

    def targets(self, raw: Array, target: Target) -> np.ndarray:
        """One class per image: the predicted ones, or those asked for (checked against the outputs)."""
        classes = 2 if raw.shape[1] == 1 else raw.shape[1]
        if target is None:  # the predicted class: a positive logit, or the largest
            return (raw[:, 0] > 0).astype(np.int64) if raw.shape[1] == 1 else raw.argmax(axis=1)
        chosen = np.broadcast_to(np.asarray(target), (len(raw),)).astype(np.int64)
        if ((chosen < 0) | (chosen >= classes)).any():
            raise ValueError(f"target class must be in 0..{classes - 1} for this {classes}-class model, got {target}")
        return chosen

    def probabilities(self, raw: Array) -> Array:
        """Scores from `outputs` as class probabilities ``(N, K)`` (two columns for one output)."""
        return class_table(sigmoid(raw[:, 0]) if raw.shape[1] == 1 else softmax(raw, axis=1))

    @staticmethod
    def scores(raw: Array, classes: np.ndarray) -> np.ndarray:
        """Each image's score of its class, the number `score_gradient` differentiates."""
        if raw.shape[1] == 1:
            return np.where(classes == 1, raw[:, 0], -raw[:, 0])
        return raw[np.arange(len(raw)), classes]

    def score_gradient(self, x: Array, target: Target, input_grad: bool = True) -> Tuple[Optional[Array], np.ndarray]:
        """The gradient of each image's class score with respect to the image, and the classes.

        The score is the logit of the class: ``z`` for class 1 of a binary model and ``-z`` for class 0
        (pytorch-grad-cam's ``BinaryClassifierOutputTarget``), the class's raw output for K classes.
        """
        raw = self.outputs(x)
        chosen = self.targets(raw, target)
        seed = np.zeros_like(raw)
        if raw.shape[1] == 1:
            seed[:, 0] = np.where(chosen == 1, 1.0, -1.0)
        else:
            seed[np.arange(len(raw)), chosen] = 1.0
        seed = seed.reshape(self._out_shape)
        if isinstance(self.model, Sequential):
            grad = self.model.backward(seed, input_grad=input_grad)
        else:
            grad = self.model.backward(seed)
        return (None if grad is None or not input_grad else np.asarray(grad).reshape(x.shape)), chosen


def batched(count: int, batch_size: int) -> Iterator[slice]:
    """Slices of ``range(count)`` of at most ``batch_size``."""
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))


def targets_of(target: Target, rows: slice) -> Target:
    """The targets of the images in ``rows``: one per image sliced, one for all kept."""
    return target if target is None or np.ndim(target) == 0 else np.asarray(target)[rows]


def classified(model: Layer, x: Array, target: Target = None, batch_size: int = 32) -> Tuple[Array, np.ndarray]:
    """``(class probabilities (N, K), the class to explain of each image (N,))``, batch by batch."""
    tables, classes = [], []
    with Probe(model) as probe, no_grad():  # predictions only: nothing kept for a backward
        for rows in batched(len(x), batch_size):
            raw = probe.outputs(x[rows])
            tables.append(probe.probabilities(raw))
            classes.append(probe.targets(raw, targets_of(target, rows)))
    return np.concatenate(tables), np.concatenate(classes)
