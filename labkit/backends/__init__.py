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

from labkit.errors import LabError
from labkit.io import TileStack, open_stack, write_geotiffs

__all__ = [
    "BACKENDS",
    "IO_BLOCK_ROWS",
    "PHASES",
    "Result",
    "compute",
    "run",
]

# name -> (module, valid strategies, valid splits); the first of each is the default.
BACKENDS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "sequential": ("labkit.backends.sequential", (), ()),
    "multiprocessing": ("labkit.backends.multiproc", ("partitioned", "per-file"), ()),
    "mem": ("labkit.backends.mem", (), ()),
    "threads": ("labkit.backends.threads", (), ()),
    "mpi": ("labkit.backends.mpi", (), ("rows", "dates")),
}
PHASES = ("read", "compute", "merge", "write")  # seconds; "merge" = merge/communicate
IO_BLOCK_ROWS = 256  # rows read per date per block by the streaming backends


@dataclass
class Result:
    """What a backend returns.

    Attributes
    ----------
    mean, std : (rows, cols) float32 arrays
    timings : dict of str to float
        Seconds: ``wall`` (the whole compute call), ``startup`` (pool/cluster start, 0 if
        reused) and each of :data:`PHASES` (write is filled by :func:`run`).
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


def resolve(backend: str, strategy: str | None = None, split: str | None = None
            ) -> tuple[str, str | None, str | None]:
    """Check backend/strategy/split names; return them with defaults filled in."""
    if backend not in BACKENDS:
        raise LabError(f"unknown backend {backend!r}: valid are {', '.join(BACKENDS)}")
    _, strategies, splits = BACKENDS[backend]
    if strategy is not None and strategy not in strategies:
        valid = ", ".join(strategies) if strategies else f"none ({backend} takes no --strategy)"
        raise LabError(f"unknown strategy {strategy!r} for {backend}: valid are {valid}")
    if split is not None and split not in splits:
        valid = ", ".join(splits) if splits else f"none ({backend} takes no --split)"
        raise LabError(f"unknown split {split!r} for {backend}: valid are {valid}")
    return (backend, strategy or (strategies[0] if strategies else None),
            split or (splits[0] if splits else None))


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
    """
    from labkit.stats import check_ddof

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
    t0 = time.perf_counter()
    result: Result = module.compute(
        stack, workers=workers, strategy=strategy, split=split, block_rows=block_rows,
        ddof=ddof, min_count=min_count, pool=pool, progress=progress,
    )
    result.timings["wall"] = time.perf_counter() - t0
    for phase in ("startup", *PHASES):
        result.timings.setdefault(phase, 0.0)
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
    write_geotiffs({outs[0]: result.mean, outs[1]: result.std})
    result.timings["write"] = time.perf_counter() - t0
    result.timings["total"] = result.timings["wall"] + result.timings["write"]
    return result
