"""Files in and out: dates from names, the tile stack, atomic float32 GeoTIFF writes.

Every output is written to a temporary file in the destination folder and renamed into
place, so a reader sees the whole file or nothing (the last writer wins whole).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit.errors import LabError

__all__ = [
    "TILE_SUFFIX",
    "TileStack",
    "atomic_outputs",
    "check_writable",
    "date_from_name",
    "geotiff_row_writer",
    "open_stack",
    "read_block",
    "read_tile",
    "write_geotiff",
    "write_geotiffs",
]

TILE_SUFFIX = "_int_crop.tif"
_DATE_RE = re.compile(r"(?<!\d)((?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))(?!\d)")


def date_from_name(path: str | os.PathLike[str]) -> str:
    """Acquisition date ``YYYYMMDD`` taken from a file name (the last 8-digit date in it).

    Raises
    ------
    LabError
        If the name holds no ``YYYYMMDD`` date.
    """
    name = Path(path).name
    found = _DATE_RE.findall(name)
    if not found:
        raise LabError(f"no date in file name {name!r}: expected an 8-digit YYYYMMDD date")
    return found[-1]


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Check that ``path`` can be written (its folder exists and is writable).

    Returns the path as a :class:`~pathlib.Path`. Nothing is created.
    """
    p = Path(path)
    if p.is_dir():
        raise LabError(f"output {p} is a folder: give a file name such as {p / 'mean.tif'}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise LabError(f"cannot write {p}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LabError(f"cannot write {p}: folder {parent} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise LabError(f"cannot write {p}: the file exists and is read-only")
    return p


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[str | os.PathLike[str]]) -> Iterator[list[Path]]:
    """Yield temporary paths beside ``paths``; on success rename each onto its target.

    On any error (including Ctrl-C) the temporaries are removed and the targets are left
    as they were.
    """
    targets = [check_writable(p) for p in paths]
    temps: list[Path] = []
    try:
        for t in targets:
            fd, name = tempfile.mkstemp(prefix=f".{t.name}.", suffix=".tmp", dir=t.parent or ".")
            os.close(fd)
            temps.append(Path(name))
        yield temps
        for tmp, t in zip(temps, targets, strict=True):
            os.replace(tmp, t)
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _write_tif(path: Path, array: np.ndarray) -> None:
    import rasterio
    from rasterio.transform import Affine

    profile = {
        "driver": "GTiff",  # never VRT: "Writing through VRTSourcedRasterBand is not supported"
        "dtype": "float32",
        "count": 1,
        "height": array.shape[0],
        "width": array.shape[1],
        "nodata": float("nan"),
        "transform": Affine.identity(),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning: tiles are in radar geometry
        try:
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(np.asarray(array, dtype=np.float32), 1)
        except (OSError, rasterio.errors.RasterioIOError) as exc:
            raise LabError(f"cannot write {path}: {exc}") from None


def write_geotiffs(items: Mapping[str | os.PathLike[str], np.ndarray]) -> None:
    """Write several 2-D arrays as float32 GeoTIFFs (nodata NaN), all or none."""
    for a in items.values():
        if np.ndim(a) != 2:
            raise LabError(f"can only write 2-D arrays, got shape {np.shape(a)}")
    with atomic_outputs(list(items)) as temps:
        for tmp, array in zip(temps, items.values(), strict=True):
            _write_tif(tmp, array)


def write_geotiff(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write one 2-D array as a float32 GeoTIFF (driver GTiff, nodata NaN), atomically."""
    write_geotiffs({path: array})


@contextlib.contextmanager
def geotiff_row_writer(
    path: str | os.PathLike[str], height: int, width: int, tags: Mapping[str, str] | None = None
) -> Iterator[Callable[[int, np.ndarray], None]]:
    """Write a float32 GeoTIFF (GTiff, nodata NaN) by row blocks, atomically.

    Yields ``write(row0, block)``, which stores a ``(rows, width)`` block at row ``row0``
    of a temporary file; the file is renamed onto ``path`` only when the ``with`` body
    ends without error (so memory stays bounded for any image size). ``tags`` are stored
    as dataset metadata (``gdalinfo`` shows them).
    """
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": 1,
        "height": height,
        "width": width,
        "nodata": float("nan"),
        "transform": Affine.identity(),
    }
    with atomic_outputs([path]) as (tmp,), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning: tiles are in radar geometry
        try:
            dst = rasterio.open(tmp, "w", **profile)
        except (OSError, rasterio.errors.RasterioIOError) as exc:
            raise LabError(f"cannot write {path}: {exc}") from None
        with dst:
            if tags:
                dst.update_tags(**tags)

            def write(row0: int, block: np.ndarray) -> None:
                try:
                    dst.write(block, 1, window=Window(0, row0, width, block.shape[0]))
                except rasterio.errors.RasterioError as exc:
                    raise LabError(f"cannot write {path}: {exc}") from None

            yield write


@dataclass(frozen=True)
class TileStack:
    """A validated stack of intensity tiles: same shape, float dtype, one per date.

    Attributes
    ----------
    paths : list of Path
        Tile files, sorted by date.
    dates : list of str
        ``YYYYMMDD`` dates, in the same order.
    rows, cols : int
        Tile height and width (pixels).
    dtype : str
        Sample type of every tile (``float32`` for the lab's tiles).
    """

    paths: list[Path]
    dates: list[str]
    rows: int
    cols: int
    dtype: str

    @property
    def n_dates(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(dates, rows, cols)."""
        return (self.n_dates, self.rows, self.cols)

    @property
    def nbytes(self) -> int:
        """Bytes of sample data in the whole stack."""
        return self.n_dates * self.rows * self.cols * np.dtype(self.dtype).itemsize


def _tile_files(src: Path) -> list[Path]:
    if not src.exists():
        raise LabError(f"tile folder {src} does not exist")
    if not src.is_dir():
        raise LabError(f"{src} is a file: give the folder that holds the *{TILE_SUFFIX} tiles")
    if not os.access(src, os.R_OK | os.X_OK):
        raise LabError(f"tile folder {src} is not readable")
    files = sorted(p for p in src.iterdir() if p.name.endswith(TILE_SUFFIX))
    if not files:
        raise LabError(
            f"no tiles in {src}: expected files named YYYYMMDD{TILE_SUFFIX} (run `labkit prep`)"
        )
    return files


def open_stack(src: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> TileStack:
    """Find and validate the intensity tiles in folder ``src`` (or a list of tile files).

    Raises
    ------
    LabError
        Missing or empty folder, an unreadable/corrupt/truncated tile (named), tiles of
        different shapes or dtypes, or non-float tiles.
    """
    import rasterio

    if isinstance(src, (str, os.PathLike)):
        files = _tile_files(Path(src))
    else:
        files = [Path(p) for p in src]
        if not files:
            raise LabError("no tiles given")
    files = sorted(files, key=lambda p: (date_from_name(p), p.name))
    shapes: dict[tuple[int, int, str], list[str]] = {}
    for f in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with rasterio.open(f) as ds:
                    key = (ds.height, ds.width, ds.dtypes[0])
                    count, compressed = ds.count, ds.compression is not None
        except rasterio.errors.RasterioIOError:
            raise LabError(f"tile {f} is not a readable GeoTIFF (corrupt or truncated)") from None
        if count != 1:
            raise LabError(f"tile {f} has {count} bands: expected 1 (intensity)")
        if not np.issubdtype(np.dtype(key[2]), np.floating):
            raise LabError(f"tile {f} is {key[2]}: expected float32 intensity (run `labkit prep`)")
        need = key[0] * key[1] * np.dtype(key[2]).itemsize
        if not compressed and f.stat().st_size < need:
            raise LabError(
                f"tile {f} is truncated: {f.stat().st_size} bytes, its header needs {need}"
            )
        shapes.setdefault(key, []).append(f.name)
    if len(shapes) > 1:
        desc = "; ".join(f"{r}x{c} {d}: {', '.join(n[:3])}" for (r, c, d), n in shapes.items())
        raise LabError(f"tiles differ in shape or dtype ({desc}): all dates must match")
    (rows, cols, dtype), = shapes
    return TileStack(files, [date_from_name(f) for f in files], rows, cols, dtype)


def read_tile(
    path: str | os.PathLike[str], row0: int = 0, nrows: int | None = None
) -> np.ndarray:
    """Read rows ``row0 .. row0+nrows`` (default: all) of band 1 as float32 (rows, cols)."""
    import rasterio
    from rasterio.windows import Window

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(path) as ds:
                n = ds.height - row0 if nrows is None else nrows
                window = Window(0, row0, ds.width, n)
                return ds.read(1, window=window, out_dtype=np.float32)
    except rasterio.errors.RasterioIOError as exc:
        raise LabError(f"cannot read tile {path}: {exc} (corrupt or truncated?)") from None


def read_block(
    paths: Sequence[str | os.PathLike[str]], row0: int, nrows: int,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Read rows ``row0 .. row0+nrows`` of every tile into one (dates, nrows, cols) float32 array.

    ``out`` (a C-contiguous float32 array of that shape) is filled in place when given.
    """
    import rasterio
    from rasterio.windows import Window

    for k, path in enumerate(paths):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with rasterio.open(path) as ds:
                    if out is None:
                        out = np.empty((len(paths), nrows, ds.width), np.float32)
                    ds.read(1, window=Window(0, row0, ds.width, nrows), out=out[k])
        except rasterio.errors.RasterioIOError as exc:
            raise LabError(f"cannot read tile {path}: {exc} (corrupt or truncated?)") from None
    assert out is not None
    return out
