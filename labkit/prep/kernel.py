"""Prep's kernel: |S|² then the multilook, in NumPy (the readable reference) or in the
compiled C kernel (:mod:`labkit._prepkernel`), which fuses both in one pass over
cache-sized blocks with the GIL released and gives the same bits.

Numerical contract: I = re² + im² (float32) of each complex sample; samples exactly 0 or
not finite are no-data; a multilooked pixel is the mean of its L_az × L_rg samples,
summed in float64, NaN if any of them is no-data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType

import numpy as np

from labkit.config import ENV_PREP_KERNEL
from labkit.errors import LabError

__all__ = ["PREP_KERNELS", "Kernel", "Looks", "c_module", "check_looks", "intensity",
           "kernel_name", "multilook"]

PREP_KERNELS = ("auto", "c", "numpy")  # values of LABKIT_PREP_KERNEL

_NAN = np.float32(np.nan)

Looks = tuple[int, int]


def intensity(slc: np.ndarray) -> np.ndarray:
    """Intensity ``|S|² = re² + im²`` of complex samples, float32, NaN at no-data.

    Parameters
    ----------
    slc : complex array
        Any shape; stored or converted to complex64.

    Returns
    -------
    float32 array, same shape
        NaN where the sample is exactly 0 or not finite (no-data). An
        intensity that underflows float32 (|S| below ~1e-22) also counts as 0.
    """
    s = np.asarray(slc)
    if not np.iscomplexobj(s):
        raise LabError(f"intensity needs complex samples, got {s.dtype}")
    s = np.ascontiguousarray(s, dtype=np.complex64)
    if s.ndim == 0:
        s = s.reshape(1)
    v = s.view(np.float32)
    re, im = v[..., 0::2], v[..., 1::2]
    out = re * re
    out += im * im
    np.copyto(out, _NAN, where=~((out > 0) & (out < np.inf)))
    return out.reshape(np.shape(slc))


def _sum_looks(
    inten: np.ndarray,
    laz: int,
    lrg: int,
    acc: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Mean of ``laz × lrg`` cells of a 2-D intensity (float64 sums) → float32.

    Azimuth first (whole rows added, vectorised along the contiguous axis), then range
    (strided columns of the 4× smaller float64 array). ``acc``/``out`` are optional
    preallocated float64 buffers of at least (rows, cols·lrg) and (rows, cols).
    """
    rows, cols = inten.shape[0] // laz, inten.shape[1] // lrg
    a = inten[: rows * laz, : cols * lrg]
    s = np.empty((rows, cols * lrg)) if acc is None else acc[:rows, : cols * lrg]
    if laz == 1:
        s[...] = a
    else:
        np.add(a[0::laz], a[1::laz], out=s, dtype=np.float64)
        for k in range(2, laz):
            np.add(s, a[k::laz], out=s)
    o = np.empty((rows, cols)) if out is None else out[:rows, :cols]
    if lrg == 1:
        o[...] = s
    else:
        np.add(s[:, 0::lrg], s[:, 1::lrg], out=o)
        for k in range(2, lrg):
            np.add(o, s[:, k::lrg], out=o)
    o /= laz * lrg
    res = o.astype(np.float32)
    np.copyto(res, _NAN, where=~np.isfinite(res))  # inf (overflow or inf samples) → NaN
    return res


def check_looks(looks: int | Sequence[int]) -> Looks:
    """``(azimuth, range)`` looks from ``N`` or a pair, each a whole number ≥ 1."""
    vals = [looks, looks] if isinstance(looks, (int, np.integer)) else list(looks)
    if len(vals) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer))
                             for v in vals):
        raise LabError(f"looks {looks!r} must be N or (azimuth, range), e.g. 4 or (2, 8)")
    if min(vals) < 1:
        raise LabError(f"looks {looks!r} must be ≥ 1 (1 = no multilook)")
    return int(vals[0]), int(vals[1])


