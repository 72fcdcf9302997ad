"""When does a GPU pay? The bytes a run sends over the bus against the work it does.

A discrete GPU works on its own memory: the stack goes over the bus (PCIe) first, the
mean and std come back. Those copies cost ``bus bytes / bus bandwidth`` however fast the
kernel is. :func:`bus_table` measures what one CPU core and all of them take for the
statistics alone and with a Lee filter of several windows K (the stack already in memory,
no read), counts the floating-point operations and the bus bytes of each, and sets the
copy time at a stated bus bandwidth beside it. The copies bound what a GPU can gain: at
most (the cores' time) / (the copies' time), were its kernel free. The statistics do
under one operation per byte, so that bound is small where the cores stream the stack
about as fast as the bus carries it; the Lee filter does ~5K+12 operations per pixel on
the same bytes, and the copies become a small part. With a GPU present
(:func:`labkit.backends.gpu.device_present`) the gpu backend is measured too.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BUS_GBPS", "BusRow", "bus_bytes", "bus_table", "describe_bus"]

BUS_GBPS = 25.0  # an assumption, not a measurement: PCIe 4.0 ×16 moves ≈25 GB/s in practice
STATS_FLOPS = 4  # per date and pixel: subtract, add, multiply, add


def bus_bytes(n_dates: int, rows: int, cols: int, k: int = 0) -> int:
    """Bytes the gpu backend sends over the bus for a stack in one block: the float32
    dates (host→device), with a filter the int64 row and column indices of its reflected
    window, and the float32 mean and std (device→host).
    """
    h = k // 2
    index = (rows + 2 * h + cols + 2 * h) * 8 if k else 0
    return n_dates * rows * cols * 4 + index + 2 * rows * cols * 4


@dataclass
class BusRow:
    """One kernel (``k`` = 0: statistics only) on one stack.

    Attributes
    ----------
    k : int
        Lee window side (0: no filter).
    flops : float
        Counted floating-point operations of the whole stack.
    bus_bytes : int
        Bytes over the bus (:func:`bus_bytes`).
    cpu_s : float
        Median seconds of one CPU core (filter every date, then the statistics).
    cpu_all_s : float
        The same on ``workers`` threads (dates filtered in parallel, then the statistics
        over row slabs).
    workers : int
        Threads of ``cpu_all_s`` (the physical cores).
    bus_s : float
        ``bus_bytes`` at ``bus_gbps`` GB/s (estimated, not measured).
    gpu : dict of str to float, optional
        Measured on a GPU: ``h2d``, ``kernel``, ``d2h`` seconds (medians); None without one.
    """

    k: int
    flops: float
    bus_bytes: int
    cpu_s: float
    cpu_all_s: float
    workers: int
    bus_s: float
    gpu: dict[str, float] | None = None

    @property
    def ratio(self) -> float:
        """All cores' seconds / the copies' seconds: below 1 the bus eats any gain."""
        return self.cpu_all_s / self.bus_s

    @property
    def intensity(self) -> float:
        """Counted operations per byte over the bus (flop/B)."""
        return self.flops / self.bus_bytes


def bus_table(stack: Any, ks: tuple[int, ...] = (0, 3, 9, 15), bus_gbps: float = BUS_GBPS,
              repeats: int = 3) -> list[BusRow]:
    """Measure one core and count the bus bytes for the statistics and each Lee window.

    Parameters
    ----------
    stack : TileStack
        The tiles (read whole into memory first; the read is not timed).
    ks : tuple of int
        Windows K to try (odd; 0 = the statistics alone).
    bus_gbps : float, default :data:`BUS_GBPS`
        The bus bandwidth assumed for the estimate (GB/s).
    repeats : int, default 3
        Timed runs of each after one untimed run (medians).
    """
    from labkit.backends import default_workers
    from labkit.backends._filtering import filtered, with_enl
    from labkit.filters import LeeFilter
    from labkit.io import StackReader
    from labkit.stats import reduce_stack

    with StackReader(stack.paths) as reader:
        x = reader.read(0, stack.rows)
    n, rows, cols = x.shape
    workers = default_workers("threads")
    gpu = _gpu_runner(stack, repeats)
    table = []
    with ThreadPoolExecutor(workers) as pool:
        for k in ks:
            filt = with_enl(LeeFilter(k), stack) if k else None

            def one(f: LeeFilter | None = filt) -> None:
                reduce_stack(filtered(x, f) if f else x, kernel="numba")

            def every(f: LeeFilter | None = filt) -> None:  # the Lee kernel releases the GIL
                y = np.stack(list(pool.map(lambda d: filtered(d[None], f)[0], x))) if f else x
                reduce_stack(y, kernel="numba", threads=workers)

            per_pixel = STATS_FLOPS + (filt.flops_per_pixel(rows) if filt else 0.0)
            nbytes = bus_bytes(n, rows, cols, k)
            table.append(BusRow(k, per_pixel * n * rows * cols, nbytes, _median(one, repeats),
                                _median(every, repeats), workers, nbytes / (bus_gbps * 1e9),
                                gpu(filt) if gpu else None))
    return table


def _median(fn: Any, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _gpu_runner(stack: Any, repeats: int) -> Any:
    """A function timing the gpu backend on ``stack`` with a filter, or None without a GPU."""
    from labkit.backends.gpu import device_present

    if not device_present():
        return None
    from labkit.backends import compute

    def measure(filt: Any) -> dict[str, float]:
        compute("gpu", stack, filter=filt)  # untimed: context, compilation, first copies
        runs = [compute("gpu", stack, filter=filt).timings for _ in range(repeats)]
        return {p: float(np.median([t[p] for t in runs])) for p in ("h2d", "kernel", "d2h")}

    return measure


def describe_bus(table: list[BusRow], bus_gbps: float = BUS_GBPS) -> list[str]:
    """Lines of text: per kernel, the cores' times against the copies, and the verdict."""
    lines = [f"bus bandwidth assumed {bus_gbps:g} GB/s (PCIe 4.0 x16 class; not measured)"]
    for r in table:
        name = f"lee:{r.k} + stats" if r.k else "stats alone"
        if r.ratio < 1:
            verdict = (f"the copies alone take longer than {r.workers} cores' whole run: "
                       "the bus eats the gain")
        elif r.ratio < 4:
            verdict = (f"a GPU could be at most {r.ratio:.1f}× faster than {r.workers} cores: "
                       "the bus eats most of the gain")
        else:
            verdict = (f"room for a GPU: at most {r.ratio:.0f}× faster than {r.workers} cores,"
                       " the copies a small part")
        lines.append(f"{name:15} {r.intensity:5.1f} flop/B over the bus; one core "
                     f"{r.cpu_s * 1e3:.1f} ms, {r.workers} cores {r.cpu_all_s * 1e3:.1f} ms, "
                     f"copies ≈{r.bus_s * 1e3:.2f} ms: {verdict}")
        if r.gpu:
            g = r.gpu
            lines.append(f"{'':16} measured on the GPU: h2d {g['h2d'] * 1e3:.2f} ms, kernel "
                         f"{g['kernel'] * 1e3:.2f} ms, d2h {g['d2h'] * 1e3:.2f} ms")
    return lines
