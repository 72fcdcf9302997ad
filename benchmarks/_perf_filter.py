"""The filter group of ``benchmarks/perf.py``: the Lee filter in parallel and on one thread.

On random tiles, in process, on pools started once beforehand (their start-up is a row
of its own): the Lee filter (``lee:K:ENL``, the ENL given since random tiles carry no
looks tag) with 1 vs 2 workers per backend; the fused Lee kernel vs a plain scipy
version of the same filter on one date; and the statistics kernel alone (no filter):
the best backend's 2-worker speed-up against the machine's 2-thread copy scaling,
measured in the same run. ``ratio`` is median A / median B, as in every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _perf_cases import Progress, make_row
from _perf_parallel import ROUNDS, Variant, _run_on, _scaling, _start_pools

from labkit.bench import alternate, median, timed, variant_name
from labkit.errors import LabError

__all__ = ["FILTER_BACKENDS", "MAX_REL_DIFF", "measure_filter", "scipy_lee"]

FILTER_BACKENDS: tuple[Variant, ...] = (("threads", None, None), ("mem", None, None),
                                        ("mpi", None, "rows"))
MAX_REL_DIFF = 1e-5  # largest relative difference allowed between the kernel and scipy


def scipy_lee(img: Any, k: int, enl: float) -> Any:
    """The Lee filter with ``scipy.ndimage.uniform_filter`` (reflect borders) for the
    window means of I and I², then the formula, all in float64 (float64 out)."""
    import numpy as np
    from scipy.ndimage import uniform_filter

    x = np.asarray(img, np.float64)
    m = uniform_filter(x, k, mode="reflect")
    q = uniform_filter(x * x, k, mode="reflect")
    var_y = np.maximum(q - m * m, 1e-10)
    var_x = np.maximum((var_y - m * m / enl) / (1 + 1 / enl), 0)
    return m + (x - m) * var_x / var_y


def _speedups(pools: dict[tuple[str, int], Any], backends: Sequence[Variant], stack: Any,
              rounds: int, filter: str | None, progress: Progress
              ) -> dict[str, tuple[list[float], list[float]]]:
    """(×1 worker, ×2 workers) timings of each variant, each pair alternated on its own."""
    out = {}
    for b, st, sp in backends:
        v = variant_name(b, st, sp)
        t = alternate({f"{v} ×1": _run_on(pools, b, st, sp, 1, stack, filter),
                       f"{v} ×2": _run_on(pools, b, st, sp, 2, stack, filter)}, rounds,
                      progress=progress)
        out[v] = (t[f"{v} ×1"], t[f"{v} ×2"])
    return out


def _kernel_vs_scipy(tile: Path, k: int, enl: float, repeats: int,
                     progress: Progress) -> dict[str, Any]:
    """The fused Lee kernel (one thread) vs :func:`scipy_lee` on one date; the row's
    label gives the largest relative difference of the kernel's float32 output from
    scipy's float64 one (LabError above :data:`MAX_REL_DIFF`)."""
    import numpy as np

    from labkit import filters
    from labkit.io import read_tile

    img = read_tile(tile)
    fused = filters.lee(img, k, enl)  # compiles or loads the kernel
    ref = scipy_lee(img, k, enl)
    diff = float(np.max(np.abs(fused - ref) / np.maximum(np.abs(ref), 1e-30)))
    if not diff <= MAX_REL_DIFF:
        raise LabError(f"the fused Lee kernel differs from scipy by {diff:.3g} (relative) "
                       f"on {tile.name}, above {MAX_REL_DIFF:g}")
    t = alternate({"scipy": lambda: timed(lambda: scipy_lee(img, k, enl)),
                   "fused": lambda: timed(lambda: filters.lee(img, k, enl))}, repeats,
                  progress=progress)
    size = f"{img.shape[0]}×{img.shape[1]}"
    return make_row("filter", "lee-vs-scipy",
                    f"scipy uniform_filter ×2 + formula (float64), lee {k}, one {size} date",
                    f"fused Lee kernel, 1 thread (max rel. diff {diff:.2g})",
                    t["scipy"], t["fused"])


def measure_filter(tiles: Path, repeats: int = 5, backends: Sequence[Variant] = FILTER_BACKENDS,
                   k: int = 9, enl: float = 16.0,
                   progress: Progress = None) -> list[dict[str, Any]]:
    """Lee ``k`` with 1 vs 2 workers per backend on ``tiles``; the fused kernel vs scipy on
    one date; the statistics kernel's best 2-worker speed-up vs the 2-thread copy scaling.

    Returns
    -------
    list of dict
        perf rows of group ``filter``: ``pool-startup``, ``lee-speedup`` (ratio: the
        speed-up), ``lee-vs-scipy`` (ratio: the kernel's throughput / scipy's),
        ``stats-speedup`` and ``scaling`` (ratios: speed-ups), ``stats-vs-copy`` (ratio:
        the stats speed-up / the copy scaling).
    """
    from labkit.io import open_stack

    spec = f"lee:{k}:{enl:g}"
    stack = open_stack(tiles)
    size = f"{stack.n_dates} × {stack.rows}×{stack.cols}"
    rows: list[dict[str, Any]] = []
    pools = _start_pools(backends, progress)
    try:
        for (backend, w), pool in pools.items():
            if pool is not None:
                rows.append(make_row("filter", "pool-startup",
                                     f"{backend} pool ×{w}: start-up (s)", "", pool.startup,
                                     None, repeats=1))
        lee = _speedups(pools, backends, stack, repeats, spec, progress)
        rows += [make_row("filter", "lee-speedup", f"{v} ×1 worker, {spec}, {size}",
                          f"{v} ×2 workers", t1, t2) for v, (t1, t2) in lee.items()]
        rows.append(_kernel_vs_scipy(stack.paths[0], k, enl, ROUNDS * repeats, progress))
        plain = _speedups(pools, backends, stack, ROUNDS * repeats, None, progress)
    finally:
        for pool in pools.values():
            if pool is not None:
                pool.close()
    best = min(plain, key=lambda v: median(plain[v][1]))
    rows += [make_row("filter", "stats-speedup",
                      f"{'best: ' if v == best else ''}{v} ×1 worker, no filter, {size}",
                      f"{v} ×2 workers", t1, t2) for v, (t1, t2) in plain.items()]
    copy = _scaling(tiles, ROUNDS * repeats, progress, group="filter",
                    name=f"{stack.n_dates} tiles", only=["copy within RAM"])
    rows += copy
    t1, t2 = median(plain[best][0]), median(plain[best][1])
    scale = copy[0]["ratio"]
    n = min(len(plain[best][0]), len(plain[best][1]))
    rows.append(make_row("filter", "stats-vs-copy",
                         f"{best} ×1 worker / copy scaling {scale:.3g} (the ×2 time if it "
                         f"scaled as copying does)",
                         f"{best} ×2 workers (speed-up {t1 / t2:.3g})", t1 / scale, t2,
                         repeats=n))
    return rows
