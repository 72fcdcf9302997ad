"""Prep: SLC stack → |S|² → multilook → crop → float32 GeoTIFF intensity tiles.

One tile per date, ``DEST/<YYYYMMDD>_int_crop.tif`` (float32, GTiff, nodata NaN). The
crop ``W,H,R0,C0`` is in multilooked pixels: W columns × H rows from row R0, column C0.
Only the SLC window the crop needs is read, in row blocks of about ``BLOCK_BYTES``, so
memory stays bounded for any SLC or crop size; outputs are written block by block into
a temporary file that is renamed into place when the date is complete.

Numerical contract (DESIGN §5): I = re² + im² (float32) of each complex sample; samples
exactly 0 or not finite are no-data; a multilooked pixel is the mean of its L_az × L_rg
samples, summed in float64, NaN if any of them is no-data.

Kernels: a small compiled C kernel (:mod:`labkit._prepkernel`, built by ``pip install -e
.``) fuses |S|² and the multilook in one pass over cache-sized blocks, with the GIL
released, and gives the same bits as the NumPy kernel; ``LABKIT_PREP_KERNEL=numpy|c|auto``
chooses (auto: C when built). Raw ISCE2 SLCs (little-endian complex64 lines, see
:attr:`labkit.isce.SlcInfo.layout`) are read with ``pread`` straight into the kernel's
buffers; other rasters (VRTs of other kinds, GeoTIFFs, ...) are read with rasterio.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labkit.errors import Interrupted, LabError
from labkit.io import TILE_SUFFIX, geotiff_row_writer
from labkit.isce import RawLayout, SlcInfo, find_slcs, gdal_message, open_slc_checked

if TYPE_CHECKING:
    from labkit import synth

__all__ = [
    "BLOCK_BYTES",
    "PREP_KERNELS",
    "PREP_THREADS",
    "TILE_SIDES",
    "PrepSummary",
    "cli_data",
    "cli_main",
    "describe",
    "ensure_tiles",
    "intensity",
    "kernel_name",
    "multilook",
    "prep_date",
    "prep_stack",
    "tile_sizes",
]

BLOCK_BYTES = 4 * 2**20  # SLC bytes read per block: 4 MiB keeps the kernel in L2/L3 cache
PREP_THREADS = min(2, os.cpu_count() or 1)  # threads per date when one date is prepped at a time
TILE_SIDES = (16, 32, 64, 128, 256, 512, 1024, 2048)  # square tile sides offered (px)
PREP_KERNELS = ("auto", "c", "numpy")  # values of LABKIT_PREP_KERNEL
_C_TASK_BLOCKS = 4  # the C raw reader takes 4 × BLOCK_BYTES per call: fewer GIL hand-offs
_AHEAD_BYTES = 64 * 2**20  # multilooked bytes the threads may compute ahead of the writer
_NAN = np.float32(np.nan)

Crop = tuple[int, int, int, int]
Looks = tuple[int, int]


# --------------------------------------------------------------------------------------
# Kernel
# --------------------------------------------------------------------------------------


def intensity(slc: np.ndarray) -> np.ndarray:
    """Intensity ``|S|² = re² + im²`` of complex samples, float32, NaN at no-data.

    Parameters
    ----------
    slc : complex array
        Any shape; stored or converted to complex64.

    Returns
    -------
    float32 array, same shape
        NaN where the sample is exactly 0 or not finite (no-data, DESIGN §5). An
        intensity that underflows float32 (|S| below ~1e-22) also counts as 0.
    """
    s = np.asarray(slc)
    if not np.iscomplexobj(s):
        raise LabError(f"intensity needs complex samples, got {s.dtype}")
    s = np.ascontiguousarray(s, dtype=np.complex64)
    if s.ndim == 0:
        s = s.reshape(1)
    v = s.view(np.float32)
    re, im = v[..., 0::2], v[..., 1::2]
    out = re * re
    out += im * im
    np.copyto(out, _NAN, where=~((out > 0) & (out < np.inf)))
    return out.reshape(np.shape(slc))


def _sum_looks(
    inten: np.ndarray,
    laz: int,
    lrg: int,
    acc: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Mean of ``laz × lrg`` cells of a 2-D intensity (float64 sums) → float32.

    Azimuth first (whole rows added, vectorised along the contiguous axis), then range
    (strided columns of the 4× smaller float64 array). ``acc``/``out`` are optional
    preallocated float64 buffers of at least (rows, cols·lrg) and (rows, cols).
    """
    rows, cols = inten.shape[0] // laz, inten.shape[1] // lrg
    a = inten[: rows * laz, : cols * lrg]
    s = np.empty((rows, cols * lrg)) if acc is None else acc[:rows, : cols * lrg]
    if laz == 1:
        s[...] = a
    else:
        np.add(a[0::laz], a[1::laz], out=s, dtype=np.float64)
        for k in range(2, laz):
            np.add(s, a[k::laz], out=s)
    o = np.empty((rows, cols)) if out is None else out[:rows, :cols]
    if lrg == 1:
        o[...] = s
    else:
        np.add(s[:, 0::lrg], s[:, 1::lrg], out=o)
        for k in range(2, lrg):
            np.add(o, s[:, k::lrg], out=o)
    o /= laz * lrg
    res = o.astype(np.float32)
    np.copyto(res, _NAN, where=~np.isfinite(res))  # inf (overflow or inf samples) → NaN
    return res


