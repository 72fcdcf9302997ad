"""Files in and out: dates from names, the tile stack, atomic float32 GeoTIFF writes.

Every output is written to a temporary file in the destination folder and renamed into
place, so a reader sees the whole file or nothing (the last writer wins whole):
:mod:`labkit.io.atomic` is the one place that does it, for every file the lab writes.
Reading lives in :mod:`labkit.io.tiles`, GeoTIFF writing in :mod:`labkit.io.geotiff`.
"""

from labkit.io.atomic import (
    atomic_file,
    atomic_outputs,
    check_writable,
    default_mode,
    write_text_atomic,
)
from labkit.io.geotiff import geotiff_row_writer, write_geotiff, write_geotiffs
from labkit.io.tiles import (
    READ_OPTIONS,
    TILE_SUFFIX,
    StackReader,
    TileStack,
    cached_reader,
    date_from_name,
    open_stack,
    read_block,
    read_tile,
    stack_key,
)

__all__ = [
    "READ_OPTIONS",
    "TILE_SUFFIX",
    "StackReader",
    "TileStack",
    "atomic_file",
    "atomic_outputs",
    "cached_reader",
    "check_writable",
    "date_from_name",
    "default_mode",
    "geotiff_row_writer",
    "open_stack",
    "read_block",
    "read_tile",
    "stack_key",
    "write_geotiff",
    "write_geotiffs",
    "write_text_atomic",
]
