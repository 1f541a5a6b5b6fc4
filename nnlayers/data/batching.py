"""Splits and mini-batches: the one batch loop that `fit`, `evaluate`, `predict` and users share.

uint8 images stay uint8 in memory and become float one batch at a time (the seed's ``/255``),
flattened to rows for a dense model or kept ``(B, H, W, C)`` for a convolutional one.
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple, Union

import numpy as np
from numpy.typing import DTypeLike

from ..nn.losses import Loss
from ..utils.checks import check_positive_int, make_rng
from ..utils.types import RandomSource

#: ``k / 255`` for every byte value, per dtype: converting a batch is then one table lookup.
_SCALED: Dict[np.dtype, np.ndarray] = {np.dtype(t): np.arange(256, dtype=t) / t(255) for t in (np.float32, np.float64)}


def to_inputs(
    images: np.ndarray, dtype: DTypeLike = np.float32, out: Optional[np.ndarray] = None, *, flatten: bool = True
) -> np.ndarray:
    """uint8 images ``(B, H, W, C)`` to network inputs in [0, 1] (the seed's ``/255``).

    Args:
        images: uint8 array.
        dtype: Floating dtype of the result.
        out: A buffer of at least ``B`` rows to write into (training loops reuse one, which
            spares allocating, and page-faulting, a fresh array every batch).
        flatten: ``(B, H*W*C)`` rows for a dense model (default), or keep ``(B, H, W, C)`` for a
            convolutional one.
    """
    rows = images.reshape(len(images), int(np.prod(images.shape[1:])))
    shape = rows.shape if flatten else images.shape
    out = np.empty(shape, dtype) if out is None else out[: len(rows)].reshape(shape)
    flat_out = out.reshape(rows.shape)
    lut = _SCALED.get(out.dtype)
    if lut is not None and rows.flags.c_contiguous and rows.size:
        import cv2  # loaded at the first batch of images, not with the package

        cv2.LUT(rows, lut, dst=flat_out)  # one SIMD pass through a 256-entry table: the exact k / 255
    else:
        np.divide(rows, out.dtype.type(255), out=flat_out)
    return out


def as_inputs(
    x: np.ndarray, dtype: DTypeLike = np.float32, out: Optional[np.ndarray] = None, *, flatten: bool = True
) -> np.ndarray:
    """Network inputs: uint8 images are scaled by 1/255 (`to_inputs`), floats only cast (and flattened),
    other integers (the token ids of an `Embedding`) kept as they are."""
    if x.dtype == np.uint8:
        return to_inputs(x, dtype, out, flatten=flatten)
    if x.dtype.kind in "iu":
        return np.ascontiguousarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"expected uint8 images or floating-point inputs, got dtype {x.dtype}")
    return np.asarray(x.reshape(len(x), -1) if flatten else x, dtype=dtype)


def iter_batches(
    x: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    *,
    dtype: DTypeLike = np.float32,
    flatten: bool = True,
    reuse_buffer: bool = False,
    contiguous: bool = False,
    shard: Optional[Tuple[int, int]] = None,
) -> Iterator[Tuple[np.ndarray, Union[slice, np.ndarray]]]:
    """The one batch loop: ``(inputs, chosen)`` per batch, ``chosen`` indexing the examples.

    With ``reuse_buffer`` every batch is written into the same array (the caller must use each
    batch before asking for the next); with ``contiguous`` (``order`` is ``0..N-1``) batches are
    slices, without a gather. With ``shard=(rank, size)`` each batch of ``batch_size`` keeps only
    every ``size``-th example from ``rank`` (data-parallel training; the part may be empty).
    """
    feature_shape = (int(np.prod(x.shape[1:])),) if flatten else tuple(x.shape[1:])
    buffer = np.empty((min(batch_size, len(order)), *feature_shape), dtype) if reuse_buffer else None
    as_slices = contiguous and shard is None  # a view of x, no gather
    for start in range(0, len(order), batch_size):
        picked = order[start : start + batch_size]
        if shard is not None:
            picked = picked[shard[0] :: shard[1]]
        chosen: Union[slice, np.ndarray] = slice(start, start + len(picked)) if as_slices else picked
        yield as_inputs(x[chosen], dtype, buffer, flatten=flatten), chosen


def batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    rng: Union[None, int, RandomSource] = None,
    *,
    indices: Optional[np.ndarray] = None,
    drop_last: bool = False,
    flatten: bool = True,
    dtype: DTypeLike = np.float32,
    loss_fn: Optional[Loss] = None,
) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Yield mini-batches ``(x, y)``: float32 ``(B, H*W*3)`` in [0, 1] and float32 ``(B, 1)``.

    The labels come as the tutorial's binary losses take them, float ``(B, 1)``; with
    ``loss_fn`` they come as that loss takes them (`CrossEntropyLoss`: int64 class indices
    ``(B,)``), as `fit` gives them.

    Only one batch is converted to float at a time; the uint8 set stays as it is. Float inputs
    are flattened and cast to float32 but not scaled. Each batch is a new array, so batches can
    be kept.

    Args:
        images: uint8 array ``(N, H, W, 3)`` (or already-flat ``(N, D)``).
        labels: int array ``(N,)``.
        batch_size: Examples per batch (the last one may be smaller unless ``drop_last``).
        shuffle: Visit the examples in a random order (seeded by ``rng``).
        rng: An int seed or a ``numpy.random.Generator``; the same seed gives the same order.
        indices: Visit only these examples (a split), without copying the images.
        drop_last: Leave out a last, smaller batch.
        flatten: Rows ``(B, H*W*3)`` for a dense model (default), or ``(B, H, W, 3)`` for a
            convolutional one.
        dtype: Floating dtype of the inputs.
        loss_fn: The loss the batches are for; its ``targets`` method shapes the labels.

    Examples:
        >>> imgs = np.zeros((5, 2, 2, 3), np.uint8); imgs[0] = 255
        >>> [(x.shape, y.shape) for x, y in batches(imgs, np.arange(5) % 2, 2, shuffle=False)]
        [((2, 12), (2, 1)), ((2, 12), (2, 1)), ((1, 12), (1, 1))]
        >>> next(batches(imgs, np.arange(5) % 2, 2, shuffle=False))[0].max()
        np.float32(1.0)
        >>> from nnlayers import CrossEntropyLoss
        >>> next(batches(imgs, np.arange(5) % 3, 2, shuffle=False, loss_fn=CrossEntropyLoss()))[1]
        array([0, 1])
    """
    batch_size = check_positive_int("batch_size", batch_size)
    images, labels = np.asarray(images), np.asarray(labels)
    if len(images) != len(labels):
        raise ValueError(f"images and labels differ in length: {len(images)} vs {len(labels)}")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (N,) or (N, 1), got {labels.shape}")
    if images.dtype != np.uint8 and images.dtype.kind != "f":
        raise TypeError(
            f"batches expects uint8 images (scaled by 1/255) or float inputs (used as they are), got dtype {images.dtype}"
        )
    order = np.arange(len(images)) if indices is None else np.asarray(indices)
    if shuffle:
        order = make_rng(rng).permutation(order)
    if drop_last:
        order = order[: len(order) - len(order) % batch_size]
    contiguous = not shuffle and indices is None
    for x, chosen in iter_batches(images, order, batch_size, dtype=dtype, flatten=flatten, contiguous=contiguous):
        if loss_fn is not None:
            yield x, loss_fn.targets(labels[chosen], np.dtype(dtype))
        else:
            yield x, np.asarray(labels[chosen], dtype=np.float32).reshape(-1, 1)
