"""Row blocks in a thread pool: windowed reads + reduction, all in one process.

Each task reads rows ``r0:r0+n`` of every date (one windowed read through the thread's
own :class:`labkit.io.StackReader`, opened at its first task) and reduces them straight
into its slice of the output arrays. GDAL releases the GIL while it reads and the kernels
while they compute, so threads overlap I/O and arithmetic without copying anything between
processes. Blocks are cache-sized (:func:`labkit.backends.io_block_rows`): the kernel reads
the block back from the cache, not from RAM. Splitting by rows keeps every pixel's
arithmetic unchanged: the result is bitwise identical to sequential.

Timings (seconds): ``read`` and ``compute`` of the busiest thread; ``merge`` the rest of
the wall time after start-up (waiting, scheduling, GIL contention).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from labkit.backends import Result, io_block_rows
from labkit.backends.pools import Pool, apply_test_hooks, critical_path, session
from labkit.io import StackReader, TileStack, cached_reader, read_block, stack_key
from labkit.stats import reduce_stack

__all__ = ["compute", "reduce_block"]


_BUFFERS = threading.local()  # per pool thread: block buffers kept between tasks and runs


def _thread_block(paths: list[Path], n: int, key: tuple | None
                  ) -> tuple[StackReader, np.ndarray]:
    """This thread's cached reader of ``paths`` (:func:`labkit.io.cached_reader`) and a
    C-contiguous (dates, n, cols) buffer, both kept between the tasks and runs of a pool:
    opening the tiles and faulting in a fresh buffer cost ≈7 ms per run."""
    reader = cached_reader(paths, key)
    buffers = getattr(_BUFFERS, "by_shape", None)
    if buffers is None:
        buffers = _BUFFERS.by_shape = {}
    shape = (len(paths), n, reader.width)
    if shape not in buffers:
        if len(buffers) >= 2:  # full blocks and the last, shorter one
            buffers.clear()
        buffers[shape] = np.empty(shape, np.float32)
    return reader, buffers[shape]


def reduce_block(paths: list[Path], r0: int, n: int, ddof: int, min_count: int | None,
                 out: tuple[np.ndarray, np.ndarray], stop: threading.Event,
                 keep: bool = True, key: tuple | None = None
                 ) -> tuple[int, float, float, int]:
    """Thread task: read rows ``r0:r0+n`` of every date and reduce them into ``out``.

    With ``keep`` the thread keeps its open tiles and block buffer for its next tasks and
    runs (:func:`_thread_block`; ``key``: :func:`labkit.io.stack_key` of ``paths``, taken
    once per run); without it every task opens the tiles again.
    Returns (thread id, read seconds, compute seconds, bytes read); does nothing when
    ``stop`` is already set (the run is being abandoned).
    """
    apply_test_hooks(stop)
    tid = threading.get_ident()
    if stop.is_set():
        return tid, 0.0, 0.0, 0
    t0 = time.perf_counter()
    if keep:
        reader, buf = _thread_block(paths, n, key)
        block = reader.read(r0, n, out=buf)
    else:
        block = read_block(paths, r0, n)
    t1 = time.perf_counter()
    reduce_stack(block, ddof=ddof, min_count=min_count,
                 out=(out[0][r0:r0 + n], out[1][r0:r0 + n]))
    return tid, t1 - t0, time.perf_counter() - t1, block.nbytes


def compute(stack: TileStack, *, workers: int = 1, block_rows: int | None = None,
            ddof: int = 0, min_count: int | None = None, pool: Pool | None = None,
            progress: Callable[[int, int], None] | None = None, **_: Any) -> Result:
    """Mean and std with ``workers`` threads over row blocks.

    Parameters
    ----------
    stack : TileStack
    workers : int, default 1
        Threads.
    block_rows : int, optional
        Rows per task (default: about :func:`~labkit.backends.io_block_rows`, rounded
        so that every thread gets as many blocks).
    ddof, min_count
        See :func:`labkit.stats.finalize`.
    pool : Pool, optional
        A thread pool from ``make_pool("threads", n)`` with n ≥ ``workers``.
    progress : callable(done, total), optional
        Called as blocks finish.
    """
    if block_rows is None:  # cache-sized blocks, as many per thread (the last one shorter)
        tasks = math.ceil(stack.rows / io_block_rows(stack.n_dates, stack.cols))
        tasks = workers * math.ceil(tasks / workers)
        br = math.ceil(stack.rows / tasks)
    else:
        br = block_rows
    mean = np.empty((stack.rows, stack.cols), np.float32)
    std = np.empty_like(mean)
    starts = range(0, stack.rows, br)
    records = []
    nbytes = 0
    key = stack_key(stack.paths)
    with session(pool, "thread", workers) as s:
        t0 = time.perf_counter()
        futures = [s.submit(reduce_block, stack.paths, r0, min(br, stack.rows - r0), ddof,
                            min_count, (mean, std), s.stop, True, key) for r0 in starts]
        for i, f in enumerate(futures):
            tid, t_read, t_comp, nb = f.result()
            records.append((tid, t_read, t_comp))
            nbytes += nb
            if progress:
                progress(i + 1, len(futures))
        wall = time.perf_counter() - t0
    read, comp = critical_path(records)
    timings = {"startup": s.startup, "read": read, "compute": comp,
               "merge": max(0.0, wall - read - comp)}
    meta = {"pool": "own" if s.own else "given", "tasks": len(starts), "block_rows": br}
    return Result(mean, std, timings, nbytes, meta)
