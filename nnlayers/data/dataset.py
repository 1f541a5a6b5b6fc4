"""Image folders to uint8 arrays: labels, robust decoding, worker processes, a disk cache,
stratified splits and float32 mini-batches.

The seed's ``prepare_data`` read every JPEG with ``cv2.imread``, resized it to 64x64 with
``INTER_CUBIC`` and labelled it by its file name; here the same job keeps images as uint8
(12 KB per 64x64 photo instead of 98 KB as float64), survives the files real folders contain,
and converts to float only one batch at a time.
"""

from __future__ import annotations

import mmap
import os
import signal
import sys
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..utils.checks import is_int
from ..utils.progress import show_progress
from ..utils.types import PathLike, RandomSource
from . import cache as image_cache
from .batching import batches
from .folders import LABEL_SOURCES, index_folder, resolve_classes
from .image import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    ImageLoadError,
    check_options,
    decode_file,
    image_size,
)
from .splits import split_indices


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
    max_bytes: int = DEFAULT_MAX_BYTES,
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
        progress: Show a progress bar: ``None`` (default) in a terminal or a notebook, not when
            the output is piped; ``True`` or ``False`` to choose.
        on_error: ``"skip"`` (warn and leave the file out) or ``"raise"``.
        max_pixels: Refuse larger images (decompression bombs) without decoding them.
        max_bytes: Refuse larger files without reading them.
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
    if workers is not None and (not is_int(workers) or workers < 1):
        raise ValueError(f"workers must be a positive int or None, got {workers!r}")
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"image folder not found: {root}")
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root} (expected a folder of images)")
    target = image_size(size)
    check_options(backend, interpolation)
    if labels not in LABEL_SOURCES:
        raise ValueError(f"labels must be one of {LABEL_SOURCES}, got {labels!r}")
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")

    options = {
        "size": target,
        "backend": backend,
        "interpolation": interpolation,
        "reduce": reduce,
        "max_pixels": max_pixels,
        "max_bytes": max_bytes,
    }
    cache_dir = None if cache is False else (image_cache.default_cache_dir() if cache is True else Path(cache))
    prefetched = image_cache.Prefetch(cache_dir, root, {**options, "labels": labels}) if cache_dir else None
    index = index_folder(root, labels)
    class_list = resolve_classes(root, index, classes)
    key = image_cache.cache_key(index.files, index.names, index.stamps, options) if cache_dir is not None else ""
    cached = image_cache.read_entry(cache_dir, key, prefetched) if cache_dir is not None else None
    if cached is not None:
        images, meta = cached
        names = [meta["classes"][i] for i in meta["labels"]]
        paths, skipped = meta["paths"], [(str(p), str(r)) for p, r in meta["skipped"]]
    else:
        images, kept, decode_skipped = _decode_all(index.files, target, options, workers, progress, on_error)
        names = [index.names[i] for i in kept]
        paths, skipped = [index.files[i] for i in kept], index.problems + decode_skipped
        if cache_dir is not None:
            found = sorted(set(names))
            meta = {"classes": found, "labels": [found.index(n) for n in names], "paths": paths, "skipped": skipped}
            image_cache.write_entry(cache_dir, key, images, meta, root, {**options, "labels": labels})
    label_of = {name: i for i, name in enumerate(class_list)}
    labels_array = np.array([label_of[n] for n in names], np.int64)
    dataset = ImageDataset(images, labels_array, class_list, paths, skipped, index.ignored)
    if dataset.skipped and on_error == "raise":  # a cached load that had skipped files
        raise ImageLoadError(": ".join(dataset.skipped[0]))
    for bad_path, reason in dataset.skipped:
        warnings.warn(f"skipped {bad_path}: {reason}", stacklevel=2)
    if len(dataset) == 0:
        raise ValueError(
            f"none of the {len(index.files)} image files in {root} could be read (first: {dataset.skipped[0][1]})"
        )
    if verbose:
        print(f"{root}: {dataset.describe()}", file=sys.stderr)
    return dataset


