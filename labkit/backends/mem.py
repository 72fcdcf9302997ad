"""Read the stack once into shared memory, then reduce row slabs in worker processes.

The course's v3 ("mem"): the parent reads every date, one after the other, into one
:class:`multiprocessing.shared_memory.SharedMemory` block laid out as
``(n_dates + 2, rows, cols)`` float32: the dates, then the mean and std outputs. Each
worker attaches to the block by name, runs :func:`labkit.stats.reduce_stack` on its rows
and writes into the output planes, so no big array is ever pickled. Splitting by rows
keeps every pixel's arithmetic unchanged: the result is bitwise identical to sequential.

The block is unlinked whatever happens (error, Ctrl-C, a dead worker). Its name starts
with :data:`SHM_PREFIX` and the parent's pid, so a leftover is easy to spot in
``/dev/shm``.

Timings (seconds): ``read`` the parent's read into shared memory, ``compute`` the busiest
worker's reduction, ``merge`` the rest (dispatch, attach, copying the outputs out).
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import time
from collections.abc import Callable
from multiprocessing import resource_tracker, shared_memory
from typing import Any

import numpy as np

from labkit.backends import Result
from labkit.backends.pools import Pool, apply_test_hooks, critical_path, session
from labkit.errors import LabError
from labkit.io import TileStack, read_block
from labkit.stats import reduce_stack

__all__ = ["MEM_HEADROOM", "SHM_PREFIX", "check_fits", "compute", "reduce_rows"]

SHM_PREFIX = "labkit_"
MEM_HEADROOM = 0.8  # fraction of the available RAM (and free /dev/shm) the block may take
_GIB = 2.0**30  # bytes


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


def reduce_rows(name: str, shape: tuple[int, int, int], r0: int, r1: int, ddof: int,
                min_count: int | None) -> tuple[int, float]:
    """Worker task: attach to block ``name`` and reduce rows ``r0:r1`` into its outputs.

    Returns (pid, compute seconds).
    """
    apply_test_hooks()
    t0 = time.perf_counter()
    shm = shared_memory.SharedMemory(name=name)
    try:
        block = np.ndarray(shape, np.float32, buffer=shm.buf)
        n = shape[0] - 2
        # the whole C-contiguous dates block with a row range, not a strided row slice:
        # the fused kernel vectorises only over contiguous arrays
        reduce_stack(block[:n], rows=(r0, r1), ddof=ddof, min_count=min_count,
                     out=(block[n, r0:r1], block[n + 1, r0:r1]))
        del block
    finally:
        shm.close()
    return os.getpid(), time.perf_counter() - t0


def compute(stack: TileStack, *, workers: int = 1, block_rows: int | None = None,
            ddof: int = 0, min_count: int | None = None, pool: Pool | None = None,
            progress: Callable[[int, int], None] | None = None, **_: Any) -> Result:
    """Mean and std: read to shared memory, reduce row slabs in parallel.

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
        A process pool from ``make_pool("mem", n)`` with n ≥ ``workers``.
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
    check_fits(nbytes)
    br = block_rows or math.ceil(rows / workers)
    starts = list(range(0, rows, br))
    name = f"{SHM_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
    # registered first: if creation fails, SharedMemory unregisters the name, and an
    # unknown name makes CPython's resource tracker print a KeyError traceback
    if os.name == "posix":
        resource_tracker.register(f"/{name}", "shared_memory")
    try:
        shm = shared_memory.SharedMemory(name=name, create=True, size=nbytes)
    except OSError as exc:  # e.g. a file-size limit (ulimit -f) also caps /dev/shm
        raise LabError(f"cannot create a {nbytes / _GIB:.3g} GiB shared-memory block: "
                       f"{exc.strerror}; use threads or sequential") from None
    block: np.ndarray | None = None
    try:
        with session(pool, "process", workers) as s:
            block = np.ndarray(shape, np.float32, buffer=shm.buf)
            t0 = time.perf_counter()
            read_block(stack.paths, 0, rows, out=block[:n])  # straight into shared memory
            t1 = time.perf_counter()
            futures = [s.submit(reduce_rows, name, shape, r0, min(rows, r0 + br), ddof,
                                min_count) for r0 in starts]
            records = []
            for i, f in enumerate(futures):
                pid, t_comp = f.result()
                records.append((pid, 0.0, t_comp))
                if progress:
                    progress(i + 1, len(futures))
            mean, std = block[n].copy(), block[n + 1].copy()
            t2 = time.perf_counter()
    finally:
        block = None
        try:
            shm.close()
        except BufferError:  # a view still alive (e.g. in a traceback): unlink anyway
            pass
        shm.unlink()
    _, comp = critical_path(records)
    timings = {"startup": s.startup, "read": t1 - t0, "compute": comp,
               "merge": max(0.0, (t2 - t1) - comp)}
    meta = {"start_method": s.pool.start_method, "pool": "own" if s.own else "given",
            "tasks": len(starts), "block_rows": br, "shm_bytes": nbytes}
    return Result(mean, std, timings, stack.nbytes, meta)
