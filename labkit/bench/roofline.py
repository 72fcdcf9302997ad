"""The roofline of this machine, measured in the same run as the kernels placed on it.

A roofline bounds the flop rate a kernel can reach by two measured ceilings: the memory
bandwidth B (GB/s) times the kernel's *arithmetic intensity* I (flops per byte moved),
and the peak flop rate P (GFLOP/s): ``attainable(I) = min(P, B·I)``. The two meet at the
*ridge point* ``I = P / B``: a kernel left of it is memory-bound (more cores help only as
far as the bandwidth grows with them), right of it compute-bound.

* :func:`measure_roof`: B from a streaming triad ``a = b + s·c`` (float64, three arrays
  together larger than the last-level cache, bytes counted read + write: 24 per
  element; the copy ``a = b`` beside it, 16) and P from a Numba loop of independent
  multiply-adds held in registers (64 lanes the compiler vectorizes, and 8 scalar
  chains), with 1 thread and with every logical core. P is the rate Numba's code reaches
  here, in the vector width Numba picks for this CPU (the lab's kernels get the same)
  and without fused multiply-add contraction (as the lab's kernels are compiled): not
  the datasheet peak, which counts FMAs on the widest vectors.
* :func:`count_flops` and :func:`count_bytes`: what a run of the lab's kernel does,
  *counted* from the kernel's code: the statistics kernel does 4 flops per date-pixel
  (subtract the shift, add, square, add) and 7 per pixel to finish; the Lee filter adds
  :meth:`labkit.filters.LeeFilter.flops_per_pixel` per date-pixel. Bytes: the float32
  tiles read once (halo rows of each block included) and the two float32 outputs.
* :func:`kernel_points`: each (kernel, backend, workers) run timed (pools started
  beforehand, 1 and N workers alternated, medians) and placed at its intensity and its
  achieved rate = counted flops / measured compute time.

Usage (a notebook or the informe)::

    from labkit.bench import roofline
    from labkit.plots.roofline import roofline_figure

    roof = roofline.measure_roof()                          # ≈2 s
    points = roofline.kernel_points("data/tiny/intens_64x64", filters=(None, "lee:9"))
    roofline.describe(roof, points)                         # one line each
    fig = roofline_figure(roof, points)                     # log-log, ridge, labelled
    [p.as_dict() for p in points]                           # a small table

:func:`point_from_results` places runs timed elsewhere (a panel's ``last_results``).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labkit.errors import LabError

__all__ = [
    "STATS_FLOPS_FINISH",
    "STATS_FLOPS_PER_SAMPLE",
    "KernelPoint",
    "Roof",
    "count_bytes",
    "count_flops",
    "describe",
    "kernel_points",
    "last_level_cache",
    "measure_bandwidth",
    "measure_peak",
    "measure_roof",
    "point_from_results",
]

STATS_FLOPS_PER_SAMPLE = 4  # per date-pixel: d = x − shift, s += d, d·d, ss += d·d
STATS_FLOPS_FINISH = 7  # per pixel: shift + s/n; (ss − s·s/n)/(n − ddof); sqrt
VECTOR_LANES = 64  # independent float64 multiply-add chains the compiler vectorizes
SCALAR_CHAINS = 8  # independent scalar chains (not vectorized)
PEAK_ITERS = 1 << 22  # loop trips per peak measurement (≈ 15 ms per thread here)
TRIAD_BYTES = 24  # float64 triad: read b and c, write a
COPY_BYTES = 16  # float64 copy: read b, write a
PathLike = str | os.PathLike[str]


# -- the machine ---------------------------------------------------------------------------
def last_level_cache() -> int:
    """Bytes of the largest CPU cache the OS reports (32 MiB when it says nothing)."""
    best = 0
    for name in ("SC_LEVEL4_CACHE_SIZE", "SC_LEVEL3_CACHE_SIZE", "SC_LEVEL2_CACHE_SIZE"):
        try:
            best = max(best, int(os.sysconf(name)))
        except (ValueError, OSError, AttributeError):
            pass
    if best <= 0:
        for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
            try:
                text = (index / "size").read_text().strip().upper()
                mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
                best = max(best, int(text.rstrip("KMG")) * mult)
            except (OSError, ValueError):
                pass
    return best if best > 0 else 32 << 20


def _default_threads() -> tuple[int, ...]:
    """(1, logical cores), or (1,) on one core."""
    n = os.cpu_count() or 1
    return (1, n) if n > 1 else (1,)


def _kernels() -> dict[str, Callable[..., Any]]:
    """The Numba loops (compiled on first use, cached on disk)."""
    import numba

    @numba.njit(cache=True, nogil=True, boundscheck=False)
    def triad(a, b, c, s):  # pragma: no cover - compiled
        for i in range(a.size):
            a[i] = b[i] + s * c[i]

    @numba.njit(cache=True, nogil=True, boundscheck=False)
    def copy(a, b):  # pragma: no cover - compiled
        for i in range(a.size):
            a[i] = b[i]

    @numba.njit(cache=True, nogil=True, boundscheck=False)
    def lanes(iters, m, c, out):  # pragma: no cover - compiled
        acc = np.empty(64)  # VECTOR_LANES independent chains, vectorized by LLVM
        for j in range(64):
            acc[j] = j * 1e-3
        for _ in range(iters):
            for j in range(64):
                acc[j] = acc[j] * m + c
        total = 0.0
        for j in range(64):
            total += acc[j]
        out[0] = total

    @numba.njit(cache=True, nogil=True, boundscheck=False)
    def scalar(iters, m, c, out):  # pragma: no cover - compiled
        a0, a1, a2, a3, a4, a5, a6, a7 = 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8
        for _ in range(iters):  # SCALAR_CHAINS dependent chains side by side
            a0 = a0 * m + c
            a1 = a1 * m + c
            a2 = a2 * m + c
            a3 = a3 * m + c
            a4 = a4 * m + c
            a5 = a5 * m + c
            a6 = a6 * m + c
            a7 = a7 * m + c
        out[0] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7

    return {"triad": triad, "copy": copy, "lanes": lanes, "scalar": scalar}


_KERNELS: dict[str, Callable[..., Any]] = {}


def _kernel(name: str) -> Callable[..., Any]:
    if not _KERNELS:
        _KERNELS.update(_kernels())
    return _KERNELS[name]


def _elements(nbytes: int | None, threads: Sequence[int]) -> int:
    """float64 elements per array for the bandwidth measurement: ``nbytes`` over three
    arrays (default: twice the last-level cache, at least 256 MiB, at most an eighth of
    the available memory), at least 1024 per thread.
    """
    if nbytes is None:
        nbytes = max(2 * last_level_cache(), 256 << 20)
        try:
            import psutil

            nbytes = min(nbytes, int(psutil.virtual_memory().available) // 8)
        except ImportError:
            pass
    return max(1024 * max(threads), int(nbytes) // TRIAD_BYTES)


def _on_threads(tasks: Sequence[Callable[[], Any]]) -> float:
    """Wall seconds to run ``tasks`` at once, one thread each (the calls release the GIL)."""
    if len(tasks) == 1:
        t0 = time.perf_counter()
        tasks[0]()
        return time.perf_counter() - t0
    ts = [threading.Thread(target=t) for t in tasks]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0


def _median_time(tasks: Sequence[Callable[[], Any]], repeat: int) -> float:
    """Median wall seconds of ``repeat`` timed rounds after one untimed round."""
    _on_threads(tasks)
    return float(np.median([_on_threads(tasks) for _ in range(repeat)]))


def measure_bandwidth(nbytes: int | None = None, threads: Sequence[int] | None = None,
                      repeat: int = 5) -> dict[str, dict[int, float]]:
    """Memory bandwidth (GB/s) of a streaming triad and copy, per thread count.

    Parameters
    ----------
    nbytes : int, optional
        Bytes of the three float64 arrays together (default: twice the last-level
        cache, at least 256 MiB and at most an eighth of the available memory). Each
        thread streams its own contiguous slice.
    threads : sequence of int, optional
        Thread counts (default: 1 and the logical cores).
    repeat : int, default 5
        Timed rounds (after one untimed round that touches every page).

    Returns
    -------
    dict
        ``{"triad": {threads: GB/s}, "copy": {threads: GB/s}}``; bytes counted read +
        write (24 and 16 per element; write-allocate traffic not counted).
    """
    threads = tuple(threads or _default_threads())
    n = _elements(nbytes, threads)
    a, b, c = np.zeros(n), np.ones(n), np.full(n, 2.0)
    triad, copy = _kernel("triad"), _kernel("copy")
    out: dict[str, dict[int, float]] = {"triad": {}, "copy": {}}
    for t in threads:
        cuts = np.linspace(0, n, t + 1).astype(int)
        parts = [slice(cuts[i], cuts[i + 1]) for i in range(t)]
        tri = [lambda p=p: triad(a[p], b[p], c[p], 1.5) for p in parts]
        cop = [lambda p=p: copy(a[p], b[p]) for p in parts]
        out["triad"][t] = n * TRIAD_BYTES / _median_time(tri, repeat) / 1e9
        out["copy"][t] = n * COPY_BYTES / _median_time(cop, repeat) / 1e9
    return out


def measure_peak(threads: Sequence[int] | None = None, repeat: int = 5,
                 iters: int = PEAK_ITERS) -> dict[str, dict[int, float]]:
    """Peak flop rate (GFLOP/s) of independent multiply-adds in registers, per thread count.

    Parameters
    ----------
    threads : sequence of int, optional
        Thread counts (default: 1 and the logical cores); each thread runs the loop.
    repeat : int, default 5
        Timed rounds after one untimed round (which also compiles or loads the loop).
    iters : int
        Loop trips per thread and round.

    Returns
    -------
    dict
        ``{"vector": {threads: GFLOP/s}, "scalar": {threads: GFLOP/s}}``: 2 flops (one
        multiply, one add) per chain and trip; ``vector`` over :data:`VECTOR_LANES`
        chains the compiler packs into SIMD registers, ``scalar`` over
        :data:`SCALAR_CHAINS` plain ones.
    """
    threads = tuple(threads or _default_threads())
    out: dict[str, dict[int, float]] = {"vector": {}, "scalar": {}}
    for kind, chains in (("vector", VECTOR_LANES), ("scalar", SCALAR_CHAINS)):
        fn = _kernel("lanes" if kind == "vector" else "scalar")
        for t in threads:
            sinks = [np.zeros(1) for _ in range(t)]
            tasks = [lambda s=s, fn=fn: fn(iters, 0.999999, 1e-6, s) for s in sinks]
            dt = _median_time(tasks, repeat)
            out[kind][t] = 2 * chains * iters * t / dt / 1e9
    return out


@dataclass(frozen=True)
class Roof:
    """The measured roofline of this machine.

    Attributes
    ----------
    threads : tuple of int
        Thread counts measured (e.g. ``(1, 8)``).
    bandwidth_gbps : dict of int -> float
        Triad bandwidth (GB/s) per thread count: the memory roof.
    copy_gbps : dict of int -> float
        Copy bandwidth (GB/s) per thread count.
    peak_gflops : dict of int -> float
        Vectorized multiply-add rate (GFLOP/s) per thread count: the compute roof.
    scalar_gflops : dict of int -> float
        Scalar multiply-add rate (GFLOP/s): the roof of code the compiler cannot
        vectorize.
    array_bytes : int
        Bytes streamed by the bandwidth measurement (three arrays).
    llc_bytes : int
        The last-level cache the OS reports (bytes).
    """

    threads: tuple[int, ...]
    bandwidth_gbps: dict[int, float]
    copy_gbps: dict[int, float]
    peak_gflops: dict[int, float]
    scalar_gflops: dict[int, float]
    array_bytes: int
    llc_bytes: int

    def _t(self, threads: int | None) -> int:
        return max(self.threads) if threads is None else threads

    def ridge(self, threads: int | None = None, scalar: bool = False) -> float:
        """The ridge point (flops/byte): peak / bandwidth with ``threads`` (default: most)."""
        t = self._t(threads)
        peak = (self.scalar_gflops if scalar else self.peak_gflops)[t]
        return peak / self.bandwidth_gbps[t]

    def attainable(self, intensity: float, threads: int | None = None) -> float:
        """The roof at ``intensity`` (flops/byte): min(peak, bandwidth × intensity), GFLOP/s."""
        t = self._t(threads)
        return min(self.peak_gflops[t], self.bandwidth_gbps[t] * intensity)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-friendly; the ridge points added)."""
        d = asdict(self)
        d["ridge"] = {t: self.ridge(t) for t in self.threads}
        return d


