"""Image folders to uint8 arrays: labels, robust decoding, worker processes, a disk cache,
stratified splits and float32 mini-batches.

The seed's ``prepare_data`` read every JPEG with ``cv2.imread``, resized it to 64x64 with
``INTER_CUBIC`` and labelled it by its file name; here the same job keeps images as uint8
(12 KB per 64x64 photo instead of 98 KB as float64), survives the files real folders contain,
and converts to float only one batch at a time.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import tempfile
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from numpy.typing import DTypeLike
from PIL import Image, ImageOps, UnidentifiedImageError

from .init import RandomSource, make_rng

PathLike = Union[str, "os.PathLike[str]"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
INTERPOLATIONS = {
    # name: (OpenCV flag, Pillow filter)
    "nearest": (cv2.INTER_NEAREST, Image.Resampling.NEAREST),
    "linear": (cv2.INTER_LINEAR, Image.Resampling.BILINEAR),
    "cubic": (cv2.INTER_CUBIC, Image.Resampling.BICUBIC),
    "area": (cv2.INTER_AREA, Image.Resampling.BOX),
    "lanczos": (cv2.INTER_LANCZOS4, Image.Resampling.LANCZOS),
}
BACKENDS = ("cv2", "pil")
LABEL_SOURCES = ("auto", "filename", "folders")
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold (~ 9459 x 9459)
CACHE_FORMAT = 1
_REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


class ImageLoadError(ValueError):
    """An image file could not be used; the message names the file and the reason."""


@dataclass
class ImageDataset:
    """Decoded images and their labels.

    Attributes:
        images: uint8 array ``(N, H, W, 3)``, RGB.
        labels: int64 array ``(N,)``; ``classes[label]`` is the class name.
        classes: Sorted class names.
        paths: The file of each image, in order.
        skipped: ``(path, reason)`` for each image file that could not be used.
        ignored: How many hidden and non-image files were passed over, by kind.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: List[str]
    paths: List[str]
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    ignored: Dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> Dict[str, int]:
        """Number of images of each class, by name."""
        counts = np.bincount(self.labels, minlength=len(self.classes))
        return {name: int(count) for name, count in zip(self.classes, counts)}

    def describe(self) -> str:
        """One line: the count, the class mapping with per-class counts, what was left out."""
        mapping = ", ".join(f"{i}={name} ({count})" for i, (name, count) in enumerate(self.class_counts().items()))
        text = f"{len(self)} images of {len(self.classes)} classes: {mapping}"
        if self.skipped:
            text += f"; skipped {len(self.skipped)} unreadable"
        if any(self.ignored.values()):
            text += "; ignored " + ", ".join(f"{n} {kind}" for kind, n in self.ignored.items() if n)
        return text

    def subset(self, indices: np.ndarray) -> ImageDataset:
        """A new dataset holding the given examples (a copy of their images)."""
        indices = np.asarray(indices)
        return ImageDataset(
            self.images[indices], self.labels[indices], list(self.classes), [self.paths[i] for i in indices]
        )

    def split(self, test_size: float = 0.2, seed: int = 0) -> Tuple[ImageDataset, ImageDataset]:
        """Stratified, seeded, disjoint ``(train, test)`` split; see `split_indices`."""
        train_idx, test_idx = split_indices(self.labels, test_size, seed)
        return self.subset(train_idx), self.subset(test_idx)

    def batches(
        self, batch_size: int, shuffle: bool = True, rng: Union[None, int, RandomSource] = None
    ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """`batches` over this dataset."""
        return batches(self.images, self.labels, batch_size, shuffle=shuffle, rng=rng)


# --- decoding one file --------------------------------------------------------------------------


def _target(size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``size`` as ``(height, width)``, validated."""
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in hw):
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return int(hw[0]), int(hw[1])


def _reduction(width: int, height: int, target: Tuple[int, int]) -> int:
    """The largest DCT scale (1, 2, 4, 8) that keeps the decoded image at least as big as the target.

    Rotation may swap the sides, so the shorter source side is compared with the longer target side.
    """
    factor = 1
    while factor < 8 and min(width, height) // (factor * 2) >= max(target):
        factor *= 2
    return factor


def _to_rgb8(img: Image.Image) -> np.ndarray:
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
    height, width = target
    with Image.open(io.BytesIO(data)) as img:
        if reduce:
            img.draft("RGB", (max(target), max(target)))  # JPEG DCT scaling: decode at 1/2, 1/4, 1/8
        rgb = _to_rgb8(ImageOps.exif_transpose(img))
    resized = Image.fromarray(rgb).resize((width, height), INTERPOLATIONS[interpolation][1])
    return np.asarray(resized)


def _decode_cv2(data: bytes, target: Tuple[int, int], interpolation: str, factor: int) -> Optional[np.ndarray]:
    # imdecode, not imread: it reads the bytes we already have and works with non-ASCII paths
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED_FLAGS[factor])
    if bgr is None:
        return None
    height, width = target
    bgr = cv2.resize(bgr, (width, height), interpolation=INTERPOLATIONS[interpolation][0])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # contiguous, unlike a [..., ::-1] view


def load_image(
    path: PathLike,
    size: Union[int, Sequence[int]] = (64, 64),
    *,
    backend: str = "cv2",
    interpolation: str = "cubic",
    reduce: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
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

    Returns:
        uint8 array ``(height, width, 3)``, RGB, upright (EXIF orientation applied).

    Raises:
        ImageLoadError: The file is empty, truncated, corrupt, too large or not an image.
        FileNotFoundError: The file does not exist.
    """
    target = _target(size)
    _check_options(backend, interpolation)
    data = Path(path).read_bytes()
    try:
        return _decode_bytes(data, target, backend, interpolation, reduce, max_pixels)
    except ImageLoadError as error:
        raise ImageLoadError(f"{path}: {error}") from None


def _decode_bytes(
    data: bytes, target: Tuple[int, int], backend: str, interpolation: str, reduce: bool, max_pixels: int
) -> np.ndarray:
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


def _decode_file(
    path: str, target: Tuple[int, int], backend: str, interpolation: str, reduce: bool, max_pixels: int
) -> Tuple[Optional[np.ndarray], str]:
    """Worker task: ``(image, "")`` or ``(None, reason)``; never raises for a bad file."""
    try:
        return _decode_bytes(Path(path).read_bytes(), target, backend, interpolation, reduce, max_pixels), ""
    except ImageLoadError as error:
        return None, str(error)
    except Exception as error:  # noqa: BLE001 - one bad file must never take the whole load down
        return None, f"{type(error).__name__}: {error}"


def _check_options(backend: str, interpolation: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {tuple(INTERPOLATIONS)}, got {interpolation!r}")


# --- finding files and labels -------------------------------------------------------------------


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in ("__MACOSX", "Thumbs.db", "desktop.ini")


def _walk(root: str, ignored: Dict[str, int]) -> List[str]:
    """Image files under ``root`` (recursively, sorted), counting what is passed over."""
    found: List[str] = []
    with os.scandir(root) as it:
        entries = {entry.name: entry for entry in it}
    for name in sorted(entries):  # DirEntry types come with the listing: no stat per file
        if _is_hidden(name):
            ignored["hidden"] += 1
        elif entries[name].is_dir():
            found += _walk(entries[name].path, ignored)
        elif name[name.rfind(".") :].lower() in IMAGE_EXTENSIONS:
            found.append(entries[name].path)
        else:
            ignored["non-image"] += 1
    return found


# Kaggle's flat layout: the class is the leading word of the file name (cat.123.jpg -> cat)
_FILENAME_CLASS = re.compile(r"[^\W\d_]+")


def _find_files(root: Path, labels: str, ignored: Dict[str, int]) -> Tuple[List[str], List[str]]:
    """The image files and their class names, by the chosen label source."""
    with os.scandir(root) as it:
        entries = sorted(it, key=lambda e: e.name)
    subdirs = [e for e in entries if e.is_dir() and not _is_hidden(e.name)]
    if labels == "auto":
        has_top_images = any(
            e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS and not _is_hidden(e.name)
            for e in entries
        )
        labels = "folders" if subdirs and not has_top_images else "filename"
    if labels == "folders":
        files: List[str] = []
        names: List[str] = []
        for entry in entries:
            if _is_hidden(entry.name):
                ignored["hidden"] += 1
            elif not entry.is_dir():
                ignored["outside class folders"] += 1
        for sub in subdirs:
            found = _walk(sub.path, ignored)
            files += found
            names += [sub.name] * len(found)
        return files, names
    files = _walk(str(root), ignored)
    match = _FILENAME_CLASS.match
    names_or_none = [m.group(0).lower() if (m := match(p, p.rfind(os.sep) + 1)) else None for p in files]
    unlabeled = [os.path.basename(p) for p, n in zip(files, names_or_none) if n is None]
    if unlabeled:
        raise ValueError(
            f"cannot infer labels from the file names in {root}: {len(unlabeled)} files such as "
            f"{unlabeled[:3]} do not start with a class name (like cat.123.jpg); "
            f"use labels='folders' with one subfolder per class"
        )
    return files, [n for n in names_or_none if n is not None]


# --- the cache ----------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$NNLAYERS_CACHE_DIR``, else ``$XDG_CACHE_HOME/nnlayers``, else ``~/.cache/nnlayers``."""
    if os.environ.get("NNLAYERS_CACHE_DIR"):
        return Path(os.environ["NNLAYERS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nnlayers"


def _cache_key(files: List[str], names: List[str], options: Dict[str, object]) -> str:
    """A digest of every file (path, size, modification time), its class and every option."""
    digest = hashlib.sha256(json.dumps({"format": CACHE_FORMAT, **options}, sort_keys=True).encode())
    digest.update("\0".join(files).encode() + b"\1" + "\0".join(names).encode())
    digest.update(np.array([(s.st_size, s.st_mtime_ns) for s in map(os.stat, files)], np.int64).tobytes())
    return digest.hexdigest()[:32]


def _read_cache(directory: Path, key: str) -> Optional[Tuple[np.ndarray, dict]]:
    meta_path, array_path = directory / f"{key}.json", directory / f"{key}.npy"
    try:
        meta = json.loads(meta_path.read_text())
        # copy-on-write map: near-instant, pages load as batches touch them, edits stay in memory
        images = np.load(array_path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if images.dtype != np.uint8 or len(images) != len(meta["labels"]):
        return None
    return images, meta


def _write_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_cache(directory: Path, key: str, images: np.ndarray, meta: dict) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # the array first, the JSON last: a reader finds the JSON only when both are complete
        _write_atomic(directory / f"{key}.npy", lambda f: np.save(f, images, allow_pickle=False))
        _write_atomic(directory / f"{key}.json", lambda f: f.write(json.dumps(meta).encode()))
    except OSError as error:
        warnings.warn(f"could not write the image cache in {directory}: {error}", stacklevel=3)


# --- the folder loader --------------------------------------------------------------------------


def load_image_folder(
    path: PathLike,
    size: Union[int, Sequence[int]] = (64, 64),
    *,
    labels: str = "auto",
    classes: Optional[Sequence[str]] = None,
    backend: str = "cv2",
    interpolation: str = "cubic",
    reduce: bool = True,
    workers: Optional[int] = None,
    cache: Union[bool, PathLike] = True,
    progress: Optional[bool] = None,
    on_error: str = "skip",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    verbose: bool = False,
) -> ImageDataset:
    """Load a folder of photos into uint8 arrays with labels.

    Two layouts are understood: Kaggle's flat folder (``cat.0.jpg``, ``dog.7.jpg``: the class is
    the leading word of the file name, which for cats and dogs is the seed's rule, dog = 1 and
    cat = 0) and one subfolder per class (as torchvision's ``ImageFolder``). Hidden files and
    folders and non-image files are passed over and counted; unreadable images are skipped with
    a warning naming each (or raise, with ``on_error="raise"``).

    Args:
        path: The folder.
        size: ``(height, width)`` of the output images, or one int for a square.
        labels: ``"filename"``, ``"folders"`` or ``"auto"`` (folders when the top level has
            subfolders and no images).
        classes: The class names and their order, e.g. a trained model's; by default the sorted
            names found. Images of other classes are an error.
        backend: ``"cv2"`` (OpenCV) or ``"pil"`` (Pillow); see `load_image`.
        interpolation: ``"cubic"`` (default, the seed's), ``"area"``, ``"linear"``,
            ``"nearest"`` or ``"lanczos"``.
        reduce: Decode JPEGs at reduced resolution when the target is at most half the source.
            With ``backend="cv2"``, ``reduce=False`` and ``interpolation="cubic"`` every image
            equals the seed's ``read_image`` (converted BGR -> RGB).
        workers: Decoding processes (default: all cores; 1 decodes in this process).
        cache: ``True`` caches the decoded array in `default_cache_dir`, a path caches there,
            ``False`` does not cache. The cache key covers the file list, sizes, modification
            times and every option, so a changed folder is decoded again.
        progress: Show a progress bar (default: when stderr is a terminal).
        on_error: ``"skip"`` (warn and leave the file out) or ``"raise"``.
        max_pixels: Refuse larger images (decompression bombs) without decoding them.
        verbose: Print the class mapping and per-class counts (`ImageDataset.describe`).

    Returns:
        An `ImageDataset`.

    Raises:
        FileNotFoundError: ``path`` does not exist or is not a folder.
        ValueError: No images, a single class, labels that cannot be inferred, or bad options.
        ImageLoadError: With ``on_error="raise"``, the first unreadable file.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a folder path (str or Path), got {type(path).__name__}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1):
        raise ValueError(f"workers must be a positive int or None, got {workers!r}")
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"image folder not found: {root}")
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root} (expected a folder of images)")
    target = _target(size)
    _check_options(backend, interpolation)
    if labels not in LABEL_SOURCES:
        raise ValueError(f"labels must be one of {LABEL_SOURCES}, got {labels!r}")
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")

    ignored = {"hidden": 0, "non-image": 0, "outside class folders": 0}
    files, names = _find_files(root, labels, ignored)
    class_list = _resolve_classes(root, names, classes, ignored)
    label_of = {name: i for i, name in enumerate(class_list)}

    options = {
        "size": target,
        "backend": backend,
        "interpolation": interpolation,
        "reduce": reduce,
        "max_pixels": max_pixels,
    }
    cache_dir = None if cache is False else (default_cache_dir() if cache is True else Path(cache))
    key = _cache_key(files, names, options) if cache_dir is not None else ""
    cached = _read_cache(cache_dir, key) if cache_dir is not None else None
    if cached is not None:
        images, meta = cached
        dataset = ImageDataset(
            images,
            np.asarray(meta["labels"], np.int64),
            class_list,
            meta["paths"],
            [tuple(s) for s in meta["skipped"]],
            ignored,
        )
    else:
        images, kept, skipped = _decode_all(
            files, target, backend, interpolation, reduce, max_pixels, workers, progress, on_error
        )
        dataset = ImageDataset(
            images,
            np.array([label_of[names[i]] for i in kept], np.int64),
            class_list,
            [files[i] for i in kept],
            skipped,
            ignored,
        )
        if cache_dir is not None:
            meta = {"labels": dataset.labels.tolist(), "paths": dataset.paths, "skipped": skipped}
            _write_cache(cache_dir, key, images, meta)
    if dataset.skipped and on_error == "raise":  # a cached load that had skipped files
        raise ImageLoadError(": ".join(dataset.skipped[0]))
    for bad_path, reason in dataset.skipped:
        warnings.warn(f"skipped {bad_path}: {reason}", stacklevel=2)
    if len(dataset) == 0:
        raise ValueError(
            f"none of the {len(files)} image files in {root} could be read (first: {dataset.skipped[0][1]})"
        )
    if verbose:
        print(f"{root}: {dataset.describe()}", file=sys.stderr)
    return dataset


def _resolve_classes(
    root: Path, names: List[str], classes: Optional[Sequence[str]], ignored: Dict[str, int]
) -> List[str]:
    found = sorted(set(names))
    if not names:
        other = ", ".join(f"{n} {kind}" for kind, n in ignored.items() if n) or "nothing"
        raise ValueError(f"no images found in {root} (found {other}); expected .jpg, .png, ... files")
    if classes is not None:
        class_list = list(classes)
        unknown = sorted(set(found) - set(class_list))
        if unknown:
            raise ValueError(f"{root} holds classes {unknown} that are not among the expected {class_list}")
        return class_list
    if len(found) < 2:
        raise ValueError(
            f"{root} holds only one class, {found[0]!r} ({len(names)} images); a classifier needs at least two"
        )
    return found


def _decode_all(
    files: List[str],
    target: Tuple[int, int],
    backend: str,
    interpolation: str,
    reduce: bool,
    max_pixels: int,
    workers: Optional[int],
    progress: Optional[bool],
    on_error: str,
) -> Tuple[np.ndarray, List[int], List[Tuple[str, str]]]:
    """Decode every file in order into one preallocated uint8 array (no list of arrays, no copy)."""
    decode = partial(
        _decode_file, target=target, backend=backend, interpolation=interpolation, reduce=reduce, max_pixels=max_pixels
    )
    images = np.empty((len(files), *target, 3), np.uint8)  # pages are only touched as images arrive
    kept: List[int] = []
    skipped: List[Tuple[str, str]] = []
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    show = sys.stderr.isatty() if progress is None else progress
    paths = files
    executor = None
    if workers > 1 and len(files) >= 64:  # below that, starting processes costs more than it saves
        # fork: fast, and scripts need no `if __name__ == "__main__"` guard. Nothing OpenCV-related
        # is configured in the children: touching OpenCV's thread pool in a forked child can hang
        start = "fork" if sys.platform.startswith("linux") else "spawn"
        executor = ProcessPoolExecutor(workers, mp_context=get_context(start))
        results: Iterable[Tuple[Optional[np.ndarray], str]] = executor.map(
            decode, paths, chunksize=max(1, min(64, len(paths) // (workers * 8)))
        )
    else:
        results = map(decode, paths)
    i = 0
    try:
        if show:
            from tqdm import tqdm

            results = tqdm(results, total=len(paths), desc="loading images", unit="img")
        for i, (image, reason) in enumerate(results):
            if image is None:
                if on_error == "raise":
                    raise ImageLoadError(f"{paths[i]}: {reason}")
                skipped.append((paths[i], reason))
                continue
            images[len(kept)] = image
            kept.append(i)
    except BrokenProcessPool:
        raise ImageLoadError(
            f"a decoding process died (a decoder crashed on a file near {paths[min(i + 1, len(paths) - 1)]}); "
            "run with workers=1 to find the file"
        ) from None
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    return images[: len(kept)], kept, skipped


# --- splits and batches -------------------------------------------------------------------------


def split_indices(labels: np.ndarray, test_size: float = 0.2, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded, disjoint train and test indices.

    Each class contributes ``round(test_size * count)`` examples to the test part (at least one
    when it has two or more), so class proportions are kept on both sides.

    Args:
        labels: int array ``(N,)``.
        test_size: Fraction in (0, 1) for the test part.
        seed: Seed of the shuffle.

    Returns:
        ``(train_indices, test_indices)``, each sorted.

    Examples:
        >>> labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
        >>> train, test = split_indices(labels, 0.25, seed=0)
        >>> len(train), len(test), labels[test].tolist()
        (6, 2, [0, 1])
    """
    labels = np.asarray(labels)
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be a fraction in (0, 1), got {test_size!r}")
    rng = np.random.default_rng(seed)
    test: List[np.ndarray] = []
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        n_test = int(round(test_size * len(members)))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        test.append(members[:n_test])
    test_idx = np.sort(np.concatenate(test)) if test else np.array([], np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


def train_test_split(
    images: np.ndarray, labels: np.ndarray, test_size: float = 0.2, seed: int = 0
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Stratified split of arrays, in scikit-learn's order: ``x_train, x_test, y_train, y_test``."""
    train_idx, test_idx = split_indices(labels, test_size, seed)
    return images[train_idx], images[test_idx], labels[train_idx], labels[test_idx]


def to_inputs(images: np.ndarray, dtype: DTypeLike = np.float32, out: Optional[np.ndarray] = None) -> np.ndarray:
    """uint8 images ``(B, H, W, C)`` to network inputs ``(B, H*W*C)`` in [0, 1] (the seed's ``/255``).

    Args:
        images: uint8 array.
        dtype: Floating dtype of the result.
        out: A buffer of at least ``B`` rows to write into (training loops reuse one, which
            spares allocating, and page-faulting, a fresh array every batch).
    """
    flat = images.reshape(len(images), -1)
    out = np.empty(flat.shape, dtype) if out is None else out[: len(flat)]
    return np.divide(flat, out.dtype.type(255), out=out)  # one pass: convert and scale


def as_inputs(x: np.ndarray, dtype: DTypeLike = np.float32, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Network inputs ``(B, D)``: uint8 images are scaled by 1/255 (`to_inputs`), floats only flattened."""
    if x.dtype == np.uint8:
        return to_inputs(x, dtype, out)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"expected uint8 images or floating-point inputs, got dtype {x.dtype}")
    return np.asarray(x.reshape(len(x), -1), dtype=dtype)


def batches(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    rng: Union[None, int, RandomSource] = None,
    *,
    indices: Optional[np.ndarray] = None,
    drop_last: bool = False,
) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Yield mini-batches ``(x, y)``: float32 ``(B, H*W*3)`` in [0, 1] and float32 ``(B, 1)``.

    Only one batch is converted to float at a time; the uint8 set stays as it is. Float inputs
    are flattened and cast to float32 but not scaled.

    Args:
        images: uint8 array ``(N, H, W, 3)`` (or already-flat ``(N, D)``).
        labels: int array ``(N,)``.
        batch_size: Examples per batch (the last one may be smaller unless ``drop_last``).
        shuffle: Visit the examples in a random order (seeded by ``rng``).
        rng: An int seed or a ``numpy.random.Generator``; the same seed gives the same order.
        indices: Visit only these examples (a split), without copying the images.
        drop_last: Leave out a last, smaller batch.

    Examples:
        >>> imgs = np.zeros((5, 2, 2, 3), np.uint8); imgs[0] = 255
        >>> [(x.shape, y.shape) for x, y in batches(imgs, np.arange(5) % 2, 2, shuffle=False)]
        [((2, 12), (2, 1)), ((2, 12), (2, 1)), ((1, 12), (1, 1))]
        >>> next(batches(imgs, np.arange(5) % 2, 2, shuffle=False))[0].max()
        np.float32(1.0)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
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
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    for start in range(0, stop, batch_size):
        chosen: Union[slice, np.ndarray] = order[start : start + batch_size]
        if not shuffle and indices is None:
            chosen = slice(start, min(start + batch_size, stop))  # a view, no gather
        y = np.asarray(labels[chosen], dtype=np.float32).reshape(-1, 1)
        yield as_inputs(images[chosen]), y
