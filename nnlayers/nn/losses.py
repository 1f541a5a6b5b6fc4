"""Classification losses: `BCELoss` (after a `Sigmoid`), `BCEWithLogitsLoss` (fused, on raw scores),
`CrossEntropyLoss` (K classes, on raw scores) and `NLLLoss` (on log-probabilities). The regression
losses are in `nnlayers.nn.regression`.

``loss_fn(pred, target)`` returns a Python float; ``loss_fn.backward()`` returns ``dL/dpred``,
already divided by the batch size for ``reduction="mean"`` (the seed's ``1/m``). With
``reduction="none"`` the loss of each example comes back as an array, and ``backward(grad)`` gives
the gradient of ``sum(grad * losses)`` (ones by default), as ``losses.backward(grad)`` in PyTorch.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ..utils.types import Array
from .checks import check_float_input
from .functional import log1p_exp, log_softmax, sigmoid
from .layers.activation import Sigmoid
from .module import Layer
from .structure import last_layer

REDUCTIONS = ("mean", "sum", "none")


class Loss:
    """Base class of the losses: ``forward(pred, target) -> float`` and ``backward() -> dL/dpred``.

    `targets` turns a data set's labels into what ``forward`` takes: ``(N, 1)`` floats for the
    binary losses, ``(N,)`` class indices for `CrossEntropyLoss`.
    """

    #: ``"binary"`` (one output, labels 0/1) or ``"classes"`` (K outputs, class indices).
    task = "binary"

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"{type(self).__name__} reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._grad: Optional[Array] = None

    def forward(self, pred: Array, target: Array) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(pred, target)")

    def __call__(self, pred: Array, target: Array) -> float:
        return self.forward(pred, target)

    def targets(self, labels: Array, dtype: np.dtype) -> Array:
        """Data-set labels ``(N,)`` as the targets ``forward`` takes (binary: ``(N, 1)`` of ``dtype``)."""
        return np.asarray(labels).astype(dtype).reshape(-1, 1)

    def total_weight(self, target: Array) -> float:
        """What ``reduction="mean"`` divides by for these targets: their count (a weighted loss: their weights' sum).

        Data-parallel training weights each process's share of a batch by it, so that the shares
        add up to the whole batch's mean.
        """
        return float(len(target))

    def backward(self, grad: Optional[Array] = None) -> Array:
        """The gradient of the last loss with respect to ``pred``, same shape and dtype.

        With ``reduction="none"``: of ``sum(grad * losses)``, ``grad`` one value per loss (ones by default).
        """
        if self._grad is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before forward()")
        if self.reduction != "none" or grad is None:
            return self._grad
        g = np.asarray(grad, dtype=self._grad.dtype)
        return self._grad * g.reshape(g.shape + (1,) * (self._grad.ndim - g.ndim))

    def _check(self, pred: Array, target: Array) -> Tuple[Array, Array]:
        """Validate shapes and values; return ``pred`` and ``target`` as same-shape arrays."""
        name = type(self).__name__
        pred = check_float_input(f"{name} pred", pred)
        target_arr = np.asarray(target)
        if target_arr.dtype.kind not in "biuf":  # bool, ints, floats; not strings, objects, complex
            raise TypeError(f"{name} expected a real numeric target, got dtype {target_arr.dtype}")
        if pred.ndim not in (1, 2) or (pred.ndim == 2 and pred.shape[1] != 1):
            raise ValueError(f"{name} expected pred of shape (N, 1) or (N,), got {pred.shape}")
        n = pred.shape[0]
        if n == 0:
            raise ValueError(f"{name} got an empty batch (pred of shape {pred.shape})")
        if target_arr.shape not in ((n,), (n, 1)):
            raise ValueError(
                f"{name} expected target of shape ({n}, 1) or ({n},) to match pred {pred.shape}, got {target_arr.shape}"
            )
        target_arr = target_arr.astype(pred.dtype, copy=False).reshape(pred.shape)
        if not np.all((target_arr >= 0) & (target_arr <= 1)):
            bad = target_arr[~((target_arr >= 0) & (target_arr <= 1))]
            raise ValueError(f"{name} expected targets in [0, 1], got {float(bad.ravel()[0]):g}")
        return pred, target_arr

    def _reduce(self, per_example: Array, n: int) -> Tuple[Any, float]:
        """The reduced loss (the array of them for ``"none"``) and the scale (``1/m`` for the mean) of its gradient."""
        if self.reduction == "none":
            return per_example, 1.0
        if self.reduction == "mean":
            # divide before summing: a sum of huge (finite) losses could overflow where the mean does not
            return float(np.sum(per_example / n)), 1.0 / n
        return float(per_example.sum()), 1.0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class BCELoss(Loss):
    """Binary cross-entropy on probabilities: ``-[y log p + (1 - y) log(1 - p)]``.

    The seed's ``compute_cost``. ``p`` is clamped to ``[eps, 1 - eps]`` with ``eps`` the
    machine epsilon of its dtype, so a saturated sigmoid (exactly 0 or 1) gives a finite loss and
    gradient (about 16 in float32, 36 in float64, per example) instead of ``inf``/``nan``.

    Args:
        reduction: ``"mean"`` (the seed's ``1/m``), ``"sum"`` or ``"none"``.

    Shape:
        - pred: ``(N, 1)`` or ``(N,)``, values in [0, 1].
        - target: ``(N, 1)`` or ``(N,)``, values in [0, 1].
        - backward(): the shape and dtype of ``pred``.

    Examples:
        >>> loss_fn = BCELoss()
        >>> round(loss_fn(np.array([[0.5], [0.5]]), np.array([1, 0])), 6)
        0.693147
        >>> loss_fn.backward()
        array([[-1.],
               [ 1.]])
    """

    def forward(self, pred: Array, target: Array) -> Any:
        pred, y = self._check(pred, target)
        if np.any((pred < 0) | (pred > 1)):
            raise ValueError(
                f"BCELoss expected predictions in [0, 1] (use BCEWithLogitsLoss for raw scores), got min {pred.min()}, max {pred.max()}"
            )
        eps = np.finfo(pred.dtype).eps
        p = np.clip(pred, eps, 1 - eps)
        # seed: logprobs = log(A2) * Y + log(1 - A2) * (1 - Y);  cost = -1/m sum(logprobs)
        per_example = -(y * np.log(p) + (1 - y) * np.log1p(-p))
        loss, scale = self._reduce(per_example, len(pred))
        # d/dp of the above; with a sigmoid before it the product is the seed's dZ2 = A2 - Y
        self._grad = ((p - y) / (p * (1 - p)) * scale).astype(pred.dtype, copy=False)
        return loss.astype(pred.dtype, copy=False) if self.reduction == "none" else loss


class BCEWithLogitsLoss(Loss):
    """Sigmoid and binary cross-entropy fused, on raw scores ``z`` (logits).

    Computed as ``max(z, 0) - z * y + log(1 + exp(-|z|))``, which never overflows; its
    gradient is exactly ``sigmoid(z) - y`` (the seed's ``dZ2 = A2 - Y``). Prefer it to
    ``Sigmoid`` + `BCELoss` for training; apply `nnlayers.nn.functional.sigmoid` to get probabilities.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        pos_weight: How much a positive example counts (PyTorch's ``pos_weight``: above 1 for rare
            positives), or ``None``.

    Shape:
        - pred: ``(N, 1)`` or ``(N,)``, any real values.
        - target: ``(N, 1)`` or ``(N,)``, values in [0, 1].
        - backward(): the shape and dtype of ``pred``.

    Examples:
        >>> loss_fn = BCEWithLogitsLoss()
        >>> round(loss_fn(np.array([[0.0], [1000.0]]), np.array([[1], [1]])), 6)
        0.346574
        >>> loss_fn.backward()
        array([[-0.25],
               [ 0.  ]])
    """

    def __init__(self, reduction: str = "mean", pos_weight: Optional[Any] = None) -> None:
        super().__init__(reduction)
        self.pos_weight = None if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
        if self.pos_weight is not None and (
            self.pos_weight.ndim > 1 or not np.all(np.isfinite(self.pos_weight)) or (self.pos_weight < 0).any()
        ):
            raise ValueError(f"BCEWithLogitsLoss pos_weight must be a non-negative number, got {pos_weight!r}")

    def forward(self, pred: Array, target: Array) -> Any:
        z, y = self._check(pred, target)
        if self.pos_weight is None:
            per_example = log1p_exp(z) - z * y  # = max(z, 0) - z y + log(1 + exp(-|z|))
            slope = sigmoid(z) - y  # seed: dZ2 = A2 - Y
        else:  # positives count pos_weight times: -[p y log s(z) + (1 - y) log(1 - s(z))]
            weight = 1 + (self.pos_weight - 1) * y
            per_example = (1 - y) * z + weight * log1p_exp(-z)
            slope = (1 - y) - weight * sigmoid(-z)
        loss, scale = self._reduce(per_example, len(z))
        self._grad = (slope * scale).astype(z.dtype, copy=False)
        return loss.astype(z.dtype, copy=False) if self.reduction == "none" else loss

    def __repr__(self) -> str:
        extra = f", pos_weight={self.pos_weight.tolist()}" if self.pos_weight is not None else ""
        return f"{type(self).__name__}(reduction={self.reduction!r}{extra})"


class CrossEntropyLoss(Loss):
    """Softmax and cross-entropy fused, on raw scores ``(N, K)`` and class indices ``(N,)``.

    As ``torch.nn.CrossEntropyLoss``: per example ``-log softmax(z)[y]``; with ``weight``, each
    example counts ``weight[y]`` and the mean divides by the sum of those weights; with
    ``label_smoothing`` ``e``, the target is ``1 - e`` on the class plus ``e / K`` spread over all
    of them; targets equal to ``ignore_index`` (padding) count nowhere, not even in the mean. The
    gradient is ``softmax(z) - onehot(y)`` (scaled likewise), the K-class form of the seed's
    ``dZ2 = A2 - Y``.

    Args:
        weight: A weight per class ``(K,)`` (rarer classes counted more), or ``None``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        label_smoothing: In [0, 1).
        ignore_index: A target value that is skipped (PyTorch's default, -100).

    Shape:
        - pred: ``(N, K)`` raw scores (logits), any real values; or ``(N, T, K)``, a score per step
          and class (the class axis last, as nnlayers keeps channels; PyTorch takes ``(N, K, T)``).
        - target: ``(N,)`` integers in ``[0, K)`` (or ``ignore_index``); ``(N, T)`` for ``(N, T, K)``.
        - backward(): the shape and dtype of ``pred``.

    Examples:
        >>> loss_fn = CrossEntropyLoss()
        >>> round(loss_fn(np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]]), np.array([2, 0])), 4)
        0.5494
        >>> loss_fn.backward().round(3)
        array([[ 0.167,  0.167, -0.333],
               [-0.   ,  0.   ,  0.   ]])
    """

    task = "classes"

    def __init__(
        self,
        weight: Optional[Array] = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        ignore_index: int = -100,
    ) -> None:
        super().__init__(reduction)
        name = type(self).__name__
        self.weight = None if weight is None else np.asarray(weight, dtype=np.float64)
        if self.weight is not None and (
            self.weight.ndim != 1 or not np.all(np.isfinite(self.weight)) or (self.weight < 0).any()
        ):
            raise ValueError(f"{name} weight must be a 1-D array of non-negative numbers, got {weight!r}")
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"{name} label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"{name} ignore_index must be an int, got {ignore_index!r}")
        self.label_smoothing, self.ignore_index = float(label_smoothing), int(ignore_index)

    def targets(self, labels: Array, dtype: np.dtype) -> Array:
        y = np.asarray(labels).astype(np.int64)
        return y if y.ndim > 1 and y.shape[1] != 1 else y.reshape(-1)  # (N, T): a label per step

    def total_weight(self, target: Array) -> float:
        """The sum of the counted targets' class weights (their count without ``weight``)."""
        y = np.asarray(target, dtype=np.int64).reshape(-1)
        y = y[y != self.ignore_index]
        return float(len(y)) if self.weight is None else float(self.weight[y].sum())

    def _log_probs(self, z: Array) -> Array:
        return log_softmax(z)

    def _grad_of(self, log_p: Array, coef: Array) -> Array:
        """d/dz of ``sum(-log_p * coef)``: through the softmax, every class's score moves every log-probability."""
        return np.exp(log_p) * coef.sum(axis=1, keepdims=True) - coef

    def forward(self, pred: Array, target: Array) -> Any:
        name = type(self).__name__
        z = check_float_input(f"{name} pred", pred)
        if z.ndim > 2:  # a label per step: scores (N, T, K) and targets (N, T), the class axis last
            y = np.asarray(target)
            if y.shape != z.shape[:-1]:
                raise ValueError(f"{name} expected targets of shape {z.shape[:-1]} for scores {z.shape}, got {y.shape}")
            loss = self.forward(z.reshape(-1, z.shape[-1]), y.reshape(-1))
            self._grad = self._grad.reshape(z.shape)  # type: ignore[union-attr]
            return loss.reshape(y.shape) if self.reduction == "none" else loss
        if z.ndim != 2 or z.shape[0] == 0:
            raise ValueError(f"{name} expected pred of shape (N, K), got {z.shape}")
        n, k = z.shape
        y = np.asarray(target)
        if y.shape != (n,) or y.dtype.kind not in "iu":
            hint = (
                ": the binary losses' (N, 1) float labels; give y.reshape(-1).astype(int), or "
                "batches(..., loss_fn=CrossEntropyLoss()) which yields them so"
                if y.shape == (n, 1) or y.dtype.kind == "f"
                else ""
            )
            raise ValueError(f"{name} expected integer class indices of shape ({n},), got {y.dtype} {y.shape}{hint}")
        counted = y != self.ignore_index
        if not counted.any() and self.reduction == "mean":
            raise ValueError(f"{name}: every target is ignore_index ({self.ignore_index}); the mean is undefined")
        if counted.any() and (y[counted].min() < 0 or y[counted].max() >= k):
            raise ValueError(
                f"{name} targets must be class indices in [0, {k}), got {int(y[counted].min())}..{int(y[counted].max())}"
            )
        w = np.ones(k) if self.weight is None else self.weight
        if len(w) != k:
            raise ValueError(f"{name} weight has {len(w)} entries for {k} classes")
        safe = np.where(counted, y, 0)
        log_p = self._log_probs(z)
        e = self.label_smoothing
        # coefficient of each -log p[i, c]: (1 - e) w[y_i] on the true class, e / K w[c] on every class
        coef = np.zeros_like(log_p)
        coef[np.arange(n), safe] = (1 - e) * w[safe]
        if e:
            coef += (e / k) * w
        coef[~counted] = 0  # padding counts nowhere
        divisor = float(w[safe[counted]].sum()) if self.reduction == "mean" else 1.0
        if divisor == 0:
            raise ValueError(f"{name}: the weights of every target class are 0")
        self._grad = (self._grad_of(log_p, coef) / divisor).astype(z.dtype, copy=False)
        if self.reduction == "none":
            return np.sum(-log_p * coef, axis=1).astype(z.dtype, copy=False)
        return float(np.sum(-log_p * coef / divisor))

    def __repr__(self) -> str:
        extra = f", label_smoothing={self.label_smoothing}" if self.label_smoothing else ""
        extra += ", weight=[...]" if self.weight is not None else ""
        extra += f", ignore_index={self.ignore_index}" if self.ignore_index != -100 else ""
        return f"{type(self).__name__}(reduction={self.reduction!r}{extra})"


class NLLLoss(CrossEntropyLoss):
    """Negative log-likelihood of log-probabilities ``(N, K)`` (``torch.nn.NLLLoss``): after a `LogSoftmax`.

    ``-log_p[y]`` per example, with `CrossEntropyLoss`'s ``weight``, ``ignore_index`` and
    ``reduction``; ``LogSoftmax`` + ``NLLLoss`` is `CrossEntropyLoss`. The gradient is
    ``-onehot(y)`` (scaled), the softmax's part being `LogSoftmax`'s backward.

    Examples:
        >>> round(NLLLoss()(np.log(np.array([[0.25, 0.75]])), np.array([1])), 4)
        0.2877
    """

    def __init__(self, weight: Optional[Array] = None, reduction: str = "mean", ignore_index: int = -100) -> None:
        super().__init__(weight, reduction, 0.0, ignore_index)

    def _log_probs(self, z: Array) -> Array:
        return z

    def _grad_of(self, log_p: Array, coef: Array) -> Array:
        return -coef


def loss_for(model: Layer, outputs: Optional[int] = None) -> Loss:
    """The loss that trains (and evaluates) ``model``, from what its output is.

    `CrossEntropyLoss` for several outputs (K raw scores); for one output, `BCELoss` after a final
    `Sigmoid` (a probability) and `BCEWithLogitsLoss` otherwise (a raw score).

    Args:
        model: The model.
        outputs: Its number of output columns, where known (e.g. from a forward pass); by default
            the ``out_features`` of its last layer, or 1.

    Examples:
        >>> from nnlayers import Dense, Sequential, Sigmoid
        >>> loss_for(Sequential([Dense(4, 1), Sigmoid()])), loss_for(Sequential([Dense(4, 3)]))
        (BCELoss(reduction='mean'), CrossEntropyLoss(reduction='mean'))
    """
    last = last_layer(model)
    outputs = outputs if outputs is not None else getattr(last, "out_features", 1)
    if outputs > 1:
        return CrossEntropyLoss()
    return BCELoss() if isinstance(last, Sigmoid) else BCEWithLogitsLoss()
