"""The Lee filter under ``split="rows"``: each rank's slab with its neighbours' halo rows.

A rank reads its own slab of rows ``lo .. hi`` (every date), sends its first K//2 rows to
the rank above and its last K//2 rows to the rank below, and receives theirs
(``Sendrecv``, buffers, no pickling). At the image's top (rank 0) and bottom (last rank)
nothing comes: those halo rows are the slab's own rows, reflected exactly as
:func:`labkit.filters.halo_rows` reflects them. The filter is split-invariant, so every
rank's filtered rows are the whole image's bits.

A slab thinner than K//2 rows cannot give its neighbour a whole halo: the run is refused
(:func:`check_slabs`, the same line on every rank) rather than reading halos from files.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from labkit.errors import LabError
from labkit.filters import LeeFilter, reflect_index

__all__ = ["check_slabs", "exchange_halos", "halo_index"]


def check_slabs(rows: int, size: int, filt: LeeFilter) -> None:
    """Raise :class:`LabError` if the thinnest of ``size`` slabs of ``rows`` rows has
    fewer than K//2 rows (with more than one rank).
    """
    if size > 1 and rows // size < filt.halo:
        most = max(1, rows // filt.halo)
        raise LabError(f"filter {filt.spec} needs {filt.halo} halo rows from each neighbour "
                       f"but {size} ranks get only {rows // size} rows each: use "
                       f"{most} rank{'s' if most > 1 else ''} or fewer, or a smaller K")


def exchange_halos(comm: Any, slab: np.ndarray, h: int, times: dict[str, float]
                   ) -> tuple[np.ndarray, int]:
    """This rank's slab (dates, rows, cols) with the ``h`` rows of each neighbour.

    Returns
    -------
    rows : (dates, rows + up to 2h, cols) float32 array
        The rank above's last ``h`` rows (not on rank 0), the slab, the rank below's
        first ``h`` rows (not on the last rank).
    above : int
        How many rows came from above (``h`` or 0).

    The exchange's seconds are added to ``times["exchange"]``.
    """
    from mpi4py import MPI

    rank, size = comm.rank, comm.size
    up = rank - 1 if rank > 0 else MPI.PROC_NULL
    down = rank + 1 if rank < size - 1 else MPI.PROC_NULL
    dates, _, cols = slab.shape
    from_above = np.empty((dates, h, cols), np.float32)
    from_below = np.empty((dates, h, cols), np.float32)
    t0 = time.perf_counter()
    if h:
        # my last rows go down while the rank above's last rows come in, then the reverse
        comm.Sendrecv(np.ascontiguousarray(slab[:, -h:]), dest=down,
                      recvbuf=from_above, source=up)
        comm.Sendrecv(np.ascontiguousarray(slab[:, :h]), dest=up,
                      recvbuf=from_below, source=down)
    times["exchange"] = times.get("exchange", 0.0) + time.perf_counter() - t0
    parts = ([from_above] if rank > 0 else []) + [slab] + ([from_below] if rank < size - 1
                                                           else [])
    return np.concatenate(parts, axis=1), h if rank > 0 else 0


def halo_index(r0: int, n: int, rows: int, first: int, k: int) -> np.ndarray:
    """For output rows ``r0 .. r0+n`` of an image of ``rows`` rows: each row of the
    halo-extended block (reflected at the image's top and bottom) as an index into an
    array whose row 0 is image row ``first``.
    """
    h = k // 2
    return reflect_index(np.arange(r0 - h, r0 + n + h), rows) - first
