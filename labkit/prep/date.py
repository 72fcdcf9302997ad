"""Prep of one date: check the crop, read the SLC window it needs in row blocks (in
threads), multilook, and write a float32 GeoTIFF tile that appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from itertools import islice
from pathlib import Path

import numpy as np

from labkit import config
from labkit.errors import LabError
from labkit.io import geotiff_row_writer
from labkit.prep import readers
from labkit.prep.kernel import Looks, check_looks, kernel_name
from labkit.prep.readers import Crop
from labkit.sar.slc import SlcInfo, open_slc_checked

__all__ = ["check_crop", "prep_date", "prep_one", "tile_tags"]

_C_TASK_BLOCKS = 4  # the C raw reader takes 4 blocks per call: fewer GIL hand-offs

_AHEAD_BYTES = 64 * 2**20  # multilooked bytes the threads may compute ahead of the writer


def check_crop(crop: Sequence[int], looks: Looks, lines: int, samples: int) -> Crop:
    """The crop ``(W, H, R0, C0)`` if it fits the multilooked image, else a
    :class:`LabError` that says the largest crop that fits.
    """
    try:
        w, h, r0, c0 = (int(x) for x in crop)
    except (TypeError, ValueError):
        raise LabError(f"crop {crop!r} must be four whole numbers W,H,R0,C0") from None
    if w < 1 or h < 1 or r0 < 0 or c0 < 0:
        raise LabError(f"crop {w},{h},{r0},{c0}: W and H must be ≥ 1, R0 and C0 ≥ 0")
    laz, lrg = looks
    rows, cols = lines // laz, samples // lrg
    if r0 + h <= rows and c0 + w <= cols:
        return w, h, r0, c0
    img = (
        f"the {lines}x{samples} SLC (lines x samples) with looks {laz}x{lrg} is "
        f"{cols} columns x {rows} rows multilooked"
    )
    if r0 >= rows or c0 >= cols:
        raise LabError(
            f"crop {w},{h},{r0},{c0} starts outside the image: {img}, so R0 must be < "
            f"{rows} and C0 < {cols}"
        )
    raise LabError(
        f"crop {w},{h},{r0},{c0} does not fit: {img}; from R0={r0}, C0={c0} the largest "
        f"crop is W={cols - c0}, H={rows - r0}"
    )


def _block_rows(cols: int, looks: Looks, nbytes: int | None = None) -> int:
    """Multilooked rows per block so the SLC block is about ``nbytes`` (default
    :data:`config.PREP_BLOCK_BYTES`).
    """
    laz, lrg = looks
    return max(1, (config.PREP_BLOCK_BYTES if nbytes is None else nbytes) // (laz * cols * lrg * 8))


def tile_tags(path: Path, crop: Crop, looks: Looks) -> dict[str, str]:
    """Provenance stored in each tile (and checked by ``overwrite=False``)."""
    return {"LABKIT_SLC": path.name, "LABKIT_CROP": ",".join(map(str, crop)),
            "LABKIT_LOOKS": f"{looks[0]}x{looks[1]}"}


def prep_one(info: SlcInfo, out_path: Path, crop: Crop, looks: Looks, threads: int = 1
              ) -> tuple[int, bool]:
    """Worker: prep one validated SLC into ``out_path``; returns the SLC bytes read and
    whether the tile holds any valid (finite) pixel.

    With ``threads > 1`` row blocks are read and multilooked by that many threads (pread,
    GDAL's reads and both kernels release the GIL, so one thread reads while another
    computes); this thread writes the blocks in order. The threads start before the
    output is opened, so in a fresh process they run while rasterio is imported. Each
    block is computed the same way whatever thread runs it, so the tile is bitwise the
    same.
    """
    w, h, r0, c0 = crop
    laz, lrg = looks
    kernel = kernel_name()
    big = kernel == "c" and readers.raw_layout(info) is not None  # one C call per block
    block_bytes = config.PREP_BLOCK_BYTES * (_C_TASK_BLOCKS if big else 1)
    nblock = min(h, _block_rows(w, looks, block_bytes))
    starts = list(range(0, h, nblock))
    threads = max(1, min(threads, len(starts)))
    writer = partial(geotiff_row_writer, out_path, h, w, tile_tags(info.path, crop, looks))
    read_block, close = readers.block_reader(info, crop, looks, nblock, kernel)
    valid: list[bool] = []

    def block(r: int) -> np.ndarray:  # notes the first block with a valid pixel
        out = read_block(r)
        if not valid and np.isfinite(out).any():
            valid.append(True)
        return out

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NotGeoreferencedWarning: radar geometry
            if threads == 1:
                with writer() as write:
                    for r in starts:
                        write(r, block(r))
            else:
                ahead = max(2 * threads, _AHEAD_BYTES // (nblock * w * 4))
                _blocks_in_threads(block, starts, threads, writer, ahead)
    finally:
        close()
    return h * laz * w * lrg * info.itemsize, bool(valid)


def _blocks_in_threads(block: Callable[[int], np.ndarray], starts: list[int], threads: int,
                       writer: Callable[[], contextlib.AbstractContextManager], ahead: int
                       ) -> None:
    """``write(r, block(r))`` for every start, ``block`` in a pool of ``threads`` threads,
    at most ``ahead`` blocks ahead of the writer (so memory stays bounded); ``writer()``
    gives the ``write`` context, opened once the first blocks are running; writes in
    order.
    """
    from concurrent.futures import ThreadPoolExecutor

    todo = iter(starts)
    with ThreadPoolExecutor(threads, thread_name_prefix="labkit-prep") as ex:
        pending: deque = deque((r, ex.submit(block, r)) for r in islice(todo, ahead))
        try:
            with writer() as write:
                while pending:
                    r, fut = pending.popleft()
                    result = fut.result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        pending.append((nxt, ex.submit(block, nxt)))
                    write(r, result)
        except BaseException:
            for _, fut in pending:
                fut.cancel()
            raise


def prep_date(
    slc_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    crop: Sequence[int],
    looks: int | Sequence[int] = (4, 4),
    threads: int = config.PREP_THREADS,
) -> int:
    """Prep one SLC: |S|² → multilook → crop → float32 GeoTIFF ``out_path`` (atomic).

    Parameters
    ----------
    slc_path : path
        A ``.slc.vrt``, raw ``.slc`` with ``.xml``, or any GDAL complex raster.
    out_path : path
        Output GeoTIFF (float32, nodata NaN); replaced whole or not at all.
    crop : (W, H, R0, C0)
        Width, height, first row and first column, in multilooked pixels.
    looks : int or (int, int), default (4, 4)
        Azimuth × range looks.
    threads : int, default :data:`config.PREP_THREADS`
        Threads reading and multilooking row blocks (the tile is the same for any count).

    Returns
    -------
    int
        SLC bytes read (only the window the crop needs).
    """
    lk = check_looks(looks)
    info = open_slc_checked(slc_path)
    c = check_crop(crop, lk, info.lines, info.samples)
    from labkit.io import check_writable

    out = check_writable(out_path)
    return prep_one(info, out, c, lk, max(1, int(threads)))[0]