def measure_roof(*, threads: Sequence[int] | None = None, nbytes: int | None = None,
                 repeat: int = 5, iters: int = PEAK_ITERS) -> Roof:
    """Measure the memory and compute roofs now (see :func:`measure_bandwidth` and
    :func:`measure_peak` for the parameters); ≈1–3 s with the default sizes.
    """
    threads = tuple(sorted(set(threads or _default_threads())))
    if not threads or min(threads) < 1:
        raise LabError(f"threads {threads} is not valid: give counts ≥ 1")
    bw = measure_bandwidth(nbytes, threads, repeat)
    peak = measure_peak(threads, repeat, iters)
    return Roof(threads, bw["triad"], bw["copy"], peak["vector"], peak["scalar"],
                _elements(nbytes, threads) * TRIAD_BYTES, last_level_cache())


# -- counting a run ------------------------------------------------------------------------
def _filter_of(spec: Any) -> Any:
    from labkit.filters import parse_filter

    return parse_filter(spec)


def _blocks(rows: int, block_rows: int | None) -> list[tuple[int, int]]:
    br = block_rows if block_rows and block_rows > 0 else rows
    return [(r0, min(br, rows - r0)) for r0 in range(0, rows, br)]


def count_flops(n_dates: int, rows: int, cols: int, filter: Any = None,
                block_rows: int | None = None) -> float:
    """Flops of one run of the lab's kernel, counted from its code.

    Parameters
    ----------
    n_dates, rows, cols : int
        The stack (dates, and pixels of one date).
    filter : str or LeeFilter, optional
        ``"lee:K"`` (or ``None``: statistics only).
    block_rows : int, optional
        Output rows per block (the filter re-does K//2 halo rows per block side; None:
        whole dates).

    Returns
    -------
    float
        ``n·rows·cols·4 + rows·cols·7``, plus for Lee ``n·cols·Σ_blocks
        flops_per_pixel(block)·block`` (flops).
    """
    flops = float(n_dates * rows * cols * STATS_FLOPS_PER_SAMPLE
                  + rows * cols * STATS_FLOPS_FINISH)
    filt = _filter_of(filter)
    if filt is not None:
        per_date = sum(filt.flops_per_pixel(n) * n for _, n in _blocks(rows, block_rows))
        flops += n_dates * cols * per_date
    return flops


