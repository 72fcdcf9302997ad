"""The MPI algorithm (mpi4py): every rank runs :func:`spmd` on its share of the work.

``split="rows"``
    Each rank reduces a contiguous slab of rows over all dates with
    :func:`labkit.stats.reduce_stack`; rank 0 collects the float32 slabs with ``Gatherv``.
    Bitwise identical to ``sequential`` (every pixel sees the same operations).
``split="dates"``
    Each rank accumulates a contiguous chunk of dates over the whole tile into a
    :class:`labkit.stats.Partial` (count, mean, M2 in float64); rank 0 collects the partial
    arrays with ``Gather`` and merges them in rank order with :func:`labkit.stats.merge`.
    Within 1 float32 ulp of ``sequential`` (the float64 sums are grouped differently).

With a Lee filter every date is filtered before the statistics. ``split="dates"``: each
block is read with its K//2 halo rows. ``split="rows"``: each rank reads its whole slab,
then takes its neighbours' halo rows with ``Sendrecv`` (:mod:`labkit.backends.mpi._halo`);
still bitwise identical to ``sequential``.

Arrays travel with the upper-case buffer methods (no pickling); only small objects
(error messages, per-rank timings) use the lower-case ones. Errors never hang the world
(:mod:`labkit.backends.mpi._faults`): every rank meets the same LabError, or the world is
aborted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from labkit.backends._buffers import io_block_rows
from labkit.backends._filtering import filtered, with_enl
from labkit.backends._filtering import warm_up as load_filter
from labkit.backends._result import Result
from labkit.backends.mpi._faults import abort, first_error, one_line
from labkit.backends.mpi._halo import check_slabs, exchange_halos, halo_index
from labkit.backends.mpi._reading import blocks, share
from labkit.backends.mpi._report import rank_record, rank_result
from labkit.errors import LabError
from labkit.filters import LeeFilter, parse_filter
from labkit.io import StackReader, TileStack, open_stack
from labkit.stats import Accumulator, Partial, cache_block_rows, finalize, merge, reduce_stack
from labkit.stats import warm_up as load_kernel

__all__ = ["SPLITS", "spmd"]

SPLITS = ("rows", "dates")
Progress = Callable[[int, int], None] | None


def rows_local(stack: TileStack, rank: int, size: int, br: int, ddof: int,
               min_count: int | None, kernel: str | None, times: dict[str, float],
               progress: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (float32) of this rank's slab of rows, read ``br`` rows at a time."""
    lo, hi = share(stack.rows, size, rank)
    mean = np.empty((hi - lo, stack.cols), np.float32)
    std = np.empty_like(mean)
    for r0, block, _ in blocks(stack.paths, lo, hi, br, stack.cols, times, progress):
        n = block.shape[1]
        reduce_stack(block, ddof=ddof, min_count=min_count, kernel=kernel,
                     out=(mean[r0 - lo:r0 - lo + n], std[r0 - lo:r0 - lo + n]))
    return mean, std


def read_slab(stack: TileStack, rank: int, size: int, times: dict[str, float]
              ) -> np.ndarray:
    """This rank's whole slab of rows, every date: (dates, slab rows, cols) float32."""
    lo, hi = share(stack.rows, size, rank)
    t0 = time.perf_counter()
    with StackReader(stack.paths) as reader:
        slab = reader.read(lo, hi - lo)
    times["read"] += time.perf_counter() - t0
    times["bytes_read"] += slab.nbytes
    return slab


