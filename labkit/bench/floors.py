"""Hardware floors measured in the same run as the backends they bound.

``floor-memory``: NumPy streaming a float32 array of the stack's size; ``floor-read``:
reading every tile file whole (page cache warm). Their ``wall_s`` is the least time one
process needs to touch the stack's bytes, their ``gbps`` the bandwidth.
:func:`kernel_rates` puts the statistics kernels beside the memory floor, in GB/s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from labkit.bench.harness import alternate, forced_kernel, median, timed
from labkit.bench.schema import CSV_COLUMNS, machine_columns, now_iso, session_id

__all__ = ["kernel_rates", "measure_floors"]


def _memory_floor(nbytes: int, repeat: int) -> list[tuple[float, int]]:
    """(seconds, bytes) of ``repeat`` ``numpy.sum`` passes over ``nbytes`` of float32
    (pages touched by one untimed pass first).
    """
    import numpy as np

    arr = np.ones(max(1, nbytes // 4), np.float32)
    arr.sum()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        arr.sum()
        out.append((time.perf_counter() - t0, arr.nbytes))
    return out


def _read_whole(paths: Sequence[Any], sizes: Sequence[int], view: memoryview) -> float:
    """Seconds to read every file whole into ``view`` with ``readinto``, unbuffered."""
    t0 = time.perf_counter()
    for p, size in zip(paths, sizes, strict=True):
        with open(p, "rb", buffering=0) as fh:
            got = 0
            while got < size:
                n = fh.readinto(view[got:size])
                if not n:
                    break
                got += n
    return time.perf_counter() - t0


def measure_floors(stack: Any, *, repeat: int = 3, label: str = "",
                   run_id: str | None = None) -> list[dict[str, Any]]:
    """Floor rows for a tile stack: memory streaming and file reading, one process.

    Parameters
    ----------
    stack : TileStack
        The stack the floors bound (its ``nbytes``, ``paths``, shape).
    repeat : int, default 3
        Timed passes of each floor.
    label, run_id : str
        Written in every row (``run_id`` default: this session's).

    Returns
    -------
    list of dict
        ``floor-memory`` rows (``numpy.sum`` over a float32 array of the stack's size,
        pages touched first), then ``floor-read`` rows (every tile file read whole into a
        buffer after one warm-up pass: page cache warm). ``wall_s`` (s) is the time for
        the stack's bytes at that bandwidth, ``gbps`` the bandwidth (GB/s).
    """
    nbytes = int(stack.nbytes)
    base = {"workers": 1, "n_dates": stack.n_dates, "tile": f"{stack.rows}x{stack.cols}",
            "mode": "in-process", "timestamp": now_iso(), "run_id": run_id or session_id(),
            "label": label, **machine_columns()}
    rows = [{**base, "backend": "floor-memory", "repeat": i, "wall_s": dt, "compute_s": dt,
             "bytes": size, "gbps": size / dt / 1e9}
            for i, (dt, size) in enumerate(_memory_floor(nbytes, repeat))]
    sizes = [os.path.getsize(p) for p in stack.paths]
    total = sum(sizes)
    view = memoryview(bytearray(max(sizes)))
    _read_whole(stack.paths, sizes, view)  # warm-up: page cache
    for i in range(repeat):
        dt = _read_whole(stack.paths, sizes, view)
        t_stack = dt * nbytes / total
        rows.append({**base, "backend": "floor-read", "repeat": i, "wall_s": t_stack,
                     "read_s": t_stack, "bytes": nbytes, "gbps": total / dt / 1e9})
    return [{k: r.get(k, "") for k in CSV_COLUMNS} for r in rows]


def kernel_rates(src: Any, repeats: int = 3) -> dict[str, float]:
    """GB/s of ``numpy.sum`` (the memory floor) and of each kernel over a stack in memory.

    Parameters
    ----------
    src : TileStack or folder of tiles
        Loaded whole into memory first.
    repeats : int, default 3
        Timed runs of each, alternated, after a warm-up round.

    Returns
    -------
    dict of name -> float
        GB/s: the stack's float32 bytes / the median time.
    """
    from labkit import stats
    from labkit.io import StackReader, TileStack, open_stack

    stack = src if isinstance(src, TileStack) else open_stack(src)
    with StackReader(stack.paths) as reader:
        x = reader.read(0, stack.rows)
    with forced_kernel("numba"):
        stats.warm_up()

    def reduce(kernel: str, threads: int) -> Callable[[], float]:
        def fn() -> float:
            with forced_kernel(kernel):
                return timed(lambda: stats.reduce_stack(x, threads=threads))
        return fn

    fns = {"numpy.sum (memory floor)": lambda: timed(x.sum),
           "NumPy kernel": reduce("numpy", 1), "fused kernel": reduce("numba", 1),
           "fused kernel, 2 threads": reduce("numba", 2)}
    t = alternate(fns, repeats)
    return {k: x.nbytes / median(v) / 1e9 for k, v in t.items()}