def _looks(looks: int | Sequence[int]) -> Looks:
    vals = [looks, looks] if isinstance(looks, (int, np.integer)) else list(looks)
    if len(vals) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                             for v in vals):
        raise LabError(f"looks {looks!r} must be N or (azimuth, range), e.g. 4 or (2, 8)")
    if min(vals) < 1:
        raise LabError(f"looks {looks!r} must be ≥ 1 (1 = no multilook)")
    return int(vals[0]), int(vals[1])


def multilook(intensity: np.ndarray, looks: int | Sequence[int] = (4, 4)) -> np.ndarray:
    """Multilook a 2-D intensity: mean of each ``L_az × L_rg`` cell, as float32.

    Parameters
    ----------
    intensity : (lines, samples) real array
        Intensity with NaN at no-data (see :func:`intensity`).
    looks : int or (int, int), default (4, 4)
        Looks in azimuth (rows) and range (columns); an int means the same in both.

    Returns
    -------
    float32 array (lines // L_az, samples // L_rg)
        Sums are done in float64; NaN where any sample of the cell is NaN or infinite.
        Trailing lines/samples that do not fill a whole cell are dropped.
    """
    laz, lrg = _looks(looks)
    a = np.asarray(intensity)
    if a.ndim != 2 or np.iscomplexobj(a):
        raise LabError(f"multilook needs a 2-D real intensity, got {a.ndim}-D {a.dtype}")
    return _sum_looks(a, laz, lrg)


def _c_module():  # -> the compiled labkit._prepkernel module, or None
    try:
        from labkit import _prepkernel
    except ImportError:
        return None
    return _prepkernel


def kernel_name() -> str:
    """The prep kernel to use: ``"c"`` (:mod:`labkit._prepkernel`) or ``"numpy"``.

    ``LABKIT_PREP_KERNEL=numpy`` forces NumPy; ``c`` requires the compiled kernel;
    ``auto`` (or unset) takes C when it is built. Both give the same tiles, bit for bit.
    """
    want = os.environ.get("LABKIT_PREP_KERNEL", "auto").strip().lower() or "auto"
    if want not in PREP_KERNELS:
        raise LabError(f"LABKIT_PREP_KERNEL={want!r} is not valid: use auto, c or numpy")
    if want == "numpy":
        return "numpy"
    if _c_module() is None:
        if want == "c":
            raise LabError("LABKIT_PREP_KERNEL=c but the compiled kernel labkit._prepkernel "
                           "is not built: reinstall (make venv) with a C compiler, or use auto")
        return "numpy"
    return "c"


