"""The forms of data that `fit` and `evaluate` take (a dataset, a subset, or ``(x, y)``), checked and turned into a `Subset`."""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np

from .dataset import ImageDataset
from .splits import Subset, split_indices

#: What `fit` and `evaluate` take as data: an `ImageDataset`, a `Subset`, or ``(x, y)`` with ``x``
#: uint8 images ``(N, H, W, 3)`` (scaled by 1/255 batch by batch) or float features, ``y`` labels.
Data = Union[ImageDataset, Subset, Tuple[np.ndarray, np.ndarray]]


def as_subset(data: Data, name: str = "data", values: bool = False) -> Subset:
    """Any accepted form of data as a `Subset`, checked: matching lengths, not empty, integer labels >= 0
    (with ``values``, the float targets of a regression, of any shape per example, finite)."""
    if isinstance(data, Subset):
        return data
    if isinstance(data, ImageDataset):
        return Subset(data.images, data.labels, np.arange(len(data.labels)))
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be an ImageDataset or a tuple (x, y) (or a Subset), got {type(data).__name__}")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if values:
        if len(x) != len(y) or len(x) == 0 or y.dtype.kind not in "biuf":
            raise ValueError(
                f"{name}: expected x (N, ...) and numeric targets (N, ...), got {x.shape} and {y.dtype} {y.shape}"
            )
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError(f"{name}: the targets hold NaN or infinity")
        return Subset(x, y, np.arange(len(y)))
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim == 2 and len(x) == len(y) and len(y) and y.dtype.kind in "iu":
        return Subset(x, y, np.arange(len(y)))  # a label per step (N, T); negative ones (ignore_index) are padding
    if y.ndim != 1 or len(x) != len(y):
        raise ValueError(
            f"{name}: expected x of shape (N, ...) and labels of shape (N,) or (N, 1) (or integer (N, T), a label per "
            f"step), got {x.shape} and {y.shape}"
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


def training_split(
    train_data: Data, validation: Union[None, float, Data], seed: int, values: bool = False
) -> Tuple[Subset, Optional[Subset]]:
    """The examples `fit` trains on and those it validates on (a fraction is split off, stratified by
    class; at random for the float targets of a regression, ``values``)."""
    train = as_subset(train_data, "train_data", values)
    if validation is None:
        return train, None
    if isinstance(validation, float):
        per_step = train.y.ndim > 1 and not values  # a label per step: no class to stratify by
        strata = np.zeros(len(train), np.int8) if values or per_step else train.labels()
        train_idx, val_idx = split_indices(strata, validation, seed)
        return Subset(train.x, train.y, train.indices[train_idx]), Subset(train.x, train.y, train.indices[val_idx])
    return train, as_subset(validation, "validation", values)
