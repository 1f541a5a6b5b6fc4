"""`gradcheck`: compare a layer's ``backward`` with central differences, in float64.

The tool to run on every layer you write: if ``backward`` has a wrong sign, a missing term or a
transposed product, the numbers disagree and `gradcheck` says where.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from .nn.container import Sequential
from .nn.layers.embedding import Embedding
from .nn.losses import Loss
from .nn.module import Layer
from .nn.structure import first_layer
from .utils.types import Array


class GradcheckError(AssertionError):
    """Raised by `gradcheck` when an analytic gradient disagrees with the numerical one."""


@dataclass
class GradcheckResult:
    """What `gradcheck` found.

    Attributes:
        passed: Every checked entry satisfied ``|analytic - numeric| <= atol + rtol * |numeric|``.
        max_rel_error: ``|analytic - numeric| / max(|numeric|, atol)`` at the worst entry.
        worst: Where that entry is, e.g. ``"0.weight[3, 17]"`` or ``"input[0, 2]"``.
        analytic: The gradient ``backward`` gave there.
        numeric: The central-difference estimate there.
        errors: The largest relative error for each checked array, by name.
    """

    passed: bool
    max_rel_error: float
    worst: str
    analytic: float
    numeric: float
    errors: Dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"gradcheck {verdict}: worst relative error {self.max_rel_error:.3g} at {self.worst} "
            f"(backward gave {self.analytic:.8g}, central differences {self.numeric:.8g})"
        )


def gradcheck(
    layer: Union[Layer, Loss],
    x: ArrayLike,
    target: Optional[ArrayLike] = None,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    max_checks: Optional[int] = None,
    seed: int = 0,
    raise_exception: bool = True,
) -> GradcheckResult:
    """Check ``backward`` of a layer, a model or a loss against central differences.

    Works on a float64 deep copy of ``layer``, so the original is untouched. For a layer (or a
    `Sequential` model) the scalar checked is ``sum(r * layer(x))`` for a fixed random ``r``,
    whose gradient is ``layer.backward(r)``; for a loss it is ``loss(x, target)`` itself. Every
    entry of the input and of each parameter is perturbed by ``+-eps``.

    Args:
        layer: A `Layer` (built-in or your subclass), a `Sequential`, or a `Loss`.
        x: An input batch (for a loss: the predictions). Avoid points where the function has a
            kink (``ReLU`` at exactly 0).
        target: The targets, for a loss.
        eps: Step of the central differences.
        atol: Absolute tolerance.
        rtol: Relative tolerance.
        max_checks: Check at most this many randomly chosen entries per array (``None``: all).
        seed: Seed of the random projection and the sampled entries.
        raise_exception: Raise `GradcheckError` on failure (otherwise return the result).

    Returns:
        A `GradcheckResult`.

    Raises:
        GradcheckError: When a gradient disagrees and ``raise_exception`` is true.

    Examples:
        >>> from nnlayers import Dense, Tanh, Sequential
        >>> model = Sequential([Dense(3, 4, rng=0), Tanh(), Dense(4, 2, rng=1)])
        >>> gradcheck(model, np.random.default_rng(0).normal(size=(5, 3))).passed
        True
    """
    rng = np.random.default_rng(seed)
    x_in = np.asarray(x)
    if x_in.dtype.kind not in "biuf":
        raise TypeError(f"gradcheck expected a real numeric input, got dtype {x_in.dtype}")
    ids = isinstance(layer, Layer) and isinstance(first_layer(layer), Embedding)  # integer ids: no input gradient
    x = np.array(x_in, dtype=np.int64 if ids else np.float64)
    if not np.isfinite(x).all():
        raise ValueError("gradcheck needs a finite input: x contains NaN or Inf")
    if isinstance(layer, Loss):
        if target is None:
            raise ValueError("gradcheck of a loss needs the target")
        loss_fn = copy.deepcopy(layer)
        y_true = np.asarray(target)  # class indices stay integers
        y_true = y_true if y_true.dtype.kind in "iu" else y_true.astype(np.float64)

        def objective() -> float:
            return float(loss_fn(x, y_true))

        objective()
        checked: List[Tuple[str, Array, Array]] = [("input", x, loss_fn.backward().copy())]
    elif isinstance(layer, Layer):
        model = copy.deepcopy(layer).to(np.float64)
        first, second = _arrays(model(x)), _arrays(model(x))
        if not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(first, second)):
            worst = max(float(np.nanmax(np.abs(a - b), initial=0.0)) for a, b in zip(first, second))
            raise GradcheckError(
                f"gradcheck: the forward pass is not deterministic: two calls on the same input differ (by up to "
                f"{worst:.3g}), so no finite difference can check it. A random layer such "
                "as Dropout: check it in evaluation mode (layer.eval()), or with its randomness fixed"
            )
        projections = [
            rng.standard_normal(np.shape(a)) for a in first
        ]  # one per output (a recurrent layer: and its state)

        def objective() -> float:
            return float(sum(np.sum(r * a) for r, a in zip(projections, _arrays(model(x)))))

        model.zero_grad()  # (the second forward call above left what backward needs)
        grad_y = _like(model(x), iter(projections))
        # a top-level model skips its input gradient unless asked (see Sequential.backward)
        if isinstance(model, Sequential):
            grad_x = model.backward(grad_y, input_grad=not ids)
        else:
            grad_x = model.backward(grad_y)
        checked = [] if ids else [("input", x, np.array(grad_x, dtype=np.float64))]
        checked += [(name, p.data, p.grad.copy()) for name, p in model.named_parameters()]
    else:
        raise TypeError(f"gradcheck expected a Layer or a Loss, got {type(layer).__name__}")

    best: Tuple[float, str, float, float, float] = (-1.0, "nothing", 0.0, 0.0, 0.0)
    errors: Dict[str, float] = {}
    for name, values, analytic in checked:
        if analytic.shape != values.shape:
            raise GradcheckError(
                f"gradcheck: the gradient of {name} has shape {analytic.shape}, expected {values.shape}"
            )
        errors[name] = 0.0
        for index in _entries(values.shape, max_checks, rng):
            numeric = _central_difference(objective, values, index, eps)
            a = float(analytic[index])
            diff = abs(a - numeric)
            rel = diff / max(abs(numeric), atol)
            errors[name] = max(errors[name], rel)
            ratio = diff / (atol + rtol * abs(numeric))
            if not math.isfinite(ratio):  # NaN or Inf in either gradient is a failure, never a pass
                ratio = math.inf
            if ratio > best[0]:
                where = f"{name}[{', '.join(map(str, index))}]"
                best = (ratio, where, rel, a, numeric)
    ratio, where, rel, a, numeric = best
    result = GradcheckResult(ratio <= 1.0, rel, where, a, numeric, errors)
    if not result.passed and raise_exception:
        raise GradcheckError(str(result))
    return result


def _arrays(output: Any) -> List[Array]:
    """The arrays of a layer's output: itself, or those of a tuple such as a recurrent layer's ``(output, (h_n, c_n))``."""
    if isinstance(output, tuple):
        return [a for part in output if part is not None for a in _arrays(part)]
    return [np.array(output, dtype=np.float64)]


def _like(output: Any, values: Iterator[Array]) -> Any:
    """``values`` in the nesting of ``output``: the gradient `backward` takes for it."""
    if isinstance(output, tuple):
        return tuple(None if part is None else _like(part, values) for part in output)
    return next(values)


def _entries(shape: Tuple[int, ...], max_checks: Optional[int], rng: np.random.Generator) -> List[Tuple[int, ...]]:
    size = int(np.prod(shape))
    flat = np.arange(size) if max_checks is None or max_checks >= size else rng.choice(size, max_checks, replace=False)
    return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in flat]


def _central_difference(objective: Callable[[], float], values: Array, index: Tuple[int, ...], eps: float) -> float:
    old = values[index]
    values[index] = old + eps
    plus = objective()
    values[index] = old - eps
    minus = objective()
    values[index] = old
    return (plus - minus) / (2 * eps)
