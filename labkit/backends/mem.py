"""Read the stack once into shared memory, then reduce row slabs in worker processes.

The course's v3 ("mem"): one :class:`multiprocessing.shared_memory.SharedMemory` block
laid out as ``(n_dates + 2, rows, cols)`` float32 holds the dates, then the mean and std
outputs. Each worker attaches to the block by name, reads ITS row slab of every date
straight into it (the stack is still read from disk once, into RAM, but by all workers at
once), runs :func:`labkit.stats.reduce_stack` on those rows and writes into the output
planes, so no big array is ever pickled. One task per worker by default. Splitting by rows
keeps every pixel's arithmetic unchanged: the result is bitwise identical to sequential.

With a pool given (``make_pool("mem", n)``) the block is kept with the pool and reused
by the next runs while it is big enough (and the workers keep it attached and their tiles
open): a fresh block costs page faults (≈ 60-100 ms per 100 MiB), more than reducing a
small stack. It is unlinked when the pool is closed or terminated (a dead worker, Ctrl-C)
or at interpreter exit. Without a pool the block lives for the run only. Whatever happens
(error, Ctrl-C, a dead worker) no block outlives its owner. Its name starts with
:data:`SHM_PREFIX` and the parent's pid, so a leftover is easy to spot in ``/dev/shm``.

Timings (seconds): ``read`` and ``compute`` of the busiest worker (its reads into shared
memory, its reductions); ``merge`` the rest (dispatch, waiting, copying the outputs out).
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import shutil
import threading
import time
import weakref
from collections.abc import Callable
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path
from typing import Any

import numpy as np

from labkit import interrupts
from labkit.backends import Result
from labkit.backends.pools import Pool, apply_test_hooks, critical_path, session
from labkit.errors import LabError
from labkit.io import TileStack, cached_reader, stack_key
from labkit.stats import reduce_stack

__all__ = ["MEM_HEADROOM", "SHM_PREFIX", "check_fits", "compute", "read_reduce"]

SHM_PREFIX = "labkit_"
MEM_HEADROOM = 0.8  # fraction of the available RAM (and free /dev/shm) the block may take
_GIB = 2.0**30  # bytes
_CACHE_KEY = "mem"  # Pool.cache entry: (SharedMemory, lock)
_attached: dict[str, Any] = {}  # in a worker: the block it keeps attached ("name", "shm")


def check_fits(nbytes: int) -> None:
    """Raise :class:`LabError` unless a shared block of ``nbytes`` bytes fits in memory.

    Checks ``psutil.virtual_memory().available`` and, on Linux, the free space of
    ``/dev/shm`` (where shared memory lives; containers often make it small).
    """
    import psutil

    avail = psutil.virtual_memory().available
    if nbytes > MEM_HEADROOM * avail:
        raise LabError(f"stack needs {nbytes / _GIB:.3g} GiB, {avail / _GIB:.3g} GiB available:"
                       " use threads or sequential")
    if os.path.isdir("/dev/shm"):
        free = shutil.disk_usage("/dev/shm").free
        if nbytes > MEM_HEADROOM * free:
            raise LabError(f"stack needs {nbytes / _GIB:.3g} GiB of shared memory, /dev/shm has "
                           f"{free / _GIB:.3g} GiB free: use threads or sequential")


def _attach(name: str, shape: tuple[int, int, int]) -> np.ndarray:
    """Worker side: block ``name`` as a float32 array of ``shape``, kept attached between
    tasks and runs (attaching and faulting its pages in again would cost more than a small
    run); a block of another name replaces it."""
    if _attached.get("name") != name:
        old = _attached.pop("shm", None)
        _attached.clear()
        if old is not None:
            with contextlib.suppress(BufferError):  # no view of it left in this process
                old.close()
        _attached["shm"] = shared_memory.SharedMemory(name=name)
        _attached["name"] = name
    shm = _attached["shm"]
    return np.ndarray(shape, np.float32, buffer=shm.buf)


def read_reduce(name: str, shape: tuple[int, int, int], paths: list[Path], key: tuple,
                r0: int, r1: int, ddof: int, min_count: int | None
                ) -> tuple[int, float, float]:
    """Worker task: read rows ``r0:r1`` of every date into block ``name``, reduce them
    into its output planes.

    ``key`` is :func:`labkit.io.stack_key` of ``paths`` (the worker keeps its tiles open
    while it matches). Returns (pid, read seconds, compute seconds).
    """
    apply_test_hooks()
    t0 = time.perf_counter()
    block = _attach(name, shape)
    n = shape[0] - 2
    cached_reader(paths, key).read(r0, r1 - r0, out=block[:n, r0:r1])
    t1 = time.perf_counter()
    # the whole C-contiguous dates block with a row range, not a strided row slice:
    # the fused kernel vectorises only over contiguous arrays
    reduce_stack(block[:n], rows=(r0, r1), ddof=ddof, min_count=min_count,
                 out=(block[n, r0:r1], block[n + 1, r0:r1]))
    return os.getpid(), t1 - t0, time.perf_counter() - t1


def _create(nbytes: int) -> shared_memory.SharedMemory:
    """A new block named ``labkit_<pid>_<random>`` (LabError if the system refuses it)."""
    name = f"{SHM_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    # registered first: if creation fails, SharedMemory unregisters the name, and an
    # unknown name makes CPython's resource tracker print a KeyError traceback
    if os.name == "posix":
        resource_tracker.register(f"/{name}", "shared_memory")
    try:
        return shared_memory.SharedMemory(name=name, create=True, size=nbytes)
    except OSError as exc:  # e.g. a file-size limit (ulimit -f) also caps /dev/shm
        raise LabError(f"cannot create a {nbytes / _GIB:.3g} GiB shared-memory block: "
                       f"{exc.strerror}; use threads or sequential") from None


def _release(shm: shared_memory.SharedMemory) -> None:
    """Close and unlink ``shm`` (idempotent)."""
    with contextlib.suppress(BufferError):  # a view still alive (e.g. in a traceback)
        shm.close()
    with contextlib.suppress(FileNotFoundError):
        shm.unlink()


def _pool_block(pool: Pool, nbytes: int
                ) -> tuple[shared_memory.SharedMemory, bool, threading.Lock] | None:
    """The block kept with ``pool`` (made or enlarged as needed), whether it is new, and
    its lock, acquired for this run; None if another run holds it (the caller makes its
    own block)."""
    entry = pool.cache.get(_CACHE_KEY)
    if entry is None:
        entry = pool.cache[_CACHE_KEY] = [None, threading.Lock(), None]
    shm, lock, finalizer = entry
    if not lock.acquire(blocking=False):
        return None
    try:
        if shm is not None and shm.size >= nbytes:
            return shm, False, lock
        if finalizer is not None:  # too small: free it before making a bigger one
            finalizer()
            entry[0] = entry[2] = None
        check_fits(nbytes)
        shm = _create(nbytes)
        # unlinked by pool.close()/terminate(), or when the pool is collected or Python exits
        entry[0], entry[2] = shm, weakref.finalize(pool, _release, shm)
        pool.on_close.append(entry[2])
        return shm, True, lock
    except BaseException:
        lock.release()
        raise


def compute(stack: TileStack, *, workers: int = 1, block_rows: int | None = None,
            ddof: int = 0, min_count: int | None = None, pool: Pool | None = None,
            progress: Callable[[int, int], None] | None = None, **_: Any) -> Result:
    """Mean and std: every worker reads its rows into shared memory and reduces them.

    Parameters
    ----------
    stack : TileStack
    workers : int, default 1
        Worker processes.
    block_rows : int, optional
        Rows per task (default: ``ceil(rows / workers)``, one slab per worker).
    ddof, min_count
        See :func:`labkit.stats.finalize`.
    pool : Pool, optional
        A process pool from ``make_pool("mem", n)`` with n ≥ ``workers``; it keeps the
        shared-memory block for its next runs.
    progress : callable(done, total), optional
        Called in the parent as slabs finish.

    Raises
    ------
    LabError
        Before anything starts if the block (stack + 2 outputs) does not fit in memory.
    """
    n, rows, cols = stack.shape
    shape = (n + 2, rows, cols)
    nbytes = math.prod(shape) * 4
    br = block_rows or math.ceil(rows / workers)
    starts = list(range(0, rows, br))
    key = stack_key(stack.paths)
    reuse = isinstance(pool, Pool) and pool.kind == "process" and not pool.closed
    got = shm = None
    block: np.ndarray | None = None
    try:
        with interrupts.deferred():  # no Ctrl-C between making the block and owning it
            got = _pool_block(pool, nbytes) if reuse and workers <= pool.workers else None
            if got is None:
                check_fits(nbytes)
                shm, how = _create(nbytes), "run"
            else:
                shm, how = got[0], "new" if got[1] else "reused"
        with session(pool, "process", workers) as s:
            t0 = time.perf_counter()
            futures = [s.submit(read_reduce, shm.name, shape, stack.paths, key, r0,
                                min(rows, r0 + br), ddof, min_count) for r0 in starts]
            # while the workers run: fault the result arrays in (zeros), then copy each slab
            # out as soon as it is done
            mean, std = np.empty((rows, cols), np.float32), np.empty((rows, cols), np.float32)
            mean.fill(0.0)
            std.fill(0.0)
            block = np.ndarray(shape, np.float32, buffer=shm.buf)
            records = []
            for i, (r0, f) in enumerate(zip(starts, futures, strict=True)):
                records.append(f.result())
                mean[r0:r0 + br] = block[n, r0:r0 + br]
                std[r0:r0 + br] = block[n + 1, r0:r0 + br]
                if progress:
                    progress(i + 1, len(futures))
            block = None
            t1 = time.perf_counter()
    finally:
        block = None
        with interrupts.deferred():
            if got is not None:
                got[2].release()
            elif shm is not None:
                _release(shm)
    read, comp = critical_path(records)
    timings = {"startup": s.startup, "read": read, "compute": comp,
               "merge": max(0.0, (t1 - t0) - read - comp)}
    meta = {"start_method": s.pool.start_method, "pool": "own" if s.own else "given",
            "tasks": len(starts), "block_rows": br, "shm_bytes": nbytes, "shm": how}
    return Result(mean, std, timings, stack.nbytes, meta)