def multilook(intensity: np.ndarray, looks: int | Sequence[int] = (4, 4)) -> np.ndarray:
    """Multilook a 2-D intensity: mean of each ``L_az × L_rg`` cell, as float32.

    Parameters
    ----------
    intensity : (lines, samples) real array
        Intensity with NaN at no-data (see :func:`intensity`).
    looks : int or (int, int), default (4, 4)
        Looks in azimuth (rows) and range (columns); an int means the same in both.

    Returns
    -------
    float32 array (lines // L_az, samples // L_rg)
        Sums are done in float64; NaN where any sample of the cell is NaN or infinite.
        Trailing lines/samples that do not fill a whole cell are dropped.
    """
    laz, lrg = check_looks(looks)
    a = np.asarray(intensity)
    if a.ndim != 2 or np.iscomplexobj(a):
        raise LabError(f"multilook needs a 2-D real intensity, got {a.ndim}-D {a.dtype}")
    return _sum_looks(a, laz, lrg)


def c_module() -> ModuleType | None:
    """The compiled :mod:`labkit._prepkernel`, or None when it is not built."""
    import importlib

    try:
        return importlib.import_module("labkit._prepkernel")
    except ImportError:
        return None


def kernel_name() -> str:
    """The prep kernel to use: ``"c"`` (:mod:`labkit._prepkernel`) or ``"numpy"``.

    ``LABKIT_PREP_KERNEL=numpy`` forces NumPy; ``c`` requires the compiled kernel;
    ``auto`` (or unset) takes C when it is built. Both give the same tiles, bit for bit.
    """
    want = os.environ.get(ENV_PREP_KERNEL, "auto").strip().lower() or "auto"
    if want not in PREP_KERNELS:
        raise LabError(f"LABKIT_PREP_KERNEL={want!r} is not valid: use auto, c or numpy")
    if want == "numpy":
        return "numpy"
    if c_module() is None:
        if want == "c":
            raise LabError("LABKIT_PREP_KERNEL=c but the compiled kernel labkit._prepkernel "
                           "is not built: reinstall (make venv) with a C compiler, or use auto")
        return "numpy"
    return "c"


class Kernel:
    """Preallocated buffers for one date's row blocks: ``rows`` multilooked rows of
    ``cols`` columns per block (so the SLC block is rows·laz × cols·lrg); ``kernel`` is
    ``"c"`` or ``"numpy"`` (see :func:`kernel_name`).
    """

    def __init__(self, rows: int, cols: int, looks: Looks, kernel: str = "numpy") -> None:
        laz, lrg = looks
        self.looks = looks
        self.cols = cols
        self.slc = np.empty((rows * laz, cols * lrg), np.complex64)
        self.c = c_module() if kernel == "c" else None
        if self.c is None:
            self.inten = np.empty((rows * laz, cols * lrg), np.float32)
            self.zero = np.empty((rows * laz, cols * lrg), np.bool_)
            self.acc = np.empty((rows, cols * lrg))
            self.out = np.empty((rows, cols))

    def run(self, n: int) -> np.ndarray:
        """Multilook the first ``n`` rows' worth of ``self.slc`` (NumPy: destroyed, squared
        in place). Equal, bit for bit, to ``multilook(intensity(slc), looks)``.
        """
        laz, lrg = self.looks
        if self.c is not None:
            res = np.empty((n, self.cols), np.float32)
            self.c.multilook(self.slc, res, n, self.cols, self.slc.shape[1], 0, laz, lrg)
            return res
        m = n * laz
        v = self.slc[:m].view(np.float32)
        np.multiply(v, v, out=v)  # re², im² in place, contiguous
        inten = self.inten[:m]
        np.add(v[:, 0::2], v[:, 1::2], out=inten)
        zero = np.equal(inten, 0, out=self.zero[:m])
        if zero.any():
            np.copyto(inten, _NAN, where=zero)
        # inf / NaN samples propagate through the sums and become NaN at the end
        return _sum_looks(inten, laz, lrg, self.acc, self.out)
