"""The Lee speckle filter (Lee 1980, multiplicative noise model), split-invariant.

For one intensity image ``I`` with ``L`` equivalent looks (ENL), over a K×K window (K odd):

    s² = 1 / L
    m, q = window means of I and of I²
    var_y = max(q − m², 1e-10)                    # local variance of the observation
    var_x = max((var_y − m²·s²) / (1 + s²), 0)   # of the underlying reflectivity
    out = m + (I − m) · var_x / var_y

in float64, stored as float32. Any NaN in the window gives NaN. Borders are extended by
half-sample symmetric reflection (``d c b a | a b c d | d c b a``, scipy.ndimage's
``mode="reflect"``).

**Split-invariant**: every window sum is computed for each output pixel on its own, the
K values of a row left to right, then the K row sums top to bottom. No running sum starts
at a block edge, so a pixel's arithmetic is the same whichever rows a block holds: a
block needs only its K//2 halo rows above and below (:func:`halo_rows`), and every space
split of the image gives the same bits as the whole image.

:func:`lee_reference` is the readable NumPy version (the checker's truth); :func:`lee`
runs a fused Numba kernel doing the same IEEE operations in the same order (same bits),
or the NumPy version when Numba is missing.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import numpy as np

from labkit.errors import LabError

__all__ = [
    "FILTER_HELP",
    "K_RANGE",
    "LeeFilter",
    "halo_rows",
    "lee",
    "lee_reference",
    "parse_filter",
    "reflect_index",
]

K_RANGE = (3, 31)  # smallest and largest window side K (odd)
VAR_FLOOR = 1e-10  # var_y never goes below this (a constant window has var_y = 0)
FILTER_HELP = ("valid is none, lee:K or lee:K:ENL with K odd, 3..31, and ENL > 0 "
               "(e.g. lee:7, lee:9:16)")
_SPEC = re.compile(r"^lee:(?P<k>[^:]+)(?::(?P<enl>[^:]+))?$")


@dataclass(frozen=True)
class LeeFilter:
    """A Lee filter: window side ``k`` (odd) and equivalent number of looks ``enl``
    (None: the tiles' looks, read from the tiles when the filter runs).
    """

    k: int
    enl: float | None = None

    @property
    def halo(self) -> int:
        """Rows (and columns) needed on each side of a block: K // 2."""
        return self.k // 2

    @property
    def spec(self) -> str:
        """The text form, ``lee:K`` or ``lee:K:ENL``."""
        return f"lee:{self.k}" if self.enl is None else f"lee:{self.k}:{self.enl:g}"

    def flops_per_pixel(self, rows: int) -> float:
        """Floating-point operations per output pixel for a block of ``rows`` rows:
        3K per halo-extended row pixel (sum of I, I·I and its sum), 2K for the vertical
        sums, 12 for the formula.
        """
        k, h = self.k, self.halo
        return 3 * k * (rows + 2 * h) / rows + 2 * k + 12


def parse_filter(spec: str | LeeFilter | None) -> LeeFilter | None:
    """Read a filter spec: ``None``/``"none"``/``""`` (no filter), ``"lee:K"`` or
    ``"lee:K:ENL"``.

    Raises
    ------
    LabError
        Any other text: one line saying what is valid.
    """
    if spec is None or isinstance(spec, LeeFilter):
        return spec
    text = str(spec).strip().lower()
    if text in ("", "none"):
        return None
    match = _SPEC.match(text)
    bad = f"filter {spec!r} is not valid: {FILTER_HELP}"
    if match is None:
        raise LabError(bad)
    try:
        k = int(match["k"])
        enl = None if match["enl"] is None else float(match["enl"])
    except ValueError:
        raise LabError(bad) from None
    if k % 2 == 0 or not K_RANGE[0] <= k <= K_RANGE[1]:
        raise LabError(bad)
    if enl is not None and not (enl > 0 and np.isfinite(enl)):
        raise LabError(bad)
    return LeeFilter(k, enl)


def reflect_index(index: np.ndarray, size: int) -> np.ndarray:
    """Map indices outside ``0 .. size-1`` back inside by half-sample symmetric
    reflection (period ``2·size``), as scipy.ndimage's ``mode="reflect"`` does.
    """
    period = 2 * size
    i = np.mod(index, period)
    return np.where(i < size, i, period - 1 - i)


def halo_rows(r0: int, n: int, rows: int, k: int) -> tuple[int, int, np.ndarray]:
    """Which image rows a block of output rows ``r0 .. r0+n`` needs.

    Returns
    -------
    lo, hi : int
        Read rows ``lo .. hi`` (the block and its halo, clipped to the image).
    index : (n + 2·(k//2),) int array
        For each row of the halo-extended block, its row in what was read (reflected
        at the image's top and bottom).
    """
    h = k // 2
    need = reflect_index(np.arange(r0 - h, r0 + n + h), rows)
    lo, hi = int(need.min()), int(need.max()) + 1
    return lo, hi, need - lo


def _extend(block: np.ndarray, row_index: np.ndarray, k: int) -> np.ndarray:
    """The halo-extended block: rows picked by ``row_index``, columns reflected."""
    cols = block.shape[1]
    h = k // 2
    col_index = reflect_index(np.arange(-h, cols + h), cols)
    return block[row_index][:, col_index]


def _formula(img: np.ndarray, s: np.ndarray, q: np.ndarray, k: int, enl: float
             ) -> np.ndarray:
    """Lee's formula from the window sums ``s`` (of I) and ``q`` (of I²), float64."""
    s2 = 1.0 / enl
    m = s / float(k * k)
    mq = q / float(k * k)
    var_y = np.maximum(mq - m * m, VAR_FLOOR)  # NaN stays NaN
    var_x = np.maximum((var_y - m * m * s2) / (1.0 + s2), 0.0)
    return m + (img - m) * var_x / var_y


def lee_reference(block: np.ndarray, k: int, enl: float,
                  row_index: np.ndarray | None = None) -> np.ndarray:
    """The Lee filter in plain NumPy (float64), the reference every kernel must equal.

    Parameters
    ----------
    block : (rows, cols) float32 array
        Intensity rows: the whole image, or a block with its halo (see :func:`halo_rows`).
    k : int
        Window side (odd).
    enl : float
        Equivalent number of looks (> 0).
    row_index : int array, optional
        Rows of ``block`` forming the halo-extended block (default: the whole image,
        reflected at its top and bottom).

    Returns
    -------
    (len(row_index) - 2·(k//2), cols) float32 array
    """
    if row_index is None:
        row_index = halo_rows(0, block.shape[0], block.shape[0], k)[2]
    ext = _extend(np.asarray(block), row_index, k).astype(np.float64)
    h = k // 2
    rows, cols = ext.shape[0] - 2 * h, ext.shape[1] - 2 * h
    sq = ext * ext
    hs = ext[:, 0:cols].copy()  # horizontal sums, the K columns left to right
    hq = sq[:, 0:cols].copy()
    for dx in range(1, k):
        hs += ext[:, dx:dx + cols]
        hq += sq[:, dx:dx + cols]
    s = hs[0:rows].copy()  # vertical sums of the row sums, top to bottom
    q = hq[0:rows].copy()
    for dy in range(1, k):
        s += hs[dy:dy + rows]
        q += hq[dy:dy + rows]
    img = ext[h:h + rows, h:h + cols]
    return _formula(img, s, q, k, enl).astype(np.float32)


_KERNEL = None


def _numba_kernel():  # compiled on first use, cached on disk
    global _KERNEL
    if _KERNEL is None:
        import numba

        @numba.njit(cache=True, nogil=True, boundscheck=False)
        def lee_rows(ext, k, enl, out, hs, hq):  # pragma: no cover
            # The reference's operations in its order: row sums of K values left to
            # right (first value, then +), then K row sums top to bottom, then the formula.
            rows, cols = out.shape
            for y in range(ext.shape[0]):
                for x in range(cols):
                    v = np.float64(ext[y, x])
                    s = v
                    q = v * v
                    for dx in range(1, k):
                        v = np.float64(ext[y, x + dx])
                        s += v
                        q += v * v
                    hs[y, x] = s
                    hq[y, x] = q
            s2 = 1.0 / enl
            kk = np.float64(k * k)
            h = k // 2
            for y in range(rows):
                for x in range(cols):
                    s = hs[y, x]
                    q = hq[y, x]
                    for dy in range(1, k):
                        s += hs[y + dy, x]
                        q += hq[y + dy, x]
                    m = s / kk
                    mq = q / kk
                    var_y = mq - m * m
                    if var_y < 1e-10:  # NaN stays NaN, as np.maximum does
                        var_y = 1e-10
                    var_x = (var_y - m * m * s2) / (1.0 + s2)
                    if var_x < 0.0:
                        var_x = 0.0
                    img = np.float64(ext[y + h, x + h])
                    out[y, x] = np.float32(m + (img - m) * var_x / var_y)

        _KERNEL = lee_rows
    return _KERNEL


def _numba_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def lee(block: np.ndarray, k: int, enl: float, row_index: np.ndarray | None = None, *,
        kernel: str = "auto", out: np.ndarray | None = None) -> np.ndarray:
    """The Lee filter of a block, with the fused kernel (same bits as
    :func:`lee_reference`; same parameters).

    Parameters
    ----------
    block : (rows, cols) float32 array
        Intensity rows: the whole image, or a block with its halo.
    k : int
        Window side (odd).
    enl : float
        Equivalent number of looks (> 0).
    row_index : int array, optional
        Rows of ``block`` forming the halo-extended block (see :func:`halo_rows`).
    kernel : {"auto", "numba", "numpy"}, default "auto"
        ``auto``: Numba when installed. The Numba kernel releases the GIL, so threads
        filter different blocks at the same time.
    out : (rows, cols) float32 array, optional
        Where to write the result (e.g. one date of a stacked block).
    """
    if kernel == "numpy" or (kernel == "auto" and not _numba_available()):
        result = lee_reference(block, k, enl, row_index)
        if out is None:
            return result
        out[...] = result
        return out
    if row_index is None:
        row_index = halo_rows(0, block.shape[0], block.shape[0], k)[2]
    ext = np.ascontiguousarray(_extend(np.asarray(block, np.float32), row_index, k))
    h = k // 2
    rows, cols = ext.shape[0] - 2 * h, ext.shape[1] - 2 * h
    if out is None:
        out = np.empty((rows, cols), np.float32)
    elif out.shape != (rows, cols) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 of shape {(rows, cols)}")
    hs, hq = _row_sums_scratch((ext.shape[0], cols))
    _numba_kernel()(ext, k, float(enl), out, hs, hq)
    return out


_SCRATCH = threading.local()


def _row_sums_scratch(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """This thread's two float64 row-sum buffers of ``shape``, kept between calls: a new
    pair per date would make every call fault in fresh pages (measured: a third more page
    faults with two threads, and their CPU time grew with them).
    """
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None or bufs[0].shape != shape:
        bufs = (np.empty(shape), np.empty(shape))
        _SCRATCH.bufs = bufs
    return bufs
