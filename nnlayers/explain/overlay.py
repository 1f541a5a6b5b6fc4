"""Pictures of explanations: a map in colour on its photo, a caption, a grid of several."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..utils.types import Array

#: The longer side of an explained photo as drawn, in pixels (the photo keeps its proportions).
PICTURE_SIDE = 320

#: OpenCV's colour maps by name (``cv2.COLORMAP_<NAME>``).
COLORMAPS = ("jet", "turbo", "inferno", "viridis", "magma", "hot")


def normalized(heatmap: Array) -> Array:
    """A map scaled to [0, 1]: by its largest absolute value when it has signs (attributions),
    else from its minimum to its maximum; a constant map is all zeros."""
    m = np.asarray(heatmap, np.float64)
    if m.min() < 0:
        top = np.abs(m).max()
        return np.float32(np.abs(m) / top) if top > 0 else np.zeros(m.shape, np.float32)
    span = m.max() - m.min()
    return np.float32((m - m.min()) / span) if span > 0 else np.zeros(m.shape, np.float32)


def overlay(image: Array, heatmap: Array, *, alpha: float = 0.5, colormap: str = "jet") -> Array:
    """``heatmap`` (h, w) coloured and laid over ``image`` (H, W, 3): uint8 RGB (H, W, 3).

    Args:
        image: RGB, uint8 or floats in [0, 1].
        heatmap: Any map (resized bilinearly to the image, `normalized`).
        alpha: The colour's share: 0 shows the photo only, 1 the map only.
        colormap: One of `COLORMAPS`.
    """
    import cv2

    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    if colormap not in COLORMAPS:
        raise ValueError(f"colormap must be one of {', '.join(COLORMAPS)}, got {colormap!r}")
    photo = np.asarray(image)
    if photo.ndim != 3 or photo.shape[2] != 3:
        raise ValueError(f"overlay takes an RGB image (H, W, 3), got shape {photo.shape}")
    if photo.dtype != np.uint8:
        photo = np.clip(np.round(photo * 255), 0, 255).astype(np.uint8)
    heat = np.asarray(heatmap, np.float32)
    if heat.ndim != 2:
        raise ValueError(f"overlay takes one map (h, w), got shape {heat.shape}")
    resized = cv2.resize(normalized(heat), (photo.shape[1], photo.shape[0]), interpolation=cv2.INTER_LINEAR)
    code = getattr(cv2, f"COLORMAP_{colormap.upper()}")
    colour = cv2.applyColorMap(np.uint8(np.round(np.clip(resized, 0, 1) * 255)), code)[:, :, ::-1]  # BGR -> RGB
    mixed = (1 - alpha) * photo.astype(np.float32) + alpha * colour.astype(np.float32)
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def captioned(image: Array, text: str) -> Array:
    """``image`` (uint8 RGB) with ``text`` on a dark band across its top."""
    import cv2

    out = np.ascontiguousarray(image).copy()
    scale = max(0.35, out.shape[1] / 640)
    (_, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    band = height + base + 6
    out[:band] = (out[:band] * 0.35).astype(np.uint8)
    cv2.putText(out, text, (4, height + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def grid(pictures: Sequence[Array], columns: int = 4, gap: int = 4) -> Array:
    """Pictures of one size side by side, ``columns`` to a row, on white."""
    if not pictures:
        raise ValueError("no pictures for the grid")
    h, w = pictures[0].shape[:2]
    rows = -(-len(pictures) // columns)
    cols = min(columns, len(pictures))
    sheet = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap, 3), 255, np.uint8)
    for k, picture in enumerate(pictures):
        r, c = divmod(k, columns)
        sheet[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = picture
    return sheet


def photo_for_display(data: bytes, side: int = PICTURE_SIDE) -> Array:
    """An encoded photo decoded at its own proportions, its longer side ``side`` (or less, if smaller)."""
    from ..data.image import decode_image, image_dimensions

    h, w = image_dimensions(data)
    scale = min(1.0, side / max(h, w))
    return decode_image(data, (max(1, round(h * scale)), max(1, round(w * scale))), interpolation="area")
