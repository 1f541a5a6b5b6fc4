"""Random changes to training images, applied per batch in training only: flips, crops, jitter.

Each transform takes a float batch ``(N, H, W, C)`` in [0, 1] and a ``numpy.random.Generator``
and returns the changed batch (often the same array, changed in place). `fit` draws from its own
seeded generator, saved in checkpoints, so a run is reproducible and resumes exactly; `evaluate`,
`predict` and validation never augment.

Examples:
    >>> augment = Compose([RandomFlip(), RandomCrop(padding=4)])
    >>> batch = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
    >>> augment(batch.copy(), np.random.default_rng(1)).shape
    (8, 32, 32, 3)
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Union

import numpy as np

from ..utils.checks import check_number, is_int
from ..utils.types import Array


class Transform:
    """Base class: ``transform(batch, rng) -> batch``; ``repr`` shows the arguments."""

    def __call__(self, batch: Array, rng: np.random.Generator) -> Array:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(batch, rng)")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class RandomFlip(Transform):
    """Mirror each image left-right with probability ``p`` (a cat facing left is still a cat).

    Args:
        p: Probability of flipping an image.
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_number("RandomFlip p", p, high=1.0)

    def __call__(self, batch: Array, rng: np.random.Generator) -> Array:
        chosen = np.flatnonzero(rng.random(len(batch)) < self.p)
        batch[chosen] = batch[chosen, :, ::-1]
        return batch


class RandomCrop(Transform):
    """Shift each image by up to ``padding`` pixels in each direction, filling with ``fill``.

    As torchvision's ``RandomCrop(size, padding)`` with the size unchanged: the image is padded
    and a window of its own size is cut at a random offset.

    Args:
        padding: Largest shift in pixels.
        fill: Value of the uncovered border (0 is black).
    """

    def __init__(self, padding: int = 4, fill: float = 0.0) -> None:
        if not is_int(padding) or padding < 1:
            raise ValueError(f"RandomCrop padding must be a positive int, got {padding!r}")
        self.padding, self.fill = int(padding), float(fill)

    def __call__(self, batch: Array, rng: np.random.Generator) -> Array:
        n, h, w, _ = batch.shape
        p = self.padding
        shifts = rng.integers(-p, p + 1, size=(n, 2))
        out = np.full_like(batch, self.fill)
        for i, (dy, dx) in enumerate(shifts):  # copy the part of the image that stays in view
            if abs(dy) >= h or abs(dx) >= w:  # shifted wholly out of view (padding wider than the image)
                continue
            ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
            xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
            out[i, yd, xd] = batch[i, ys, xs]
        return out


class ColorJitter(Transform):
    """Scale each image's brightness and contrast by random factors in ``[1 - a, 1 + a]``.

    Brightness multiplies the pixels; contrast moves them away from (or towards) the image's mean;
    the result is clipped to [0, 1].

    Args:
        brightness: Largest relative change of brightness.
        contrast: Largest relative change of contrast.
    """

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2) -> None:
        self.brightness = check_number("ColorJitter brightness", brightness, high=1.0)
        self.contrast = check_number("ColorJitter contrast", contrast, high=1.0)

    def __call__(self, batch: Array, rng: np.random.Generator) -> Array:
        n = len(batch)
        shape = (n, 1, 1, 1)
        b = rng.uniform(1 - self.brightness, 1 + self.brightness, n).astype(batch.dtype).reshape(shape)
        c = rng.uniform(1 - self.contrast, 1 + self.contrast, n).astype(batch.dtype).reshape(shape)
        mean = batch.mean(axis=(1, 2, 3), keepdims=True) * b
        batch *= b * c
        batch += mean * (1 - c)  # (x b - m) c + m
        return np.clip(batch, 0, 1, out=batch)


class Compose(Transform):
    """Apply transforms one after the other.

    Args:
        transforms: The transforms, in order.
    """

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose expects transforms, got {type(t).__name__}")

    def __call__(self, batch: Array, rng: np.random.Generator) -> Array:
        for transform in self.transforms:
            batch = transform(batch, rng)
        return batch


#: The names ``parse_augment`` (and ``nnlayers train --augment``) understand, with their defaults.
NAMED: Dict[str, Transform] = {"flip": RandomFlip(), "crop": RandomCrop(4), "jitter": ColorJitter(0.2, 0.2)}


def parse_augment(spec: Union[str, Transform, None]) -> Union[Transform, None]:
    """A transform from ``"flip,crop,jitter"`` (any of them, in that order of application), or the transform itself.

    ``"none"`` or ``""`` is no augmentation.
    """
    if spec is None or isinstance(spec, Transform):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"augment must be a Transform or names like 'flip,crop', got {type(spec).__name__}")
    names = [name.strip() for name in spec.split(",") if name.strip() and name.strip() != "none"]
    unknown = [name for name in names if name not in NAMED]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; expected a comma-separated list of {', '.join(NAMED)}")
    chosen: List[Transform] = [NAMED[name] for name in names]
    return Compose(chosen) if chosen else None
