"""nnlayers' own threads: the work of a convolutional model's step split over the cores.

numpy runs element-wise work on one core, and OpenBLAS's threads keep spinning for 0.1 s after
each product, holding the other cores. So in a model with convolutions BLAS runs on one thread
inside nnlayers' work, and nnlayers splits the work itself: convolutions in cache-sized blocks
(`nnlayers.nn.functional.conv2d`), a large product by rows, columns or its long inner dimension
(the partial products added in a fixed order), an element-wise pass by rows, each part on a thread
of one small pool (numpy releases the GIL inside both). Outside that work BLAS keeps its own
setting, so numpy products in the user's code are unchanged. Small work runs on the calling
thread, unsplit. Work that is mostly products (a model without convolutions, a recurrent or
attention layer) runs inside `blas_threads`: BLAS's own threads, nothing split.

The thread count is `set_num_threads` or, until it is called, ``NNLAYERS_NUM_THREADS``,
``OMP_NUM_THREADS`` or ``OPENBLAS_NUM_THREADS`` (as BLAS reads them), else the usable cores. A
given count always splits the same way, so a seeded run repeats exactly.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional, Tuple, TypeVar, cast

import numpy as np

from .types import Array

#: A part of a product or pass is at least this large: handing work to a sleeping thread and hearing
#: back from it takes 0.2 to 0.4 ms on these machines (their idle cores sleep deeply).
MIN_PRODUCT_FLOPS = 1 << 25
MIN_ELEMENTS = 1 << 17

F = TypeVar("F", bound=Callable[..., Any])
_ENVIRONMENT = ("NNLAYERS_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_lock = threading.Lock()
_inside = threading.local()  # a pool thread's own work is not split again
_state: dict = {"threads": None, "pool": None, "blas": None, "depth": 0}


def _default_threads() -> int:
    for name in _ENVIRONMENT:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def get_num_threads() -> int:
    """The number of threads nnlayers' products and element-wise passes use."""
    if _state["threads"] is None:
        _state["threads"] = _default_threads()
    return int(_state["threads"])


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for nnlayers' work and for numpy's BLAS outside it (as ``torch.set_num_threads``)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"set_num_threads expected a positive integer, got {n!r}")
    with _lock:
        old = _state["pool"]
        _state["threads"], _state["pool"] = int(n), None
        if _state["depth"] == 0:
            _blas_set(int(n))
    if old is not None:
        old.shutdown(wait=False)


def _blas_functions() -> Optional[Tuple[Any, Any]]:
    """OpenBLAS's ``set_num_threads`` and ``get_num_threads`` as numpy loaded it (``None`` elsewhere)."""
    if _state["blas"] is None:
        _state["blas"] = ()
        try:
            with open("/proc/self/maps") as maps:
                paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
        except OSError:  # not Linux: BLAS keeps its own threads
            paths = set()
        for path in sorted(paths):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", ""):
                    setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    if setter is not None and getter is not None:
                        setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
                        _state["blas"] = (setter, getter)
                        return _state["blas"]
    return _state["blas"] or None


