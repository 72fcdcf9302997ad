"""Row blocks in a thread pool: windowed reads + reduction, all in one process.

Each task reads rows ``r0:r0+n`` of every date (one windowed read through the thread's
own :class:`labkit.io.StackReader`, opened at its first task) and reduces them straight
into its slice of the output arrays. GDAL releases the GIL while it reads and the kernels
while they compute, so threads overlap I/O and arithmetic without copying anything between
processes. Blocks are cache-sized (:func:`labkit.backends.io_block_rows`): the kernel reads
the block back from the cache, not from RAM. With a Lee filter (``opts.filter``) each task
reads its rows with their K//2 halo rows and filters every date before the reduction.
Splitting by rows keeps every pixel's arithmetic unchanged: the result is bitwise
identical to sequential.

Timings (seconds): ``read`` and ``compute`` of the busiest thread; ``merge`` the rest of
the wall time after start-up (waiting, scheduling, GIL contention).
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np

from labkit.backends._buffers import io_block_rows, thread_block
from labkit.backends._filtering import filtered, read_with_halo
from labkit.backends._result import Result
from labkit.backends._session import session
from labkit.backends._timing import phase_timings
from labkit.backends.options import RunOptions
from labkit.io import TileStack, cached_reader, read_block, stack_key
from labkit.stats import reduce_stack

__all__ = ["compute", "reduce_block"]


def reduce_block(paths: list[Path], r0: int, n: int, opts: RunOptions,
                 out: tuple[np.ndarray, np.ndarray], stop: threading.Event,
                 keep: bool = True, key: tuple | None = None
                 ) -> tuple[int, float, float, int]:
    """Thread task: read rows ``r0:r0+n`` of every date and reduce them into ``out``.

    With ``keep`` the thread keeps its open tiles and block buffer for its next tasks and
    runs (``key``: :func:`labkit.io.stack_key` of ``paths``, taken once per run); without
    it every task opens the tiles again (a filtered task keeps its tiles open but reads a
    new block with its halo rows). Returns (thread id, read seconds, compute
    seconds, bytes read); does nothing when ``stop`` is set (the run is abandoned).
    """
    tid = threading.get_ident()
    if stop.is_set():
        return tid, 0.0, 0.0, 0
    t0 = time.perf_counter()
    halo = None
    if opts.filter:  # with the K//2 rows above and below
        block, halo = read_with_halo(cached_reader(paths, key), r0, n, opts.filter)
    elif keep:
        reader, buf = thread_block(paths, n, key)
        block = reader.read(r0, n, out=buf)
    else:
        block = read_block(paths, r0, n)
    nbytes = block.nbytes
    t1 = time.perf_counter()
    if opts.filter:
        block = filtered(block, opts.filter, halo)
    reduce_stack(block, ddof=opts.ddof, min_count=opts.min_count, kernel=opts.kernel,
                 out=(out[0][r0:r0 + n], out[1][r0:r0 + n]))
    return tid, t1 - t0, time.perf_counter() - t1, nbytes


def _rows_per_task(stack: TileStack, workers: int) -> int:
    """Cache-sized blocks, as many per thread (the last one shorter)."""
    tasks = math.ceil(stack.rows / io_block_rows(stack.n_dates, stack.cols))
    tasks = workers * math.ceil(tasks / workers)
    return math.ceil(stack.rows / tasks)


def compute(stack: TileStack, opts: RunOptions) -> Result:
    """Mean and std with ``opts.workers`` threads over row blocks.

    ``opts.block_rows`` is rows per task (default: about
    :func:`~labkit.backends.io_block_rows`, rounded so that every thread gets as many
    blocks); ``opts.pool`` a thread pool from ``make_pool("threads", n)``, n ≥ workers.
    """
    br = opts.block_rows or _rows_per_task(stack, opts.workers)
    mean = np.empty((stack.rows, stack.cols), np.float32)
    std = np.empty_like(mean)
    starts = range(0, stack.rows, br)
    records = []
    nbytes = 0
    key = stack_key(stack.paths)
    with session(opts.pool, "thread", opts.workers, opts.kernel) as s:
        t0 = time.perf_counter()
        futures = [s.submit(reduce_block, stack.paths, r0, min(br, stack.rows - r0), opts,
                            (mean, std), s.stop, True, key) for r0 in starts]
        for i, f in enumerate(futures):
            tid, t_read, t_comp, nb = f.result()
            records.append((tid, t_read, t_comp))
            nbytes += nb
            if opts.progress:
                opts.progress(i + 1, len(futures))
        wall = time.perf_counter() - t0
    meta = {"pool": "own" if s.own else "given", "tasks": len(starts), "block_rows": br}
    return Result(mean, std, phase_timings(s.startup, wall, records), nbytes, meta)