def _decode_all(
    files: List[str],
    target: Tuple[int, int],
    options: Dict[str, object],
    workers: Optional[int],
    progress: Optional[bool],
    on_error: str,
) -> Tuple[np.ndarray, List[int], List[Tuple[str, str]]]:
    """Decode every file in order into one preallocated uint8 array (no list of arrays, no copy).

    With several workers on Linux the array is shared memory that the forked workers write into,
    each image in its row: only the names of bad files travel back, not 12 KB of pixels per photo.
    """
    from concurrent.futures import ProcessPoolExecutor  # the process machinery loads with the first decode
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    decode = partial(decode_file, target=target, **{k: v for k, v in options.items() if k != "size"})  # type: ignore[arg-type]
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    start = os.environ.get("NNLAYERS_START_METHOD") or ("fork" if sys.platform.startswith("linux") else "spawn")
    parallel = workers > 1 and len(files) >= 64  # below that, starting processes costs more than it saves
    shared = parallel and start == "fork"
    images = _image_array(len(files), target, shared)  # pages are only touched as images arrive
    chunk = max(1, min(64, len(files) // (workers * 8)))
    spans = [(first, min(first + chunk, len(files))) for first in range(0, len(files), chunk)]
    executor = None
    if parallel:
        # fork: fast, and scripts need no `if __name__ == "__main__"` guard. Nothing OpenCV-related
        # is configured in the children: touching OpenCV's thread pool in a forked child can hang
        executor = ProcessPoolExecutor(
            workers,
            mp_context=get_context(start),
            initializer=_worker_init,
            initargs=(os.getpid(), (images, files, decode) if shared else None),  # forked: inherited, not pickled
        )
        outcomes: Iterable[List[Tuple[int, Optional[np.ndarray], str]]] = executor.map(
            _decode_span if shared else partial(_decode_span_returning, files=files, decode=decode), spans
        )
    else:
        outcomes = (_decode_span_returning(span, files, decode) for span in spans)
    failed: List[int] = []
    skipped: List[Tuple[str, str]] = []
    last = 0
    bar = _progress_bar(len(files), show_progress(progress))
    try:
        for (first, stop), results in zip(spans, outcomes):
            last = stop
            for i, image, reason in results:
                if image is not None:
                    images[i] = image
                    continue
                if on_error == "raise":
                    raise ImageLoadError(f"{files[i]}: {reason}")
                failed.append(i)
                skipped.append((files[i], reason))
            if bar is not None:
                bar.update(stop - first)
    except BrokenProcessPool:
        if start != "fork" and last == 0:  # nothing came back at all
            raise ImageLoadError(
                "the decoding processes failed to start. Here they are spawned: each imports your script again, "
                'so code that loads images must be under `if __name__ == "__main__":` (or pass workers=1)'
            ) from None
        raise ImageLoadError(
            f"a decoding process died (a decoder crashed on a file near {files[min(last, len(files) - 1)]}); "
            "run with workers=1 to find the file"
        ) from None
    finally:
        if bar is not None:
            bar.close()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    if not failed:
        return images, list(range(len(files))), skipped
    bad = set(failed)
    kept = [i for i in range(len(files)) if i not in bad]
    return images[kept], kept, skipped


def _image_array(count: int, target: Tuple[int, int], shared: bool) -> np.ndarray:
    """``(count, h, w, 3)`` uint8; in memory shared with forked processes when ``shared``."""
    shape = (count, *target, 3)
    if not shared:
        return np.empty(shape, np.uint8)
    size = int(np.prod(shape))
    return np.frombuffer(mmap.mmap(-1, max(1, size)), np.uint8, count=size).reshape(shape)


#: In a forked decoding process: (the shared image array, the files, the decode function).
_SHARED_JOB: List[Any] = []


def _decode_span(span: Tuple[int, int]) -> List[Tuple[int, Optional[np.ndarray], str]]:
    """Worker task: decode files ``first .. stop - 1`` straight into the shared array; report the bad ones."""
    images, files, decode = _SHARED_JOB[0]
    bad: List[Tuple[int, Optional[np.ndarray], str]] = []
    for i in range(*span):
        image, reason = decode(files[i])
        if image is None:
            bad.append((i, None, reason))
        else:
            images[i] = image
    return bad


def _decode_span_returning(
    span: Tuple[int, int], files: Sequence[str], decode: Any
) -> List[Tuple[int, Optional[np.ndarray], str]]:
    """Decode files ``first .. stop - 1`` and return every image (one process, or spawned workers)."""
    return [(i, *decode(files[i])) for i in range(*span)]


def _progress_bar(total: int, show: bool) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm  # a widget in notebooks, text in terminals

    return tqdm(total=total, desc="loading images", unit="img")


def _worker_init(parent: int, shared_job: Any = None) -> None:
    """In each decoding process: Ctrl-C is the parent's to handle, and the worker dies with its parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if shared_job is not None:
        _SHARED_JOB[:] = [shared_job]
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: killed when the parent goes
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
