"""The gpu backend's CUDA kernels (Numba's CUDA target) and how the device is found.

Three kernels, one thread per output value:

* :func:`stats` — per pixel, the temporal mean and std of a (dates, rows, cols) block:
  the lab's shifted sums (:mod:`labkit.stats`) in float64, date after date, strict NaN
  or NaN-aware with ``min_count``, stored as float32;
* :func:`lee_rows` — per date and halo-extended row, the sums of I and I² over the K
  columns of the window, left to right (:mod:`labkit.filters`);
* :func:`lee_formula` — per date and output pixel, the K row sums top to bottom, then
  Lee's formula in float64, stored as float32.

Same IEEE operations in the same order as the CPU kernels. A GPU compiler would merge a
product and a following sum into one fused multiply-add (one rounding instead of two,
NVVM's default), so on the device every product goes through ``__dmul_rn``, which is
never merged; in the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, the kernels run as
Python on the CPU) a product is a plain ``*``. Borders are reflected through index arrays
(``row_index``, ``col_index``), so the host sends the block as read, never an extended
copy.

Numba picks the simulator when ``numba.cuda`` is first imported, from the environment:
set ``NUMBA_ENABLE_CUDASIM=1`` before that. Only the gpu backend imports this module.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from labkit.errors import LabError

__all__ = ["Device", "Kernels", "open_device"]

cuda: Any = None  # numba.cuda once open_device has loaded it (a global: the simulator
# swaps the kernels' global ``cuda`` for its own while they run)
THREADS_2D = (32, 8)  # threads per block: 32 columns (one warp reads a coalesced row) × 8
SIM_THREADS_2D = (8, 4)  # the simulator runs a Python thread per CUDA thread: fewer idle
NO_DEVICE = ("no CUDA device was found (an NVIDIA GPU with its driver); to run the gpu "
             "kernels on the CPU instead: NUMBA_ENABLE_CUDASIM=1 labkit run gpu ... "
             "(tiny stacks only: the simulator is slow); with a GPU: pip install -e .[gpu]")


class Device:
    """The CUDA device a run uses (or the simulator).

    Attributes
    ----------
    cuda : module
        ``numba.cuda``.
    simulator : bool
        True under ``NUMBA_ENABLE_CUDASIM=1``.
    name : str
        The GPU's name, or ``"CUDA simulator"``.
    implementation : str
        Which CUDA target Numba uses: ``"NVIDIA"`` (numba-cuda) or ``"Built-in"``.
    """

    def __init__(self, cuda: Any, simulator: bool, name: str, implementation: str) -> None:
        self.cuda = cuda
        self.simulator = simulator
        self.name = name
        self.implementation = implementation

    def free_bytes(self) -> float:
        """Free device memory in bytes (infinite in the simulator)."""
        return float(self.cuda.current_context().get_memory_info()[0])

    def sync(self) -> None:
        """Wait until the device has finished everything queued (for the timers)."""
        self.cuda.synchronize()


def open_device() -> Device:
    """Import ``numba.cuda`` and find a device (or the simulator).

    Raises
    ------
    LabError
        One line: no CUDA device (and how to use the simulator or install the GPU
        packages), or the CUDA target could not be loaded.
    """
    global cuda
    try:
        from numba import cuda
    except Exception as exc:  # numba-cuda present but its CUDA bindings are not, etc.
        raise LabError(f"the CUDA target of Numba could not be loaded ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''}); "
                       "install it with pip install -e .[gpu]") from None
    simulator = bool(cuda.config.ENABLE_CUDASIM)
    try:
        available = cuda.is_available()
    except Exception:
        available = False
    if not available:
        raise LabError(NO_DEVICE)
    implementation = str(getattr(cuda, "implementation", ""))
    if simulator:
        return Device(cuda, True, "CUDA simulator", implementation)
    name = cuda.get_current_device().name
    name = name.decode() if isinstance(name, bytes) else str(name)
    return Device(cuda, False, name, implementation)


class Kernels:
    """The three kernels compiled for ``device`` (on first launch), and their launches."""

    def __init__(self, device: Device) -> None:
        self.device = device
        if device.simulator:  # the kernels run as Python: IEEE double, never fused
            mul = operator.mul
        else:  # a rounded product that is never merged into an FMA
            from numba.cuda import libdevice

            mul = libdevice.dmul_rn

        @cuda.jit
        def stats(x, ddof, min_count, mean, std):  # pragma: no cover - device code
            # x (dates, rows, cols) float32 -> mean, std (rows, cols) float32. Strict
            # (min_count 0): shift K = first date, s = Σ(x-K), ss = Σ(x-K)², as
            # labkit.stats' fused kernel. NaN-aware (min_count ≥ 1): as its Accumulator
            # and finalize (K = first date or 0 where it is NaN, NaN dates add 0).
            c, r = cuda.grid(2)
            if r >= mean.shape[0] or c >= mean.shape[1]:
                return
            n = x.shape[0]
            shift = np.float64(x[0, r, c])
            if min_count > 0 and shift != shift:
                shift = 0.0
            s = 0.0
            ss = 0.0
            count = 0
            for k in range(n):
                d = np.float64(x[k, r, c]) - shift
                if min_count > 0:
                    if d != d:
                        d = 0.0
                    else:
                        count += 1
                s = s + d
                ss = ss + mul(d, d)
            if min_count == 0:
                count = n
            elif count - ddof <= 0 or count < min_count:
                mean[r, c] = np.float32(math.nan)
                std[r, c] = np.float32(math.nan)
                return
            var = (ss - mul(s, s) / count) / (count - ddof)
            if var < 0.0:  # NaN stays NaN, as np.maximum does
                var = 0.0
            mean[r, c] = np.float32(shift + s / count)
            std[r, c] = np.float32(math.sqrt(var))

        @cuda.jit
        def lee_rows(block, row_index, col_index, k, hs, hq):  # pragma: no cover
            # hs, hq (dates, halo-extended rows, cols) float64: the K values of the row
            # (reflected columns) left to right, first value then +, as labkit.filters.
            c, y, t = cuda.grid(3)
            if t >= hs.shape[0] or y >= hs.shape[1] or c >= hs.shape[2]:
                return
            r = row_index[y]
            v = np.float64(block[t, r, col_index[c]])
            s = v
            q = mul(v, v)
            for dx in range(1, k):
                v = np.float64(block[t, r, col_index[c + dx]])
                s = s + v
                q = q + mul(v, v)
            hs[t, y, c] = s
            hq[t, y, c] = q

        @cuda.jit
        def lee_formula(block, row_index, col_index, k, enl, hs, hq, out):  # pragma: no cover
            # out (dates, rows, cols) float32: the K row sums top to bottom, then
            # var_y = max(q/K² - m², 1e-10), var_x = max((var_y - m²/L) / (1 + 1/L), 0),
            # out = m + (I - m)·var_x / var_y, all in float64.
            c, y, t = cuda.grid(3)
            if t >= out.shape[0] or y >= out.shape[1] or c >= out.shape[2]:
                return
            s = hs[t, y, c]
            q = hq[t, y, c]
            for dy in range(1, k):
                s = s + hs[t, y + dy, c]
                q = q + hq[t, y + dy, c]
            s2 = 1.0 / enl
            kk = np.float64(k * k)
            h = k // 2
            m = s / kk
            mq = q / kk
            var_y = mq - mul(m, m)
            if var_y < 1e-10:  # NaN stays NaN
                var_y = 1e-10
            var_x = (var_y - mul(mul(m, m), s2)) / (1.0 + s2)
            if var_x < 0.0:
                var_x = 0.0
            img = np.float64(block[t, row_index[y + h], col_index[c + h]])
            out[t, y, c] = np.float32(m + mul(img - m, var_x) / var_y)

        self._stats = stats
        self._lee_rows = lee_rows
        self._lee_formula = lee_formula

    def _grid(self, cols: int, rows: int, dates: int = 0
              ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Blocks per grid and threads per block covering ``cols × rows (× dates)``."""
        tx, ty = SIM_THREADS_2D if self.device.simulator else THREADS_2D
        blocks = (math.ceil(cols / tx), math.ceil(rows / ty))
        if dates:
            return (*blocks, dates), (tx, ty, 1)
        return blocks, (tx, ty)

    def stats(self, x: Any, ddof: int, min_count: int | None, mean: Any, std: Any) -> None:
        """Launch the statistics kernel: ``x`` (dates, rows, cols) → ``mean``, ``std``."""
        grid, threads = self._grid(x.shape[2], x.shape[1])
        self._stats[grid, threads](x, ddof, min_count or 0, mean, std)

    def lee(self, block: Any, row_index: Any, col_index: Any, k: int, enl: float, hs: Any,
            hq: Any, out: Any) -> None:
        """Launch the two Lee kernels: ``block`` as read → ``out`` (dates, rows, cols)."""
        dates, rows, cols = out.shape
        grid, threads = self._grid(cols, hs.shape[1], dates)
        self._lee_rows[grid, threads](block, row_index, col_index, k, hs, hq)
        grid, threads = self._grid(cols, rows, dates)
        self._lee_formula[grid, threads](block, row_index, col_index, k, float(enl), hs, hq,
                                         out)

    def warm_up(self) -> None:
        """Compile every kernel on a tiny block (JIT time apart from the run's phases)."""
        cuda = self.device.cuda
        x = cuda.to_device(np.ones((2, 3, 4), np.float32))
        mean = cuda.device_array((3, 4), np.float32)
        std = cuda.device_array((3, 4), np.float32)
        self.stats(x, 0, None, mean, std)
        self.stats(x, 0, 1, mean, std)
        index = cuda.to_device(np.array([1, 0, 1, 2, 1], np.int64))
        cols = cuda.to_device(np.array([1, 0, 1, 2, 3, 2], np.int64))
        hs = cuda.device_array((2, 5, 4), np.float64)
        hq = cuda.device_array((2, 5, 4), np.float64)
        out = cuda.device_array((2, 3, 4), np.float32)
        self.lee(x, index, cols, 3, 16.0, hs, hq, out)
        self.device.sync()
