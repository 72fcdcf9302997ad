"""The reduction kernel: per-pixel temporal mean and standard deviation of a stack.

Numerical contract
------------------------------
* Accumulate in float64, return float32.
* Shifted sums: with ``K`` the pixel's first date, ``s = Σ(x-K)`` and ``ss = Σ(x-K)²``
  (dates in order), so ``mean = K + s/n`` and ``M2 = ss - s·s/n``. The shift keeps
  ``M2`` accurate for persistent scatterers (mean ≫ std).
* Every pixel goes through the same sequence of operations whatever block it falls in,
  so splitting by space (row blocks, slabs, ranks) is bitwise identical to sequential.
* A :class:`Partial` ``(count, mean, M2)`` merges with Chan et al.'s formula, so a
  split by dates merges exactly in float64 (float32 output within rounding).
* Strict NaN by default (NaN in any date -> NaN); ``min_count`` makes it NaN-aware.

Two implementations of the same arithmetic: NumPy ufuncs with ``out=`` buffers over
cache-sized blocks (four passes per date), and a fused Numba loop (one pass: load, subtract,
add, multiply, add per sample, no temporaries) used by :func:`reduce_stack` for strict
statistics of a 3-D array. Both do the same IEEE operations in the same order per pixel
(no fast-math, no FMA contraction), so their results are bitwise identical; set
``LABKIT_KERNEL=numpy`` to force the NumPy one.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit.config import ENV_KERNEL, JIT_PAYS_BYTES, KERNEL_CACHE_BYTES
from labkit.errors import LabError

__all__ = [
    "Accumulator",
    "Partial",
    "cache_block_rows",
    "kernel_name",
    "check_ddof",
    "JIT_PAYS_BYTES",
    "one_shot_kernel",
    "finalize",
    "merge",
    "reduce_stack",
    "reference",
    "warm_up",
]

CACHE_BYTES = KERNEL_CACHE_BYTES  # bytes of working set per kernel block (fits L2)
_F64_ARRAYS = 4  # float64 arrays touched per pixel by the kernel: shift, s, ss, tmp


def cache_block_rows(cols: int) -> int:
    """Rows per kernel block so its float64 working set fits in ``CACHE_BYTES`` (≥ 1)."""
    return max(1, CACHE_BYTES // (_F64_ARRAYS * 8 * max(1, cols)))


@dataclass
class Partial:
    """Mergeable per-pixel state of a reduction over some dates.

    Attributes
    ----------
    count : ndarray of int64
        Valid dates per pixel; a 0-d array when every pixel saw the same number of dates
        (strict statistics): :func:`merge` and :func:`finalize` then work with that one
        number instead of a map of counts (same bits, fewer passes over memory).
    mean : ndarray of float64
        Mean over those dates.
    m2 : ndarray of float64
        Sum of squared deviations from ``mean``.
    """

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray


class Accumulator:
    """Adds dates one at a time into float64 shifted sums over a 2-D region.

    Parameters
    ----------
    shape : (rows, cols)
        Region size in pixels.
    nan_aware : bool, default False
        If False a NaN in any date makes the pixel NaN (strict). If True NaNs are skipped
        and counted per pixel.
    """

    def __init__(self, shape: tuple[int, int], nan_aware: bool = False) -> None:
        self.shape = shape
        self.nan_aware = nan_aware
        self.shift = np.empty(shape, np.float64)
        self.s = np.empty(shape, np.float64)
        self.ss = np.empty(shape, np.float64)
        self._tmp = np.empty(shape, np.float64)
        self.count: Any = np.empty(shape, np.int64) if nan_aware else 0  # per pixel, or all
        self.reset()

    def reset(self) -> None:
        """Forget every date added so far."""
        self.s.fill(0.0)
        self.ss.fill(0.0)
        self.n_added = 0
        if self.nan_aware:
            self.count.fill(0)
        else:
            self.count = 0

    def add(self, x: np.ndarray) -> None:
        """Add one date (float32 or float64 array of ``shape``)."""
        if x.shape != self.shape:
            raise ValueError(f"date has shape {x.shape}, accumulator has {self.shape}")
        d = self._tmp
        if self.nan_aware:
            valid = ~np.isnan(x)
            if self.n_added == 0:
                np.copyto(self.shift, x, where=valid)
                self.shift[~valid] = 0.0
            np.subtract(x, self.shift, out=d)
            d[~valid] = 0.0
            self.count += valid
        else:
            if self.n_added == 0:
                np.copyto(self.shift, x)
            np.copyto(d, x)  # exact widening first: faster than a mixed-type subtract
            np.subtract(d, self.shift, out=d)
            self.count += 1
        self.s += d
        np.multiply(d, d, out=d)
        self.ss += d
        self.n_added += 1

    def partial(self) -> Partial:
        """The state so far as a :class:`Partial` (new arrays)."""
        count = self.count.copy() if self.nan_aware else np.asarray(self.count, np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.shift + self.s / count
            m2 = self.ss - self.s * self.s / count
        return Partial(count, mean, m2)


def merge(a: Partial, b: Partial) -> Partial:
    """Merge two partials over disjoint sets of dates (Chan, Golub & LeVeque 1979)."""
    if a.count.ndim == 0 and b.count.ndim == 0:  # strict: one count each, same arithmetic
        if b.count == 0:
            return a
        if a.count == 0:
            return b
        n = a.count + b.count
        delta = b.mean - a.mean
        wb = b.count / n
        return Partial(n, a.mean + delta * wb, a.m2 + b.m2 + delta * delta * a.count * wb)
    n = a.count + b.count
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = b.mean - a.mean
        wb = np.where(n > 0, b.count / n, 0.0)
        mean = np.where(b.count == 0, a.mean, np.where(a.count == 0, b.mean, a.mean + delta * wb))
        m2 = np.where(
            b.count == 0,
            a.m2,
            np.where(a.count == 0, b.m2, a.m2 + b.m2 + delta * delta * a.count * wb),
        )
    return Partial(n, mean, m2)


def finalize(
    p: Partial, ddof: int = 0, min_count: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (float32) from a partial.

    Parameters
    ----------
    p : Partial
        Count, mean and M2 per pixel (float64).
    ddof : int, default 0
        Delta degrees of freedom: 0 is the population std, 1 the sample std.
    min_count : int or None, default None
        With NaN-aware partials, pixels with fewer valid dates are NaN. None means strict.
    """
    if p.count.ndim == 0 and (min_count is None or p.count >= min_count) and p.count > ddof:
        var = p.m2 / (p.count - ddof)  # one count for every pixel: no masks, no copies
        np.maximum(var, 0.0, out=var)
        np.sqrt(var, out=var)
        return p.mean.astype(np.float32), var.astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = p.m2 / (p.count - ddof)
        np.maximum(var, 0.0, out=var)
        std = np.sqrt(var)
        mean = np.array(np.broadcast_to(p.mean, std.shape))
    bad = np.broadcast_to(p.count - ddof <= 0, std.shape).copy()
    if min_count is not None:
        bad |= p.count < min_count
    mean[bad] = np.nan
    std[bad] = np.nan
    return mean.astype(np.float32), std.astype(np.float32)


