"""Argument checks that name the argument and the value received, and random sources."""

from __future__ import annotations

from typing import Any, Union

import numpy as np

from .types import RandomSource


def is_int(value: Any) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A finite Python or numpy number, not a bool."""
    return (
        isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and np.isfinite(value)
    )


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int, or raise a `ValueError` that names the argument."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def check_number(name: str, value: Any, low: float = 0.0, *, inclusive: bool = True, high: float = np.inf) -> float:
    """Return ``value`` as a float in ``[low, high]`` (``(low, high]`` without ``inclusive``), or raise."""
    ok = is_real(value) and (value >= low if inclusive else value > low) and value <= high
    if not ok:
        if np.isfinite(high):
            bound = f"in {'[' if inclusive else '('}{low:g}, {high:g}]"
        else:
            bound = f"{'>=' if inclusive else '>'} {low:g}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def make_rng(rng: Union[None, int, RandomSource]) -> RandomSource:
    """Turn ``None``, an int seed, a ``Generator`` or a ``RandomState`` into a random source."""
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")
