"""Pure array math shared by layers and losses (as ``torch.nn.functional``): no state, no caches.

Layers are thin objects over these functions: they call them in ``forward``, keep what
``backward`` needs, and apply the matching derivative.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray


def sigmoid(z: Array) -> Array:
    """Numerically stable logistic function ``1 / (1 + exp(-z))``.

    ``exp`` only ever sees ``-|z|``, so it cannot overflow: inputs of +-1000 give exactly 1 and 0
    without a warning.

    Examples:
        >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
        array([0. , 0.5, 1. ])
    """
    e = np.exp(-np.abs(z))  # in (0, 1]
    r = 1 / (1 + e)
    return np.where(z >= 0, r, e * r)


def log1p_exp(z: Array) -> Array:
    """``log(1 + exp(z))`` (softplus) without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