_NUMBA_KERNEL = None
_CHUNK = 256  # columns per pass of the fused kernel: its float64 sums (3 × 2 KiB) stay in L1


def _numba_kernel():  # compiled on first use, cached on disk (JIT time is start-up time)
    global _NUMBA_KERNEL
    if _NUMBA_KERNEL is None:
        import numba

        @numba.njit(cache=True, nogil=True, boundscheck=False)
        def reduce_rows(stack, r0, r1, ddof, mean_out, std_out, s, ss, shift):  # pragma: no cover
            # Per pixel exactly the NumPy kernel's operations, in its order: d = x - K in
            # float64, s += d, ss += d*d, date after date. Eight (then four) dates per pass
            # over a 256-column chunk keep s and ss in registers between dates (one load and
            # one store per 8 dates instead of per date); ((s + d0) + d1) + ... is the same
            # rounding sequence as adding one date at a time.
            n = stack.shape[0]
            cols = stack.shape[2]
            for r in range(r0, r1):
                for c0 in range(0, cols, _CHUNK):
                    w = min(_CHUNK, cols - c0)
                    x = stack[0, r, c0:c0 + w]
                    for c in range(w):
                        shift[c] = x[c]
                        s[c] = 0.0
                        ss[c] = 0.0
                    k = 0
                    while k + 8 <= n:
                        x0 = stack[k, r, c0:c0 + w]
                        x1 = stack[k + 1, r, c0:c0 + w]
                        x2 = stack[k + 2, r, c0:c0 + w]
                        x3 = stack[k + 3, r, c0:c0 + w]
                        x4 = stack[k + 4, r, c0:c0 + w]
                        x5 = stack[k + 5, r, c0:c0 + w]
                        x6 = stack[k + 6, r, c0:c0 + w]
                        x7 = stack[k + 7, r, c0:c0 + w]
                        for c in range(w):
                            h = shift[c]
                            d0 = x0[c] - h
                            d1 = x1[c] - h
                            d2 = x2[c] - h
                            d3 = x3[c] - h
                            d4 = x4[c] - h
                            d5 = x5[c] - h
                            d6 = x6[c] - h
                            d7 = x7[c] - h
                            s[c] = s[c] + d0 + d1 + d2 + d3 + d4 + d5 + d6 + d7
                            ss[c] = (ss[c] + d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3
                                     + d4 * d4 + d5 * d5 + d6 * d6 + d7 * d7)
                        k += 8
                    if k + 4 <= n:
                        x0 = stack[k, r, c0:c0 + w]
                        x1 = stack[k + 1, r, c0:c0 + w]
                        x2 = stack[k + 2, r, c0:c0 + w]
                        x3 = stack[k + 3, r, c0:c0 + w]
                        for c in range(w):
                            h = shift[c]
                            d0 = x0[c] - h
                            d1 = x1[c] - h
                            d2 = x2[c] - h
                            d3 = x3[c] - h
                            s[c] = s[c] + d0 + d1 + d2 + d3
                            ss[c] = ss[c] + d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3
                        k += 4
                    while k < n:
                        x = stack[k, r, c0:c0 + w]
                        for c in range(w):
                            d = x[c] - shift[c]
                            s[c] += d
                            ss[c] += d * d
                        k += 1
                    for c in range(w):
                        var = (ss[c] - s[c] * s[c] / n) / (n - ddof)
                        if var < 0.0:  # NaN stays NaN, as np.maximum does
                            var = 0.0
                        mean_out[r - r0, c0 + c] = shift[c] + s[c] / n
                        std_out[r - r0, c0 + c] = np.sqrt(var)

        _NUMBA_KERNEL = reduce_rows
    return _NUMBA_KERNEL


