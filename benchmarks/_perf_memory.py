"""The memory group of ``benchmarks/perf.py``: why the statistics kernel scales as it does.

The statistics kernel does ≈1 flop per byte, so two workers can only go as fast as two
cores can move its bytes. Each step of a threads-backend block is timed with 1 thread
(A) and with 2 threads (B) over the same rows, in process, alternated, for several block
sizes (rows per block; one block over all dates is ``dates × rows × cols × 4`` bytes):

* ``copy within RAM``: ``numpy.copyto`` of the in-memory stack into each thread's block
  buffer (the yardstick the filter group divides by);
* ``copy from the page cache``: the tiles' rows copied into the block buffer through the
  thread's reader (memory maps of the files: the same bytes, from the page cache);
* ``read + kernel``: that copy, then the fused statistics kernel over the block (what a
  threads-backend task does, without the pool);
* ``kernel in RAM``: the fused kernel alone on the in-memory stack (no block buffer);
* ``threads backend``: whole runs on pools started beforehand, ``block_rows`` set.

and, beside them, the backends that work in processes (``mem``, ``multiprocessing``)
with their default blocks, and the minor page faults of one threads-backend run. Every
row's ratio is the 2-thread (2-worker) speed-up.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _perf_cases import Progress, make_row
from _perf_parallel import _run_on, _start_pools

from labkit.bench import alternate, median, timed

__all__ = ["BLOCK_ROWS", "measure_memory"]

BLOCK_ROWS = (8, 16, 32, 64, 128, 256)  # rows per block tried (× dates × cols × 4 bytes)


def _faults(fn: Callable[[], Any]) -> int:
    """Minor page faults of this process during one call of ``fn``."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    fn()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def _steps(br: int, ex: ThreadPoolExecutor, data: Any, outs: Any,
           readers: Sequence[Any]) -> dict[str, Callable[[int], float]]:
    """Timers of each step over the whole stack in blocks of ``br`` rows, split over
    ``parts`` threads (each thread its own contiguous rows, reader and block buffer)."""
    import numpy as np

    from labkit import stats

    n, rows, cols = data.shape
    bufs = [np.empty((n, br, cols), np.float32) for _ in range(2)]

    def blocks(part: int, parts: int) -> range:
        return range(part * rows // parts, (part + 1) * rows // parts, br)

    def copy(part: int, parts: int) -> None:
        end = (part + 1) * rows // parts
        for r in blocks(part, parts):
            k = min(br, end - r)
            np.copyto(bufs[part][:, :k], data[:, r:r + k])

    def read(part: int, parts: int) -> None:
        end = (part + 1) * rows // parts
        for r in blocks(part, parts):
            k = min(br, end - r)
            readers[part].read(r, k, out=bufs[part][:, :k])

    def read_reduce(part: int, parts: int) -> None:
        end = (part + 1) * rows // parts
        for r in blocks(part, parts):
            k = min(br, end - r)
            blk = readers[part].read(r, k, out=bufs[part][:, :k]) if k == br else \
                readers[part].read(r, k)
            stats.reduce_stack(blk, out=(outs[0][r:r + k], outs[1][r:r + k]))

    def over(step: Callable[[int, int], None]) -> Callable[[int], float]:
        return lambda parts: timed(lambda: list(ex.map(step, range(parts), [parts] * parts)))

    return {"copy within RAM": over(copy), "copy from the page cache": over(read),
            "read + kernel": over(read_reduce)}


def _kernel_in_ram(data: Any, outs: Any) -> Callable[[int], float]:
    from labkit import stats

    return lambda threads: timed(lambda: stats.reduce_stack(data, out=outs, threads=threads))


def measure_memory(tiles: Path, repeats: int = 5, block_rows: Sequence[int] = BLOCK_ROWS,
                   progress: Progress = None) -> list[dict[str, Any]]:
    """1 vs 2 threads for each step of the statistics kernel's path, per block size.

    Returns
    -------
    list of dict
        perf rows of group ``memory``: ``step`` rows (ratio: the 2-thread speed-up of a
        step at one block size), ``kernel-ram``, ``backend`` rows (ratio: 2-worker
        speed-up of a backend run, start-up excluded) and ``faults`` (A: minor page
        faults of one threads run, as a count).
    """
    import numpy as np

    from labkit import stats
    from labkit.io import StackReader, open_stack

    stack = open_stack(tiles)
    n, rows, cols = stack.shape
    data = np.empty(stack.shape, np.float32)
    with StackReader(stack.paths) as rd:
        rd.read(0, rows, out=data)
    outs = (np.empty((rows, cols), np.float32), np.empty((rows, cols), np.float32))
    stats.warm_up()
    size = f"{n} × {rows}×{cols}"
    out: list[dict[str, Any]] = []
    readers = [StackReader(stack.paths) for _ in range(2)]
    try:
        with ThreadPoolExecutor(2) as ex:
            for br in block_rows:
                mib = n * br * cols * 4 / 2**20
                for name, fn in _steps(br, ex, data, outs, readers).items():
                    t = alternate({"1": lambda fn=fn: fn(1), "2": lambda fn=fn: fn(2)},
                                  repeats, progress=progress)
                    out.append(make_row("memory", "step", f"{name}, {br} rows "
                                        f"({mib:.2g} MiB) per block, 1 thread ({size})",
                                        "2 threads", t["1"], t["2"]))
    finally:
        for rd in readers:
            rd.close()
    kern = _kernel_in_ram(data, outs)
    t = alternate({"1": lambda: kern(1), "2": lambda: kern(2)}, repeats, progress=progress)
    out.append(make_row("memory", "kernel-ram", f"fused kernel in RAM, 1 thread ({size})",
                        "2 threads", t["1"], t["2"]))
    variants = (("threads", None, None), ("mem", None, None),
                ("multiprocessing", "partitioned", None))
    pools = _start_pools(variants, progress)
    try:
        for br in block_rows:
            def run(w: int, br: int = br) -> Callable[[], float]:
                from labkit.backends import compute

                def fn() -> float:
                    r = compute("threads", stack, workers=w, block_rows=br,
                                pool=pools["threads", w])
                    return float(r.timings["wall"] - r.timings.get("startup", 0.0))
                return fn
            t = alternate({"1": run(1), "2": run(2)}, repeats, progress=progress)
            out.append(make_row("memory", "backend", f"threads backend, {br} rows per block, "
                                f"×1 worker ({size})", "×2 workers", t["1"], t["2"]))
        for b, st, sp in variants:
            t = alternate({"1": _run_on(pools, b, st, sp, 1, stack),
                           "2": _run_on(pools, b, st, sp, 2, stack)}, repeats,
                          progress=progress)
            out.append(make_row("memory", "backend", f"{b}{'/' + st if st else ''}, default "
                                f"blocks, ×1 worker ({size})", "×2 workers", t["1"], t["2"]))
        for w in (1, 2):
            run1 = _run_on(pools, "threads", None, None, w, stack)
            faults = [_faults(run1) for _ in range(repeats)]
            out.append(make_row("memory", "faults", f"minor page faults of one threads run, "
                                f"×{w} worker(s), default blocks (count, not s)", "",
                                float(median(faults)), None, repeats=repeats))
    finally:
        for pool in pools.values():
            if pool is not None:
                pool.close()
    return out
