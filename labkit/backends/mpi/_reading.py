"""Each rank's share of the work and the blocks it reads, timed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from labkit.backends._buffers import block_view
from labkit.backends._filtering import read_with_halo
from labkit.filters import LeeFilter
from labkit.io import StackReader

__all__ = ["blocks", "share"]


def share(total: int, size: int, rank: int) -> tuple[int, int]:
    """[start, stop) of ``rank``'s contiguous share of ``total`` items (sizes differ ≤ 1)."""
    return total * rank // size, total * (rank + 1) // size


def blocks(paths: list[Path], lo: int, hi: int, br: int, cols: int,
           times: dict[str, float], progress: Callable[[int, int], None] | None,
           filt: LeeFilter | None = None,
           ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
    """Yield ``(r0, block, halo)`` for rows ``lo..hi`` of every tile in ``paths``, ``br``
    rows at a time into one reused (dates, rows, cols) float32 buffer. Adds the read
    seconds, the bytes and the caller's compute seconds (the time until the next block is
    asked for) to ``times``.

    With a Lee filter ``filt`` each block is a new array holding its K//2 halo rows too,
    and ``halo`` the row index for :func:`labkit.backends._filtering.filtered` (else None).
    """
    starts = range(lo, hi, br)
    buffer = np.empty((len(paths), min(br, hi - lo), cols), np.float32)
    with StackReader(paths) as reader:  # every tile opened once, not once per block
        for i, r0 in enumerate(starts):
            n = min(br, hi - r0)
            halo = None
            t0 = time.perf_counter()
            if filt:
                block, halo = read_with_halo(reader, r0, n, filt)
            else:
                block = reader.read(r0, n, out=block_view(buffer, n))
            t1 = time.perf_counter()
            yield r0, block, halo
            times["read"] += t1 - t0
            times["compute"] += time.perf_counter() - t1
            times["bytes_read"] += block.nbytes
            if progress:
                progress(i + 1, len(starts))
