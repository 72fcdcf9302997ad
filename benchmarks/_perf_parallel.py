"""The parallel group of ``benchmarks/perf.py``: 1 vs 2 workers, and why not 2×.

In process, on pools started beforehand (process pools, thread pools, and ipyparallel
MPI engines for ``mpi``): their start-up is a row of its own, and so is the fixed cost
of a run on them (``overhead``) and how each part of the job scales with two threads
(``scaling``). Each pair is alternated ``ROUNDS × repeats`` times: the runs take
milliseconds. ``ratio`` is median A / median B, as in every row.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _perf_cases import Progress, make_row

from labkit.bench import alternate, median, timed, variant_name

__all__ = ["PARALLEL_BACKENDS", "ROUNDS", "measure_parallel"]

PARALLEL_BACKENDS = (("threads", None, None), ("mem", None, None),
                     ("multiprocessing", "partitioned", None),
                     ("multiprocessing", "per-file", None), ("mpi", None, "rows"))
ROUNDS = 3  # runs of milliseconds: this many times the usual repeats
Variant = tuple[str, str | None, str | None]


def _overheads(pools: dict[tuple[str, int], Any], side: int, repeats: int,
               progress: Progress) -> list[dict[str, Any]]:
    """What one run costs before any pixel is touched: a round trip of two empty tasks on
    the process pool and on the MPI engines, and one ``side``² float32 image pickled back
    through the process pool's pipe (what ``per-file`` pays per date). The tasks are
    library functions (``os.getpid``, ``numpy.zeros``): the workers can import them."""
    import numpy as np

    from labkit.backends import session

    proc = pools.get(("multiprocessing", 2))
    engines = pools.get(("mpi", 2))
    fns: dict[str, Callable[[], float]] = {}
    if proc is not None:
        def on_pool(task: Callable[..., Any], *args: Any) -> Callable[[], float]:
            def fn() -> float:
                with session(proc, "process", 2) as s:
                    t0 = time.perf_counter()
                    for f in [s.submit(task, *args) for _ in range(2)]:
                        f.result()
                    return time.perf_counter() - t0
            return fn
        fns["process pool ×2: two empty tasks"] = on_pool(os.getpid)
        fns[f"process pool ×2: two {side}×{side} float32 images back (pickle)"] = \
            on_pool(np.zeros, (side, side), np.float32)
    if engines is not None:
        fns["MPI engines ×2 (ipyparallel): one empty task each"] = \
            lambda: timed(lambda: engines.view.apply_sync(os.getpid))
    t = alternate(fns, repeats, progress=progress)
    return [make_row("parallel", "overhead", name, "", v, None) for name, v in t.items()]


def _scaling(dates24: Path, repeats: int, progress: Progress, group: str = "parallel",
             name: str = "dates24", only: Sequence[str] | None = None
             ) -> list[dict[str, Any]]:
    """What two threads gain on each part of the job on ``dates24`` (any tile folder,
    called ``name`` in the rows), in process: reading the tiles from the page cache
    (GDAL, cache-sized blocks, as the backends read), copying the same bytes within RAM,
    and the fused kernel on them (``only``: these steps). A: 1 thread, B: 2 threads
    (half of the rows each), so the ratio is the speed-up."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from labkit import stats
    from labkit.backends import io_block_rows
    from labkit.io import StackReader, open_stack

    stack = open_stack(dates24)
    n, rows, cols = stack.shape
    br = io_block_rows(n, cols)
    data = np.empty(stack.shape, np.float32)
    with StackReader(stack.paths) as rd:
        rd.read(0, rows, out=data)
    readers = [StackReader(stack.paths) for _ in range(2)]
    blocks = [np.empty((n, br, cols), np.float32) for _ in range(2)]
    outs = (np.empty((rows, cols), np.float32), np.empty((rows, cols), np.float32))
    stats.warm_up()

    def read(part: int, parts: int) -> None:
        for r in range(part * rows // parts, (part + 1) * rows // parts, br):
            k = min(br, rows - r)
            readers[part].read(r, k, out=blocks[part][:, :k])

    def copy(part: int, parts: int) -> None:
        for r in range(part * rows // parts, (part + 1) * rows // parts, br):
            k = min(br, rows - r)
            np.copyto(blocks[part][:, :k], data[:, r:r + k])

    def reduce(part: int, parts: int) -> None:
        lo, hi = part * rows // parts, (part + 1) * rows // parts
        stats.reduce_stack(data, rows=(lo, hi), out=(outs[0][lo:hi], outs[1][lo:hi]))

    steps = {"read from the page cache": read, "copy within RAM": copy,
             "fused kernel": reduce}
    if only is not None:
        steps = {k: v for k, v in steps.items() if k in only}
    rows_out: list[dict[str, Any]] = []
    try:
        with ThreadPoolExecutor(2) as ex:
            def split_over(step: Callable[[int, int], None], parts: int) -> Callable[[], float]:
                return lambda: timed(lambda: list(ex.map(step, range(parts), [parts] * parts)))
            for step_name, step in steps.items():
                t = alternate({"1": split_over(step, 1), "2": split_over(step, 2)}, repeats,
                              progress=progress)
                rows_out.append(make_row(group, "scaling", f"{step_name}, 1 thread ({name})",
                                         "2 threads", t["1"], t["2"]))
    finally:
        for rd in readers:
            rd.close()
    return rows_out


def _start_pools(backends: Sequence[Variant], progress: Progress) -> dict[tuple[str, int], Any]:
    """One pool per (backend, 1 or 2 workers) (None where a backend needs none)."""
    from labkit.backends import make_pool

    pools: dict[tuple[str, int], Any] = {}
    for backend, _, _ in backends:
        for w in (1, 2):
            if (backend, w) not in pools:
                if progress:
                    progress(f"starting the {backend} pool ×{w}")
                pools[backend, w] = make_pool(backend, w)
    return pools


def _pair_speedups(pools: dict[tuple[str, int], Any], backends: Sequence[Variant],
                   dates24: Path, rounds: int, progress: Progress) -> list[dict[str, Any]]:
    """Each variant with 1 vs 2 workers on dates24 (the fastest with 2 workers first)."""
    from labkit.io import open_stack

    stack = open_stack(dates24)
    size = f"dates24: {stack.n_dates} × {stack.rows}×{stack.cols}"
    # each pair (A, B) alternated on its own: other backends in between (100 MiB of
    # shared memory freed, other processes waking up) would disturb the runs compared
    t: dict[str, list[float]] = {}
    for b, st, sp in backends:
        v = variant_name(b, st, sp)
        t.update(alternate({f"{v} ×1": _run_on(pools, b, st, sp, 1, stack),
                            f"{v} ×2": _run_on(pools, b, st, sp, 2, stack)}, rounds,
                           progress=progress))
    names = [variant_name(*b) for b in backends]
    best = min(names, key=lambda v: median(t[f"{v} ×2"]))
    rows = [make_row("parallel", "speedup", f"best: {best} ×1 worker, {size}",
                     f"{best} ×2 workers", t[f"{best} ×1"], t[f"{best} ×2"])]
    rows += [make_row("parallel", "speedup", f"{v} ×1 worker", f"{v} ×2 workers",
                      t[f"{v} ×1"], t[f"{v} ×2"]) for v in names if v != best]
    return rows


def _run_on(pools: dict[tuple[str, int], Any], backend: str, strategy: str | None,
            split: str | None, workers: int, stack: Any,
            filter: str | None = None) -> Callable[[], float]:
    """A timer of one in-process run on its started pool (start-up excluded), in s;
    ``filter`` as in :func:`labkit.backends.compute` (e.g. ``lee:9:16``)."""
    from labkit.backends import compute

    def fn() -> float:
        r = compute(backend, stack, workers=workers, strategy=strategy, split=split,
                    pool=pools.get((backend, workers)), filter=filter)
        return r.timings["wall"] - r.timings.get("startup", 0.0)
    return fn


def measure_parallel(dates24: Path, seed: Path, repeats: int = 5,
                     backends: Sequence[Variant] = PARALLEL_BACKENDS,
                     progress: Progress = None) -> list[dict[str, Any]]:
    """1 vs 2 workers on ``dates24``; ``sequential`` vs 2 workers on ``seed``; the pools'
    start-up, the fixed cost of a run on them and the 2-thread scaling of each part."""
    from labkit.io import open_stack

    rounds = ROUNDS * repeats
    rows: list[dict[str, Any]] = []
    pools = _start_pools(backends, progress)
    try:
        for (backend, w), pool in pools.items():  # the first process pool starts the server
            if pool is not None:
                rows.append(make_row("parallel", "pool-startup",
                                     f"{backend} pool ×{w}: start-up (s)", "", pool.startup,
                                     None, repeats=1))
        rows += _pair_speedups(pools, backends, dates24, rounds, progress)
        stack = open_stack(seed)
        size = f"seed: {stack.n_dates} × {stack.rows}×{stack.cols}"
        for b, st, sp in backends:
            k = f"{variant_name(b, st, sp)} ×2"
            t = alternate({"sequential": _run_on(pools, "sequential", None, None, 1, stack),
                           k: _run_on(pools, b, st, sp, 2, stack)}, rounds, progress=progress)
            rows.append(make_row("parallel", "seed", f"sequential, {size}", k,
                                 t["sequential"], t[k]))
        rows += _overheads(pools, stack.cols, rounds, progress)
        rows += _scaling(dates24, rounds, progress)
    finally:
        for pool in pools.values():
            if pool is not None:
                pool.close()
    return rows
