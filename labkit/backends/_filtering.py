"""The Lee speckle filter in the backends: the ENL of a stack, blocks read with their
halo rows, every date of a block filtered.

A space-split backend reads its block of output rows ``r0 .. r0+n`` together with the
K//2 rows above and below it (:func:`read_with_halo`, reflected at the image's top and
bottom by :func:`labkit.filters.halo_rows`) and filters every date (:func:`filtered`).
The filter is split-invariant, so every block gives the whole image's bits.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from labkit.errors import LabError
from labkit.filters import LeeFilter, halo_rows, lee
from labkit.io import StackReader, TileStack

__all__ = ["filtered", "filtered_image", "read_with_halo", "tile_looks", "warm_up", "with_enl"]

LOOKS_TAG = "LABKIT_LOOKS"  # written by `labkit prep` in every tile: "AZxRG", e.g. "4x4"


def tile_looks(path: Path) -> tuple[int, int] | None:
    """The (azimuth, range) looks ``labkit prep`` recorded in a tile, or None."""
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            text = ds.tags().get(LOOKS_TAG, "")
    try:
        az, rg = (int(v) for v in text.lower().split("x"))
    except ValueError:
        return None
    return (az, rg) if az >= 1 and rg >= 1 else None


def with_enl(filt: LeeFilter | None, stack: TileStack) -> LeeFilter | None:
    """``filt`` with its ENL: the one given, else the looks of the first tile (az × rg).

    Raises
    ------
    LabError
        No ENL given and the first tile does not record its looks (tiles not written by
        ``labkit prep``): one line asking for ``lee:K:ENL``.
    """
    if filt is None or filt.enl is not None:
        return filt
    looks = tile_looks(stack.paths[0])
    if looks is None:
        raise LabError(f"filter {filt.spec}: tile {stack.paths[0].name} does not record its "
                       f"looks ({LOOKS_TAG}, written by labkit prep): give the ENL, e.g. "
                       f"lee:{filt.k}:16")
    return LeeFilter(filt.k, float(looks[0] * looks[1]))


def read_with_halo(reader: StackReader, r0: int, n: int, filt: LeeFilter
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``r0 .. r0+n`` of every date with their K//2 halo rows.

    Returns
    -------
    block : (dates, rows read, cols) float32 array
        The image rows ``lo .. hi`` of :func:`labkit.filters.halo_rows`.
    index : int array
        The halo-extended block's rows in ``block`` (for :func:`filtered`).
    """
    lo, hi, index = halo_rows(r0, n, reader.rows, filt.k)
    return reader.read(lo, hi - lo), index


def filtered(block: np.ndarray, filt: LeeFilter, index: np.ndarray | None = None
             ) -> np.ndarray:
    """Every date of ``block`` (dates, rows, cols) Lee-filtered: a new C-contiguous
    float32 array of the output rows (``index``: as from :func:`read_with_halo`; None:
    ``block`` is whole images).
    """
    assert filt.enl is not None, "resolve the ENL first (with_enl)"
    if index is None:
        rows = block.shape[1]
    else:
        rows = len(index) - 2 * (filt.k // 2)
    out = np.empty((block.shape[0], rows, block.shape[2]), np.float32)
    for date, image in zip(out, block, strict=True):
        lee(image, filt.k, filt.enl, index, out=date)
    return out


def filtered_image(image: np.ndarray, filt: LeeFilter | None) -> np.ndarray:
    """One whole date Lee-filtered (``image`` itself when ``filt`` is None)."""
    if filt is None:
        return image
    assert filt.enl is not None, "resolve the ENL first (with_enl)"
    return lee(image, filt.k, filt.enl)


def warm_up(filt: LeeFilter | None) -> float:
    """Load the filter's compiled kernel in this process (seconds; 0 without a filter),
    so that it counts as start-up, not compute.
    """
    import time

    if filt is None:
        return 0.0
    t0 = time.perf_counter()
    lee(np.ones((3, 3), np.float32), 3, 1.0)
    return time.perf_counter() - t0
