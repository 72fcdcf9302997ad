"""Dask as an executor of the lab's kernel: one task per chunk of rows.

The image is cut into chunks of ``block_rows`` rows; each chunk is one ``dask.delayed``
task that reads those rows of every date (the lab's windowed read, with the K//2 halo rows
when a Lee filter is on) and reduces them with the lab's kernel
(:func:`labkit.stats.reduce_stack`) into a float32 mean and std block. The graph is just
those independent tasks; Dask's scheduler runs them on ``opts.workers`` threads,
processes or a local ``distributed`` cluster (``opts.scheduler``, see
:mod:`labkit.backends._dask`), and this process copies the blocks into the maps. Every
pixel's arithmetic is that of sequential: the result is **bitwise identical** to it, on
every scheduler and with any chunk size.

``opts.strategy == "xarray"`` runs the ecosystem's way instead (rioxarray + xarray's
``.mean("time")`` / ``.std("time")``: :mod:`labkit.backends.xarray_way`; not bitwise).

Timings (seconds), as far as they can be told apart here:

``startup``
    Starting the run's thread pool, process pool or cluster (scheduler, nannies, worker
    processes, client, kernel loaded in every worker); 0 with a given pool.
``read``, ``compute``
    Measured inside the tasks: reading the chunk's rows, and filtering + reducing them,
    summed per worker; the busiest worker's (the critical path).
``merge``
    The rest of the wall time after start-up: building the graph, Dask's scheduling,
    sending tasks and result blocks between processes, waiting, and copying the blocks
    into the maps.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from labkit.backends._dask import chunk_rows
from labkit.backends._filtering import filtered, read_with_halo
from labkit.backends._result import Result
from labkit.backends._timing import phase_timings
from labkit.backends.options import RunOptions
from labkit.errors import LabError
from labkit.filters import LeeFilter
from labkit.io import TileStack, cached_reader, stack_key
from labkit.stats import reduce_stack

__all__ = ["chunk_rows", "compute", "reduce_chunk"]



def reduce_chunk(paths: list[Path], r0: int, n: int, filt: LeeFilter | None, ddof: int,
                 min_count: int | None, kernel: str | None, key: tuple
                 ) -> tuple[np.ndarray, np.ndarray, str, float, float, int]:
    """Dask task: rows ``r0 .. r0+n`` of every date, read and reduced.

    Returns (mean block, std block, worker id, read seconds, compute seconds, bytes
    read). The worker keeps its open tiles for its next tasks (``key``:
    :func:`labkit.io.stack_key` of ``paths``).
    """
    t0 = time.perf_counter()
    error = None
    try:
        reader = cached_reader(paths, key)
        halo = None
        if filt is not None:  # with the K//2 rows above and below
            block, halo = read_with_halo(reader, r0, n, filt)
        else:
            block = reader.read(r0, n)
    except LabError as exc:  # raised again below, without the reader's error chained
        error = LabError(str(exc))  # (a worker pickles the chain; GDAL's does not unpickle)
    if error is not None:
        raise error
    nbytes = block.nbytes
    t1 = time.perf_counter()
    if filt is not None:
        block = filtered(block, filt, halo)
    mean, std = reduce_stack(block, ddof=ddof, min_count=min_count, kernel=kernel)
    worker = f"{os.getpid()}-{threading.get_ident()}"
    return mean, std, worker, t1 - t0, time.perf_counter() - t1, nbytes


def compute(stack: TileStack, opts: RunOptions) -> Result:
    """Mean and std with Dask: one task per chunk of ``opts.block_rows`` rows.

    ``opts.scheduler``: ``threads`` (default), ``processes`` or ``distributed``;
    ``opts.pool``: a pool from ``make_pool("dask", n, scheduler=...)`` (n ≥ workers).
    ``opts.strategy == "xarray"``: :func:`labkit.backends.xarray_way.compute`.
    """
    if opts.strategy == "xarray":
        from labkit.backends import xarray_way

        return xarray_way.compute(stack, opts)
    from labkit.backends._dask import scheduler_for, scheduler_session

    scheduler = scheduler_for(opts.pool, opts.scheduler)
    br = opts.block_rows or chunk_rows(stack, opts.workers)
    starts = range(0, stack.rows, br)
    key = stack_key(stack.paths)
    with scheduler_session(opts.pool, scheduler, opts.workers, opts.kernel,
                           opts.filter) as run:
        import dask  # loaded by the session's start-up

        t0 = time.perf_counter()
        task = dask.delayed(reduce_chunk, pure=False)
        tasks = [task(stack.paths, r0, min(br, stack.rows - r0), opts.filter, opts.ddof,
                      opts.min_count, opts.kernel, key) for r0 in starts]
        parts = run.compute(*tasks, progress=opts.progress)
        mean = np.empty((stack.rows, stack.cols), np.float32)
        std = np.empty_like(mean)
        records = []
        nbytes = 0
        for r0, (m, s, worker, t_read, t_comp, nb) in zip(starts, parts, strict=True):
            mean[r0:r0 + len(m)] = m
            std[r0:r0 + len(s)] = s
            records.append((worker, t_read, t_comp))
            nbytes += nb
        wall = time.perf_counter() - t0
    meta = {"scheduler": scheduler, "pool": "own" if run.own else "given",
            "tasks": len(tasks), "block_rows": br, "dask_workers": run.workers}
    return Result(mean, std, phase_timings(run.startup, wall, records), nbytes, meta)