def count_bytes(n_dates: int, rows: int, cols: int, filter: Any = None,
                block_rows: int | None = None) -> float:
    """Bytes a run moves at least: every float32 date-pixel read once (with each block's
    halo rows when filtered), and the two float32 outputs written.

    Parameters as :func:`count_flops`. Returns bytes (float).
    """
    filt = _filter_of(filter)
    rows_read = rows
    if filt is not None:
        from labkit.filters import halo_rows

        rows_read = sum(hi - lo for lo, hi, _ in
                        (halo_rows(r0, n, rows, filt.k) for r0, n in _blocks(rows, block_rows)))
    return float(4 * n_dates * rows_read * cols + 2 * 4 * rows * cols)


# -- placing runs --------------------------------------------------------------------------
@dataclass(frozen=True)
class KernelPoint:
    """One configuration placed on the roofline.

    Attributes
    ----------
    kernel : str
        ``"stats"`` or the filter, e.g. ``"lee:9"``.
    backend : str
        Backend (with its variant), e.g. ``"threads"``, ``"mpi/rows"``.
    workers : int
    flops : float
        Counted flops of one run (:func:`count_flops`).
    bytes : float
        Counted bytes of one run (:func:`count_bytes`).
    compute_s : float
        Median compute time (s): the busiest worker's filter + statistics time.
    wall_s : float
        Median wall time of the run (s), pool start-up excluded.
    repeats : int
        Timed runs behind the medians.
    """

    kernel: str
    backend: str
    workers: int
    flops: float
    bytes: float
    compute_s: float
    wall_s: float
    repeats: int

    @property
    def intensity(self) -> float:
        """Arithmetic intensity: counted flops per counted byte."""
        return self.flops / self.bytes

    @property
    def gflops(self) -> float:
        """Achieved rate: counted flops / median compute time (GFLOP/s)."""
        return self.flops / self.compute_s / 1e9 if self.compute_s > 0 else math.nan

    @property
    def label(self) -> str:
        """``kernel, backend ×workers`` (the plot's label)."""
        return f"{self.kernel}, {self.backend} ×{self.workers}"

    def as_dict(self) -> dict[str, Any]:
        """A table row: the fields plus ``intensity`` (flop/B) and ``gflops`` (GFLOP/s)."""
        return {**asdict(self), "intensity": self.intensity, "gflops": self.gflops}


