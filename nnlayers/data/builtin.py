"""A small two-class image set that nnlayers draws itself: circles and squares.

`nnlayers train` with no data folder trains on it, so a first run needs no download. The
images are written as JPEG files in one folder per class and read back through the same folder
loader as real photos.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .cache import default_cache_dir

CLASSES = ("circle", "square")


VERSION = 2


def draw_shape(kind: str, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """One RGB picture: a light filled circle, square or triangle near the centre, on dark noise.

    Size, position (a few pixels off centre), colour and noise vary; a square fills the corners
    of its bounding box, a circle does not, which a 2-layer network learns in a few epochs.
    """
    import cv2  # drawing is OpenCV's; it loads here, not with the package

    background = rng.integers(0, 70, 3)
    img = np.clip(background + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    colour = tuple(int(c) for c in rng.integers(150, 256, 3))
    half = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in size // 2 + rng.integers(-size // 16, size // 16 + 1, 2))
    if kind == "circle":
        cv2.circle(img, (cx, cy), half, colour, thickness=-1, lineType=cv2.LINE_AA)
    elif kind == "square":
        cv2.rectangle(img, (cx - half, cy - half), (cx + half, cy + half), colour, thickness=-1)
    elif kind == "triangle":
        corners = np.array([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], np.int32)
        cv2.fillPoly(img, [corners], colour, lineType=cv2.LINE_AA)
    else:
        raise ValueError(f"kind must be 'circle', 'square' or 'triangle', got {kind!r}")
    return img


def builtin_dataset(
    directory: Optional[Path] = None, per_class: int = 250, seed: int = 0, kinds: Sequence[str] = CLASSES
) -> Path:
    """Write the built-in set (``per_class`` JPEGs per class, one folder per kind) once and return its folder.

    By default it goes to ``<cache>/builtin-shapes-v2`` (see `nnlayers.data.cache.default_cache_dir`);
    an existing complete set is reused.
    """
    root = Path(directory) if directory is not None else default_cache_dir() / f"builtin-shapes-v{VERSION}"
    if all(len(list((root / kind).glob("*.jpg"))) == per_class for kind in kinds):
        return root
    import cv2

    rng = np.random.default_rng(seed)
    for kind in kinds:
        (root / kind).mkdir(parents=True, exist_ok=True)
    for i in range(per_class):
        for kind in kinds:
            rgb = draw_shape(kind, rng)
            cv2.imwrite(str(root / kind / f"{kind}.{i}.jpg"), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root
