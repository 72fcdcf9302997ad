"""float32 GeoTIFFs (driver GTiff, nodata NaN) written atomically: whole images, several
at once (all or none), or row block by row block.

Each file is read back whole before it is renamed into place: GDAL reports some failed
flushes (disk full, a file-size limit) only on stderr and leaves a short file.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

from labkit.errors import LabError
from labkit.io.atomic import atomic_outputs, write_failed
from labkit.io.tiles import READ_OPTIONS

__all__ = ["geotiff_row_writer", "write_geotiff", "write_geotiffs"]


def _check_complete(tmp: Path, target: Path, height: int, width: int) -> None:
    """Read a just-closed float32 GeoTIFF back whole. GDAL reports a failed flush at close
    (disk full, file-size limit) only on stderr and leaves a short or broken file.
    """
    import rasterio

    try:
        broken = tmp.stat().st_size < height * width * 4  # uncompressed float32 samples
        if not broken:
            with rasterio.Env(**READ_OPTIONS), rasterio.open(tmp) as ds:  # mmap read: fast
                ds.read(1)
    except (OSError, rasterio.errors.RasterioError):
        broken = True
    if broken:
        raise write_failed(target)


def _write_tif(path: Path, array: np.ndarray, target: Path | None = None) -> None:
    """Write ``array`` to ``path`` (a temporary); errors name ``target``."""
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
    target = path if target is None else target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning: tiles are in radar geometry
        try:
            dst = rasterio.open(path, "w", **profile)
        except (OSError, rasterio.errors.RasterioIOError) as exc:
            raise LabError(f"cannot write {target}: {exc}") from None
        try:
            with dst:
                dst.write(np.asarray(array, dtype=np.float32), 1)
        except (OSError, rasterio.errors.RasterioError):
            raise write_failed(target) from None
    _check_complete(path, target, array.shape[0], array.shape[1])


def write_geotiffs(items: Mapping[str | os.PathLike[str], np.ndarray]) -> None:
    """Write several 2-D arrays as float32 GeoTIFFs (nodata NaN), all or none."""
    for a in items.values():
        if np.ndim(a) != 2:
            raise LabError(f"can only write 2-D arrays, got shape {np.shape(a)}")
    with atomic_outputs(list(items)) as temps:
        jobs = list(zip(temps, items.values(), map(Path, items), strict=True))
        if len(jobs) == 1:
            _write_tif(*jobs[0])
            return
        from concurrent.futures import ThreadPoolExecutor

        # one thread per file: GDAL releases the GIL while it writes (mean and std at once);
        # warnings are silenced here for all threads (the filters are process-wide)
        with warnings.catch_warnings(), ThreadPoolExecutor(len(jobs)) as ex:
            warnings.simplefilter("ignore")
            for f in [ex.submit(_write_tif, *job) for job in jobs]:
                f.result()


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
        body_done = False
        try:
            with dst:
                if tags:
                    dst.update_tags(**tags)

                def write(row0: int, block: np.ndarray) -> None:
                    try:
                        dst.write(block, 1, window=Window(0, row0, width, block.shape[0]))
                    except rasterio.errors.RasterioError:
                        raise write_failed(Path(path)) from None

                yield write
                body_done = True
        except (OSError, rasterio.errors.RasterioError):
            if not body_done:  # the caller's own error
                raise
            raise write_failed(Path(path)) from None  # closing (flushing) failed
        _check_complete(tmp, Path(path), height, width)
