"""One registry of backends, one call signature.

Every backend module defines ``compute(stack, *, workers, block_rows, ddof, min_count,
strategy, split, pool, progress) -> Result`` where ``stack`` is a validated
:class:`labkit.io.TileStack`. :func:`compute` resolves names and checks options;
:func:`run` also writes the two GeoTIFFs (atomically) and times the write.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labkit.backends.registry import BACKENDS, resolve
from labkit.errors import LabError
from labkit.io import TileStack, open_stack, write_geotiffs

__all__ = [
    "BACKENDS",
    "IO_BLOCK_BYTES",
    "IO_BLOCK_ROWS",
    "PHASES",
    "Result",
    "compute",
    "default_workers",
    "io_block_rows",
    "make_pool",
    "run",
    "summary_line",
]

PHASES = ("read", "compute", "merge", "write")  # seconds; "merge" = merge/communicate
IO_BLOCK_ROWS = 256  # most rows read per date per block by the streaming backends
IO_BLOCK_BYTES = 6 * 2**20  # bytes of one block (every date): two of them stay in the L3
# cache, so the kernel reads the copy made from the page cache back from cache, not from RAM


def io_block_rows(n_dates: int, cols: int) -> int:
    """Default rows per I/O block: about :data:`IO_BLOCK_BYTES` of float32 over all dates,
    at most :data:`IO_BLOCK_ROWS` (≥ 1)."""
    return max(1, min(IO_BLOCK_ROWS, IO_BLOCK_BYTES // (4 * max(1, n_dates * cols))))


@dataclass
class Result:
    """What a backend returns.

    Attributes
    ----------
    mean, std : (rows, cols) float32 arrays
    timings : dict of str to float
        Seconds: ``wall`` (the whole compute call), ``startup`` (pool/cluster start, 0 if
        reused), ``jit`` (loading the compiled kernel in this process, outside ``wall``)
        and each of :data:`PHASES` (write is filled by :func:`run`).
    bytes_read : int
        Bytes of tile data read from files.
    meta : dict
        backend, strategy, split, workers, block_rows, n_dates, rows, cols, ddof and
        backend extras (e.g. ``per_rank`` timings).
    """

    mean: np.ndarray
    std: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    bytes_read: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


def compute(
    backend: str,
    src: str | Path | TileStack,
    *,
    workers: int = 1,
    strategy: str | None = None,
    split: str | None = None,
    block_rows: int | None = None,
    ddof: int = 0,
    min_count: int | None = None,
    pool: Any = None,
    progress: Callable[[int, int], None] | None = None,
    prefetch: bool = False,
) -> Result:
    """Temporal mean and std of a tile stack with one backend.

    Parameters
    ----------
    backend : str
        One of :data:`BACKENDS`.
    src : folder, or a :class:`TileStack`
        The intensity tiles.
    workers : int, default 1
        Processes, threads or ranks (≥ 1).
    strategy, split : str, optional
        ``multiprocessing``: per-file | partitioned. ``mpi``: rows | dates.
    block_rows : int, optional
        Rows per block (backend-specific default).
    ddof : int, default 0
        0: population std; 1: sample std. Must be < number of dates.
    min_count : int, optional
        NaN-aware statistics with at least this many valid dates (default strict NaN).
    pool : object, optional
        A reusable pool/cluster from the backend's ``make_pool`` (start-up not timed).
    progress : callable(done, total), optional
        Called as work completes.
    prefetch : bool, default False
        ``sequential``: read the next block in a background thread while the current one
        is reduced (other backends overlap reads and compute with their workers).
    """
    from labkit.stats import check_ddof, warm_up

    backend, strategy, split = resolve(backend, strategy, split)
    if not isinstance(workers, int) or workers < 1:
        raise LabError(f"workers must be a whole number ≥ 1, got {workers!r}")
    if block_rows is not None and (not isinstance(block_rows, int) or block_rows < 1):
        raise LabError(f"block rows must be a whole number ≥ 1, got {block_rows!r}")
    stack = src if isinstance(src, TileStack) else open_stack(src)
    check_ddof(ddof, stack.n_dates)
    if min_count is not None and not 1 <= min_count <= stack.n_dates:
        raise LabError(f"min_count={min_count} out of range: valid is 1..{stack.n_dates}")
    module = importlib.import_module(BACKENDS[backend][0])
    jit_s = warm_up(min_count) if backend in ("sequential", "threads") else 0.0
    t0 = time.perf_counter()
    result: Result = module.compute(
        stack, workers=workers, strategy=strategy, split=split, block_rows=block_rows,
        ddof=ddof, min_count=min_count, pool=pool, progress=progress, prefetch=prefetch,
    )
    result.timings["wall"] = time.perf_counter() - t0
    for phase in ("startup", *PHASES):
        result.timings.setdefault(phase, 0.0)
    result.timings["jit"] = result.timings.get("jit", 0.0) + jit_s  # kernel load, not in wall
    result.meta.update(
        backend=backend, strategy=strategy, split=split, workers=workers, ddof=ddof,
        min_count=min_count, n_dates=stack.n_dates, rows=stack.rows, cols=stack.cols,
    )
    result.meta.setdefault("block_rows", block_rows)
    return result


def run(backend: str, src: str | Path | TileStack, mean_path: str | Path,
        std_path: str | Path, **options: Any) -> Result:
    """:func:`compute`, then write mean and std GeoTIFFs atomically (both or neither).

    Outputs are checked for writability before any work starts; an output that is also
    an input tile is refused.
    """
    from labkit.io import check_writable

    stack = src if isinstance(src, TileStack) else open_stack(src)
    outs = [check_writable(mean_path), check_writable(std_path)]
    if outs[0].resolve() == outs[1].resolve():
        raise LabError(f"mean and std outputs are the same file {outs[0]}: give two names")
    inputs = {p.resolve() for p in stack.paths}
    for o in outs:
        if o.resolve() in inputs:
            raise LabError(f"output {o} is one of the input tiles: choose another name")
    result = compute(backend, stack, **options)
    t0 = time.perf_counter()
    if result.meta.get("rank", 0) == 0:  # under mpiexec only rank 0 writes
        write_geotiffs({outs[0]: result.mean, outs[1]: result.std})
    else:
        from labkit import interrupts

        interrupts.done()  # this rank's part is over: a late Ctrl-C must not abort rank 0
    result.timings["write"] = time.perf_counter() - t0
    result.timings["total"] = result.timings["wall"] + result.timings["write"]
    return result


def make_pool(backend: str = "multiprocessing", workers: int = 2) -> Any:
    """A reusable pool for ``backend`` (see :func:`labkit.backends.pools.make_pool`)."""
    from labkit.backends.pools import make_pool as _make_pool

    return _make_pool(backend, workers)


def default_workers(backend: str) -> int:
    """Workers when ``--workers`` is not given: 1, the mpiexec size, or physical cores."""
    import os

    if backend == "sequential":
        return 1
    if backend == "mpi":  # set by mpiexec (MPICH/Hydra, Open MPI) before Python starts
        return int(os.environ.get("PMI_SIZE") or os.environ.get("OMPI_COMM_WORLD_SIZE") or 1)
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def summary_line(result: Result, outputs: tuple[Any, ...] = ()) -> str:
    """One line: backend, workers, wall and phase seconds, GB read and GB/s."""
    m, t = result.meta, result.timings
    name = "/".join(str(x) for x in (m.get("backend"), m.get("strategy") or m.get("split")) if x)
    phases = ", ".join(f"{k} {t.get(k, 0.0):.3f}" for k in ("startup", *PHASES))
    gbps = result.bytes_read / 1e9 / t["wall"] if t.get("wall") else 0.0
    dest = f" -> {', '.join(map(str, outputs))}" if outputs else ""
    return (f"{name} x{m.get('workers')}: wall {t.get('wall', 0.0):.3f} s ({phases} s), "
            f"{result.bytes_read / 1e9:.3f} GB read, {gbps:.2f} GB/s{dest}")
