"""The ``.nnl`` file format, byte by byte: writing, and reading defensively.

A file is::

    b"NNLAYERS"                      8 bytes, the magic
    header length                    8 bytes, unsigned little-endian
    header                           JSON, UTF-8
    array data                       raw little-endian bytes, one array after another
    SHA-256 of everything above      32 bytes

Reading never trusts the file: only a regular file is opened (a FIFO or a device is refused
unread), the magic is checked before anything else is read, the checksum is computed by
streaming the file in chunks, the header is checked field by field (duplicate keys, types,
sizes), and the array table must describe the data exactly, computed in Python integers so that
no shape can overflow. Arrays are then read one by one, straight into the arrays that will hold
them: loading a model takes about its own size in memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
from typing import Any, Dict, Iterator, List, Mapping, Tuple

import numpy as np

from ..data.image import BACKENDS, CHANNEL_ORDERS, INTERPOLATIONS, MAX_SIZE
from ..utils.types import PathLike

MAGIC = b"NNLAYERS"


FORMAT_VERSION = 1


MAX_HEADER_BYTES = 64 * 1024 * 1024


#: The input layouts a model file may name: images channels last, or those images flattened to rows
#: (which the model's first layer decides: `nnlayers.nn.structure.flattens_input`).
LAYOUTS = ("NHWC", "NHWC, flattened")


ALLOWED_DTYPES = frozenset({"<f4", "<f8", "<f2", "<i8", "<i4", "|u1", "|i1", "|b1"})


_CHUNK = 1 << 20


class ModelFileError(ValueError):
    """A model file is missing, truncated, corrupt, from a newer format, or not a model file."""


def encode(header: Dict[str, Any], arrays: Mapping[str, np.ndarray]) -> Iterator[bytes]:
    """The file's bytes, chunk by chunk: magic, header (with the array table), arrays, checksum."""
    table: Dict[str, Dict[str, Any]] = {}
    chunks: List[bytes] = []
    offset = 0
    for name, array in arrays.items():
        data = np.asarray(array, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        data = data.astype(data.dtype.newbyteorder("<"), copy=False)
        if data.dtype.str not in ALLOWED_DTYPES:
            raise TypeError(f"cannot save array {name!r} of dtype {array.dtype}; numeric arrays only")
        raw = data.tobytes()
        table[name] = {"dtype": data.dtype.str, "shape": list(data.shape), "offset": offset, "nbytes": len(raw)}
        chunks.append(raw)
        offset += len(raw)
    header_bytes = json.dumps({**header, "arrays": table}, separators=(",", ":"), allow_nan=True).encode()
    digest = hashlib.sha256()
    for chunk in (MAGIC, len(header_bytes).to_bytes(8, "little"), header_bytes, *chunks):
        digest.update(chunk)
        yield chunk
    yield digest.digest()


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise ModelFileError(f"the header repeats the key {duplicate!r}")
    return dict(pairs)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_preprocessing(value: Any) -> None:
    """Refuse preprocessing that would make `predict` decode photos into absurd arrays."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise ModelFileError(f"preprocessing must be an object, got {type(value).__name__}")
    size = value.get("size", [64, 64])
    if not (isinstance(size, list) and len(size) == 2 and all(_is_count(v) and 1 <= v <= MAX_SIZE for v in size)):
        raise ModelFileError(f"preprocessing size must be two ints from 1 to {MAX_SIZE}, got {size!r}")
    if value.get("backend", "cv2") not in BACKENDS or value.get("interpolation", "cubic") not in INTERPOLATIONS:
        raise ModelFileError(f"preprocessing names an unknown decoder or interpolation: {value!r}")
    if not isinstance(value.get("reduce", True), bool):
        raise ModelFileError(f"preprocessing reduce must be true or false, got {value.get('reduce')!r}")
    scale = value.get("scale", 1 / 255)  # every documented field is honoured (data.image.preprocess) or refused
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise ModelFileError(f"preprocessing scale must be a positive number, got {scale!r}")
    if value.get("channel_order", "RGB") not in CHANNEL_ORDERS:
        raise ModelFileError(
            f"preprocessing channel_order must be one of {CHANNEL_ORDERS}, got {value.get('channel_order')!r}"
        )
    if value.get("layout", "NHWC") not in LAYOUTS:
        raise ModelFileError(f"preprocessing layout must be one of {LAYOUTS}, got {value.get('layout')!r}")


def check_header(header: Any) -> Dict[str, Any]:
    """The header, checked field by field (types, versions, sizes), or a `ModelFileError` saying which."""
    if not isinstance(header, dict) or header.get("format") != "nnlayers-model":
        raise ModelFileError("not an nnlayers model file (no format field)")
    version = header.get("format_version")
    if not _is_count(version) or int(version) > FORMAT_VERSION:  # type: ignore[arg-type]
        raise ModelFileError(
            f"it uses model-file format version {version!r}; this nnlayers ({FORMAT_VERSION}) reads up to version {FORMAT_VERSION}. "
            "Upgrade nnlayers to load it."
        )
    if not isinstance(header.get("architecture"), dict):
        raise ModelFileError("the header has no architecture")
    classes = header.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise ModelFileError(f"classes must be a list of names, got {classes!r}"[:200])
    check_preprocessing(header.get("preprocessing"))
    for key in ("metadata", "training"):
        if header.get(key) is not None and not isinstance(header[key], dict):
            raise ModelFileError(f"{key} must be an object, got {type(header[key]).__name__}")
    if not isinstance(header.get("arrays"), dict):
        raise ModelFileError("the header has no array table")
    return header


class ModelFile:
    """An opened, verified model file: its header, and its arrays read on demand.

    Use as a context manager; the file stays open (and its content fixed: a save replaces the
    file, it does not change this one) until the block ends.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = os.fspath(path)
        if not os.path.lexists(self.path):
            raise FileNotFoundError(f"model file not found: {self.path}")
        if os.path.isdir(self.path):
            raise IsADirectoryError(f"{self.path} is a folder, not a model file")
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        self.handle: io.BufferedReader = os.fdopen(fd, "rb")
        try:
            self._open()
        except BaseException:
            self.handle.close()
            raise

    def _error(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: {message}")

    def _open(self) -> None:
        info = os.fstat(self.handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise self._error("not a regular file (a FIFO, device or socket); refused unread")
        size = info.st_size
        start = self.handle.read(16)
        if not start.startswith(MAGIC[: len(start)]) or len(start) < len(MAGIC):
            kind = " (it looks like a pickle, which nnlayers never loads)" if start[:1] == b"\x80" else ""
            raise ModelFileError(f"{self.path} is not an nnlayers model file{kind}")
        if size < 16 + 32:
            raise self._error(f"truncated ({size} bytes)")
        header_len = int.from_bytes(start[8:16], "little")
        if header_len > min(MAX_HEADER_BYTES, size - 16 - 32):
            raise self._error(f"truncated or corrupt: its header claims {header_len} bytes, the file has {size}")
        self._verify_checksum(size)
        self.handle.seek(16)
        try:
            header = json.loads(self.handle.read(header_len), object_pairs_hook=_no_duplicates)
        except ModelFileError as error:
            raise self._error(str(error)) from None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise self._error(f"unreadable header: {type(error).__name__}: {error}"[:300]) from None
        try:
            self.header = check_header(header)
        except ModelFileError as error:
            raise self._error(str(error)) from None
        self.data_start = 16 + header_len
        self.table = self._check_table(self.header["arrays"], size - 32 - self.data_start)

    def _verify_checksum(self, size: int) -> None:
        digest = hashlib.sha256()
        self.handle.seek(0)
        remaining = size - 32
        while remaining:
            chunk = self.handle.read(min(_CHUNK, remaining))
            if not chunk:
                raise self._error("truncated while reading")
            digest.update(chunk)
            remaining -= len(chunk)
        if digest.digest() != self.handle.read(32):
            raise self._error("corrupt or truncated: its checksum does not match (the file was changed or cut short)")

    def _check_table(self, table: Dict[str, Any], data_bytes: int) -> Dict[str, Tuple[np.dtype, Tuple[int, ...], int]]:
        checked: Dict[str, Tuple[np.dtype, Tuple[int, ...], int]] = {}
        expected_offset = 0
        for name, entry in table.items():
            if not isinstance(entry, dict) or not {"dtype", "shape", "offset", "nbytes"} <= set(entry):
                raise self._error(f"bad entry for array {name!r}")
            dtype_str, shape, offset, nbytes = entry["dtype"], entry["shape"], entry["offset"], entry["nbytes"]
            if dtype_str not in ALLOWED_DTYPES:
                raise self._error(
                    f"array {name!r} has dtype {dtype_str!r}; only numeric arrays are loaded (never objects or pickles)"
                )
            if not isinstance(shape, list) or not all(_is_count(d) for d in shape) or offset != expected_offset:
                raise self._error(f"bad shape or offset for array {name!r}")
            dtype = np.dtype(dtype_str)
            if math.prod(shape) * dtype.itemsize != nbytes or not _is_count(nbytes) or offset + nbytes > data_bytes:
                raise self._error(f"array {name!r} of shape {shape} does not match its {nbytes} bytes")
            checked[name] = (dtype, tuple(shape), offset)
            expected_offset += nbytes
        if expected_offset != data_bytes:
            raise self._error(f"{data_bytes - expected_offset} bytes of array data are not described by the header")
        return checked

    def weight_values(self) -> int:
        """How many values the file's weight arrays hold: all that its layers may claim when built."""
        return sum(math.prod(shape) for name, (_, shape, _) in self.table.items() if name.startswith("weights."))

    def read_into(self, name: str, out: np.ndarray) -> None:
        """Read array ``name`` straight into ``out`` (same shape; cast when the dtypes differ)."""
        dtype, shape, offset = self.table[name]
        if tuple(out.shape) != shape:
            raise self._error(f"array {name!r} has shape {list(shape)}, expected {list(out.shape)}")
        self.handle.seek(self.data_start + offset)
        if out.dtype == dtype and out.flags.c_contiguous:
            if self.handle.readinto(out.reshape(-1).view(np.uint8).data) != out.nbytes:  # a view: no copy
                raise self._error(f"truncated in array {name!r}")
        else:
            out[...] = self.read(name)

    def read(self, name: str) -> np.ndarray:
        """Array ``name``, newly allocated."""
        dtype, shape, _ = self.table[name]
        out = np.empty(shape, dtype)
        self.read_into(name, out)
        return out

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> ModelFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_all(path: PathLike) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """The header and every array of a (small) file, verified."""
    with ModelFile(path) as f:
        return f.header, {name: f.read(name) for name in f.table}
