"""One image file to an 8-bit RGB array: decoders, EXIF orientation, size limits.

The seed's ``read_image`` was ``cv2.imread`` and ``cv2.resize(..., INTER_CUBIC)``; here the same
job survives what real folders hold: any image mode (gray, palette, RGBA, CMYK, 16-bit), rotated
phone photos, truncated or fake files, decompression bombs, FIFOs and devices posing as images.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..utils.checks import is_int
from ..utils.types import PathLike

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


#: name: (OpenCV flag, Pillow filter), by attribute name: OpenCV and Pillow load at the first decode,
#: not at ``import nnlayers``.
INTERPOLATIONS = {
    "nearest": ("INTER_NEAREST", "NEAREST"),
    "linear": ("INTER_LINEAR", "BILINEAR"),
    "cubic": ("INTER_CUBIC", "BICUBIC"),
    "area": ("INTER_AREA", "BOX"),
    "lanczos": ("INTER_LANCZOS4", "LANCZOS"),
}


BACKENDS = ("cv2", "pil")


DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (~ 9459 x 9459)


#: Files larger than this are refused unread: a photo is a few MB, a RAW file a few tens.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


#: Largest output side: a 64x64 network needs 64, and a 30000x30000 request is a 2.7 GB array.
MAX_SIZE = 4096


_REDUCED_FLAGS = {
    1: "IMREAD_COLOR",
    2: "IMREAD_REDUCED_COLOR_2",
    4: "IMREAD_REDUCED_COLOR_4",
    8: "IMREAD_REDUCED_COLOR_8",
}


class ImageLoadError(ValueError):
    """An image file could not be used; the message names the file and the reason."""


def image_size(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``size`` as ``(height, width)``, validated (positive, at most `MAX_SIZE` a side)."""
    hw: Tuple[Any, ...] = ()
    try:
        hw = (size, size) if is_int(size) else tuple(size)  # type: ignore[arg-type]
    except TypeError:
        pass
    if len(hw) != 2 or not all(is_int(v) and 0 < v for v in hw):
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    height, width = int(hw[0]), int(hw[1])
    if max(height, width) > MAX_SIZE:
        raise ValueError(f"size {height}x{width} is larger than the {MAX_SIZE}x{MAX_SIZE} nnlayers decodes to")
    return height, width


def _reduction(width: int, height: int, target: Tuple[int, int]) -> int:
    """The largest DCT scale (1, 2, 4, 8) that keeps the decoded image at least as big as the target.

    Rotation may swap the sides, so the shorter source side is compared with the longer target side.
    """
    factor = 1
    while factor < 8 and min(width, height) // (factor * 2) >= max(target):
        factor *= 2
    return factor


