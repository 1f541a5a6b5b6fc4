"""Weight initialisers, chosen by name in ``Dense(..., init=NAME)`` and ``Conv2D(..., init=NAME)``.

Each takes a weight shape (``(out_features, in_features)`` or ``(out_channels, in_channels, kh,
kw)``) and a random generator and returns float64 values; layers cast them to their dtype. Fans
are counted as PyTorch counts them: ``fan_in = in * kh * kw``, ``fan_out = out * kh * kw``.
``"normal"`` is the seed's ``np.random.randn(...) * 0.01``: with
``rng=np.random.RandomState(1)`` it draws exactly the seed's numbers. ``"torch"`` is what
``torch.nn.Linear`` and ``torch.nn.Conv2d`` draw in ``reset_parameters`` (weights and biases
uniform in ``+-1/sqrt(fan_in)``).
"""

from __future__ import annotations

import contextlib
import math
from contextvars import ContextVar
from typing import Callable, Dict, Iterator, Optional, Tuple, Union

import numpy as np

from ..utils.types import RandomSource

Shape = Tuple[int, ...]


Initializer = Callable[[Shape, RandomSource], np.ndarray]


def fans(shape: Shape) -> Tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape, as ``torch.nn.init`` computes them."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def normal(shape: Shape, rng: RandomSource, std: float = 0.01) -> np.ndarray:
    """The seed's ``randn(out, in) * 0.01``: small weights, N(0, std**2)."""
    return rng.standard_normal(shape) * std


def xavier_uniform(shape: Shape, rng: RandomSource) -> np.ndarray:
    """Glorot & Bengio (2010): U(-a, a) with ``a = sqrt(6 / (fan_in + fan_out))``; for tanh/sigmoid."""
    fan_in, fan_out = fans(shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def xavier_normal(shape: Shape, rng: RandomSource) -> np.ndarray:
    """Glorot & Bengio (2010): N(0, 2 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    return rng.standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))


def he_normal(shape: Shape, rng: RandomSource) -> np.ndarray:
    """He et al. (2015): N(0, 2 / fan_in); for ReLU."""
    return rng.standard_normal(shape) * math.sqrt(2.0 / fans(shape)[0])


def he_uniform(shape: Shape, rng: RandomSource) -> np.ndarray:
    """He et al. (2015): U(-a, a) with ``a = sqrt(6 / fan_in)``; for ReLU."""
    limit = math.sqrt(6.0 / fans(shape)[0])
    return rng.uniform(-limit, limit, size=shape)


def torch_default(shape: Shape, rng: RandomSource) -> np.ndarray:
    """PyTorch's ``reset_parameters`` for ``Linear`` and ``Conv2d``: U(-a, a), ``a = 1 / sqrt(fan_in)``.

    (``kaiming_uniform_(a=sqrt(5))``, which works out to this bound.) With this initialiser the
    layers also draw their biases from the same range, as PyTorch does.
    """
    limit = 1.0 / math.sqrt(fans(shape)[0])
    return rng.uniform(-limit, limit, size=shape)


INITIALIZERS: Dict[str, Initializer] = {
    "normal": normal,
    "xavier_uniform": xavier_uniform,
    "glorot_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "glorot_normal": xavier_normal,
    "he_normal": he_normal,
    "kaiming_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_uniform": he_uniform,
    "torch": torch_default,
}


def get_initializer(init: Union[str, Initializer]) -> Initializer:
    """Look an initialiser up by name, or pass a callable ``f(shape, rng) -> array`` through."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except (KeyError, TypeError):
        raise ValueError(f"unknown init {init!r}; expected one of {sorted(INITIALIZERS)} or a callable") from None


class _Unset:
    """While a model file is built: layers get arrays that the file will overwrite, and may claim at most
    ``budget`` values in all (the file's arrays), so a small file cannot make a layer allocate gigabytes."""

    def __init__(self, budget: Optional[int]) -> None:
        self.budget = budget

    def claim(self, shape: Shape) -> None:
        if self.budget is None:
            return
        count = math.prod(shape)
        if count > self.budget:
            raise ValueError(
                f"its weights would take {count:,} values, more than the {self.budget:,} left in the file's arrays"
            )
        self.budget -= count


#: Set while a model file is being loaded. A context variable, so that a load in one thread (a
#: server) never leaves another thread's new layers without weights.
_SKIP_INIT: ContextVar[Optional[_Unset]] = ContextVar("nnlayers_skip_init", default=None)


@contextlib.contextmanager
def weights_left_unset(budget: Optional[int] = None) -> Iterator[None]:
    """Within the block, layers allocate their weights without drawing or writing them (``numpy.empty``).

    Model files use it: the weights are read from the file next, so drawing random numbers
    first would cost time and, for a large layer, memory (PyTorch's ``skip_init`` does the same).
    With ``budget``, the layers built in the block may claim at most that many values in all (a
    `ValueError` otherwise, before anything is allocated). It holds for the calling thread only.
    """
    token = _SKIP_INIT.set(_Unset(budget))
    try:
        yield
    finally:
        _SKIP_INIT.reset(token)


def filled(shape: Union[int, Shape], value: float, dtype: np.dtype) -> np.ndarray:
    """An array of ``value`` (BatchNorm's ones and zeros); unwritten, and counted, while a model file is built."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    unset = _SKIP_INIT.get()
    if unset is not None:
        unset.claim(shape)
        return np.empty(shape, dtype)
    return np.full(shape, value, dtype)


def initial_weights(
    init: Union[str, Initializer], shape: Shape, bias: bool, rng: RandomSource, dtype: np.dtype
) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """A layer's starting weight and bias: biases are zero (as in the seed), except with ``"torch"``."""
    unset = _SKIP_INIT.get()
    if unset is not None:
        unset.claim((math.prod(shape) + (shape[0] if bias else 0),))
        return np.empty(shape, dtype), (np.empty(shape[0], dtype) if bias else None)
    weight = np.asarray(get_initializer(init)(shape, rng), dtype=dtype)
    if not bias:
        return weight, None
    if init == "torch":
        limit = 1.0 / math.sqrt(fans(shape)[0])
        return weight, rng.uniform(-limit, limit, size=shape[0]).astype(dtype)
    return weight, np.zeros(shape[0], dtype)


def drawn(shape: Shape, rng: RandomSource, dtype: np.dtype, *, limit: float = 0.0, std: float = 0.0) -> np.ndarray:
    """Random starting values: uniform in ``+-limit`` (recurrent layers' ``1/sqrt(hidden)``), or N(0, std**2)
    (embeddings); unwritten, and counted, while a model file is built."""
    unset = _SKIP_INIT.get()
    if unset is not None:
        unset.claim(shape)
        return np.empty(shape, dtype)
    values = rng.uniform(-limit, limit, size=shape) if limit else rng.standard_normal(shape) * std
    return np.asarray(values, dtype=dtype)
