"""Memory-mapped tiles: a GeoTIFF's rows read straight out of a memory map of the file.

An uncompressed, strip-organised TIFF stores each strip of ``RowsPerStrip`` rows as plain
samples at the byte offset its ``StripOffsets`` tag gives. Mapping the file
(:mod:`mmap`) makes those bytes an array in memory: reading rows is a copy out of the
map (the operating system brings the pages in from the page cache, or from the disk on
first touch), with no ``read`` system call per strip and no library block cache between.

The layout comes from the TIFF tags of the first image (parsed here, classic TIFF and
BigTIFF, either byte order): a **row → byte offset table**. Rows stored back to back
form one *run*; a file whose strips are in order is one run, mapped as a single
``(rows, cols)`` array (:meth:`MappedTile.view` gives it without copying). Strips
written out of order (allowed by the format) give several runs, each copied on its own.
Compressed or tiled layouts cannot be mapped: they are refused with a
:class:`~labkit.errors.LabError` that says what is valid.

>>> with MappedTile("data/seed/intens_1024x1024/20230105_int_crop.tif") as tile:  # doctest: +SKIP
...     rows = tile.read(0, 64)             # float32 (64, 1024), a copy
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from labkit.errors import LabError

__all__ = ["MappedStackReader", "MappedTile", "TiffLayout", "read_mapped", "tiff_layout"]

# TIFF tags (TIFF 6.0 and the TIFF tiles extension)
_WIDTH, _LENGTH, _BITS, _COMPRESSION = 256, 257, 258, 259
_STRIP_OFFSETS, _SAMPLES, _ROWS_PER_STRIP, _STRIP_BYTES = 273, 277, 278, 279
_PLANAR, _TILE_WIDTH, _TILE_LENGTH, _SAMPLE_FORMAT = 284, 322, 323, 339
_TYPES = {1: "B", 3: "H", 4: "I", 16: "Q", 6: "b", 8: "h", 9: "i", 17: "q"}  # integer types
_COMPRESSIONS = {5: "LZW", 7: "JPEG", 8: "DEFLATE", 32773: "PackBits", 32946: "DEFLATE",
                 34887: "LERC", 50000: "ZSTD", 50001: "WEBP"}
_KINDS = {1: "u", 2: "i", 3: "f"}  # SampleFormat: unsigned, signed, IEEE float
_WILLNEED = getattr(mmap, "MADV_WILLNEED", None)  # Linux, macOS; not Windows
VALID = ("valid is an uncompressed, strip-organised TIFF of one band "
         "(gdal_translate -co COMPRESS=NONE -co TILED=NO makes one)")


@dataclass(frozen=True)
class TiffLayout:
    """Where a strip-organised TIFF keeps its samples.

    Attributes
    ----------
    path : Path
        The file.
    rows, cols : int
        Image height and width (pixels).
    dtype : numpy.dtype
        Sample type in the file's byte order (``<f4`` for the lab's tiles).
    row_offsets : (rows,) int64 array
        Byte offset of each row's first sample in the file.
    runs : tuple of (first row, rows, byte offset)
        Maximal runs of rows stored back to back, in row order.
    """

    path: Path
    rows: int
    cols: int
    dtype: np.dtype
    row_offsets: np.ndarray
    runs: tuple[tuple[int, int, int], ...]

    @property
    def row_bytes(self) -> int:
        """Bytes of one row of samples."""
        return self.cols * self.dtype.itemsize

    @property
    def in_order(self) -> bool:
        """True when every row follows the previous one in the file (one run)."""
        return len(self.runs) == 1


def _refuse(path: Path, what: str) -> LabError:
    return LabError(f"cannot memory-map {path}: {what}; {VALID}")


def _ifd(fh: BinaryIO, path: Path) -> tuple[str, dict[int, np.ndarray]]:
    """Byte order (``<`` or ``>``) and the first image's tags as integer arrays."""
    read, seek = fh.read, fh.seek
    head = read(16)
    if head[:2] not in (b"II", b"MM"):
        raise _refuse(path, "not a TIFF file")
    bo = "<" if head[:2] == b"II" else ">"
    magic = struct.unpack(bo + "H", head[2:4])[0]
    if magic == 42:
        big, first = False, struct.unpack(bo + "I", head[4:8])[0]
    elif magic == 43:
        big, first = True, struct.unpack(bo + "Q", head[8:16])[0]
    else:
        raise _refuse(path, "not a TIFF file")
    count_fmt, entry_size, inline = ("Q", 20, 8) if big else ("H", 12, 4)
    seek(first)
    raw = read(8 if big else 2)
    if len(raw) < (8 if big else 2):
        raise _refuse(path, "truncated TIFF header")
    n = struct.unpack(bo + count_fmt, raw)[0]
    entries = read(n * entry_size)
    if len(entries) < n * entry_size:
        raise _refuse(path, "truncated TIFF header")
    tags: dict[int, np.ndarray] = {}
    for i in range(n):
        e = entries[i * entry_size:(i + 1) * entry_size]
        if big:
            tag, typ, count = struct.unpack(bo + "HHQ", e[:12])
            value = e[12:20]
        else:
            tag, typ, count = struct.unpack(bo + "HHI", e[:8])
            value = e[8:12]
        code = _TYPES.get(typ)
        if code is None:  # text, rationals, doubles: none of the layout tags
            continue
        size = struct.calcsize(code) * count
        if size <= inline:
            data = value[:size]
        else:
            seek(struct.unpack(bo + ("Q" if big else "I"), value)[0])
            data = read(size)
            if len(data) < size:
                raise _refuse(path, f"truncated TIFF tag {tag}")
        tags[tag] = np.frombuffer(data, np.dtype(bo + code)).astype(np.int64)
    return bo, tags


