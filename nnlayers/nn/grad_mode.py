"""`no_grad`: forward passes that keep nothing for a backward (``torch.no_grad``), as predictions need.

Inside, a layer's `save_for_backward` keeps nothing (the activations are freed as soon as the next
layer has them), and in evaluation mode a convolution with the batch norm after it runs as one
pass (`nnlayers.nn.fusion`). The setting belongs to the thread, as PyTorch's does.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Callable, Optional, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

_state = threading.local()


def is_grad_enabled() -> bool:
    """``False`` inside `no_grad` (on this thread), else ``True``."""
    return getattr(_state, "enabled", True)


class set_grad_enabled:
    """Turn keeping activations for backward on or off, as a context manager or a decorator.

    Examples:
        >>> with set_grad_enabled(False):
        ...     is_grad_enabled()
        False
        >>> is_grad_enabled()
        True
    """

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self._before: Optional[bool] = None

    def __enter__(self) -> None:
        self._before = is_grad_enabled()
        _state.enabled = self.mode

    def __exit__(self, *exc: Any) -> None:
        _state.enabled = self._before

    def __call__(self, function: F) -> F:
        @functools.wraps(function)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(self.mode):
                return function(*args, **kwargs)

        return cast(F, wrapped)


class no_grad(set_grad_enabled):
    """Forward passes that keep nothing for backward: for predictions (``torch.no_grad``).

    Less memory (each layer's activations are freed once the next layer has them) and, in
    evaluation mode, faster convolutional networks: a `Conv2D` followed by a `BatchNorm2D` (and a
    `ReLU`, or a residual sum and a `ReLU` in a `BasicBlock`) runs as one pass, the batch norm
    folded into the convolution's weights. `predict`, `evaluate` and the web service run under it.
    A ``backward`` after a forward inside it raises an error. Use it as ``with no_grad():`` or as a
    decorator, ``@no_grad()``.

    Examples:
        >>> import numpy as np
        >>> from nnlayers import Dense
        >>> layer = Dense(2, 1, rng=0)
        >>> with no_grad():
        ...     y = layer(np.ones((1, 2), np.float32))
        >>> layer.backward(np.ones_like(y))
        Traceback (most recent call last):
        ...
        RuntimeError: Dense.backward() called after a forward inside nnlayers.no_grad(), which keeps nothing for backward
    """

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Keep activations for backward again inside a `no_grad` block (``torch.enable_grad``)."""

    def __init__(self) -> None:
        super().__init__(True)
