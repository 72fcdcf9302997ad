"""Readers of SLC row blocks for prep: raw ISCE2 lines with ``pread`` (by the C kernel
itself, or ``os.preadv`` for the NumPy kernel), anything else with rasterio/GDAL. Every
reader multilooks as it reads, from any thread.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from labkit.errors import LabError
from labkit.prep import kernel as kernels
from labkit.prep.kernel import Kernel, Looks
from labkit.sar.slc import RawLayout, SlcInfo, gdal_message

__all__ = ["Crop", "block_reader", "raw_layout"]

Crop = tuple[int, int, int, int]  # W, H, R0, C0 in multilooked pixels


def _read_error(path: Path, exc: BaseException) -> LabError:
    if isinstance(exc, OSError) and exc.strerror:
        return LabError(f"cannot read SLC {path}: {exc.strerror}")
    return LabError(f"cannot read SLC {path}: its raw file ends before the last line "
                    "(truncated while prep ran? re-copy the SLC)")


def _pread_lines(fd: int, layout: RawLayout, line0: int, col0: int, dest: np.ndarray,
                 path: Path) -> None:
    """Read ``dest.shape[0]`` lines from ``line0``, samples ``col0 ..`` (complex64) of a
    raw SLC into the rows of ``dest`` with ``os.preadv`` (which releases the GIL).
    """
    lines, cols = dest.shape
    whole = layout.line_bytes == cols * 8  # whole lines back to back: one read
    rows = [dest.reshape(-1)] if whole else list(dest)
    step = layout.line_bytes * (lines if whole else 1)
    off = layout.offset + line0 * layout.line_bytes + col0 * 8
    for k, row in enumerate(rows):
        view = row.data.cast("B")
        done = 0
        while done < len(view):
            try:
                got = os.preadv(fd, [view[done:]], off + k * step + done)
            except OSError as exc:
                raise _read_error(path, exc) from None
            if got == 0:
                raise _read_error(path, EOFError())
            done += got


def raw_layout(info: SlcInfo) -> RawLayout | None:
    """Where to ``pread`` the samples of ``info`` (little-endian complex64 lines), or None
    (then GDAL reads them).
    """
    return info.layout if sys.byteorder == "little" else None


def block_reader(info: SlcInfo, crop: Crop, looks: Looks, nblock: int, kernel: str
                  ) -> tuple[Callable[[int], np.ndarray], Callable[[], None]]:
    """``(block, close)``: ``block(r)`` reads and multilooks output rows ``r ..
    r + nblock`` of the crop (from any thread); ``close()`` frees what it opened.

    Raw ISCE2 SLCs are read with ``pread`` (by the C kernel itself, in cache-sized line
    groups, or by ``os.preadv`` for the NumPy kernel); anything else with rasterio.
    """
    w, h, r0, c0 = crop
    laz, lrg = looks
    local = threading.local()
    layout = raw_layout(info)
    if layout is not None:
        try:
            fd = os.open(layout.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise _read_error(info.path, exc) from None
        ck = kernels.c_module() if kernel == "c" else None
        if ck is not None and hasattr(ck, "read_multilook"):

            def block(r: int) -> np.ndarray:  # one GIL-free call: pread + |S|² + multilook
                n = min(nblock, h - r)
                out = np.empty((n, w), np.float32)
                try:
                    ck.read_multilook(fd, layout.offset + (r0 + r) * laz * layout.line_bytes,
                                      layout.line_bytes, out, n, w, c0 * lrg, laz, lrg)
                except (OSError, EOFError) as exc:
                    raise _read_error(info.path, exc) from None
                return out
        else:

            def block(r: int) -> np.ndarray:
                kern = getattr(local, "kern", None)
                if kern is None:
                    kern = local.kern = Kernel(nblock, w, looks, kernel)
                n = min(nblock, h - r)
                _pread_lines(fd, layout, (r0 + r) * laz, c0 * lrg, kern.slc[: n * laz],
                             info.path)
                return kern.run(n)

        return block, partial(os.close, fd)

    import rasterio
    from rasterio.windows import Window

    opened: list = []

    def gdal_block(r: int) -> np.ndarray:  # read and multilook rows r .. r+nblock (any thread)
        # GDAL_ONE_BIG_READ: raw/VRT bands read the window straight into our buffer
        with rasterio.Env(GDAL_ONE_BIG_READ="YES"):
            if getattr(local, "state", None) is None:  # this thread's dataset and buffers
                opened.append(rasterio.open(info.path))
                local.state = (opened[-1], Kernel(nblock, w, looks, kernel))
            ds, kern = local.state
            n = min(nblock, h - r)
            win = Window(c0 * lrg, (r0 + r) * laz, w * lrg, n * laz)
            try:
                ds.read(1, window=win, out=kern.slc[: n * laz])
            except rasterio.errors.RasterioIOError as exc:  # GDAL's cause is in the chain
                raise LabError(f"cannot read SLC {info.path}: {gdal_message(exc)}") from None
            return kern.run(n)

    def close() -> None:
        for ds in opened:
            ds.close()

    return gdal_block, close