class _Kernel:
    """Preallocated buffers for one date's row blocks: ``rows`` multilooked rows of
    ``cols`` columns per block (so the SLC block is rows·laz × cols·lrg); ``kernel`` is
    ``"c"`` or ``"numpy"`` (see :func:`kernel_name`)."""

    def __init__(self, rows: int, cols: int, looks: Looks, kernel: str = "numpy") -> None:
        laz, lrg = looks
        self.looks = looks
        self.cols = cols
        self.slc = np.empty((rows * laz, cols * lrg), np.complex64)
        self.c = _c_module() if kernel == "c" else None
        if self.c is None:
            self.inten = np.empty((rows * laz, cols * lrg), np.float32)
            self.zero = np.empty((rows * laz, cols * lrg), np.bool_)
            self.acc = np.empty((rows, cols * lrg))
            self.out = np.empty((rows, cols))

    def run(self, n: int) -> np.ndarray:
        """Multilook the first ``n`` rows' worth of ``self.slc`` (NumPy: destroyed, squared
        in place). Equal, bit for bit, to ``multilook(intensity(slc), looks)``."""
        laz, lrg = self.looks
        if self.c is not None:
            res = np.empty((n, self.cols), np.float32)
            self.c.multilook(self.slc, res, n, self.cols, self.slc.shape[1], 0, laz, lrg)
            return res
        m = n * laz
        v = self.slc[:m].view(np.float32)
        np.multiply(v, v, out=v)  # re², im² in place, contiguous
        inten = self.inten[:m]
        np.add(v[:, 0::2], v[:, 1::2], out=inten)
        zero = np.equal(inten, 0, out=self.zero[:m])
        if zero.any():
            np.copyto(inten, _NAN, where=zero)
        # inf / NaN samples propagate through the sums and become NaN at the end
        return _sum_looks(inten, laz, lrg, self.acc, self.out)


# --------------------------------------------------------------------------------------
# One date
# --------------------------------------------------------------------------------------


