"""Memory-mapped reads against buffered reads of the same tiles, measured.

Every variant reads the whole stack (every date, every row) into float32 arrays:

* whole tiles, each opened, read and closed: ``read()`` system calls into a buffer (the
  rows located with the tile's row → offset table), a memory map copied out
  (:mod:`labkit.io.mapped`), GDAL through its block cache, GDAL with its own memory map
  (``GTIFF_VIRTUAL_MEM_IO``, the lab's default reading option);
* the backends' pattern: row blocks of every date with the readers kept open between
  passes, :class:`labkit.io.StackReader` through GDAL (``mapped=False``) against the
  same reader through memory maps (``mapped=True``, its default for the lab's tiles).

Page cache **warm** (after an untimed round), and **cold** where the operating system can
drop the tiles from the cache (``posix_fadvise``; not on macOS or Windows): then every pass
opens everything afresh, since pages still mapped by an open map are not dropped.
Variants alternate in rounds (load from elsewhere spreads over all), medians reported.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labkit.bench.harness import alternate, median
from labkit.errors import LabError

__all__ = ["ReadComparison", "compare_reads", "describe_reads", "resident_fraction"]

COLD_RESIDENT = 0.05  # at most this fraction of pages still cached counts as a cold start
BUFFERED = "read() into a buffer"
MAPPED = "memory map, copied out"
GDAL_CACHE = "GDAL, block cache"
GDAL_MAP = "GDAL, its own memory map"
BLOCKS_GDAL = "row blocks: StackReader, GDAL"
BLOCKS_MAPPED = "row blocks: StackReader, mapped"


@dataclass
class ReadComparison:
    """Seconds per pass over the whole stack, per page-cache state and variant.

    Attributes
    ----------
    nbytes : int
        Sample bytes of the stack (one pass reads them all).
    block_rows : int
        Rows per block of the row-block variants.
    times : dict of str -> dict of str -> list of float
        ``{"warm": {variant: [s, ...]}, "cold": {...}}`` (``cold`` absent when the page
        cache could not be dropped).
    cold_note : str
        Why there is no cold measurement (empty when there is one).
    """

    nbytes: int
    block_rows: int
    times: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    cold_note: str = ""

    def median(self, cache: str, variant: str) -> float:
        """Median seconds of ``variant`` with the page cache ``cache`` (warm/cold)."""
        return median(self.times[cache][variant])


def _buffered(path: Path, out: np.ndarray) -> np.ndarray:
    """The tile's samples with ``read()`` calls into ``out`` (float32, the tile's shape;
    no library between). The lab's tiles are little-endian float32, read as they are.
    """
    from labkit.io.mapped import tiff_layout

    lay = tiff_layout(path)
    if lay.dtype != np.dtype("<f4") or out.shape != (lay.rows, lay.cols):
        raise LabError(f"{path}: read() into a buffer is timed on little-endian float32 "
                       f"tiles of {out.shape[0]}x{out.shape[1]} only")
    view = out.data.cast("B")
    with open(path, "rb", buffering=0) as fh:
        for r0, n, offset in lay.runs:
            fh.seek(offset)
            want, got = n * lay.row_bytes, 0
            while got < want:
                k = fh.readinto(view[r0 * lay.row_bytes + got:r0 * lay.row_bytes + want])
                if not k:
                    raise OSError(f"{path}: unexpected end of file")
                got += k
    return out


def _mapped(path: Path, out: np.ndarray) -> np.ndarray:
    from labkit.io.mapped import read_mapped

    return read_mapped(path, out=out)


def _gdal(virtual_mem: str) -> Callable[[Path, np.ndarray], np.ndarray]:
    def read(path: Path, out: np.ndarray) -> np.ndarray:
        import rasterio

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.Env(GTIFF_VIRTUAL_MEM_IO=virtual_mem), rasterio.open(path) as ds:
                return ds.read(1, out=out)
    return read


def _blocks(reader: Any, rows: int, block_rows: int, buf: np.ndarray) -> None:
    for r0 in range(0, rows, block_rows):
        n = min(block_rows, rows - r0)
        reader.read(r0, n, out=buf[:, :n] if n == block_rows else None)


def compare_reads(src: Any, *, repeats: int = 5, cold: bool = True,
                  block_rows: int | None = None) -> ReadComparison:
    """Time memory-mapped and buffered reads of the stack ``src`` (see the module text).

    Parameters
    ----------
    src : TileStack or folder of tiles
        Uncompressed strip tiles (the lab's own).
    repeats : int, default 5
        Timed passes of each variant, per cache state, after one untimed round.
    cold : bool, default True
        Also time with the tiles dropped from the page cache before every pass.
    block_rows : int, optional
        Rows per block for the row-block variants (default: the backends' I/O block,
        :func:`labkit.backends.io_block_rows`).

    Returns
    -------
    ReadComparison
        Seconds per pass (the whole stack), per cache state and variant.

    Raises
    ------
    LabError
        A tile that cannot be memory-mapped (compressed, tiled, …).
    """
    from labkit.backends import io_block_rows
    from labkit.io import StackReader, TileStack, open_stack
    from labkit.io.mapped import tiff_layout
    from labkit.io.tiles import close_cached_reader

    stack = src if isinstance(src, TileStack) else open_stack(src)
    paths = list(stack.paths)
    for p in paths:  # refuse a layout that cannot be mapped before timing anything
        tiff_layout(p)
    br = block_rows or io_block_rows(stack.n_dates, stack.cols)
    buf = np.empty((stack.n_dates, min(br, stack.rows), stack.cols), np.float32)
    result = ReadComparison(stack.nbytes, br)

    tile = np.empty((stack.rows, stack.cols), np.float32)  # one buffer: no page faults

    def whole(read: Callable[[Path, np.ndarray], np.ndarray]) -> Callable[[], None]:
        def run() -> None:
            for p in paths:
                read(p, tile)
        return run

    def opener(mapped: bool) -> Callable[[], Any]:
        return lambda: StackReader(paths, mapped=mapped)

    def blocks(reader: Any) -> Callable[[], None]:
        return lambda: _blocks(reader, stack.rows, br, buf)

    def fresh(open_reader: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            with open_reader() as reader:
                _blocks(reader, stack.rows, br, buf)
        return run

    openers = {BLOCKS_GDAL: opener(False), BLOCKS_MAPPED: opener(True)}
    variants: dict[str, Callable[[], None]] = {
        BUFFERED: whole(_buffered), MAPPED: whole(_mapped),
        GDAL_CACHE: whole(_gdal("NO")), GDAL_MAP: whole(_gdal("YES"))}
    readers = {name: open_reader() for name, open_reader in openers.items()}
    try:
        warm = {**variants, **{name: blocks(r) for name, r in readers.items()}}
        result.times["warm"] = alternate({k: _timer(f) for k, f in warm.items()}, repeats)
    finally:
        for r in readers.values():
            r.close()
    if not cold:
        result.cold_note = "not asked for"
        return result
    evict = _evictor()
    if evict is None or not evict(paths):
        result.cold_note = ("this system cannot drop files from the page cache "
                            "(posix_fadvise is missing)")
        return result
    close_cached_reader()  # its maps would pin the tiles in the page cache
    evict(paths)
    left = resident_fraction(paths)
    if left is not None and left > COLD_RESIDENT:
        result.cold_note = (f"{left:.0%} of the tiles stayed in the page cache after the "
                            "drop: a process still maps them (an open reader, the workers "
                            "of a pool: stop them, e.g. panel.close(), and measure again), "
                            "or they live on a memory file system (tmpfs)")
        return result
    cold_fns = {**variants, **{name: fresh(o) for name, o in openers.items()}}
    result.times["cold"] = alternate(
        {k: _timer(f, before=lambda: evict(paths)) for k, f in cold_fns.items()},
        repeats, warmup=0)
    return result


def _timer(fn: Callable[[], None], before: Callable[[], object] | None = None
           ) -> Callable[[], float]:
    def run() -> float:
        if before is not None:
            before()  # untimed: drop the tiles from the page cache
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    return run


def resident_fraction(paths: Sequence[str | os.PathLike[str]]) -> float | None:
    """Fraction of the files' pages in the page cache now (Linux ``mincore``).

    Parameters
    ----------
    paths : sequence of paths
        Files to look at.

    Returns
    -------
    float or None
        0 (none cached) .. 1 (all cached); None where ``mincore`` cannot be asked.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import mmap

    mincore = ctypes.CDLL(None, use_errno=True).mincore
    mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    mincore.restype = ctypes.c_int
    resident = total = 0
    for p in paths:
        size = os.path.getsize(p)
        if not size:
            continue
        with open(p, "rb") as fh:
            mm = mmap.mmap(fh.fileno(), size, access=mmap.ACCESS_READ)
        try:
            addr = np.frombuffer(mm, np.uint8)  # mapping pages does not read them
            pages = -(-size // mmap.PAGESIZE)
            vec = np.zeros(pages, np.uint8)
            if mincore(addr.ctypes.data, size, vec.ctypes.data) != 0:
                return None
            resident += int(np.count_nonzero(vec & 1))
            total += pages
            del addr
        finally:
            mm.close()
    return resident / total if total else 0.0


def _evictor() -> Callable[[Sequence[Path]], bool] | None:
    """The lab's page-cache dropper, or None where the OS has none."""
    if getattr(os, "posix_fadvise", None) is None:
        return None
    from labkit.ui.plots import evict_page_cache

    return evict_page_cache


def describe_reads(cmp: ReadComparison) -> str:
    """A table of :func:`compare_reads`: median ms per pass, GB/s, and the ratio to
    ``read()`` into a buffer (whole tiles) or to GDAL's reader (row blocks).

    Parameters
    ----------
    cmp : ReadComparison
        The measurement.

    Returns
    -------
    str
        One block of lines per cache state; a last line says why cold is missing.
    """
    lines = []
    for cache, times in cmp.times.items():
        lines.append(f"page cache {cache} ({len(next(iter(times.values())))} passes each, "
                     f"{cmp.nbytes / 2**20:.1f} MiB per pass, medians):")
        for name in times:
            t = cmp.median(cache, name)
            base = BLOCKS_GDAL if name.startswith("row blocks") else BUFFERED
            ratio = cmp.median(cache, base) / t
            rel = "(reference)" if name == base else f"{ratio:4.2f}x the speed"
            lines.append(f"  {name:32} {t * 1e3:8.1f} ms {cmp.nbytes / t / 1e9:6.2f} GB/s  "
                         f"{rel}")
    if cmp.cold_note:
        lines.append(f"cold cache not measured: {cmp.cold_note}")
    lines.append(f"(row blocks of {cmp.block_rows} rows; warm: readers kept open between "
                 "passes, cold: opened afresh every pass)")
    return "\n".join(lines)