def _numba_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def kernel_name(stack: object = None, min_count: int | None = None,
                kernel: str | None = None) -> str:
    """Which kernel :func:`reduce_stack` uses: ``"numba"`` (fused) or ``"numpy"``.

    ``kernel`` (the run's choice) or else ``LABKIT_KERNEL``: ``numpy`` forces NumPy,
    ``numba`` (or unset/``auto``) the fused kernel when Numba is installed. NaN-aware
    statistics and lists of dates always use NumPy. A one-shot ``labkit run`` chooses by
    size (:func:`one_shot_kernel`) and passes its choice to every worker.
    """
    choice = kernel or os.environ.get(ENV_KERNEL, "auto")
    if choice == "numpy" or min_count is not None:
        return "numpy"
    if stack is not None and not (isinstance(stack, np.ndarray) and stack.ndim == 3):
        return "numpy"
    return "numba" if _NUMBA_KERNEL is not None or _numba_available() else "numpy"


def one_shot_kernel(nbytes: int) -> str:
    """Choose the kernel for a process that reduces ``nbytes`` of stack once and exits.

    Loading Numba costs ≈ 0.3-0.6 s per fresh process, and the fused kernel saves
    ≈ 0.25 s per GB over the NumPy one, so below :data:`JIT_PAYS_BYTES` the NumPy kernel
    finishes first; both give the same bits, so the choice is free. The user's
    ``LABKIT_KERNEL=numba`` or ``numpy`` wins. Returns the kernel name, for the run's
    options (``kernel=``), which hand it to every worker and rank.
    """
    if os.environ.get(ENV_KERNEL, "auto") in ("", "auto"):
        fast = nbytes >= JIT_PAYS_BYTES or _NUMBA_KERNEL is not None
        return kernel_name(kernel="numba" if fast else "numpy")
    return kernel_name()


def warm_up(min_count: int | None = None, kernel: str | None = None) -> float:
    """Load the kernel :func:`reduce_stack` will use, for both array layouts the backends
    pass (contiguous blocks and strided views of a bigger array), so that the Numba
    import and JIT-cache load (≈0.3–0.6 s in a fresh process) is timed as start-up, not
    compute. Returns the seconds it took (≈0 once loaded, or with the NumPy kernel).
    """
    import time

    t0 = time.perf_counter()
    z = np.zeros((3, 2, 2), np.float32)
    reduce_stack(z, min_count=min_count, kernel=kernel)
    reduce_stack(z[:2, :1], min_count=min_count, kernel=kernel)
    return time.perf_counter() - t0


