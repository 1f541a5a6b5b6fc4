"""What a model's structure says: its first and last leaf layer, and whether it takes images or rows."""

from __future__ import annotations

from .container import Sequential
from .module import Layer


def last_layer(model: Layer) -> Layer:
    """The layer that makes the model's output: the last leaf, inside nested `Sequential` models too."""
    while isinstance(model, Sequential) and len(model):
        model = model[len(model) - 1]
    return model


def flattens_input(model: Layer) -> bool:
    """Whether the model takes flattened rows ``(N, D)`` (a dense first layer) rather than images."""
    first = model
    while isinstance(first, Sequential) and len(first):
        first = first[0]
    return not getattr(first, "takes_images", False)
