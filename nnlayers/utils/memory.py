"""Large arrays without page faults: glibc's allocator asked to keep freed memory for the next step.

By default glibc serves every allocation above 32 MB (a batch of activations) with a fresh ``mmap``
and returns it to the system when freed, so each training step touches its new pages for the first
time again: some 8,000 page faults per 32 MB, several milliseconds. With a higher mapping threshold
and trim threshold the freed blocks stay in the heap and the next step reuses them. The peak memory
is unchanged; the process keeps what it once used until it exits (as PyTorch's caching allocators do).
Set ``NNLAYERS_KEEP_MEMORY=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done = False


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks up to 1 GB for reuse; ``True`` when it did (Linux with glibc only)."""
    global _done
    if _done or os.environ.get("NNLAYERS_KEEP_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL("libc.so.6")
        _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 31))
    except (OSError, AttributeError):  # not glibc (musl, ...)
        _done = False
    return _done
