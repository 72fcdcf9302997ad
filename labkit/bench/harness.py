"""In-process timing: warm-up runs then timed repeats, alternated rounds, medians.

:func:`time_backend` times ``labkit.backends.compute`` and compares each result with a
reference (:func:`max_abs_diff`); :func:`alternate` times several functions in turns so
that load from elsewhere spreads over all of them; :func:`compare_prefetch` uses it for
``sequential`` without and with prefetch.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from labkit.errors import LabError

__all__ = [
    "alternate",
    "check_counts",
    "compare_prefetch",
    "describe_prefetch",
    "forced_kernel",
    "max_abs_diff",
    "median",
    "time_backend",
    "timed",
]


def max_abs_diff(result: Any, reference: Any) -> float:
    """Max |Δ| over mean and std between two results (NaN where both are NaN is equal).

    Parameters
    ----------
    result : Result
        Anything with ``mean`` and ``std`` arrays.
    reference : Result or (mean, std)
        What ``result`` should equal.

    Returns
    -------
    float
        In the data's units; ``inf`` when NaN patterns or shapes differ.
    """
    import numpy as np

    ref = (reference.mean, reference.std) if hasattr(reference, "mean") else reference
    worst = 0.0
    for a, b in zip((result.mean, result.std), ref, strict=True):
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64)
        if a.shape != b.shape or not np.array_equal(np.isnan(a), np.isnan(b)):
            return math.inf
        d = np.abs(a - b)
        if d.size and np.isfinite(d).any():
            worst = max(worst, float(np.nanmax(d)))
    return worst


def check_counts(repeat: Any, warmup: Any) -> None:
    """Refuse a repeat count below 1 or a warm-up count below 0 (one-line LabError)."""
    if not isinstance(repeat, int) or repeat < 1:
        raise LabError(f"repeat must be a whole number ≥ 1, got {repeat!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise LabError(f"warmup must be a whole number ≥ 0, got {warmup!r}")


def time_backend(
    backend: str,
    src: Any,
    *,
    workers: int = 1,
    strategy: str | None = None,
    split: str | None = None,
    block_rows: int | None = None,
    filter: str | None = None,
    repeat: int = 3,
    warmup: int = 1,
    pool: Any = None,
    reference: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """Time ``labkit.backends.compute`` in this process: ``warmup`` runs, then ``repeat``.

    Parameters
    ----------
    backend, src, workers, strategy, split, block_rows, filter, pool
        As :func:`labkit.backends.compute` (``filter``: e.g. ``"lee:9"``; None: none).
        Without ``pool`` each run starts (and times, as ``startup``) its own pool.
    repeat : int, default 3
        Timed runs (≥ 1).
    warmup : int, default 1
        Untimed runs first (≥ 0): page cache, imports, pools.
    reference : Result or (mean, std), optional
        When given, ``meta["max_abs_diff"]`` of each result is its max |Δ| to it.
    progress : callable(done, total), optional
        Called after each run (warm-up included).

    Returns
    -------
    list of Result
        The ``repeat`` timed results (``timings`` in seconds).
    """
    from labkit.backends import compute
    from labkit.io import TileStack, open_stack

    check_counts(repeat, warmup)
    stack = src if isinstance(src, TileStack) else open_stack(src)
    total = warmup + repeat
    out = []
    for i in range(total):
        res = compute(backend, stack, workers=workers, strategy=strategy, split=split,
                      block_rows=block_rows, filter=filter, pool=pool)
        if i >= warmup:
            if reference is not None:
                res.meta["max_abs_diff"] = max_abs_diff(res, reference)
            out.append(res)
        if progress:
            progress(i + 1, total)
    return out


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call of ``fn`` (``time.perf_counter``)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median(values: Sequence[float]) -> float:
    """The median of ``values`` as a float (same units)."""
    return float(statistics.median(values))


def alternate(fns: dict[str, Callable[[], float]], repeats: int, warmup: int = 1,
              progress: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Run every function once per round, in turns (``warmup`` untimed rounds first).

    Parameters
    ----------
    fns : dict of name -> callable
        Each call returns the seconds it measured.
    repeats : int
        Timed rounds.
    warmup : int, default 1
        Untimed rounds first.
    progress : callable(str), optional
        Told ``"name (round/rounds)"`` before each call.

    Returns
    -------
    dict of name -> list of float
        The ``repeats`` timings (s) of each function.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for rnd in range(warmup + repeats):
        for name, fn in fns.items():
            if progress:
                progress(f"{name} ({rnd + 1}/{warmup + repeats})")
            dt = fn()
            if rnd >= warmup:
                times[name].append(dt)
    return times


@contextlib.contextmanager
def forced_kernel(name: str | None) -> Iterator[None]:
    """Set ``LABKIT_KERNEL`` to ``name`` inside the block (None: leave it), then restore."""
    old = os.environ.get("LABKIT_KERNEL")
    if name is not None:
        os.environ["LABKIT_KERNEL"] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LABKIT_KERNEL", None)
        else:
            os.environ["LABKIT_KERNEL"] = old


def compare_prefetch(src: Any, repeats: int = 3, kernel: str | None = None
                     ) -> dict[str, list[Any]]:
    """``sequential`` without and with prefetch on ``src``, alternated (in process).

    Parameters
    ----------
    src : TileStack or folder of tiles
        The stack to reduce.
    repeats : int, default 3
        Timed runs of each, after one warm-up round.
    kernel : {"numba", "numpy"}, optional
        Force a kernel (default: labkit's choice).

    Returns
    -------
    dict
        ``{"off": [Result, ...], "on": [...]}``, ``repeats`` each (timings in seconds).
    """
    from labkit.backends import compute
    from labkit.io import TileStack, open_stack

    stack = src if isinstance(src, TileStack) else open_stack(src)
    runs: dict[str, list[Any]] = {"off": [], "on": []}
    with forced_kernel(kernel):
        for rnd in range(repeats + 1):
            for key in runs:
                res = compute("sequential", stack, prefetch=key == "on")
                if rnd:
                    runs[key].append(res)
    return runs


def describe_prefetch(runs: dict[str, list[Any]]) -> str:
    """Three lines (medians, s) from :func:`compare_prefetch`: without, with, the speed-up."""
    def med(key: str, what: str) -> float:
        return median([r.timings[what] for r in runs[key]])

    off, on = med("off", "wall"), med("on", "wall")
    kernel = median([r.meta["compute_total"] for r in runs["on"]])
    return (f"without prefetch: {off:.3f} s (read {med('off', 'read'):.3f} s, then compute "
            f"{med('off', 'compute'):.3f} s, one after the other)\n"
            f"with prefetch:    {on:.3f} s (read {med('on', 'read'):.3f} s while a helper "
            f"thread computed for {kernel:.3f} s; the reader waited {med('on', 'compute'):.3f}"
            f" s for it)\n"
            f"-> {off / on:.2f}x")
