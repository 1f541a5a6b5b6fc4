"""A gradient check for layers that take several inputs or give several outputs (recurrent layers'
initial states, attention's key and value and masks): central differences on every entry."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

import numpy as np


def output_arrays(output: Any) -> List[np.ndarray]:
    if isinstance(output, tuple):
        return [a for part in output if part is not None for a in output_arrays(part)]
    return [np.asarray(output)]


def shaped_like(output: Any, values: List[np.ndarray]) -> Any:
    """``values`` nested as ``output`` is: the gradient a layer's backward takes for it."""
    pending = iter(values)

    def build(part: Any) -> Any:
        if isinstance(part, tuple):
            return tuple(None if p is None else build(p) for p in part)
        return next(pending)

    return build(output)


def check_gradients(
    layer: Any,
    call: Callable[..., Any],
    inputs: Dict[str, np.ndarray],
    input_grads: Callable[[Any], Dict[str, np.ndarray]],
    *,
    eps: float = 1e-6,
    tol: float = 1e-5,
    seed: int = 0,
) -> Dict[str, float]:
    """Check ``layer.backward`` against central differences of ``sum(r * call(**inputs))``.

    ``input_grads(returned)`` maps what ``backward`` returned (and the layer's state) to the
    analytic gradient of each name in ``inputs``; every parameter is checked too. Returns the worst
    relative error per array, and fails if one is above ``tol``.
    """
    rng = np.random.default_rng(seed)
    projections = [rng.standard_normal(a.shape) for a in output_arrays(call(**inputs))]

    def objective() -> float:
        return float(sum(np.sum(r * a) for r, a in zip(projections, output_arrays(call(**inputs)))))

    layer.zero_grad()
    out = call(**inputs)
    analytic = dict(input_grads(layer.backward(shaped_like(out, projections))))
    analytic.update({name: p.grad.copy() for name, p in layer.named_parameters()})
    arrays = dict(inputs)
    arrays.update({name: p.data for name, p in layer.named_parameters()})
    errors = {}
    for name, values in arrays.items():
        if name not in analytic:
            continue
        numeric = np.zeros(values.shape)
        for index in np.ndindex(values.shape):
            old = values[index]
            values[index] = old + eps
            plus = objective()
            values[index] = old - eps
            minus = objective()
            values[index] = old
            numeric[index] = (plus - minus) / (2 * eps)
        error = np.abs(analytic[name] - numeric) / np.maximum(np.abs(numeric), 1e-3)
        errors[name] = float(error.max()) if error.size else 0.0
    worst = max(errors, key=errors.get)
    assert errors[worst] < tol, f"{worst}: relative error {errors[worst]:.3g} (all: {errors})"
    return errors