def _to_rgb8(img: Any) -> np.ndarray:
    """Any Pillow mode (L, LA, P, RGBA, CMYK, 16-bit, ...) to an 8-bit RGB array; alpha is dropped."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        wide = np.asarray(img, dtype=np.float64)
        if img.mode != "F":
            wide = wide / 256  # 16-bit to 8-bit, as OpenCV does
        gray = np.clip(np.rint(wide), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # the documented route for palette transparency
    return np.asarray(img.convert("RGB"))


def _decode_pil(data: bytes, target: Tuple[int, int], interpolation: str, reduce: bool) -> np.ndarray:
    from PIL import Image, ImageOps

    height, width = target
    with Image.open(io.BytesIO(data)) as img:
        if reduce:
            img.draft("RGB", (max(target), max(target)))  # JPEG DCT scaling: decode at 1/2, 1/4, 1/8
        rgb = _to_rgb8(ImageOps.exif_transpose(img))
    resized = Image.fromarray(rgb).resize((width, height), getattr(Image.Resampling, INTERPOLATIONS[interpolation][1]))
    return np.asarray(resized)


def _decode_cv2(data: bytes, target: Tuple[int, int], interpolation: str, factor: int) -> Optional[np.ndarray]:
    import cv2

    # imdecode, not imread: it reads the bytes we already have and works with non-ASCII paths
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), getattr(cv2, _REDUCED_FLAGS[factor]))
    if bgr is None:
        return None
    height, width = target
    bgr = cv2.resize(bgr, (width, height), interpolation=getattr(cv2, INTERPOLATIONS[interpolation][0]))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # contiguous, unlike a [..., ::-1] view


def load_image(
    path: PathLike,
    size: Union[int, Sequence[int]] = (64, 64),
    *,
    backend: str = "cv2",
    interpolation: str = "cubic",
    reduce: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> np.ndarray:
    """Decode one image file to an 8-bit RGB array of the given size.

    Args:
        path: The file.
        size: ``(height, width)`` or one int for a square.
        backend: ``"cv2"`` (OpenCV; falls back to Pillow for files OpenCV cannot decode, such
            as GIF) or ``"pil"`` (Pillow).
        interpolation: ``"cubic"`` (default, the seed's), ``"area"``, ``"linear"``,
            ``"nearest"`` or ``"lanczos"``.
        reduce: Decode JPEGs at 1/2, 1/4 or 1/8 resolution when the result still covers the
            target (libjpeg's DCT scaling): several times faster on large photos. ``False``
            decodes in full, as the seed did.
        max_pixels: Refuse images with more pixels than this (decompression bombs) before
            decoding them.
        max_bytes: Refuse files larger than this without reading them.

    Returns:
        uint8 array ``(height, width, 3)``, RGB, upright (EXIF orientation applied).

    Raises:
        ImageLoadError: The file is empty, truncated, corrupt, too large, not an image, or not
            a regular file (a FIFO, a device).
        FileNotFoundError: The file does not exist.
    """
    target = image_size(size)
    check_options(backend, interpolation)
    try:
        return _decode_bytes(read_image_bytes(path, max_bytes), target, backend, interpolation, reduce, max_pixels)
    except ImageLoadError as error:
        raise ImageLoadError(f"{path}: {error}") from None


def read_image_bytes(path: PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else is an `ImageLoadError`.

    The file is opened without blocking, so a FIFO posing as ``cat.1.jpg`` is refused at once
    instead of waiting forever for a writer, and a link to ``/dev/zero`` is refused unread.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageLoadError("not a regular file (a FIFO, device or socket), refused unread")
        if info.st_size > max_bytes:
            raise ImageLoadError(f"{info.st_size:,} bytes is over max_bytes={max_bytes:,}, refused unread")
        # read what fstat says, then to the end: read(max_bytes + 1) would allocate 256 MB for every photo
        chunks, total, want = [], 0, info.st_size + 1
        while total <= max_bytes:
            chunk = os.read(fd, min(want, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            want = 1 << 16
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew while we read it
        raise ImageLoadError(f"over max_bytes={max_bytes:,}, refused")
    return data


def _decode_bytes(
    data: bytes, target: Tuple[int, int], backend: str, interpolation: str, reduce: bool, max_pixels: int
) -> np.ndarray:
    from PIL import Image

    if not data:
        raise ImageLoadError("empty file (0 bytes)")
    fmt, width, height = _read_header(data)
    if width * height > max_pixels:
        raise ImageLoadError(
            f"refused, {width}x{height} = {width * height:,} pixels is over max_pixels={max_pixels:,} (decompression bomb?)"
        )
    if fmt == "JPEG" and b"\xff\xd9" not in data[-1024:]:
        raise ImageLoadError("truncated JPEG (no end-of-image marker)")
    if backend == "cv2":
        factor = _reduction(width, height, target) if reduce and fmt == "JPEG" else 1
        rgb = _decode_cv2(data, target, interpolation, factor)
        if rgb is not None:
            return rgb
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _decode_pil(data, target, interpolation, reduce)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageLoadError(f"corrupt image ({error})") from None


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers hold the size


def _jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    """``(width, height)`` from a JPEG's start-of-frame segment, or ``None`` if not found."""
    i, n = 2, len(data)
    while i + 9 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _JPEG_SOF:
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def _read_header(data: bytes) -> Tuple[str, int, int]:
    """Format and size without decoding: JPEG and PNG parsed here (fast), the rest by Pillow."""
    from PIL import Image, UnidentifiedImageError

    if data[:3] == b"\xff\xd8\xff":
        size = _jpeg_size(data)
        if size is not None:
            return "JPEG", size[0], size[1]
    elif data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        return "PNG", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own bomb warning: our limit decides
            with Image.open(io.BytesIO(data)) as header:
                return str(header.format), header.size[0], header.size[1]
    except Image.DecompressionBombError as error:
        raise ImageLoadError(f"refused, too many pixels (decompression bomb?): {error}") from None
    except UnidentifiedImageError:
        raise ImageLoadError("not a readable image (unknown format or damaged header)") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageLoadError(f"not a readable image ({error})") from None


def decode_image(
    data: bytes,
    size: Union[int, Sequence[int]] = (64, 64),
    *,
    backend: str = "cv2",
    interpolation: str = "cubic",
    reduce: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """`load_image` for bytes already in memory (an upload): uint8 RGB ``(height, width, 3)``.

    Raises:
        ImageLoadError: Empty, truncated, corrupt, too many pixels, or not an image.
    """
    check_options(backend, interpolation)
    return _decode_bytes(bytes(data), image_size(size), backend, interpolation, reduce, max_pixels)


def image_dimensions(data: bytes) -> Tuple[int, int]:
    """``(height, width)`` of an encoded image, read from its header without decoding it.

    Raises:
        ImageLoadError: Empty, or not a readable image.
    """
    if not data:
        raise ImageLoadError("empty file (0 bytes)")
    _, width, height = _read_header(bytes(data))
    return height, width


def decode_file(
    path: str,
    target: Tuple[int, int],
    backend: str,
    interpolation: str,
    reduce: bool,
    max_pixels: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Tuple[Optional[np.ndarray], str]:
    """Worker task: ``(image, "")`` or ``(None, reason)``; never raises for a bad file."""
    try:
        data = read_image_bytes(path, max_bytes)
        return _decode_bytes(data, target, backend, interpolation, reduce, max_pixels), ""
    except ImageLoadError as error:
        return None, str(error)
    except Exception as error:  # noqa: BLE001 - one bad file must never take the whole load down
        return None, f"{type(error).__name__}: {error}"


def check_options(backend: str, interpolation: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {tuple(INTERPOLATIONS)}, got {interpolation!r}")


def load_images(paths: Sequence[PathLike], preprocessing: Optional[Mapping[str, Any]] = None) -> np.ndarray:
    """Decode image files with a model's preprocessing (size, backend, interpolation, reduce, and then
    channel order and scale: `preprocess`)."""
    options = dict(preprocessing or {})
    size = image_size(tuple(options.get("size", (64, 64))))
    kwargs = {k: options[k] for k in ("backend", "interpolation", "reduce") if k in options}
    images = np.stack([load_image(p, size, **kwargs) for p in paths]) if paths else np.zeros((0, *size, 3), np.uint8)
    return preprocess(images, preprocessing)


#: The scale of pixels that the batches apply to uint8 images themselves (the seed's ``/ 255``).
DEFAULT_SCALE = 1 / 255


#: The channel orders a model file may name.
CHANNEL_ORDERS = ("RGB", "BGR")


def preprocess(images: np.ndarray, preprocessing: Optional[Mapping[str, Any]]) -> np.ndarray:
    """Decoded RGB uint8 photos ``(N, H, W, 3)`` as a model file's ``preprocessing`` says its model takes them.

    ``channel_order`` ``"BGR"`` reverses the channels; a ``scale`` other than 1/255 gives float32
    pixels times that scale. With the defaults (RGB, 1/255) the uint8 photos are returned as they
    are: the batches scale them by 1/255 one batch at a time.
    """
    options = preprocessing or {}
    if options.get("channel_order", "RGB") == "BGR":
        images = images[..., ::-1]
    scale = float(options.get("scale", DEFAULT_SCALE))
    if abs(scale - DEFAULT_SCALE) <= 1e-12 * DEFAULT_SCALE:
        return np.ascontiguousarray(images)
    return images.astype(np.float32) * np.float32(scale)