def filtered_rows_local(comm: Any, stack: TileStack, slab: np.ndarray, filt: LeeFilter,
                        br: int, ddof: int, min_count: int | None, kernel: str | None,
                        times: dict[str, float], progress: Progress
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of this rank's slab with the Lee filter: the neighbours' halo rows
    come by ``Sendrecv``, then ``br`` rows at a time are filtered and reduced.
    """
    lo, hi = share(stack.rows, comm.size, comm.rank)
    rows, above = exchange_halos(comm, slab, filt.halo, times)  # rows[0] is row lo-above
    mean = np.empty((hi - lo, stack.cols), np.float32)
    std = np.empty_like(mean)
    starts = range(lo, hi, br)
    for i, r0 in enumerate(starts):
        t0 = time.perf_counter()
        n = min(br, hi - r0)
        block = filtered(rows, filt, halo_index(r0, n, stack.rows, lo - above, filt.k))
        reduce_stack(block, ddof=ddof, min_count=min_count, kernel=kernel,
                     out=(mean[r0 - lo:r0 - lo + n], std[r0 - lo:r0 - lo + n]))
        times["compute"] += time.perf_counter() - t0
        if progress:
            progress(i + 1, len(starts))
    return mean, std


def dates_local(stack: TileStack, rank: int, size: int, br: int, nan_aware: bool,
                times: dict[str, float], progress: Progress,
                filt: LeeFilter | None = None) -> Partial:
    """Partial (count, mean, M2) of this rank's chunk of dates over the whole tile (each
    date Lee-filtered with ``filt``).
    """
    lo, hi = share(stack.n_dates, size, rank)
    shape = (stack.rows, stack.cols)
    part = Partial(np.zeros(shape, np.int64), np.zeros(shape), np.zeros(shape))
    if hi == lo:
        return part
    kb = cache_block_rows(stack.cols)  # rows per accumulator: stays in cache
    acc: Accumulator | None = None
    for r0, block, halo in blocks(stack.paths[lo:hi], 0, stack.rows, br, stack.cols, times,
                                  progress, filt):
        if filt:
            block = filtered(block, filt, halo)
        for k0 in range(0, block.shape[1], kb):
            k1 = min(block.shape[1], k0 + kb)
            if acc is None or acc.shape[0] != k1 - k0:
                acc = Accumulator((k1 - k0, stack.cols), nan_aware=nan_aware)
            acc.reset()
            for date in block:
                acc.add(date[k0:k1])
            p = acc.partial()
            part.count[r0 + k0:r0 + k1] = p.count
            part.mean[r0 + k0:r0 + k1] = p.mean
            part.m2[r0 + k0:r0 + k1] = p.m2
    return part


def gather_rows(comm: Any, stack: TileStack, local: tuple[np.ndarray, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Gatherv the float32 slabs into full maps on rank 0 ((0, cols) elsewhere)."""
    from mpi4py import MPI

    rows, cols, size = stack.rows, stack.cols, comm.size
    if comm.rank != 0:
        for a in local:
            comm.Gatherv(a, None, root=0)
        return (np.empty((0, cols), np.float32),) * 2
    shares = [share(rows, size, r) for r in range(size)]
    counts = [(hi - lo) * cols for lo, hi in shares]
    displs = [lo * cols for lo, _ in shares]
    out = []
    for a in local:
        full = np.empty((rows, cols), np.float32)
        comm.Gatherv(a, [full, counts, displs, MPI.FLOAT], root=0)
        out.append(full)
    return out[0], out[1]