def _check_crop(crop: Sequence[int], looks: Looks, lines: int, samples: int) -> Crop:
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
    :data:`BLOCK_BYTES`)."""
    laz, lrg = looks
    return max(1, (BLOCK_BYTES if nbytes is None else nbytes) // (laz * cols * lrg * 8))


def _tags(path: Path, crop: Crop, looks: Looks) -> dict[str, str]:
    """Provenance stored in each tile (and checked by ``overwrite=False``)."""
    return {"LABKIT_SLC": path.name, "LABKIT_CROP": ",".join(map(str, crop)),
            "LABKIT_LOOKS": f"{looks[0]}x{looks[1]}"}


def _read_error(path: Path, exc: BaseException) -> LabError:
    if isinstance(exc, OSError) and exc.strerror:
        return LabError(f"cannot read SLC {path}: {exc.strerror}")
    return LabError(f"cannot read SLC {path}: its raw file ends before the last line "
                    "(truncated while prep ran? re-copy the SLC)")


def _pread_lines(fd: int, layout: RawLayout, line0: int, col0: int, dest: np.ndarray,
                 path: Path) -> None:
    """Read ``dest.shape[0]`` lines from ``line0``, samples ``col0 ..`` (complex64) of a
    raw SLC into the rows of ``dest`` with ``os.preadv`` (which releases the GIL)."""
    lines, cols = dest.shape
    whole = layout.line_bytes == cols * 8  # whole lines back to back: one read
    rows = [dest.reshape(-1)] if whole else list(dest)
    step = layout.line_bytes * (lines if whole else 1)
    off = layout.offset + line0 * layout.line_bytes + col0 * 8
    for k, row in enumerate(rows):
        view = memoryview(row).cast("B")
        done = 0
        while done < len(view):
            try:
                got = os.preadv(fd, [view[done:]], off + k * step + done)
            except OSError as exc:
                raise _read_error(path, exc) from None
            if got == 0:
                raise _read_error(path, EOFError())
            done += got


def _raw_layout(info: SlcInfo) -> RawLayout | None:
    """Where to ``pread`` the samples of ``info`` (little-endian complex64 lines), or None
    (then GDAL reads them)."""
    return info.layout if sys.byteorder == "little" else None


def _block_reader(info: SlcInfo, crop: Crop, looks: Looks, nblock: int, kernel: str
                  ) -> tuple[Callable[[int], np.ndarray], Callable[[], None]]:
    """``(block, close)``: ``block(r)`` reads and multilooks output rows ``r ..
    r + nblock`` of the crop (from any thread); ``close()`` frees what it opened.

    Raw ISCE2 SLCs are read with ``pread`` (by the C kernel itself, in cache-sized line
    groups, or by ``os.preadv`` for the NumPy kernel); anything else with rasterio.
    """
    w, h, r0, c0 = crop
    laz, lrg = looks
    local = threading.local()
    layout = _raw_layout(info)
    if layout is not None:
        try:
            fd = os.open(layout.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise _read_error(info.path, exc) from None
        ck = _c_module() if kernel == "c" else None
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
                    kern = local.kern = _Kernel(nblock, w, looks, kernel)
                n = min(nblock, h - r)
                _pread_lines(fd, layout, (r0 + r) * laz, c0 * lrg, kern.slc[: n * laz],
                             info.path)
                return kern.run(n)

        return block, partial(os.close, fd)

    import rasterio
    from rasterio.windows import Window

    opened: list = []

    def block(r: int) -> np.ndarray:  # read and multilook rows r .. r+nblock (any thread)
        # GDAL_ONE_BIG_READ: raw/VRT bands read the window straight into our buffer
        with rasterio.Env(GDAL_ONE_BIG_READ="YES"):
            if getattr(local, "state", None) is None:  # this thread's dataset and buffers
                opened.append(rasterio.open(info.path))
                local.state = (opened[-1], _Kernel(nblock, w, looks, kernel))
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

    return block, close


def _prep_one(info: SlcInfo, out_path: Path, crop: Crop, looks: Looks, threads: int = 1
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
    big = kernel == "c" and _raw_layout(info) is not None  # one C call per block: make it big
    nblock = min(h, _block_rows(w, looks, BLOCK_BYTES * (_C_TASK_BLOCKS if big else 1)))
    starts = list(range(0, h, nblock))
    threads = max(1, min(threads, len(starts)))
    writer = partial(geotiff_row_writer, out_path, h, w, _tags(info.path, crop, looks))
    read_block, close = _block_reader(info, crop, looks, nblock, kernel)
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
    order."""
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
    threads: int = PREP_THREADS,
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
    threads : int, default :data:`PREP_THREADS`
        Threads reading and multilooking row blocks (the tile is the same for any count).

    Returns
    -------
    int
        SLC bytes read (only the window the crop needs).
    """
    lk = _looks(looks)
    info = open_slc_checked(slc_path)
    c = _check_crop(crop, lk, info.lines, info.samples)
    from labkit.io import check_writable

    out = check_writable(out_path)
    return _prep_one(info, out, c, lk, max(1, int(threads)))[0]


# --------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------


@dataclass
class PrepSummary:
    """What :func:`prep_stack` did.

    Attributes
    ----------
    outputs : list of Path
        One tile per date, sorted by date (including tiles already up to date).
    n_dates : int
        Dates in the stack.
    bytes_read : int
        SLC bytes read (dates skipped as up to date read nothing).
    seconds : float
        Wall time of the processing (after validation), s.
    mb_per_s : float
        SLC read throughput, MB/s (10⁶ bytes per second).
    skipped : int
        Dates whose tile was already up to date (``overwrite=False``).
    empty : list of str
        Dates whose tile came out entirely NaN (an all-zero SLC, or a crop over a
        zero-filled edge): valid, but worth a warning.
    """

    outputs: list[Path] = field(default_factory=list)
    n_dates: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    mb_per_s: float = 0.0
    skipped: int = 0
    empty: list[str] = field(default_factory=list)


def _check_dest(dest: Path) -> None:
    if dest.exists():
        if not dest.is_dir():
            raise LabError(f"output {dest} is a file: give a folder for the tiles")
        if not os.access(dest, os.W_OK | os.X_OK):
            raise LabError(f"output folder {dest} is not writable")
        return
    parent = dest.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise LabError(f"cannot create output folder {dest}: {parent} {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LabError(f"cannot create output folder {dest}: {parent} is not writable")


def _is_current(out: Path, info: SlcInfo, crop: Crop, looks: Looks) -> bool:
    """True if ``out`` is a float32 tile of this crop and looks (its tags say so), made
    from this SLC and newer than it."""
    import rasterio

    if not out.is_file() or out.stat().st_mtime < info.mtime:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(out) as ds:
                same = (ds.count, ds.width, ds.height, ds.dtypes[0]) == (
                    1, crop[0], crop[1], "float32")
                tags = ds.tags()
    except rasterio.errors.RasterioIOError:
        return False
    want = _tags(info.path, crop, looks)
    return same and all(tags.get(k) == v for k, v in want.items())


def _prep_task(info: SlcInfo, out_path: Path, crop: Crop, looks: Looks) -> tuple[int, bool]:
    """Process-pool task: :func:`_prep_one` after the pool's test hooks (see
    :mod:`labkit.backends.pools`: ``LABKIT_TEST_KILL_AFTER``, ``LABKIT_TEST_TASK_DELAY``)."""
    from labkit.backends.pools import apply_test_hooks

    apply_test_hooks()
    return _prep_one(info, out_path, crop, looks)


def _remove_temps(dest: Path, outs: Sequence[Path]) -> None:
    """Remove temporaries a killed worker could not clean (``.<name>.*.tmp``)."""
    for out in outs:
        for tmp in dest.glob(f".{out.name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _kept(done: int, n: int) -> str:
    return f"after {done} of {n} dates; finished tiles kept, no partial files"


def _run(tasks: list[tuple[SlcInfo, Path]], crop: Crop, looks: Looks, jobs: int,
         bar: object, empty: list[str]) -> int:
    """Prep every (SLC, output) task, in-process or in a process pool; bytes read. The
    dates whose tiles came out all NaN are appended to ``empty``."""
    total = 0
    done = 0
    if jobs <= 1 or len(tasks) <= 1:
        try:
            for info, out in tasks:
                bar.set_postfix_str(info.date, refresh=False)  # type: ignore[attr-defined]
                nbytes, valid = _prep_one(info, out, crop, looks, PREP_THREADS)
                if not valid:
                    empty.append(info.date)
                total += nbytes
                done += 1
                bar.update(nbytes)  # type: ignore[attr-defined]
        except KeyboardInterrupt:
            raise Interrupted("prep stopped by Ctrl-C " + _kept(done, len(tasks))) from None
        return total

    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    from labkit.backends.pools import session

    try:
        # forkserver workers, BLAS/OpenMP pinned to 1 thread, SIGINT ignored in workers;
        # on any error or Ctrl-C the session terminates the workers before re-raising
        with session(None, "process", min(jobs, len(tasks))) as run:
            futures = {run.submit(_prep_task, info, out, crop, looks): info
                       for info, out in tasks}
            for fut in as_completed(futures):
                try:
                    nbytes, valid = fut.result()
                except BrokenProcessPool:
                    raise LabError("a prep worker died (killed or out of memory?) "
                                   + _kept(done, len(tasks)) + "; retry with fewer --jobs"
                                   ) from None
                if not valid:
                    empty.append(futures[fut].date)
                total += nbytes
                done += 1
                bar.set_postfix_str(futures[fut].date, refresh=False)  # type: ignore[attr-defined]
                bar.update(nbytes)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        _remove_temps(tasks[0][1].parent, [out for _, out in tasks])
        raise Interrupted("prep stopped by Ctrl-C " + _kept(done, len(tasks))) from None
    except BaseException:
        _remove_temps(tasks[0][1].parent, [out for _, out in tasks])
        raise
    return total


class _NoBar:
    """Stands in for a tqdm bar when progress is off (tqdm costs ≈ 40 ms to import)."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float = 1) -> None:
        return None

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        return None


