"""One registry of backends, one call signature.

Every backend module defines ``compute(stack, opts) -> Result`` where ``stack`` is a
validated :class:`labkit.io.TileStack` and ``opts`` a :class:`RunOptions`.
:func:`compute` resolves names and checks options; :func:`run` also writes the two
GeoTIFFs (atomically) and times the write. :func:`make_pool` starts a pool (or an MPI
cluster) that many runs reuse.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit.backends._buffers import io_block_rows
from labkit.backends._result import Result, summary_line
from labkit.backends.options import RunOptions, options_from
from labkit.backends.registry import BACKENDS, resolve
from labkit.config import IO_BLOCK_BYTES, IO_BLOCK_ROWS, PHASES
from labkit.errors import LabError
from labkit.io import TileStack, open_stack, write_geotiffs

__all__ = [
    "BACKENDS",
    "IO_BLOCK_BYTES",
    "IO_BLOCK_ROWS",
    "PHASES",
    "Pool",
    "Result",
    "RunOptions",
    "compute",
    "default_workers",
    "io_block_rows",
    "make_pool",
    "run",
    "session",
    "summary_line",
]

if TYPE_CHECKING:
    from labkit.backends._pool import Pool
    from labkit.backends._session import session


def __getattr__(name: str) -> Any:
    """``Pool`` and ``session`` load on first use: a one-shot ``labkit run sequential``
    never imports multiprocessing.
    """
    if name == "Pool":
        from labkit.backends._pool import Pool

        return Pool
    if name == "session":
        from labkit.backends._session import session

        return session
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def compute(backend: str, src: str | Path | TileStack, options: RunOptions | None = None,
            **keywords: Any) -> Result:
    """Temporal mean and std of a tile stack with one backend.

    Parameters
    ----------
    backend : str
        One of :data:`BACKENDS`.
    src : folder, or a :class:`TileStack`
        The intensity tiles.
    options : RunOptions, optional
        How to run (workers, strategy, split, block_rows, ddof, min_count, pool,
        progress, prefetch, kernel, filter, scheduler; see :class:`RunOptions`).
    **keywords
        The same fields as keywords (they override ``options``): ``workers=2``. An
        unknown one is a LabError that names it.
    """
    from labkit.backends._filtering import warm_up as load_filter
    from labkit.backends._filtering import with_enl
    from labkit.stats import check_ddof, warm_up

    opts = options_from(options, keywords)
    backend, strategy, split = resolve(backend, opts.strategy, opts.split)
    if opts.scheduler is not None and backend != "dask":
        raise LabError(f"scheduler {opts.scheduler!r} is for the dask backend only: "
                       f"{backend} takes no --scheduler")
    opts = options_from(opts, {"strategy": strategy, "split": split})
    stack = src if isinstance(src, TileStack) else open_stack(src)
    check_ddof(opts.ddof, stack.n_dates)
    if opts.min_count is not None and not 1 <= opts.min_count <= stack.n_dates:
        raise LabError(f"min_count={opts.min_count} out of range: valid is 1..{stack.n_dates}")
    opts = options_from(opts, {"filter": with_enl(opts.filter, stack)})  # the tiles' looks
    module = importlib.import_module(BACKENDS[backend][0])
    in_process = backend in ("sequential", "threads")
    jit_s = (warm_up(opts.min_count, opts.kernel) + load_filter(opts.filter)
             if in_process else 0.0)
    t0 = time.perf_counter()
    result: Result = module.compute(stack, opts)
    result.timings["wall"] = time.perf_counter() - t0
    for phase in ("startup", *PHASES):
        result.timings.setdefault(phase, 0.0)
    result.timings["jit"] = result.timings.get("jit", 0.0) + jit_s  # kernel load, not in wall
    result.meta.update(
        backend=backend, strategy=strategy, split=split, workers=opts.workers,
        ddof=opts.ddof, min_count=opts.min_count, n_dates=stack.n_dates, rows=stack.rows,
        cols=stack.cols, filter=opts.filter.spec if opts.filter else None,
    )
    result.meta.setdefault("block_rows", opts.block_rows)
    return result


def _check_outputs(stack: TileStack, mean_path: str | Path, std_path: str | Path
                   ) -> list[Path]:
    """The two outputs, writable, distinct and not input tiles (LabError otherwise)."""
    from labkit.io import check_writable

    outs = [check_writable(mean_path), check_writable(std_path)]
    if outs[0].resolve() == outs[1].resolve():
        raise LabError(f"mean and std outputs are the same file {outs[0]}: give two names")
    inputs = {p.resolve() for p in stack.paths}
    for o in outs:
        if o.resolve() in inputs:
            raise LabError(f"output {o} is one of the input tiles: choose another name")
    return outs


def run(backend: str, src: str | Path | TileStack, mean_path: str | Path,
        std_path: str | Path, options: RunOptions | None = None, **keywords: Any) -> Result:
    """:func:`compute`, then write mean and std GeoTIFFs atomically (both or neither).

    Outputs are checked for writability before any work starts; an output that is also
    an input tile is refused. Options as for :func:`compute`.
    """
    opts = options_from(options, keywords, "run")
    stack = src if isinstance(src, TileStack) else open_stack(src)
    outs = _check_outputs(stack, mean_path, std_path)
    result = compute(backend, stack, opts)
    t0 = time.perf_counter()
    if result.meta.get("rank", 0) == 0:  # under mpiexec only rank 0 writes
        write_geotiffs({outs[0]: result.mean, outs[1]: result.std})
    else:
        from labkit import interrupts

        interrupts.done()  # this rank's part is over: a late Ctrl-C must not abort rank 0
    result.timings["write"] = time.perf_counter() - t0
    result.timings["total"] = result.timings["wall"] + result.timings["write"]
    return result


def make_pool(backend: str = "multiprocessing", workers: int = 2,
              kernel: str | None = None, scheduler: str | None = None) -> Any:
    """Start a reusable pool for ``backend`` with ``workers`` workers.

    Parameters
    ----------
    backend : str, default "multiprocessing"
        ``multiprocessing`` or ``mem``: worker processes; ``threads``: threads;
        ``mpi``: an ipyparallel cluster of MPI engines
        (:func:`labkit.backends.mpi.engines.start_cluster`); ``dask``: see
        ``scheduler``; ``sequential``: no pool.
    workers : int, default 2
        Processes, threads or engines (≥ 1).
    kernel : {"numba", "numpy"}, optional
        The statistics kernel loaded in the workers as they start.
    scheduler : {"threads", "processes", "distributed"}, optional
        ``dask`` only (default ``threads``): a thread pool, a process pool, or a local
        ``distributed`` cluster (:func:`labkit.backends._dask.start_cluster`).

    Returns
    -------
    Pool, MpiCluster, DaskCluster or None
        Use it as ``pool=`` in :func:`compute` / :func:`run`; close it with
        ``pool.close()`` or a ``with`` block. ``pool.startup`` is its start-up in seconds.
    """
    backend = resolve(backend)[0]
    if not isinstance(workers, int) or workers < 1:
        raise LabError(f"workers must be a whole number ≥ 1, got {workers!r}")
    scheduler = RunOptions(scheduler=scheduler).scheduler  # checked
    if scheduler is not None and backend != "dask":
        raise LabError(f"scheduler {scheduler!r} is for the dask backend only")
    if backend == "dask":
        from labkit.backends import _dask

        if scheduler == "distributed":
            return _dask.start_cluster(workers, kernel)
        loaded = _dask.import_scheduler(scheduler or "threads")
        backend = "multiprocessing" if scheduler == "processes" else "threads"
        pool = make_pool(backend, workers, kernel)
        pool.startup += loaded  # Dask's modules loaded with the pool
        return pool
    if backend in ("multiprocessing", "mem"):
        from labkit.backends._pool import start_process_pool

        return start_process_pool(workers, kernel)
    if backend == "threads":
        from labkit.backends._pool import start_thread_pool

        return start_thread_pool(workers, kernel)
    if backend == "mpi":
        from labkit.backends.mpi.engines import start_cluster

        return start_cluster(workers)
    return None


def default_workers(backend: str) -> int:
    """Workers when ``--workers`` is not given: 1 (sequential, gpu), the mpiexec size, or
    physical cores.
    """
    import os

    if backend in ("sequential", "gpu"):
        return 1
    if backend == "mpi":  # set by mpiexec before Python starts
        from labkit.backends.mpi._world import world_size

        return world_size()
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1
