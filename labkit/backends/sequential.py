"""The baseline: one process reads every date block by block and accumulates.

With ``prefetch=True`` a background thread reads the next block while the main thread
reduces the current one (double buffering, as dolphin's block loader does): the read hides
behind the compute, and ``read`` in the timings is only the time the kernel waited for data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from labkit.backends import Result, io_block_rows
from labkit.io import StackReader, TileStack
from labkit.stats import reduce_stack

__all__ = ["compute"]


def compute(stack: TileStack, *, block_rows: int | None = None, ddof: int = 0,
            min_count: int | None = None,
            progress: Callable[[int, int], None] | None = None, prefetch: bool = False,
            **_: Any) -> Result:
    """Read ``block_rows`` rows of every date, reduce them in cache-sized blocks, repeat.

    Memory stays at ``n_dates × block_rows × cols`` float32 whatever the tile size (twice
    that with ``prefetch``).

    Parameters
    ----------
    prefetch : bool, default False
        Read block i+1 in a background thread while block i is reduced. Timings then
        hold ``read`` = seconds the kernel waited for data and ``meta["read_total"]`` =
        seconds the reader thread spent reading.
    """
    br = block_rows or io_block_rows(stack.n_dates, stack.cols)
    mean = np.empty((stack.rows, stack.cols), np.float32)
    std = np.empty_like(mean)
    starts = range(0, stack.rows, br)
    shape = (stack.n_dates, min(br, stack.rows), stack.cols)
    buffers = [np.empty(shape, np.float32) for _ in range(2 if prefetch else 1)]
    t_read = t_compute = t_wait = 0.0
    nbytes = 0

    def load(i: int, reader: StackReader) -> tuple[np.ndarray, float]:
        r0 = starts[i]
        n = min(br, stack.rows - r0)
        buf = buffers[i % len(buffers)]
        block = buf if n == buf.shape[1] else np.empty_like(buf[:, :n])
        t0 = time.perf_counter()
        reader.read(r0, n, out=block)
        return block, time.perf_counter() - t0

    with StackReader(stack.paths) as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="labkit-prefetch") as ex:
        pending = ex.submit(load, 0, reader) if prefetch else None
        for i, r0 in enumerate(starts):
            t0 = time.perf_counter()
            if pending is not None:
                block, dt = pending.result()
                pending = ex.submit(load, i + 1, reader) if i + 1 < len(starts) else None
            else:
                block, dt = load(i, reader)
            t1 = time.perf_counter()
            n = block.shape[1]
            reduce_stack(block, ddof=ddof, min_count=min_count,
                         out=(mean[r0:r0 + n], std[r0:r0 + n]))
            t_read += dt
            t_wait += t1 - t0
            t_compute += time.perf_counter() - t1
            nbytes += block.nbytes
            if progress:
                progress(i + 1, len(starts))
    timings = {"read": t_wait if prefetch else t_read, "compute": t_compute, "merge": 0.0}
    meta = {"block_rows": br, "prefetch": prefetch, "read_total": t_read}
    return Result(mean, std, timings, nbytes, meta)