def _progress_bar(total: int, progress: bool) -> contextlib.AbstractContextManager:
    """A tqdm bar of SLC bytes read on stderr, or a silent stand-in."""
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1000, desc="prep",
                file=sys.stderr, leave=False)


def prep_stack(
    src: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    crop: Sequence[int],
    looks: int | Sequence[int] = (4, 4),
    jobs: int = 1,
    progress: bool = True,
    *,
    overwrite: bool = True,
) -> PrepSummary:
    """Prep every date of an SLC stack into ``dest/<YYYYMMDD>_int_crop.tif``.

    Everything is validated before anything is written: the SLCs (found with
    :func:`labkit.isce.find_slcs`, checked with :func:`labkit.isce.open_slc_checked`),
    equal sizes across dates, the crop against the image, the looks and ``dest``.

    Parameters
    ----------
    src : path
        SLC folder: flat ``*.slc.vrt`` (symlinks allowed), ISCE2 tree, raw ``*.slc`` +
        ``.xml``, or complex GeoTIFFs; one file per date.
    dest : path
        Output folder; created if its parent exists and is writable.
    crop : (W, H, R0, C0)
        Width, height, first row, first column, in multilooked pixels.
    looks : int or (int, int), default (4, 4)
        Azimuth × range looks; (1, 1) = no multilook.
    jobs : int, default 1
        Dates prepared in parallel (processes; BLAS/OpenMP pinned to 1 thread each).
    progress : bool, default True
        Show a tqdm progress bar (bytes of SLC read, with the rate).
    overwrite : bool, default True
        False: keep tiles that are already up to date (same crop, looks and SLC name in
        their tags, newer than the SLC).

    Returns
    -------
    PrepSummary

    Raises
    ------
    LabError
        Bad input (one line: what is wrong and what is valid); nothing is written.
    Interrupted
        Ctrl-C: finished dates are kept, no partial files remain.
    """
    lk = _looks(looks)
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise LabError(f"jobs {jobs!r} must be a whole number ≥ 1")
    infos = [open_slc_checked(p) for p in find_slcs(src)]
    sizes: dict[tuple[int, int], list[str]] = {}
    for info in infos:
        sizes.setdefault((info.lines, info.samples), []).append(info.path.name)
    if len(sizes) > 1:
        desc = "; ".join(f"{li}x{sa}: {', '.join(n[:3])}" + (", ..." if len(n) > 3 else "")
                         for (li, sa), n in sizes.items())
        raise LabError(f"SLCs differ in size (lines x samples) — {desc}; all dates must match")
    c = _check_crop(crop, lk, infos[0].lines, infos[0].samples)
    out_dir = Path(dest)
    _check_dest(out_dir)

    outputs = [out_dir / f"{info.date}{TILE_SUFFIX}" for info in infos]
    tasks = [(info, out) for info, out in zip(infos, outputs, strict=True)
             if overwrite or not _is_current(out, info, c, lk)]
    summary = PrepSummary(outputs=outputs, n_dates=len(infos),
                          skipped=len(infos) - len(tasks))
    if not tasks:
        return summary
    created = not out_dir.exists()
    try:
        out_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise LabError(f"cannot create output folder {out_dir}: {exc.strerror}") from None

    need = sum(c[0] * lk[1] * c[1] * lk[0] * info.itemsize for info, _ in tasks)
    t0 = time.perf_counter()
    try:
        with _progress_bar(need, progress) as bar:
            summary.bytes_read = _run(tasks, c, lk, int(jobs), bar, summary.empty)
    except BaseException:
        if created:  # a folder this run made and left empty goes too
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    summary.empty.sort()
    summary.seconds = time.perf_counter() - t0
    if summary.seconds > 0:
        summary.mb_per_s = summary.bytes_read / 1e6 / summary.seconds
    return summary


