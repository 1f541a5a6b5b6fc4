"""What a model's structure says: its first and last leaf layer, whether it takes images or rows, and
which of its layers draw random numbers."""

from __future__ import annotations

from typing import Any, Iterator, Tuple

import numpy as np

from .container import Sequential
from .module import Layer


def last_layer(model: Layer) -> Layer:
    """The layer that makes the model's output: the last leaf, inside nested `Sequential` models too."""
    while isinstance(model, Sequential) and len(model):
        model = model[len(model) - 1]
    return model


def leaves(model: Layer) -> Iterator[Layer]:
    """The layers without sub-layers, in the order they were registered (for a `Sequential`, its order)."""
    for _, layer in model.named_modules():
        if next(layer.named_children(), None) is None:
            yield layer


def first_layer(model: Layer) -> Layer:
    """The first leaf layer that is not element-wise (the one that decides the input's form), or the first leaf."""
    first_leaf = None
    for _, layer in model.named_modules():  # a parent comes before its children
        if getattr(layer, "takes_sequences", False):
            return layer  # a sequence layer decides for the sub-layers inside it (attention's out_proj)
        if next(layer.named_children(), None) is None:
            first_leaf = first_leaf or layer
            if getattr(layer, "takes_images", False) is not None:
                return layer
    assert first_leaf is not None
    return first_leaf


def flattens_input(model: Layer) -> bool:
    """Whether the model takes flattened rows ``(N, D)`` rather than images ``(N, H, W, C)``.

    The first layer that is not element-wise decides (`Layer.takes_images`): a `Dropout` or an
    activation before a `Conv2D` takes images too. A model of element-wise layers only takes rows. A
    model that starts with a sequence layer (`Layer.takes_sequences`) takes its inputs as they are.
    """
    first = first_layer(model)
    return not (getattr(first, "takes_images", False) or getattr(first, "takes_sequences", False))


def random_generators(model: Layer) -> Iterator[Tuple[str, Any]]:
    """``(name, generator)`` of each layer that draws random numbers in training (a `Dropout`'s ``rng``)."""
    for name, layer in model.named_modules():
        rng = getattr(layer, "rng", None)
        if isinstance(rng, (np.random.Generator, np.random.RandomState)):
            yield name, rng