def gather_dates(comm: Any, stack: TileStack, part: Partial, ddof: int,
                 min_count: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Gather the partials on rank 0, merge them in rank order, finalize."""
    rows, cols, size = stack.rows, stack.cols, comm.size
    nan_aware = min_count is not None
    root = comm.rank == 0
    arrays = [part.mean, part.m2] + ([part.count] if nan_aware else [])
    recv: list[Any] = [np.empty((size, rows, cols), a.dtype) if root else None
                       for a in arrays]
    for a, r in zip(arrays, recv, strict=True):
        comm.Gather(a, r, root=0)
    if not root:
        return (np.empty((0, cols), np.float32),) * 2
    total: Partial | None = None
    for r in range(size):
        if nan_aware:
            count = recv[2][r]
        else:  # strict: every pixel of rank r saw all its dates; no need to send counts
            lo, hi = share(stack.n_dates, size, r)
            count = np.asarray(hi - lo, np.int64)
        p = Partial(count, recv[0][r], recv[1][r])
        total = p if total is None else merge(total, p)
    assert total is not None
    return finalize(total, ddof, min_count)


def spmd(comm: Any, src: TileStack | str | os.PathLike[str] | Sequence[Any], *,
         split: str = "rows", block_rows: int | None = None, ddof: int = 0,
         min_count: int | None = None, progress: Progress = None,
         kernel: str | None = None, filter: LeeFilter | str | None = None) -> Result:
    """Temporal mean and std with every rank of ``comm`` (call it on all ranks).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The communicator (``MPI.COMM_WORLD`` under ``mpiexec`` or on ipyparallel engines).
    src : TileStack, folder, or list of tile files
        Opened and validated on every rank if not already a :class:`TileStack`.
    split : {"rows", "dates"}, default "rows"
        How the work is divided (see the module docstring).
    block_rows : int, optional
        Rows read per date per I/O block (default :func:`~labkit.backends.io_block_rows`).
    ddof, min_count
        See :func:`labkit.stats.finalize`.
    progress : callable(done, total), optional
        Called on rank 0 after each of its blocks.
    kernel : {"numba", "numpy"}, optional
        The statistics kernel (same bits either way).
    filter : LeeFilter or str, optional
        Lee speckle filter applied to every date first (``"lee:7"``; see
        :class:`labkit.backends.RunOptions`).

    Returns
    -------
    Result
        On rank 0 the full (rows, cols) float32 maps; other ranks get (0, cols) arrays.
        ``timings`` (s): ``startup`` = the slowest rank's kernel load, ``read`` and
        ``compute`` of the busiest rank, ``merge`` = rank 0's communicate + merge time.
        ``meta``: ``rank``, ``size``, ``split``, ``block_rows`` and, on rank 0,
        ``per_rank`` (one dict per rank: startup, read, compute, wait, merge, wall in s,
        bytes_read, host, pid, share = [first, stop) row or date), ``wait`` (s rank 0
        waited for the slowest rank) and ``rank0_wall`` (s).

    Raises
    ------
    LabError
        On every rank, if any rank failed its local work (``rank R: <message>``).
    """
    t_start = time.perf_counter()
    rank, size = comm.rank, comm.size
    times = {"startup": 0.0, "read": 0.0, "compute": 0.0, "bytes_read": 0}
    br = block_rows or 0
    error: str | None = None
    local: Any = None  # this rank's maps (rows) or partial (dates)
    stack: TileStack | None = src if isinstance(src, TileStack) else None
    filt: LeeFilter | None = None
    prog = progress if rank == 0 else None
    try:  # 1. local work: this rank's rows or dates
        if split not in SPLITS:
            raise LabError(f"unknown split {split!r} for mpi: valid are {', '.join(SPLITS)}")
        if stack is None:
            stack = open_stack(src if isinstance(src, (str, os.PathLike)) else list(src))  # type: ignore[arg-type]
        filt = with_enl(parse_filter(filter), stack)
        br = block_rows or io_block_rows(stack.n_dates, stack.cols)
        if split == "rows":
            times["startup"] = load_kernel(min_count, kernel)  # timed as start-up
        times["startup"] += load_filter(filt)
        if split == "rows" and filt:  # the slab now; its halo rows come from the neighbours
            check_slabs(stack.rows, size, filt)
            local = read_slab(stack, rank, size, times)
        elif split == "rows":
            local = rows_local(stack, rank, size, br, ddof, min_count, kernel, times, prog)
        else:
            local = dates_local(stack, rank, size, br, min_count is not None, times, prog,
                                filt)
    except Exception as exc:  # reported to every rank below, so no rank is left waiting
        error = one_line(exc) or type(exc).__name__
    except BaseException as exc:  # Ctrl-C on this rank only: the others may be in MPI calls
        abort(comm, exc)
        raise
    if split == "rows" and filt:  # 1b. every rank has its slab: exchange halos, filter, reduce
        first_error(comm, error)  # no rank may wait in Sendrecv for a rank that failed
        assert stack is not None
        try:
            local = filtered_rows_local(comm, stack, local, filt, br, ddof, min_count, kernel,
                                        times, prog)
        except Exception as exc:
            error = one_line(exc) or type(exc).__name__
        except BaseException as exc:
            abort(comm, exc)
            raise
    t_local = time.perf_counter()
    first_error(comm, error)  # 2. every rank raises if any rank failed
    assert stack is not None
    t_comm = time.perf_counter()
    try:  # 3. rank 0 collects the maps (rows) or merges the partials (dates)
        if split == "rows":
            mean, std = gather_rows(comm, stack, local)
        else:
            mean, std = gather_dates(comm, stack, local, ddof, min_count)
        mine = rank_record(rank, share(stack.rows if split == "rows" else stack.n_dates,
                                       size, rank),
                           times, t_start, t_local, t_comm, time.perf_counter())
        per_rank = comm.gather(mine, root=0)
    except BaseException as exc:
        abort(comm, exc)
        raise
    meta: dict[str, Any] = {"rank": rank, "size": size, "split": split, "block_rows": br,
                            "filter": filt.spec if filt else None}
    return rank_result(mean, std, mine, per_rank if rank == 0 else None, meta)