# --------------------------------------------------------------------------------------
# Data helpers for `make data`, the notebooks and the report
# --------------------------------------------------------------------------------------


def _preset(preset: str) -> synth.Preset:
    from labkit import synth

    key = str(preset).strip().lower()
    if key not in synth.PRESETS:
        raise LabError(f"unknown preset {preset!r}: valid presets are {', '.join(synth.PRESETS)}")
    return synth.PRESETS[key]


def _fitting_sides(preset: str) -> list[int]:
    p = _preset(preset)
    side = min(p.lines // p.looks[0], p.samples // p.looks[1])
    return [s for s in TILE_SIDES if s <= side]


def tile_sizes(preset: str) -> list[int]:
    """Square tile sides offered for a preset: the three largest of ``TILE_SIDES`` that
    fit its multilooked image (px), e.g. tiny → [16, 32, 64], seed → [256, 512, 1024]."""
    return _fitting_sides(preset)[-3:]


def ensure_tiles(
    preset: str = "seed",
    tile: int | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
    jobs: int = 1,
    progress: bool = True,
) -> Path:
    """Make sure a preset's intensity tiles exist; return their folder.

    Synthesizes ``root/<preset>/slc`` (:func:`labkit.synth.write_stack`, a quick no-op
    when complete) and preps ``root/<preset>/intens_<T>x<T>`` with crop ``T,T,0,0`` and
    the preset's looks, keeping tiles that are already up to date.

    Parameters
    ----------
    preset : str, default "seed"
        ``tiny`` | ``seed`` | ``dates24`` | ``large``.
    tile : int, optional
        Tile side T in multilooked px (default: the preset's); one of ``TILE_SIDES``
        that fits the image.
    root : path, optional
        Data folder (default :func:`labkit.paths.data_dir`).
    jobs : int, default 1
        Dates prepared in parallel.
    progress : bool, default True
        Show progress bars.
    """
    from labkit import synth
    from labkit.paths import data_dir

    p = _preset(preset)
    t = p.tile if tile is None else tile
    fits = _fitting_sides(p.name)
    if t not in fits:
        raise LabError(f"tile {t!r} does not suit preset {p.name}: valid sides are "
                       f"{', '.join(map(str, fits))}")
    base = (Path(root) if root is not None else data_dir()) / p.name
    slc = base / "slc"
    synth.write_stack(slc, p.name, progress=progress)
    dest = base / f"intens_{t}x{t}"
    prep_stack(slc, dest, (t, t, 0, 0), p.looks, jobs=jobs, progress=progress,
               overwrite=False)
    return dest


# --------------------------------------------------------------------------------------
# CLI handlers
# --------------------------------------------------------------------------------------


def empty_warning(summary: PrepSummary) -> str | None:
    """One warning line naming the dates whose tiles are entirely NaN, or None."""
    if not summary.empty:
        return None
    n = len(summary.empty)
    dates = ", ".join(summary.empty)
    return (f"labkit: warning: the tile{'s' if n > 1 else ''} of {dates} {'are' if n > 1 else 'is'}"
            " entirely NaN (no valid sample in the crop: an all-zero SLC, or a crop over a "
            "zero-filled edge?); choose another --crop or check the SLC")


def describe(summary: PrepSummary, dest: str | os.PathLike[str]) -> str:
    """One line: what prep wrote and how fast it read."""
    made = summary.n_dates - summary.skipped
    line = f"prep: {made} of {summary.n_dates} dates -> {dest}"
    if summary.skipped:
        line += f" ({summary.skipped} already up to date)"
    if made:
        line += (f"; read {summary.bytes_read / 1e6:.1f} MB of SLC in {summary.seconds:.2f} s "
                 f"= {summary.mb_per_s:.0f} MB/s")
    return line


def cli_main(args: argparse.Namespace) -> int:
    """``labkit prep SRC DEST --crop W,H,R0,C0 [--looks N|AZxRG] [--jobs N]``."""
    summary = prep_stack(args.src, args.dest, args.crop, args.looks, jobs=args.jobs,
                         progress=sys.stderr.isatty())
    print(describe(summary, args.dest))
    warning = empty_warning(summary)
    if warning:
        print(warning, file=sys.stderr)
    return 0


def cli_data(args: argparse.Namespace) -> int:
    """``labkit data [--preset NAME] [--root DIR] [--jobs N]``: print the tile folder."""
    folder = ensure_tiles(args.preset, root=args.root, jobs=args.jobs,
                          progress=sys.stderr.isatty())
    print(folder)
    return 0
