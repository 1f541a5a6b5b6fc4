"""Small shared helpers: path types, argument checks and atomic file writes.

Every file nnlayers writes (model files, checkpoints, the image cache, histories, ONNX exports)
goes through `atomic_write`: a temporary file beside the target, flushed to disk, then renamed
over it, so that readers see the old file or the new one and never half of one.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator

from .types import PathLike


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None], *, durable: bool = True) -> Path:
    """Write a file through ``write(handle)`` so that it appears complete or not at all.

    The data goes to a temporary file in the same folder (named after the process, so that
    leftovers of a killed writer can be told apart), is flushed and fsynced, and replaces the
    target with one rename. ``durable=False`` skips the fsyncs, for derived data that is checked
    when read (the image cache): readers still never see half a file, but a power cut may lose it. A symlink is written through to its target; the target keeps the
    mode of the file it replaces (a new file gets the usual mode under the umask). After the
    rename, temporary files that killed writers left beside the same target are removed.

    Raises:
        OSError: The folder is missing or read-only, or the disk is full; the target is unchanged.
    """
    target = Path(os.path.realpath(path))
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{_temp_prefix(target)}{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)  # atomic: readers see the old file or the new one, never half
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        with contextlib.suppress(OSError):  # make the rename itself durable
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    remove_stale_temps(target)
    return target


def atomic_write_bytes(path: PathLike, chunks: Iterable[bytes], *, durable: bool = True) -> Path:
    """`atomic_write` of the given byte strings, one after another."""

    def write(handle: IO[bytes]) -> None:
        for chunk in chunks:
            handle.write(chunk)

    return atomic_write(path, write, durable=durable)


def _mode_for(target: Path) -> int:
    """The mode a rewritten file keeps, or 0666 under the umask for a new one (as ``open`` gives)."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _stale_temps(target: Path) -> Iterator[Path]:
    """Temporary files beside ``target`` whose writing process no longer runs."""
    prefix = _temp_prefix(target)
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            name = entry.name
            if not (name.startswith(prefix) and name.endswith(".tmp")):
                continue
            pid_text = name[len(prefix) :].split(".", 1)[0]
            if not pid_text.isdigit() or not _process_alive(int(pid_text)):
                yield Path(entry.path)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def remove_stale_temps(target: PathLike) -> None:
    """Remove what interrupted writes of ``target`` left behind (never another live writer's file)."""
    for leftover in _stale_temps(Path(target)):
        with contextlib.suppress(OSError):
            leftover.unlink()
