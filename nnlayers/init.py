"""Weight initialisers, chosen by name in ``Dense(..., init=NAME)``.

Each takes a shape ``(out_features, in_features)`` and a random generator and returns float64
values; `Dense` casts them to its dtype. ``"normal"`` is the seed's ``np.random.randn(...) *
0.01``: with ``rng=np.random.RandomState(1)`` it draws exactly the seed's numbers.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Tuple, Union

import numpy as np

Shape = Tuple[int, int]
RandomSource = Union[np.random.Generator, np.random.RandomState]
Initializer = Callable[[Shape, RandomSource], np.ndarray]


def make_rng(rng: Union[None, int, RandomSource]) -> RandomSource:
    """Turn ``None``, an int seed, a ``Generator`` or a ``RandomState`` into a random source."""
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def normal(shape: Shape, rng: RandomSource, std: float = 0.01) -> np.ndarray:
    """The seed's ``randn(out, in) * 0.01``: small weights, N(0, std**2)."""
    return rng.standard_normal(shape) * std


def xavier_uniform(shape: Shape, rng: RandomSource) -> np.ndarray:
    """Glorot & Bengio (2010): U(-a, a) with ``a = sqrt(6 / (fan_in + fan_out))``; for tanh/sigmoid."""
    fan_out, fan_in = shape
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def xavier_normal(shape: Shape, rng: RandomSource) -> np.ndarray:
    """Glorot & Bengio (2010): N(0, 2 / (fan_in + fan_out))."""
    fan_out, fan_in = shape
    return rng.standard_normal(shape) * math.sqrt(2.0 / (fan_in + fan_out))


def he_normal(shape: Shape, rng: RandomSource) -> np.ndarray:
    """He et al. (2015): N(0, 2 / fan_in); for ReLU."""
    fan_in = shape[1]
    return rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)


def he_uniform(shape: Shape, rng: RandomSource) -> np.ndarray:
    """He et al. (2015): U(-a, a) with ``a = sqrt(6 / fan_in)``; for ReLU."""
    limit = math.sqrt(6.0 / shape[1])
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
}


def get_initializer(init: Union[str, Initializer]) -> Initializer:
    """Look an initialiser up by name, or pass a callable ``f(shape, rng) -> array`` through."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except (KeyError, TypeError):
        raise ValueError(f"unknown init {init!r}; expected one of {sorted(INITIALIZERS)} or a callable") from None
