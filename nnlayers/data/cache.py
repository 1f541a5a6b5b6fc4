"""The decoded-image cache: a folder decoded once loads in a fraction of a second the next time.

Each entry is two files in `default_cache_dir`: ``<key>.npy`` (the uint8 images) and
``<key>.json`` (labels, paths, skipped files, the source folder, a CRC-32 of the array). The key
covers every file's path, size and modification time and every decoding option, so a changed
folder is decoded again. Entries are written atomically and fsynced, checked when read (a
damaged entry is reported, removed and rebuilt, never used), read into memory rather than mapped
(so a cache file truncated by someone else cannot crash a running program), and bounded: only
the `KEEP_PER_FOLDER` newest entries of each folder are kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..utils.files import atomic_write, atomic_write_bytes
from ..utils.types import PathLike

CACHE_FORMAT = 2


#: Entries kept per source folder: each change to a folder makes a new entry.
KEEP_PER_FOLDER = 2


def default_cache_dir() -> Path:
    """``$NNLAYERS_CACHE_DIR``, else ``$XDG_CACHE_HOME/nnlayers``, else ``~/.cache/nnlayers``."""
    if os.environ.get("NNLAYERS_CACHE_DIR"):
        return Path(os.environ["NNLAYERS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nnlayers"


def cache_key(files: Sequence[str], names: Sequence[str], stamps: Sequence[Tuple[int, int]], options: Mapping) -> str:
    """A digest of every file (path, size, modification time), its class and every option."""
    digest = hashlib.sha256(json.dumps({"format": CACHE_FORMAT, **options}, sort_keys=True).encode())
    digest.update(b"\0".join(map(os.fsencode, files)) + b"\1" + "\0".join(names).encode("utf-8", "surrogateescape"))
    digest.update(np.array(stamps, np.int64).tobytes())
    return digest.hexdigest()[:32]


class _Damaged(Exception):
    """A cache entry that must not be used."""


def read_entry(directory: Path, key: str) -> Optional[Tuple[np.ndarray, Dict[str, Any]]]:
    """The cached images and metadata, or ``None`` when there is no entry or it was damaged (then removed)."""
    meta_path, array_path = directory / f"{key}.json", directory / f"{key}.npy"
    if not meta_path.exists():
        return None
    try:
        meta = _read_meta(meta_path)
        images = _read_array(array_path, meta)
    except _Damaged as damage:
        warnings.warn(
            f"the image cache entry {meta_path} was damaged ({damage}); decoding the folder again", stacklevel=3
        )
        remove_entry(directory, key)
        return None
    with contextlib.suppress(OSError):  # recently used: kept longest when old entries are removed
        os.utime(meta_path)
    return images, meta


def _read_meta(path: Path) -> Dict[str, Any]:
    try:
        meta = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise _Damaged(f"unreadable metadata: {error}") from None
    fields = {"labels": list, "paths": list, "skipped": list, "crc32": int, "shape": list}
    if not isinstance(meta, dict) or any(not isinstance(meta.get(k), t) for k, t in fields.items()):
        raise _Damaged("metadata without the expected fields")
    return meta


def _read_array(path: Path, meta: Mapping[str, Any]) -> np.ndarray:
    try:  # read, not mapped: a file truncated under a mapping kills the process (SIGBUS)
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise _Damaged(f"unreadable array: {error}") from None
    if images.dtype != np.uint8 or list(images.shape) != meta["shape"] or len(images) != len(meta["labels"]):
        raise _Damaged(f"array of {images.dtype} {images.shape} does not match its metadata")
    if zlib.crc32(np.ascontiguousarray(images).data) != meta["crc32"]:
        raise _Damaged("checksum mismatch: the array's bytes changed")
    return images


def write_entry(directory: Path, key: str, images: np.ndarray, meta: Dict[str, Any], folder: PathLike) -> None:
    """Store an entry (array first, metadata last: the metadata marks it complete), then prune the folder's old ones."""
    meta = {**meta, "folder": os.fsdecode(os.path.abspath(folder)), "shape": list(images.shape)}
    meta["crc32"] = zlib.crc32(np.ascontiguousarray(images).data)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / f"{key}.npy", lambda f: np.save(f, images, allow_pickle=False))
        atomic_write_bytes(directory / f"{key}.json", [json.dumps(meta).encode()])
    except OSError as error:
        warnings.warn(f"could not write the image cache in {directory}: {error}", stacklevel=3)
        return
    old = [entry for entry in cache_entries(directory) if entry.folder == meta["folder"] and entry.key != key]
    for entry in old[: max(0, len(old) - (KEEP_PER_FOLDER - 1))]:  # oldest first
        remove_entry(directory, entry.key)


def remove_entry(directory: Path, key: str) -> None:
    for suffix in (".json", ".npy"):  # the metadata first: without it the array is never used
        with contextlib.suppress(OSError):
            (directory / f"{key}{suffix}").unlink()


@dataclass
class CacheEntry:
    """One cached folder: its key, source folder, image count, bytes on disk and last use."""

    key: str
    folder: str
    images: int
    nbytes: int
    last_used: float


def cache_entries(directory: Optional[PathLike] = None) -> List[CacheEntry]:
    """The entries of the image cache, least recently used first."""
    root = Path(directory) if directory is not None else default_cache_dir()
    entries = []
    for meta_path in root.glob("*.json") if root.is_dir() else []:
        key = meta_path.stem
        try:
            meta = json.loads(meta_path.read_bytes())
            size = meta_path.stat().st_size + (root / f"{key}.npy").stat().st_size
            used = meta_path.stat().st_mtime
        except (OSError, ValueError):
            meta, size, used = {}, 0, 0.0
        if not isinstance(meta, dict):
            meta = {}
        labels = meta.get("labels")
        entries.append(
            CacheEntry(key, str(meta.get("folder", "?")), len(labels) if isinstance(labels, list) else 0, size, used)
        )
    return sorted(entries, key=lambda e: e.last_used)


def clear_cache(folder: Optional[PathLike] = None, directory: Optional[PathLike] = None) -> int:
    """Remove the cached images of ``folder`` (or of every folder); return how many entries went."""
    root = Path(directory) if directory is not None else default_cache_dir()
    wanted = None if folder is None else os.fsdecode(os.path.abspath(folder))
    removed = 0
    for entry in cache_entries(root):
        if wanted is None or entry.folder == wanted:
            remove_entry(root, entry.key)
            removed += 1
    for leftover in root.glob("*.npy") if wanted is None and root.is_dir() else []:  # arrays without metadata
        with contextlib.suppress(OSError):
            leftover.unlink()
    return removed


def describe_cache(directory: Optional[PathLike] = None) -> str:
    """A few lines: each cached folder with its size and age, and the total."""
    entries = cache_entries(directory)
    root = Path(directory) if directory is not None else default_cache_dir()
    now = time.time()
    lines = [f"image cache in {root}: {len(entries)} entries, {sum(e.nbytes for e in entries) / 1e6:,.1f} MB"]
    for e in entries:
        age = (now - e.last_used) / 3600
        lines.append(f"  {e.key}  {e.nbytes / 1e6:9,.1f} MB  {e.images:7,} images  used {age:6.1f} h ago  {e.folder}")
    return "\n".join(lines)