def point_from_results(results: Sequence[Any]) -> KernelPoint:
    """Place the timed runs of one configuration (e.g. a panel's ``last_results``).

    Parameters
    ----------
    results : sequence of Result
        Runs of one backend, workers and filter (``meta`` as :func:`labkit.backends.compute`
        fills it; ``timings`` in s).

    Returns
    -------
    KernelPoint
        Counted from the first result's stack and block rows, timed by the medians.
    """
    from labkit.bench.summary import variant_name

    if not results:
        raise LabError("no results to place: time at least one run")
    m = results[0].meta
    n, rows, cols = int(m["n_dates"]), int(m["rows"]), int(m["cols"])
    br = m.get("block_rows") if isinstance(m.get("block_rows"), int) else None
    filt = m.get("filter")
    backend = variant_name(str(m["backend"]), m.get("strategy"), m.get("split"))
    wall = [r.timings["wall"] - r.timings.get("startup", 0.0) for r in results]
    comp = [r.timings.get("compute", 0.0) for r in results]
    kernel = "stats" if not filt else ":".join(str(filt).split(":")[:2])
    return KernelPoint(kernel, backend, int(m.get("workers", 1)),
                       count_flops(n, rows, cols, filt, br), count_bytes(n, rows, cols, filt, br),
                       float(np.median(comp)), float(np.median(wall)), len(results))


