"""One GPU: row blocks of every date go to the device, the kernels run there, the mean and
std come back.

Per block of output rows: read it on the host (with its K//2 halo rows when a Lee filter
is asked for), copy it over the bus (host→device), run the kernels (the filter on every
date, then the statistics), copy the mean and std back (device→host). Each phase is
timed apart after the device has finished it, and the bytes that crossed the bus are
counted: the statistics do about one floating-point operation per byte received, so the
copies can cost more than the arithmetic; a Lee filter of window K does about (5K+12)/4
per byte, and the GPU pays off (:mod:`labkit.bench.bus`). The kernels
(:mod:`labkit.backends._cuda_kernels`) do the CPU kernels' IEEE operations in the same
order: the results equal sequential's.

Blocks are as many rows as fit in half the free device memory (``block_rows`` to choose);
every pixel's arithmetic is the same whichever block holds it. Without a GPU the same
kernels run on Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), slowly: for tests.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from labkit.backends._result import Result
from labkit.backends.options import RunOptions
from labkit.errors import LabError
from labkit.filters import halo_rows, reflect_index
from labkit.io import TileStack, cached_reader

__all__ = ["compute", "device_bytes_per_row", "device_present"]

MAX_BLOCK_BYTES = 2 * 2**30  # at most this much device memory per block (and pinned host)


def device_present() -> bool:
    """True when an NVIDIA GPU is visible and numba-cuda is installed (the simulator does
    not count), found without loading CUDA: the report benches the gpu backend only then.
    """
    import importlib.util
    import os

    from labkit.sysinfo import cuda_devices

    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        return False
    return bool(cuda_devices()) and importlib.util.find_spec("numba_cuda") is not None


def device_bytes_per_row(n_dates: int, cols: int, k: int = 0) -> int:
    """Device bytes one output row needs: the float32 dates as read, with a filter the
    float64 row sums of I and I² and the float32 filtered dates, and the two float32
    outputs (halo rows not counted).
    """
    per_pixel = n_dates * (4 + (16 + 4 if k else 0)) + 8
    return per_pixel * cols


def _block_rows(stack: TileStack, opts: RunOptions, free: float) -> int:
    """``opts.block_rows``, else the most rows whose working set fits half of ``free``."""
    if opts.block_rows:
        return min(opts.block_rows, stack.rows)
    k = opts.filter.k if opts.filter else 0
    per_row = device_bytes_per_row(stack.n_dates, stack.cols, k)
    budget = min(free / 2, MAX_BLOCK_BYTES) - 2 * (k // 2) * per_row
    return int(max(1, min(stack.rows, budget // per_row)))


_KERNELS: Any = None


def _kernels() -> Any:
    """The device and its compiled kernels (:class:`~labkit.backends._cuda_kernels.Kernels`),
    made on the first call of the process; LabError when there is no device.
    """
    global _KERNELS
    if _KERNELS is None:
        from labkit.backends._cuda_kernels import Kernels, open_device

        kernels = Kernels(open_device())
        kernels.warm_up()
        _KERNELS = kernels
    return _KERNELS


def _device_arrays(cuda: Any, dates: int, n: int, read: int, cols: int, halo: int
                   ) -> tuple[Any, ...]:
    """Device arrays for blocks of ``n`` output rows (``read`` rows read): the block, the
    row index, mean, std, and with a filter (``halo`` ≥ 0) the row sums and the filtered
    dates (else None).
    """
    block = cuda.device_array((dates, read, cols), np.float32)
    out = (cuda.device_array((n, cols), np.float32), cuda.device_array((n, cols), np.float32))
    if halo < 0:
        return (block, None, *out, None, None, None)
    ext = n + 2 * halo
    return (block, cuda.device_array(ext, np.int64), *out,
            cuda.device_array((dates, ext, cols), np.float64),
            cuda.device_array((dates, ext, cols), np.float64),
            cuda.device_array((dates, n, cols), np.float32))


def compute(stack: TileStack, opts: RunOptions) -> Result:
    """Mean and std of ``stack`` on the CUDA device (one; ``workers`` must be 1).

    Timings (seconds): ``startup`` (device context and kernel compilation), ``read``,
    ``h2d``, ``kernel``, ``d2h``; ``compute`` = kernel and ``merge`` = both copies (the
    bus is this backend's communication). ``meta``: ``bus_bytes`` (h2d + d2h), ``h2d_bytes``,
    ``d2h_bytes``, ``device``, ``simulator``, ``blocks``.
    """
    if opts.workers != 1:
        raise LabError(f"the gpu backend runs on one device: workers must be 1, got "
                       f"{opts.workers}")
    t0 = time.perf_counter()
    kernels = _kernels()  # the device, and the kernels compiled once per process
    dev, cuda = kernels.device, kernels.device.cuda
    filt = opts.filter
    k, h = (filt.k, filt.halo) if filt else (0, 0)
    br = _block_rows(stack, opts, dev.free_bytes())
    dates, cols = stack.n_dates, stack.cols
    mean = np.empty((stack.rows, cols), np.float32)
    std = np.empty_like(mean)
    host = cuda.pinned_array(dates * (min(br, stack.rows) + 2 * h) * cols, np.float32)
    col_index = cuda.to_device(reflect_index(np.arange(-h, cols + h), cols)) if filt else None
    buffers: dict[tuple[int, int], tuple[Any, ...]] = {}  # by rows out, rows read
    reader = cached_reader(stack.paths)
    startup = time.perf_counter() - t0
    t = dict.fromkeys(("read", "h2d", "kernel", "d2h"), 0.0)
    h2d = d2h = nread = 0
    starts = range(0, stack.rows, br)
    for i, r0 in enumerate(starts):
        n = min(br, stack.rows - r0)
        lo, hi, index = halo_rows(r0, n, stack.rows, k) if filt else (r0, r0 + n, None)
        a = time.perf_counter()
        if (n, hi - lo) not in buffers:  # allocation is set-up, not transfer
            buffers[n, hi - lo] = _device_arrays(cuda, dates, n, hi - lo, cols,
                                                 h if filt else -1)
        d_block, d_index, d_mean, d_std, hs, hq, d_filtered = buffers[n, hi - lo]
        b = time.perf_counter()
        startup += b - a
        block = reader.read(lo, hi - lo, out=host[:dates * (hi - lo) * cols].reshape(
            dates, hi - lo, cols))
        c = time.perf_counter()
        d_block.copy_to_device(block)
        if index is not None:
            d_index.copy_to_device(index)
        dev.sync()
        d = time.perf_counter()
        x = d_block
        if filt:
            assert filt.enl is not None, "the backends resolve the ENL before computing"
            kernels.lee(d_block, d_index, col_index, k, filt.enl, hs, hq, d_filtered)
            x = d_filtered
        kernels.stats(x, opts.ddof, opts.min_count, d_mean, d_std)
        dev.sync()
        e = time.perf_counter()
        d_mean.copy_to_host(mean[r0:r0 + n])
        d_std.copy_to_host(std[r0:r0 + n])
        dev.sync()
        f = time.perf_counter()
        t["read"] += c - b
        t["h2d"] += d - c
        t["kernel"] += e - d
        t["d2h"] += f - e
        nread += block.nbytes
        h2d += block.nbytes + (index.nbytes if index is not None else 0)
        d2h += 2 * n * cols * 4
        if opts.progress:
            opts.progress(i + 1, len(starts))
    if col_index is not None:
        h2d += col_index.nbytes
    timings = {"startup": startup, **t, "compute": t["kernel"], "merge": t["h2d"] + t["d2h"]}
    meta: dict[str, Any] = {
        "block_rows": br, "blocks": len(starts), "device": dev.name, "simulator": dev.simulator,
        "cuda_target": dev.implementation, "h2d_bytes": h2d, "d2h_bytes": d2h,
        "bus_bytes": h2d + d2h,
    }
    return Result(mean, std, timings, nread, meta)
