"""A gradient check for layers that take several inputs (recurrent layers' initial states, attention's
key and value and masks): `nnlayers.gradcheck`'s central differences, on every entry of every named input."""

from __future__ import annotations

from typing import Any, Callable, Dict

import numpy as np

from nnlayers.gradcheck import _arrays, _central_difference, _like


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
    projections = [rng.standard_normal(a.shape) for a in _arrays(call(**inputs))]

    def objective() -> float:
        return float(sum(np.sum(r * a) for r, a in zip(projections, _arrays(call(**inputs)))))

    layer.zero_grad()
    out = call(**inputs)
    analytic = dict(input_grads(layer.backward(_like(out, iter(projections)))))
    analytic.update({name: p.grad.copy() for name, p in layer.named_parameters()})
    arrays = dict(inputs)
    arrays.update({name: p.data for name, p in layer.named_parameters()})
    errors = {}
    for name, values in arrays.items():
        if name not in analytic:
            continue
        numeric = np.zeros(values.shape)
        for index in np.ndindex(values.shape):
            numeric[index] = _central_difference(objective, values, index, eps)
        error = np.abs(analytic[name] - numeric) / np.maximum(np.abs(numeric), 1e-3)
        errors[name] = float(error.max()) if error.size else 0.0
    worst = max(errors, key=errors.get)
    assert errors[worst] < tol, f"{worst}: relative error {errors[worst]:.3g} (all: {errors})"
    return errors