def reduce_stack(
    stack: np.ndarray | Sequence[np.ndarray],
    *,
    ddof: int = 0,
    min_count: int | None = None,
    block_rows: int | None = None,
    out: tuple[np.ndarray, np.ndarray] | None = None,
    threads: int = 1,
    rows: tuple[int, int] | None = None,
    kernel: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (float32) over axis 0 of an in-memory stack, in cache-sized row blocks.

    Parameters
    ----------
    stack : (dates, rows, cols) array or sequence of (rows, cols) arrays
        Intensity per date. A 3-D array with strict NaN goes through the fused kernel,
        which is fastest on a C-contiguous array (pass ``rows`` rather than a row slice).
    ddof, min_count
        See :func:`finalize`.
    block_rows : int, optional
        Rows per kernel block; default from :func:`cache_block_rows`.
    out : (mean, std), optional
        float32 arrays with the shape of the rows reduced, to write into.
    threads : int, default 1
        Threads, each reducing one contiguous slab of rows. Both kernels release the GIL
        (the fused one for its whole slab, NumPy inside each operation); splitting by rows
        leaves every pixel's arithmetic unchanged, so the result is the same to the bit.
    rows : (r0, r1), optional
        Reduce only rows ``r0 .. r1-1`` (default: all).
    kernel : {"numba", "numpy"}, optional
        The kernel to use (default: :func:`kernel_name`'s choice); same bits either way.
    """
    n = len(stack)
    if n == 0:
        raise LabError("the stack has no dates")
    check_ddof(ddof, n)
    total, cols = stack[0].shape
    r0, r1 = (0, total) if rows is None else rows
    if not 0 <= r0 <= r1 <= total:
        raise LabError(f"rows {r0}:{r1} out of range: valid is 0 <= r0 <= r1 <= {total}")
    br = block_rows or cache_block_rows(cols)
    if out is None:
        out = (np.empty((r1 - r0, cols), np.float32), np.empty((r1 - r0, cols), np.float32))
    if threads > 1 and r1 - r0 > 1:
        cuts = np.linspace(r0, r1, min(threads, r1 - r0) + 1).astype(int)
        _reduce_threaded(stack, cuts, r0, out, ddof=ddof, min_count=min_count,
                         block_rows=block_rows, kernel=kernel)
        return out
    if kernel_name(stack, min_count, kernel) == "numba":
        buffers = [np.empty(min(cols, _CHUNK), np.float64) for _ in range(3)]
        _numba_kernel()(stack, r0, r1, ddof, out[0], out[1], *buffers)
        return out
    acc = Accumulator((min(br, r1 - r0), cols), nan_aware=min_count is not None)
    for a in range(r0, r1, br):
        b = min(r1, a + br)
        if b - a != acc.shape[0]:
            acc = Accumulator((b - a, cols), nan_aware=min_count is not None)
        acc.reset()
        for k in range(n):
            acc.add(stack[k][a:b])
        m, s = finalize(acc.partial(), ddof, min_count)
        out[0][a - r0:b - r0] = m
        out[1][a - r0:b - r0] = s
    return out


def _reduce_threaded(stack: np.ndarray | Sequence[np.ndarray], cuts: np.ndarray, r0: int,
                     out: tuple[np.ndarray, np.ndarray], **options: Any) -> None:
    """:func:`reduce_stack` of rows ``cuts[i] .. cuts[i+1]`` in one thread each."""
    from concurrent.futures import ThreadPoolExecutor

    if kernel_name(stack, options.get("min_count"), options.get("kernel")) == "numba":
        _numba_kernel()  # load once, before the threads start
    with ThreadPoolExecutor(len(cuts) - 1, thread_name_prefix="labkit-kernel") as ex:
        futures = [ex.submit(reduce_stack, stack, rows=(a, b),
                             out=(out[0][a - r0:b - r0], out[1][a - r0:b - r0]), **options)
                   for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        for f in futures:
            f.result()


def check_ddof(ddof: int, n_dates: int) -> None:
    """Raise :class:`LabError` unless ``0 <= ddof < n_dates``."""
    if ddof < 0 or ddof >= n_dates:
        raise LabError(f"ddof={ddof} needs more dates than {n_dates}: valid is 0..{n_dates - 1}")


def reference(
    stack: np.ndarray, ddof: int = 0, min_count: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Float64 two-pass NumPy reference (for tests and verification, not speed)."""
    x = np.asarray(stack, dtype=np.float64)
    if min_count is None:
        return x.mean(axis=0), x.std(axis=0, ddof=ddof)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        count = (~np.isnan(x)).sum(axis=0)
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0, ddof=ddof)
    bad = (count < min_count) | (count - ddof <= 0)
    mean[bad] = np.nan
    std[bad] = np.nan
    return mean, std