def tiff_layout(path: str | os.PathLike[str]) -> TiffLayout:
    """The row → byte offset table of a TIFF's first image, from its tags.

    Parameters
    ----------
    path : path
        A TIFF / GeoTIFF file.

    Returns
    -------
    TiffLayout

    Raises
    ------
    LabError
        Not a TIFF, compressed, tiled, more than one band, an unsupported sample type,
        or strips that lie beyond the end of the file (truncated): one line saying what
        is valid.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            bo, tags = _ifd(fh, path)
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise LabError(f"cannot read {path}: {exc.strerror or exc}") from None

    def tag(code: int, default: int | None = None) -> int:
        if code in tags:
            return int(tags[code][0])
        if default is None:
            raise _refuse(path, f"TIFF tag {code} is missing")
        return default

    compression = tag(_COMPRESSION, 1)
    if compression != 1:
        name = _COMPRESSIONS.get(compression, f"compression code {compression}")
        raise _refuse(path, f"it is compressed ({name})")
    if _TILE_WIDTH in tags or _TILE_LENGTH in tags:
        tw, tl = tag(_TILE_WIDTH, 0), tag(_TILE_LENGTH, 0)
        raise _refuse(path, f"it is tiled ({tw}×{tl} tiles), not organised in strips")
    samples = tag(_SAMPLES, 1)
    if samples != 1:
        raise _refuse(path, f"it has {samples} samples per pixel")
    cols, rows = tag(_WIDTH), tag(_LENGTH)
    bits, kind = tag(_BITS, 1), _KINDS.get(tag(_SAMPLE_FORMAT, 1))
    if kind is None or bits not in (8, 16, 32, 64) or (kind == "f" and bits < 32):
        raise _refuse(path, f"its samples are {bits}-bit of sample format "
                            f"{tag(_SAMPLE_FORMAT, 1)}")
    dtype = np.dtype(f"{bo}{kind}{bits // 8}")
    if _STRIP_OFFSETS not in tags or _STRIP_BYTES not in tags:
        raise _refuse(path, "it has no StripOffsets/StripByteCounts tags")
    rps = min(tag(_ROWS_PER_STRIP, rows), rows) or rows
    offsets, counts = tags[_STRIP_OFFSETS], tags[_STRIP_BYTES]
    strips = -(-rows // rps)
    if len(offsets) < strips or len(counts) < strips:
        raise _refuse(path, f"{len(offsets)} strips for {rows} rows of {rps}")
    row_bytes = cols * dtype.itemsize
    first = np.arange(strips) * rps  # first row of each strip
    n_rows = np.minimum(rps, rows - first)
    if np.any(counts[:strips] < n_rows * row_bytes) or \
            np.any(offsets[:strips] + n_rows * row_bytes > size):
        raise LabError(f"cannot memory-map {path}: its strips lie beyond the end of the "
                       f"file ({size} bytes): the file is truncated or corrupt")
    r = np.arange(rows)
    row_offsets = offsets[r // rps] + (r % rps) * row_bytes
    # runs: a new one where a row does not start right after the previous row
    breaks = np.flatnonzero(np.diff(row_offsets) != row_bytes) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [rows]))
    runs = tuple((int(a), int(b - a), int(row_offsets[a])) for a, b in zip(starts, stops,
                                                                           strict=True))
    return TiffLayout(path, rows, cols, dtype, row_offsets, runs)


class MappedTile:
    """One tile, memory-mapped for many row reads; a context manager.

    Parameters
    ----------
    path : path
        An uncompressed, strip-organised TIFF of one band (:func:`tiff_layout` checks).

    Attributes
    ----------
    layout : TiffLayout
    rows, cols : int
        Image height and width (pixels).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.layout = tiff_layout(path)
        self.rows, self.cols = self.layout.rows, self.layout.cols
        lay = self.layout
        try:
            with open(lay.path, "rb") as fh:  # the map keeps its own handle on the file
                self._mm: mmap.mmap | None = mmap.mmap(fh.fileno(), 0,
                                                       access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise LabError(f"cannot memory-map {lay.path}: {exc}") from None
        # one (rows, cols) array per run, backed by the map (read-only: no copy)
        self._runs: list[tuple[int, int, int, np.ndarray]] | None = [
            (r0, n, off, np.frombuffer(self._mm, lay.dtype, n * lay.cols, off)
             .reshape(n, lay.cols)) for r0, n, off in lay.runs]

    def view(self) -> np.ndarray:
        """The whole image as a read-only array backed by the map (no copy).

        Raises
        ------
        LabError
            If the strips are out of order (use :meth:`read`) or the tile is closed.
        """
        if self._runs is None:
            raise LabError("this MappedTile is closed")
        if not self.layout.in_order:
            raise LabError(f"{self.layout.path} stores its strips out of order: there is "
                           "no single array to view; read() copies its rows in order")
        return self._runs[0][3]

    def read(self, row0: int = 0, nrows: int | None = None,
             out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``row0 .. row0+nrows`` (default: to the end) as float32 (nrows, cols).

        ``out`` (a float32 array of that shape) is filled in place when given. The
        samples are copied out of the map, run by run, converted to native float32.
        """
        if self._runs is None:
            raise LabError("this MappedTile is closed")
        n = self.rows - row0 if nrows is None else nrows
        if row0 < 0 or n < 0 or row0 + n > self.rows:
            raise LabError(f"rows {row0}..{row0 + n} are outside the tile's 0..{self.rows}")
        if out is None:
            out = np.empty((n, self.cols), np.float32)
        stop, rb = row0 + n, self.layout.row_bytes
        for r0, m, off, arr in self._runs:
            lo, hi = max(row0, r0), min(stop, r0 + m)
            if lo < hi:
                self._advise(off + (lo - r0) * rb, (hi - lo) * rb)
                np.copyto(out[lo - row0:hi - row0], arr[lo - r0:hi - r0], casting="unsafe")
        return out

    def _advise(self, offset: int, nbytes: int) -> None:
        """Tell the OS these bytes are needed now (one read-ahead for the whole range
        instead of a page fault per page when they are not in the page cache yet).
        """
        if _WILLNEED is None or self._mm is None:
            return
        start = offset - offset % mmap.PAGESIZE
        self._mm.madvise(_WILLNEED, start, nbytes + offset - start)

    def close(self) -> None:
        """Drop the map (idempotent). Arrays from :meth:`view` keep it alive while used."""
        self._runs = None
        self._mm = None  # unmapped once no array from view() refers to it

    def __enter__(self) -> MappedTile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_mapped(path: str | os.PathLike[str], row0: int = 0, nrows: int | None = None,
                out: np.ndarray | None = None) -> np.ndarray:
    """Rows ``row0 .. row0+nrows`` (default: all) of one tile through a memory map.

    The same samples as :func:`labkit.io.read_tile`, as float32 (nrows, cols); maps and
    unmaps the file (keep a :class:`MappedTile` to read many blocks).

    Raises
    ------
    LabError
        A layout that cannot be mapped (compressed, tiled, …), or rows outside the tile.
    """
    with MappedTile(path) as tile:
        return tile.read(row0, nrows, out)


class MappedStackReader:
    """The tiles of one stack, memory-mapped: the interface of
    :class:`labkit.io.StackReader` (``rows``, ``width``, ``read``, ``close``).

    Parameters
    ----------
    paths : sequence of paths
        Tile files, in date order, all of the same size.

    Raises
    ------
    LabError
        A tile that cannot be mapped, or tiles of different sizes.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise LabError("no tiles given")
        self._tiles: list[MappedTile] = []
        try:
            for p in self.paths:
                self._tiles.append(MappedTile(p))
        except BaseException:
            self.close()
            raise
        self.rows, self.width = self._tiles[0].rows, self._tiles[0].cols
        for t in self._tiles:
            if (t.rows, t.cols) != (self.rows, self.width):
                size = f"{t.rows}x{t.cols}"
                self.close()
                raise LabError(f"tile {t.layout.path} is {size}, the first is "
                               f"{self.rows}x{self.width}: all dates must match")

    def read(self, row0: int, nrows: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``row0 .. row0+nrows`` of every tile as a (dates, nrows, cols) float32
        array (filled in place when ``out`` is given).
        """
        if not self._tiles:
            raise LabError("this MappedStackReader is closed")
        if out is None:
            out = np.empty((len(self._tiles), nrows, self.width), np.float32)
        for k, tile in enumerate(self._tiles):
            tile.read(row0, nrows, out[k])
        return out

    def close(self) -> None:
        """Drop every map (idempotent)."""
        while self._tiles:
            self._tiles.pop().close()

    def __enter__(self) -> MappedStackReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
