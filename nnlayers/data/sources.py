"""The forms of data that `fit` and `evaluate` take (a dataset, a subset, or ``(x, y)``), checked and turned into a `Subset`."""

from __future__ import annotations

from typing import Tuple, Union

import numpy as np

from .dataset import ImageDataset
from .splits import Subset

#: What `fit` and `evaluate` take as data: an `ImageDataset`, a `Subset`, or ``(x, y)`` with ``x``
#: uint8 images ``(N, H, W, 3)`` (scaled by 1/255 batch by batch) or float features, ``y`` labels.
Data = Union[ImageDataset, Subset, Tuple[np.ndarray, np.ndarray]]


def as_subset(data: Data, name: str = "data") -> Subset:
    """Any accepted form of data as a `Subset`, checked: matching lengths, not empty, integer labels >= 0."""
    if isinstance(data, Subset):
        return data
    if isinstance(data, ImageDataset):
        return Subset(data.images, data.labels, np.arange(len(data.labels)))
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be an ImageDataset or a tuple (x, y) (or a Subset), got {type(data).__name__}")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or len(x) != len(y):
        raise ValueError(
            f"{name}: expected x of shape (N, ...) and labels of shape (N,) or (N, 1), got {x.shape} and {y.shape}"
        )
    if len(x) == 0:
        raise ValueError(f"{name} is empty")
    if y.dtype.kind not in "biuf":
        raise ValueError(f"{name}: labels must be class indices 0, 1, ..., got dtype {y.dtype}")
    bad = y[~(np.isfinite(y) & (y >= 0) & (y == np.round(y)))] if y.dtype.kind == "f" else y[y < 0]
    if len(bad):
        raise ValueError(f"{name}: labels must be class indices 0, 1, ..., got {np.unique(bad)[:5].tolist()}")
    return Subset(x, y, np.arange(len(y)))


def check_labels(data: Subset, classes: int, name: str = "data") -> None:
    """Refuse labels outside ``0 .. classes - 1``, naming them (a binary model takes 0 and 1)."""
    labels = data.labels()
    bad = labels[labels >= classes]
    if len(bad):
        allowed = "0 or 1" if classes == 2 else f"class indices in [0, {classes})"
        raise ValueError(f"{name}: labels must be {allowed}, got {np.unique(bad)[:5].tolist()}")