def _timer(compute: Callable[..., Any], backend: str, stack: Any, workers: int, pool: Any,
           filt: str | None, keep: list[Any]) -> Callable[[], float]:
    """A timer of one run (kept in ``keep``); returns its wall seconds."""
    def fn() -> float:
        r = compute(backend, stack, workers=workers, pool=pool, filter=filt)
        keep.append(r)
        return float(r.timings["wall"])
    return fn


def kernel_points(src: Any, *, filters: Sequence[str | None] = (None, "lee:9"),
                  backends: Sequence[str] = ("threads",), workers: Sequence[int] | None = None,
                  repeat: int = 3, progress: Callable[[str], None] | None = None
                  ) -> list[KernelPoint]:
    """Time the lab's kernels on ``src`` and place them on the roofline.

    Parameters
    ----------
    src : folder of tiles or TileStack
        The stack (a preset's tiles; tiles without a looks tag need ``lee:K:ENL``).
    filters : sequence of str or None, default (None, "lee:9")
        ``None`` for the statistics alone, ``"lee:K"`` for the filter then statistics.
    backends : sequence of str, default ("threads",)
        Backends to run (pools started once beforehand, closed at the end).
    workers : sequence of int, optional
        Worker counts (default: 1 and the logical cores).
    repeat : int, default 3
        Timed runs of each, alternated between worker counts after one warm-up round.
    progress : callable(str), optional
        Told what is being timed.

    Returns
    -------
    list of KernelPoint
        One per (filter, backend, workers), in that order.
    """
    from labkit.backends import compute, make_pool
    from labkit.bench.harness import alternate
    from labkit.io import TileStack, open_stack

    stack = src if isinstance(src, TileStack) else open_stack(src)
    counts = tuple(workers or _default_threads())
    pools: dict[tuple[str, int], Any] = {}
    points = []
    try:
        for b in backends:
            for w in counts:
                pools[b, w] = make_pool(b, w)
        for filt in filters:
            for b in backends:
                runs: dict[int, list[Any]] = {w: [] for w in counts}
                name = f"{filt or 'stats'}, {b}"
                alternate({f"{name} ×{w}": _timer(compute, b, stack, w, pools[b, w], filt,
                                                  runs[w]) for w in counts},
                          repeat, progress=progress)
                points += [point_from_results(runs[w][-repeat:]) for w in counts]
    finally:
        for pool in pools.values():
            if pool is not None:
                pool.close()
    return points


def describe(roof: Roof, points: Sequence[KernelPoint] = ()) -> str:
    """The roofs and each point in words: one line each (GB/s, GFLOP/s, flop/B)."""
    t = max(roof.threads)
    lines = [f"memory roof (triad): {roof.bandwidth_gbps[1]:.1f} GB/s on 1 thread, "
             f"{roof.bandwidth_gbps[t]:.1f} GB/s on {t}",
             f"compute roof (vector multiply-add, Numba): {roof.peak_gflops[1]:.1f} GFLOP/s "
             f"on 1 thread, {roof.peak_gflops[t]:.1f} on {t} (scalar: "
             f"{roof.scalar_gflops[t]:.1f})",
             f"ridge point: {roof.ridge(t):.2f} flop/B ({roof.ridge(t, scalar=True):.2f} "
             f"for scalar code)"]
    for p in points:
        roof_here = roof.attainable(p.intensity, p.workers if p.workers in roof.threads
                                    else t)
        side = "memory-bound side" if p.intensity < roof.ridge(t) else "compute-bound side"
        lines.append(f"{p.label}: {p.intensity:.2f} flop/B ({side}), {p.gflops:.2f} GFLOP/s "
                     f"= {p.gflops / roof_here:.0%} of the roof there")
    return "\n".join(lines)
