"""Worker processes over dates: the course's first two parallel versions.

``per-file`` (v1)
    One task per date: a worker reads the whole tile and sends the whole image back
    (maximal inter-process traffic); the parent adds the dates, in date order, into one
    :class:`~labkit.stats.Accumulator`, so the result is bitwise equal to sequential.
``partitioned`` (v2)
    Contiguous chunks of dates, one per worker; each worker accumulates locally and sends
    back one :class:`~labkit.stats.Partial` (count, mean, M2); the parent merges them in
    chunk order with :func:`~labkit.stats.merge` (within 1 float32 ulp of sequential).

With a Lee filter (``opts.filter``) every worker filters each whole date it reads before
it is added (timed as ``compute``).

Timings (seconds): ``read`` and ``compute`` are those of the busiest worker (for
per-file, ``compute`` is the parent's accumulation); ``merge`` is the rest of the run's
wall time after start-up: sending images/partials between processes, waiting, merging.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from labkit.backends._filtering import filtered_image
from labkit.backends._result import Result
from labkit.backends._session import Session, session
from labkit.backends._timing import critical_path
from labkit.backends.options import RunOptions
from labkit.filters import LeeFilter
from labkit.io import TileStack, read_tile
from labkit.stats import Accumulator, Partial, finalize, merge

__all__ = ["compute", "read_date", "reduce_dates"]


def read_date(path: Path, filt: LeeFilter | None = None
              ) -> tuple[np.ndarray, int, float, float]:
    """Worker task (per-file): read one whole tile (Lee-filtered with ``filt``).

    Returns (image, pid, read seconds, filter seconds).
    """
    t0 = time.perf_counter()
    image = read_tile(path)
    t1 = time.perf_counter()
    image = filtered_image(image, filt)
    return image, os.getpid(), t1 - t0, time.perf_counter() - t1


def reduce_dates(paths: list[Path], nan_aware: bool, filt: LeeFilter | None = None
                 ) -> tuple[Partial, int, float, float, int]:
    """Worker task (partitioned): accumulate a chunk of dates (each Lee-filtered with
    ``filt``).

    Returns (partial, pid, read seconds, compute seconds, bytes read).
    """
    acc: Accumulator | None = None
    t_read = t_compute = 0.0
    nbytes = 0
    for p in paths:
        t0 = time.perf_counter()
        x = read_tile(p)
        t1 = time.perf_counter()
        nbytes += x.nbytes
        x = filtered_image(x, filt)
        if acc is None:
            acc = Accumulator(x.shape, nan_aware=nan_aware)
        acc.add(x)
        t_read += t1 - t0
        t_compute += time.perf_counter() - t1
    assert acc is not None
    t0 = time.perf_counter()
    part = acc.partial()
    return part, os.getpid(), t_read, t_compute + time.perf_counter() - t0, nbytes


def _per_file(stack: TileStack, s: Session, workers: int, nan_aware: bool,
              progress: Callable[[int, int], None] | None, filt: LeeFilter | None
              ) -> tuple[Partial, list, float, int]:
    acc = Accumulator((stack.rows, stack.cols), nan_aware=nan_aware)
    pending: deque[Future] = deque()
    todo = iter(stack.paths)
    records: list[tuple[int, float, float]] = []
    t_add = 0.0
    nbytes = 0
    for p in todo:  # keep at most 2 images per worker in flight
        pending.append(s.submit(read_date, p, filt))
        if len(pending) >= 2 * workers:
            break
    done = 0
    while pending:
        image, pid, t_read, t_filter = pending.popleft().result()  # date order
        nxt = next(todo, None)
        if nxt is not None:
            pending.append(s.submit(read_date, nxt, filt))
        t0 = time.perf_counter()
        acc.add(image)
        t_add += time.perf_counter() - t0
        records.append((pid, t_read, t_filter))
        nbytes += image.nbytes
        done += 1
        if progress:
            progress(done, stack.n_dates)
    t0 = time.perf_counter()
    part = acc.partial()
    t_add += time.perf_counter() - t0
    return part, records, t_add, nbytes


def _partitioned(stack: TileStack, s: Session, workers: int, nan_aware: bool,
                 progress: Callable[[int, int], None] | None, filt: LeeFilter | None
                 ) -> tuple[Partial, list, int]:
    chunks = [list(c) for c in np.array_split(np.arange(stack.n_dates), workers) if len(c)]
    futures = [s.submit(reduce_dates, [stack.paths[i] for i in c], nan_aware, filt)
               for c in chunks]
    records: list[tuple[int, float, float]] = []
    nbytes = 0
    total: Partial | None = None
    for i, f in enumerate(futures):  # chunk (= date) order
        part, pid, t_read, t_comp, nb = f.result()
        records.append((pid, t_read, t_comp))
        nbytes += nb
        total = part if total is None else merge(total, part)
        if progress:
            progress(i + 1, len(futures))
    assert total is not None
    return total, records, nbytes


def compute(stack: TileStack, opts: RunOptions) -> Result:
    """Mean and std with ``opts.workers`` processes over dates (see the module docstring).

    ``opts.strategy``: ``partitioned`` (default; at most one chunk of dates per worker)
    or ``per-file``; ``opts.pool``: a process pool from ``make_pool("multiprocessing",
    n)`` with n ≥ workers; ``opts.progress`` is called in the parent as dates (per-file)
    or chunks (partitioned) arrive.
    """
    nan_aware, workers, progress = opts.min_count is not None, opts.workers, opts.progress
    strategy = opts.strategy or "partitioned"
    with session(opts.pool, "process", workers, opts.kernel) as s:
        t0 = time.perf_counter()
        if strategy == "per-file":
            total, records, t_parent, nbytes = _per_file(stack, s, workers, nan_aware, progress,
                                                         opts.filter)
        else:
            total, records, nbytes = _partitioned(stack, s, workers, nan_aware, progress,
                                                  opts.filter)
            t_parent = 0.0  # the parent only merges
        t1 = time.perf_counter()
        mean, std = finalize(total, opts.ddof, opts.min_count)
        t2 = time.perf_counter()
    read, comp = critical_path(records)
    comp += t_parent + (t2 - t1)
    timings = {"startup": s.startup, "read": read, "compute": comp,
               "merge": max(0.0, (t2 - t0) - read - comp)}
    meta = {"start_method": s.pool.start_method, "pool": "own" if s.own else "given",
            "tasks": len(records), "block_rows": None}
    return Result(mean, std, timings, nbytes, meta)
