"""Prep: SLC stack → |S|² → multilook → crop → float32 GeoTIFF intensity tiles.

One tile per date, ``DEST/<YYYYMMDD>_int_crop.tif`` (float32, GTiff, nodata NaN). The
crop ``W,H,R0,C0`` is in multilooked pixels: W columns × H rows from row R0, column C0.
Only the SLC window the crop needs is read, in row blocks, so memory stays bounded for
any SLC or crop size.

- :mod:`~labkit.prep.kernel`: |S|² and the multilook (NumPy, or the compiled C kernel);
- :mod:`~labkit.prep.readers`: row blocks of an SLC (raw ``pread`` or GDAL);
- :mod:`~labkit.prep.date`: one date into one tile;
- :mod:`~labkit.prep.stack`: a whole stack, validated before anything is written;
- :mod:`~labkit.prep.tiles`: the synthetic presets' tiles.
"""

from labkit.prep.date import prep_date
from labkit.prep.kernel import intensity, kernel_name, multilook
from labkit.prep.stack import PrepSummary, describe, empty_warning, prep_stack
from labkit.prep.tiles import ensure_tiles, prep_preset, tile_sizes

__all__ = ["PrepSummary", "describe", "empty_warning", "ensure_tiles", "intensity",
           "kernel_name", "multilook", "prep_date", "prep_preset", "prep_stack", "tile_sizes"]
