"""The baseline: one process reads every date block by block and accumulates."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from labkit.backends import IO_BLOCK_ROWS, Result
from labkit.io import TileStack, read_block
from labkit.stats import reduce_stack

__all__ = ["compute"]


def compute(stack: TileStack, *, block_rows: int | None = None, ddof: int = 0,
            min_count: int | None = None,
            progress: Callable[[int, int], None] | None = None, **_: Any) -> Result:
    """Read ``block_rows`` rows of every date, reduce them in cache-sized blocks, repeat.

    Memory stays at ``n_dates × block_rows × cols`` float32 whatever the tile size.
    """
    br = block_rows or IO_BLOCK_ROWS
    mean = np.empty((stack.rows, stack.cols), np.float32)
    std = np.empty_like(mean)
    t_read = t_compute = 0.0
    nbytes = 0
    starts = range(0, stack.rows, br)
    buffer = np.empty((stack.n_dates, min(br, stack.rows), stack.cols), np.float32)
    for i, r0 in enumerate(starts):
        n = min(br, stack.rows - r0)
        block = buffer[:, :n] if n == buffer.shape[1] else np.empty_like(buffer[:, :n])
        t0 = time.perf_counter()
        read_block(stack.paths, r0, n, out=block)
        t1 = time.perf_counter()
        reduce_stack(block, ddof=ddof, min_count=min_count, out=(mean[r0:r0 + n], std[r0:r0 + n]))
        t2 = time.perf_counter()
        t_read += t1 - t0
        t_compute += t2 - t1
        nbytes += block.nbytes
        if progress:
            progress(i + 1, len(starts))
    return Result(mean, std, {"read": t_read, "compute": t_compute, "merge": 0.0},
                  nbytes, {"block_rows": br})