def _blas_set(n: int) -> None:
    functions = _blas_functions()
    if functions is not None:
        functions[0](n)


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread inside (nnlayers splits the work itself); its setting back on leaving."""
    with _lock:
        _state["depth"] += 1
        if _state["depth"] == 1:
            _blas_set(1)
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                _blas_set(get_num_threads())


def _pool(threads: int) -> ThreadPoolExecutor:
    with _lock:
        if _state["pool"] is None:
            _state["pool"] = ThreadPoolExecutor(threads - 1, thread_name_prefix="nnlayers")
        return _state["pool"]


def _marked(work: Callable[[int, int], Any], start: int, stop: int) -> None:
    _inside.active = True
    try:
        work(start, stop)
    finally:
        _inside.active = False


def bounds(n_items: int, parts: int) -> List[Tuple[int, int]]:
    """``parts`` contiguous ranges covering ``range(n_items)``, as even as they can be."""
    edges = [n_items * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def for_ranges(n_items: int, work: Callable[[int, int], Any], cost: int) -> None:
    """Call ``work(start, stop)`` over ``range(n_items)`` in parts, one a thread, when ``cost`` (in
    elements touched) pays for the threads; else once, on this thread. BLAS is single-threaded inside."""
    threads = get_num_threads()
    parts = min(threads, n_items, max(1, cost // MIN_ELEMENTS))
    if getattr(_inside, "blas_threads", False):
        work(0, n_items)
        return
    with single_threaded_blas():
        if parts < 2 or getattr(_inside, "active", False):
            work(0, n_items)
            return
        ranges = bounds(n_items, parts)
        futures = [_pool(threads).submit(_marked, work, a, b) for a, b in ranges[1:]]
        error: Optional[BaseException] = None
        try:
            _marked(work, *ranges[0])
        except BaseException as e:  # the other parts still finish before the error goes up
            error = e
        for future in futures:
            try:
                future.result()
            except BaseException as e:
                error = error or e
        if error is not None:
            raise error


def row_sums(n_items: int, work: Callable[[int, int], Array], cost: int) -> Array:
    """The sum of ``work(start, stop)`` over parts of ``range(n_items)``, computed one part a thread
    (as `for_ranges`) and added in the parts' order, so a thread count always gives the same sum."""
    parts = bounds(n_items, min(get_num_threads(), n_items, max(1, cost // MIN_ELEMENTS)))
    partial: List[Any] = [None] * len(parts)

    def run(first: int, last: int) -> None:
        for p in range(first, last):
            partial[p] = work(*parts[p])

    for_ranges(len(parts), run, cost)
    total = partial[0]
    for extra in partial[1:]:
        total = total + extra
    return total


def matmul(a: Array, b: Array, out: Optional[Array] = None, bias: Optional[Array] = None) -> Array:
    """``a @ b (+ bias)``. A large product of 2-D arrays is split over the threads, BLAS on one thread in
    each: for a short wide ``a`` by a tall ``b`` (a weight gradient) by the inner dimension, the partial
    products added in order; else by columns of ``b`` when wider than tall, or by rows of ``a``. Small
    products and stacks of products (3-D and more) run on this thread (see `blas_threads`)."""
    blas_own = getattr(_inside, "blas_threads", False)
    if blas_own or a.ndim != 2 or b.ndim != 2:
        out = np.matmul(a, b, out=out) if blas_own else _unsplit(a, b, out)
        if bias is not None:
            out += bias
        return out
    (m, k), n = a.shape, b.shape[1]
    if out is None:
        out = np.empty((m, n), np.result_type(a, b))
    flops = 2 * m * k * n
    if get_num_threads() < 2 or flops < 2 * MIN_PRODUCT_FLOPS or getattr(_inside, "active", False):
        _unsplit(a, b, out)
        if bias is not None:
            out += bias
        return out
    cost = flops * MIN_ELEMENTS // MIN_PRODUCT_FLOPS  # in elements' worth of work, as `for_ranges` counts
    if k >= 4 * max(m, n):
        np.copyto(out, row_sums(k, lambda s, e: a[:, s:e] @ b[s:e], cost))
        if bias is not None:
            out += bias
        return out
    if n > m:  # wider than tall (a weight gradient of few units): each thread reads and writes its own columns

        def columns(s: int, e: int) -> None:
            np.matmul(a, b[:, s:e], out=out[:, s:e])
            if bias is not None:
                out[:, s:e] += bias[s:e]

        for_ranges(n, columns, cost)
        return out

    def rows(s: int, e: int) -> None:
        np.matmul(a[s:e], b, out=out[s:e])
        if bias is not None:
            out[s:e] += bias

    for_ranges(m, rows, cost)
    return out


def _unsplit(a: Array, b: Array, out: Optional[Array]) -> Array:
    """One product on this thread, BLAS on one thread too (unless inside `blas_threads`)."""
    if getattr(_inside, "blas_threads", False):
        return np.matmul(a, b, out=out)
    with single_threaded_blas():
        return np.matmul(a, b, out=out)


@contextmanager
def blas_threads() -> Iterator[None]:
    """Inside, BLAS keeps its own threads and nnlayers splits nothing: for work made of products, as
    recurrent and attention layers' (BLAS's threads wait spinning and answer a product at once, where
    a pool thread must be woken), but not beside convolutions (for 0.1 s after its last product a
    BLAS thread spins on a core that nnlayers' own threads need)."""
    before = getattr(_inside, "blas_threads", False)
    _inside.blas_threads = True
    try:
        yield
    finally:
        _inside.blas_threads = before


def with_blas_threads(method: F) -> F:
    """A layer's method run inside `blas_threads`."""

    @functools.wraps(method)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with blas_threads():
            return method(*args, **kwargs)

    return cast(F, wrapped)


def elementwise(work: Callable[..., Any], out: Array, *inputs: Array) -> Array:
    """``work(*inputs, out=out)`` in parts along the first axis, one a thread (``work`` is a ufunc or a
    function of ufuncs that writes ``out``; what it broadcasts against must fit any range of rows)."""
    if any(np.ndim(x) == 0 or len(x) != len(out) for x in inputs) or out.ndim == 0:
        with single_threaded_blas():
            work(*inputs, out=out)
        return out

    def part(s: int, e: int) -> None:
        work(*(x[s:e] for x in inputs), out=out[s:e])

    for_ranges(len(out), part, out.size * (len(inputs) + 1))
    return out
