"""The decoded-image cache: a folder decoded once loads in a fraction of a second the next time.

Each entry is two files in `default_cache_dir`: ``nnl-<key>.npy`` (the uint8 images) and
``nnl-<key>.json`` (labels, paths, skipped files, the source folder, CRC-32s of the array, one per
16 MiB block, computed on both cores, and the ``nnlayers_cache`` marker). The cache lists and removes
only files of that form, so a cache folder shared with other files (``NNLAYERS_CACHE_DIR`` pointed at a
project folder) loses none of them. The key covers every file's path, size and modification
time and every decoding option, so a changed folder is decoded again. Entries are written
atomically but not fsynced (derived data: a write that a power cut tears is caught by the CRCs
and rebuilt, so a cold load does not wait for the disk), checked when read (a damaged entry is
reported, removed and rebuilt, never used), read into memory rather than mapped
(so a cache file truncated by someone else cannot crash a running program), and bounded: only
the `KEEP_PER_FOLDER` newest entries of each folder are kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..utils.files import atomic_write, atomic_write_bytes
from ..utils.types import PathLike

CACHE_FORMAT = 4


#: The start of every file name the cache writes: it removes nothing else.
PREFIX = "nnl-"


_KEY = re.compile(r"[0-9a-f]{32}")

#: The array is checksummed in blocks of this many bytes, the blocks spread over two threads
#: (zlib releases the GIL). Few large blocks: a thread that reads while the folder is indexed waits for
#: the GIL once per block.
CRC_BLOCK = 16 << 20


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
    digest.update(os.fsencode("\0".join(files)) + b"\1" + "\0".join(names).encode("utf-8", "surrogateescape"))
    digest.update(np.array(stamps, np.int64).tobytes())
    return digest.hexdigest()[:32]


class _Damaged(Exception):
    """A cache entry that must not be used."""


class Prefetch:
    """The entry a folder had last, read on a thread while the folder is indexed (a warm load then costs
    the longer of the two, not their sum); used only if the index gives the same key."""

    def __init__(self, directory: Path, folder: PathLike, options: Mapping[str, Any]) -> None:
        self.key: Optional[str] = None
        self._result: Any = None
        self._thread: Optional[threading.Thread] = None
        try:
            self.key = (directory / f"{PREFIX}{_folder_tag(folder, options)}.latest").read_text().strip()
        except (OSError, UnicodeDecodeError):
            return
        if not (_KEY.fullmatch(self.key) and (directory / f"{PREFIX}{self.key}.json").exists()):
            self.key = None
            return
        self._thread = threading.Thread(target=self._read, args=(directory, self.key), daemon=True)
        self._thread.start()

    def _read(self, directory: Path, key: str) -> None:
        try:
            meta = _read_meta(directory / f"{PREFIX}{key}.json")
            # one thread: the other core indexes the folder meanwhile
            self._result = (_read_array(directory / f"{PREFIX}{key}.npy", meta, threads=1), meta)
        except _Damaged as damage:
            self._result = damage

    def result(self, key: str) -> Any:
        """``(images, meta)`` or the `_Damaged` error, if the entry read is ``key``'s; else ``None``."""
        if self._thread is None or key != self.key:
            return None
        self._thread.join()
        return self._result


