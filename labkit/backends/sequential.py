"""The baseline: one process reads every date block by block and accumulates.

With ``prefetch=True`` reading and computing overlap (double buffering, as dolphin's block
loader does): while a helper thread reduces block i, this thread already reads block i+1
into the other buffer. The wall time drops from read + compute towards the larger of the
two; ``compute`` in the timings is then only the time the reader waited for the kernel.

With a Lee filter (``opts.filter``) each block is read with its K//2 halo rows above and
below, and every date is filtered before the reduction (timed as ``compute``).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from labkit.backends._buffers import block_view, io_block_rows
from labkit.backends._filtering import filtered, read_with_halo
from labkit.backends._result import Result
from labkit.backends.options import RunOptions
from labkit.io import TileStack, cached_reader
from labkit.stats import reduce_stack

__all__ = ["compute"]


def compute(stack: TileStack, opts: RunOptions) -> Result:
    """Read ``block_rows`` rows of every date, reduce them in cache-sized blocks, repeat.

    Memory stays at ``n_dates × block_rows × cols`` float32 whatever the tile size (twice
    that with ``prefetch``). The open tiles are kept for the next run of the same
    (unchanged) files (:func:`labkit.io.cached_reader`).

    With ``opts.prefetch`` block i is reduced in a helper thread while block i+1 is read;
    timings then hold ``compute`` = seconds the reader waited for the kernel and
    ``meta["compute_total"]`` = seconds the kernel ran.
    """
    prefetch, progress = opts.prefetch, opts.progress
    br = opts.block_rows or io_block_rows(stack.n_dates, stack.cols)
    mean = np.empty((stack.rows, stack.cols), np.float32)
    std = np.empty_like(mean)
    starts = range(0, stack.rows, br)
    shape = (stack.n_dates, min(br, stack.rows), stack.cols)
    buffers = [np.empty(shape, np.float32) for _ in range(2 if prefetch else 1)]
    t_read = t_wait = 0.0
    t_compute = [0.0]
    nbytes = 0
    reader = cached_reader(stack.paths)

    def reduce(block: np.ndarray, r0: int, halo: np.ndarray | None) -> None:
        t0 = time.perf_counter()
        if opts.filter:
            block = filtered(block, opts.filter, halo)
        n = block.shape[1]
        reduce_stack(block, ddof=opts.ddof, min_count=opts.min_count, kernel=opts.kernel,
                     out=(mean[r0:r0 + n], std[r0:r0 + n]))
        t_compute[0] += time.perf_counter() - t0

    with ThreadPoolExecutor(1, thread_name_prefix="labkit-kernel") as ex:
        pending: Future | None = None
        for i, r0 in enumerate(starts):
            n = min(br, stack.rows - r0)
            buf = buffers[i % len(buffers)]
            t0 = time.perf_counter()
            halo = None  # meanwhile the helper reduces the previous block
            if opts.filter:  # a new array, with the K//2 rows above and below
                block, halo = read_with_halo(reader, r0, n, opts.filter)
            else:
                block = reader.read(r0, n, out=block_view(buf, n))
            t1 = time.perf_counter()
            if pending is not None:
                pending.result()  # its buffer is the one read next
            t2 = time.perf_counter()
            if prefetch:
                pending = ex.submit(reduce, block, r0, halo)
            else:
                reduce(block, r0, halo)
            t_read += t1 - t0
            t_wait += t2 - t1
            nbytes += block.nbytes
            if progress:
                progress(i + 1, len(starts))
        if pending is not None:
            t0 = time.perf_counter()
            pending.result()
            t_wait += time.perf_counter() - t0
    timings = {"read": t_read, "compute": t_wait if prefetch else t_compute[0], "merge": 0.0}
    meta = {"block_rows": br, "prefetch": prefetch, "compute_total": t_compute[0]}
    return Result(mean, std, timings, nbytes, meta)
