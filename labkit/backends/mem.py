"""Read the stack once into shared memory, then reduce row slabs in worker processes.

The course's v3 ("mem"): one shared-memory block laid out as ``(n_dates + 2, rows,
cols)`` float32 holds the dates, then the mean and std outputs
(:mod:`labkit.backends._shm`). Each worker attaches to the block by name, reads ITS row
slab of every date straight into it (the stack is still read from disk once, into RAM,
but by all workers at once), runs :func:`labkit.stats.reduce_stack` on those rows and
writes into the output planes, so no big array is ever pickled. One task per worker by
default. Splitting by rows keeps every pixel's arithmetic unchanged: the result is
bitwise identical to sequential. With a Lee filter each worker reads its rows with their
K//2 halo rows (from the files: the neighbours' rows in the block may not be there yet)
and stores the filtered dates in the block.

With a pool given (``make_pool("mem", n)``) the block is kept with the pool and reused
by the next runs while it is big enough (and the workers keep it attached and their tiles
open): a fresh block costs page faults (≈ 60-100 ms per 100 MiB), more than reducing a
small stack. Without a pool the block lives for the run only. Whatever happens (error,
Ctrl-C, a dead worker) no block outlives its owner.

Timings (seconds): ``read`` and ``compute`` of the busiest worker (its reads into shared
memory, its reductions); ``merge`` the rest (dispatch, waiting, copying the outputs out).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np

from labkit.backends._filtering import filtered, read_with_halo
from labkit.backends._result import Result
from labkit.backends._session import session
from labkit.backends._shm import attach, check_fits, run_block
from labkit.backends._timing import phase_timings
from labkit.backends.options import RunOptions
from labkit.filters import LeeFilter
from labkit.io import TileStack, cached_reader, stack_key
from labkit.stats import reduce_stack

__all__ = ["check_fits", "compute", "read_reduce"]


def read_reduce(name: str, shape: tuple[int, int, int], paths: list[Path], key: tuple,
                r0: int, r1: int, ddof: int, min_count: int | None, kernel: str | None,
                filt: LeeFilter | None = None) -> tuple[int, float, float]:
    """Worker task: read rows ``r0:r1`` of every date into block ``name``, reduce them
    into its output planes. Returns (pid, read seconds, compute seconds).

    ``key`` is :func:`labkit.io.stack_key` of ``paths`` (the worker keeps its tiles open
    while it matches); ``kernel`` the run's statistics kernel; ``filt`` the Lee filter
    (the rows are read with their halo and stored filtered).
    """
    t0 = time.perf_counter()
    block = attach(name, shape)
    n = shape[0] - 2
    reader = cached_reader(paths, key)
    if filt:
        raw, halo = read_with_halo(reader, r0, r1 - r0, filt)
    else:
        reader.read(r0, r1 - r0, out=block[:n, r0:r1])
    t1 = time.perf_counter()
    if filt:
        block[:n, r0:r1] = filtered(raw, filt, halo)
    # the whole C-contiguous dates block with a row range, not a strided row slice:
    # the fused kernel vectorises only over contiguous arrays
    reduce_stack(block[:n], rows=(r0, r1), ddof=ddof, min_count=min_count, kernel=kernel,
                 out=(block[n, r0:r1], block[n + 1, r0:r1]))
    return os.getpid(), t1 - t0, time.perf_counter() - t1


def compute(stack: TileStack, opts: RunOptions) -> Result:
    """Mean and std: every worker reads its rows into shared memory and reduces them.

    ``opts.block_rows`` is rows per task (default ``ceil(rows / workers)``, one slab per
    worker); ``opts.pool`` a process pool from ``make_pool("mem", n)`` with
    n ≥ ``workers``, which keeps the shared-memory block for its next runs.

    Raises
    ------
    LabError
        Before anything starts if the block (stack + 2 outputs) does not fit in memory.
    """
    n, rows, cols = stack.shape
    shape = (n + 2, rows, cols)
    br = opts.block_rows or math.ceil(rows / opts.workers)
    starts = list(range(0, rows, br))
    key = stack_key(stack.paths)
    nbytes = math.prod(shape) * 4
    with run_block(opts.pool, opts.workers, nbytes) as (shm, how), \
            session(opts.pool, "process", opts.workers, opts.kernel) as s:
        t0 = time.perf_counter()
        futures = [s.submit(read_reduce, shm.name, shape, stack.paths, key, r0,
                            min(rows, r0 + br), opts.ddof, opts.min_count, opts.kernel,
                            opts.filter)
                   for r0 in starts]
        # while the workers run: fault the result arrays in (zeros), then copy each slab
        # out as soon as it is done
        mean, std = np.empty((rows, cols), np.float32), np.empty((rows, cols), np.float32)
        mean.fill(0.0)
        std.fill(0.0)
        block: np.ndarray | None = np.ndarray(shape, np.float32, buffer=shm.buf)
        records = []
        try:
            for i, (r0, f) in enumerate(zip(starts, futures, strict=True)):
                records.append(f.result())
                assert block is not None
                mean[r0:r0 + br] = block[n, r0:r0 + br]
                std[r0:r0 + br] = block[n + 1, r0:r0 + br]
                if opts.progress:
                    opts.progress(i + 1, len(futures))
        finally:
            block = None  # no view of the block may outlive it
        wall = time.perf_counter() - t0
    meta = {"start_method": s.pool.start_method, "pool": "own" if s.own else "given",
            "tasks": len(starts), "block_rows": br, "shm_bytes": nbytes, "shm": how}
    return Result(mean, std, phase_timings(s.startup, wall, records), stack.nbytes, meta)