def _folder_tag(folder: PathLike, options: Mapping[str, Any]) -> str:
    """Names the pointer to the newest entry of a folder decoded with these options."""
    text = json.dumps({"folder": os.fsdecode(os.path.abspath(folder)), **options}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def read_entry(
    directory: Path, key: str, prefetched: Optional[Prefetch] = None
) -> Optional[Tuple[np.ndarray, Dict[str, Any]]]:
    """The cached images and metadata, or ``None`` when there is no entry or it was damaged (then removed)."""
    meta_path, array_path = directory / f"{PREFIX}{key}.json", directory / f"{PREFIX}{key}.npy"
    if not meta_path.exists():
        return None
    try:
        found = prefetched.result(key) if prefetched is not None else None
        if isinstance(found, _Damaged):
            raise found
        if found is not None:
            images, meta = found
        else:
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
    if not _is_ours(meta):
        raise _Damaged("metadata without the expected fields")
    return meta


_FIELDS = {"labels": list, "paths": list, "skipped": list, "crc32_blocks": list, "shape": list}


def _is_ours(meta: Any) -> bool:
    """Whether parsed metadata is an entry the cache wrote: its marker and fields."""
    return (
        isinstance(meta, dict)
        and meta.get("nnlayers_cache") == CACHE_FORMAT
        and all(isinstance(meta.get(k), t) for k, t in _FIELDS.items())
    )


def _read_array(path: Path, meta: Mapping[str, Any], threads: int = 2) -> np.ndarray:
    """The entry's array, read block by block on ``threads`` threads, each block checked against its CRC as it arrives.

    Read, not mapped: a file truncated under a mapping kills the process (SIGBUS).
    """
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(handle)
            offset = handle.tell()
            if dtype != np.uint8 or fortran or list(shape) != meta["shape"] or shape[0] != len(meta["labels"]):
                raise _Damaged(f"array of {dtype} {shape} does not match its metadata")
            images = np.empty(shape, np.uint8)
            flat = images.reshape(-1)
            starts = range(0, len(flat), CRC_BLOCK)
            if len(starts) != len(meta["crc32_blocks"]):
                raise _Damaged("the array's size does not match its checksums")

            def read_block(start: int) -> bool:
                block = flat[start : start + CRC_BLOCK].data
                got = os.preadv(handle.fileno(), [block], offset + start)  # releases the GIL, as zlib does
                return got == len(block) and zlib.crc32(block) == meta["crc32_blocks"][start // CRC_BLOCK]

            with ThreadPoolExecutor(threads) as pool:
                intact = all(pool.map(read_block, starts))
            if os.fstat(handle.fileno()).st_size != offset + len(flat):
                raise _Damaged("the array file is longer or shorter than its array")
    except (OSError, ValueError, EOFError) as error:
        raise _Damaged(f"unreadable array: {error}") from None
    if not intact:
        raise _Damaged("checksum mismatch: the array's bytes changed")
    return images


def block_crcs(images: np.ndarray) -> List[int]:
    """The CRC-32 of each `CRC_BLOCK` bytes of the array, computed on two threads."""
    flat = np.ascontiguousarray(images).reshape(-1).view(np.uint8)
    blocks = [flat[i : i + CRC_BLOCK] for i in range(0, len(flat), CRC_BLOCK)]
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(zlib.crc32, blocks))


def write_entry(
    directory: Path, key: str, images: np.ndarray, meta: Dict[str, Any], folder: PathLike, options: Mapping[str, Any]
) -> None:
    """Store an entry (array first, metadata last: the metadata marks it complete), then prune the folder's old ones."""
    meta = {**meta, "nnlayers_cache": CACHE_FORMAT, "folder": os.fsdecode(os.path.abspath(folder))}
    meta["shape"] = list(images.shape)
    meta["crc32_blocks"] = block_crcs(images)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        save = lambda f: np.save(f, images, allow_pickle=False)  # noqa: E731
        atomic_write(directory / f"{PREFIX}{key}.npy", save, durable=False)
        atomic_write_bytes(directory / f"{PREFIX}{key}.json", [json.dumps(meta).encode()], durable=False)
        pointer = directory / f"{PREFIX}{_folder_tag(folder, options)}.latest"
        atomic_write_bytes(pointer, [key.encode()], durable=False)
    except OSError as error:
        warnings.warn(f"could not write the image cache in {directory}: {error}", stacklevel=3)
        return
    old = [entry for entry in cache_entries(directory) if entry.folder == meta["folder"] and entry.key != key]
    for entry in old[: max(0, len(old) - (KEEP_PER_FOLDER - 1))]:  # oldest first
        remove_entry(directory, entry.key)


def remove_entry(directory: Path, key: str) -> None:
    for suffix in (".json", ".npy"):  # the metadata first: without it the array is never used
        with contextlib.suppress(OSError):
            (directory / f"{PREFIX}{key}{suffix}").unlink()


def _own_files(root: Path, suffix: str) -> List[Tuple[str, Path]]:
    """``(key, path)`` of the files in ``root`` named as the cache names them (``nnl-<32 hex digits><suffix>``)."""
    found = []
    for path in root.glob(f"{PREFIX}*{suffix}") if root.is_dir() else []:
        key = path.name[len(PREFIX) : -len(suffix)]
        if _KEY.fullmatch(key):
            found.append((key, path))
    return found


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
    for key, meta_path in _own_files(root, ".json"):
        try:
            meta = json.loads(meta_path.read_bytes())
            size = meta_path.stat().st_size + (root / f"{PREFIX}{key}.npy").stat().st_size
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
    removed += _clear_legacy(root, wanted)
    for key, leftover in _own_files(root, ".npy") if wanted is None else []:  # arrays without metadata
        if not (root / f"{PREFIX}{key}.json").exists():
            with contextlib.suppress(OSError):
                leftover.unlink()
    for _, pointer in _own_files(root, ".latest"):  # pointers to entries that are gone
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if not (root / f"{PREFIX}{pointer.read_text().strip()}.json").exists():
                pointer.unlink()
    return removed


def _clear_legacy(root: Path, wanted: Optional[str]) -> int:
    """Remove the entries nnlayers 0.2 wrote (``<key>.json`` and ``.npy``, no prefix), told apart by their fields."""
    removed = 0
    for meta_path in root.glob("*.json") if root.is_dir() else []:
        if not _KEY.fullmatch(meta_path.stem):
            continue
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(meta_path.read_bytes())
            if not isinstance(meta, dict) or not all(isinstance(meta.get(k), t) for k, t in _FIELDS.items()):
                continue
            if wanted is None or meta.get("folder") == wanted:
                meta_path.unlink()
                meta_path.with_suffix(".npy").unlink(missing_ok=True)
                removed += 1
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
