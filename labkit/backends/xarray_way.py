"""The ecosystem's way: rioxarray + xarray + Dask, as a Pangeo user would write it.

::

    tiles = [rioxarray.open_rasterio(p, chunks={"y": rows}).squeeze("band", drop=True)
             for p in paths]
    cube = xr.concat(tiles, dim="time").astype("float64")   # (time, y, x), lazy
    mean, std = cube.mean("time"), cube.std("time")         # float64, lazy
    mean, std = dask.compute(mean, std)                     # the graph runs here

Each tile is opened lazily in chunks of ``block_rows`` rows (the whole width), the dates
are stacked along a new ``time`` dimension, and xarray's reductions build a Dask graph:
per chunk a read task, a cast to float64, a partial sum per chunk of dates, then a tree of
combine steps; ``std`` is a second reduction over the same chunks (the squared deviations
from a mean it computes itself). The graph runs on the run's Dask scheduler
(``opts.scheduler``: threads, processes or a local cluster, :mod:`labkit.backends._dask`),
and the float64 results are cast to float32 for the GeoTIFFs.

Not bitwise equal to sequential: the sums run in another order (pairwise, chunk by chunk)
and std is computed in two passes; the difference is a few float32 ulps (the bench reports
its max |Δ|). Strict NaN as in the lab (``skipna=False``); with ``min_count`` xarray skips
NaN and the pixels with fewer valid dates are set to NaN. The Lee filter is not part of
this way (use ``strategy="chunks"``).

Timings (seconds): ``startup`` the scheduler's pool or cluster; ``read`` opening the tiles
and building the graph (headers only: the pixels are read inside the graph); ``compute``
running the graph (reading, casting and reducing are fused in its tasks and cannot be told
apart); ``merge`` casting the float64 maps to float32.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from labkit.backends._result import Result
from labkit.backends.options import RunOptions
from labkit.errors import LabError
from labkit.io import TileStack

__all__ = ["breakdown", "compute", "cube_of", "graph", "graph_size"]


def cube_of(stack: TileStack, block_rows: int) -> Any:
    """The tiles as one lazy float32 DataArray (time, y, x), chunked by ``block_rows``
    rows (the whole width; one date per chunk along ``time``).
    """
    import rioxarray
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # radar tiles have no georeference
        opened = [rioxarray.open_rasterio(p, chunks={"band": 1, "y": block_rows, "x": -1},
                                          lock=False, cache=False) for p in stack.paths]
    tiles: list[Any] = [t.squeeze("band", drop=True) for t in opened]  # type: ignore[union-attr]
    return xr.concat(tiles, dim="time", coords="minimal", compat="override", join="override")


def graph(stack: TileStack, block_rows: int, ddof: int = 0,
          min_count: int | None = None) -> tuple[Any, Any]:
    """The lazy (mean, std) float64 DataArrays of ``stack``, chunked by ``block_rows`` rows.

    Parameters
    ----------
    stack : TileStack
        The intensity tiles (one per date).
    block_rows : int
        Rows per chunk (the whole width; one date per chunk along ``time``).
    ddof : int, default 0
        As for :func:`labkit.stats.finalize`.
    min_count : int, optional
        NaN-aware with at least this many valid dates (default: strict NaN).
    """
    cube = cube_of(stack, block_rows).astype("float64")
    skipna = min_count is not None
    mean = cube.mean("time", skipna=skipna)
    std = cube.std("time", ddof=ddof, skipna=skipna)
    if min_count is not None:
        valid = cube.count("time")
        enough = valid >= max(min_count, ddof + 1)
        mean, std = mean.where(enough), std.where(enough)
    return mean, std


def graph_size(*arrays: Any) -> int:
    """Tasks in the Dask graph of ``arrays`` (DataArrays or dask arrays), shared ones once."""
    from dask.base import collections_to_expr

    collections = [getattr(a, "data", a) for a in arrays]
    return len(collections_to_expr(collections, optimize_graph=False).__dask_graph__())


def compute(stack: TileStack, opts: RunOptions) -> Result:
    """Mean and std of ``stack`` with xarray's ``.mean("time")`` / ``.std("time")``.

    ``opts.block_rows``: rows per chunk (default as
    :func:`labkit.backends._dask.chunk_rows`); ``opts.scheduler`` / ``opts.pool`` as for
    the chunks strategy.
    """
    if opts.filter is not None:
        raise LabError(f"filter {opts.filter.spec}: the xarray strategy computes the plain "
                       f"statistics; use --strategy chunks with --filter")
    from labkit.backends._dask import chunk_rows, scheduler_for, scheduler_session

    scheduler = scheduler_for(opts.pool, opts.scheduler)
    br = opts.block_rows or chunk_rows(stack, opts.workers)
    with scheduler_session(opts.pool, scheduler, opts.workers, opts.kernel) as run:
        t0 = time.perf_counter()
        mean, std = graph(stack, br, opts.ddof, opts.min_count)
        tasks = graph_size(mean, std)
        t1 = time.perf_counter()
        with warnings.catch_warnings():  # NaN-aware: pixels without a valid date
            warnings.simplefilter("ignore", RuntimeWarning)
            m64, s64 = run.compute(mean.data, std.data, progress=opts.progress)
        t2 = time.perf_counter()
        out_mean, out_std = m64.astype(np.float32), s64.astype(np.float32)
        t3 = time.perf_counter()
    timings = {"startup": run.startup, "read": t1 - t0, "compute": t2 - t1, "merge": t3 - t2}
    meta = {"scheduler": scheduler, "pool": "own" if run.own else "given", "tasks": tasks,
            "block_rows": br, "chunks": f"{br} rows x {stack.cols} cols x 1 date",
            "dtype": "float64", "dask_workers": run.workers}
    return Result(out_mean, out_std, timings, stack.nbytes, meta)


def breakdown(stack: TileStack, workers: int, block_rows: int | None = None,
              repeats: int = 3) -> dict[str, tuple[float, int]]:
    """Where the xarray way's time goes: its steps timed alone, in turns, on ``workers``
    threads (Dask's threaded scheduler).

    Steps: ``read`` (every chunk read and summed: the least any graph does), ``mean
    float32`` (no cast), ``mean float64``, ``std float64`` (a second reduction, with its
    own mean), ``mean + std float64`` (the xarray way, :func:`graph`).

    Parameters
    ----------
    stack : TileStack
        The intensity tiles.
    workers : int
        Threads.
    block_rows : int, optional
        Rows per chunk (default as :func:`labkit.backends._dask.chunk_rows`).
    repeats : int, default 3
        Timed runs of each step, after one untimed round.

    Returns
    -------
    dict of step -> (median seconds, tasks in its graph)
    """
    from concurrent.futures import ThreadPoolExecutor

    import dask
    import dask.threaded

    from labkit.backends._dask import chunk_rows
    from labkit.bench.harness import alternate, median

    br = block_rows or chunk_rows(stack, workers)
    mean, std = graph(stack, br)
    raw = cube_of(stack, br)
    f64 = raw.astype("float64")
    steps = {
        "read": (raw.data.sum(axis=(1, 2)),),
        "mean float32": (raw.mean("time", skipna=False).data,),
        "mean float64": (f64.mean("time", skipna=False).data,),
        "std float64": (f64.std("time", skipna=False).data,),
        "mean + std float64": (mean.data, std.data),
    }
    with ThreadPoolExecutor(workers) as pool:
        def timer(arrays: tuple) -> Any:
            def run() -> float:
                t0 = time.perf_counter()
                dask.compute(*arrays, scheduler=dask.threaded.get, pool=pool)
                return time.perf_counter() - t0
            return run

        times = alternate({k: timer(v) for k, v in steps.items()}, repeats)
    return {k: (median(times[k]), graph_size(*steps[k])) for k in steps}
