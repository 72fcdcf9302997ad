"""Compare two result maps pixel by pixel: how far apart, and do their NaN agree."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit.errors import LabError

__all__ = ["Comparison", "compare_arrays", "compare_files"]


@dataclass(frozen=True)
class Comparison:
    """How two maps differ.

    Attributes
    ----------
    max_abs, max_rel : float
        Largest ``|a − b|`` and ``|a − b| / |b|`` over pixels finite in both.
    pixels : int
        Pixels compared (not NaN in either map).
    nan_a, nan_diff : int
        NaN pixels of ``a``; pixels NaN in one map only.
    above : int
        Pixels with ``|a − b| > tol + rtol·|b|``.
    tol, rtol : float
        The tolerances used.
    """

    max_abs: float
    max_rel: float
    pixels: int
    nan_a: int
    nan_diff: int
    above: int
    tol: float
    rtol: float

    @property
    def ok(self) -> bool:
        """Every pixel within tolerance and the NaN in the same places."""
        return self.above == 0 and self.nan_diff == 0

    def line(self) -> str:
        """One line: max |Δ|, NaN agreement, tolerance and the verdict."""
        nan_text = (f"NaN positions match ({self.nan_a} NaN)" if self.nan_diff == 0
                    else f"NaN positions differ at {self.nan_diff} pixels")
        verdict = ("OK" if self.ok else f"FAIL ({self.above} pixels above tolerance)"
                   if self.above else "FAIL")
        return (f"max |Δ| = {self.max_abs:.6g} (max relative {self.max_rel:.3g}) over "
                f"{self.pixels} pixels; {nan_text}; tol {self.tol:g}, rtol {self.rtol:g}: "
                f"{verdict}")


def _check_tolerances(tol: float, rtol: float) -> None:
    for name, v in (("--tol", tol), ("--rtol", rtol)):
        if not math.isfinite(v) or v < 0:
            raise LabError(f"{name} must be a number ≥ 0, got {v}")


def compare_arrays(a: np.ndarray, b: np.ndarray, tol: float = 0.0, rtol: float = 0.0
                   ) -> Comparison:
    """Compare two maps of the same shape (compared in float64)."""
    _check_tolerances(tol, rtol)
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    both = ~nan_a & ~nan_b
    x, y = a[both], b[both]
    with np.errstate(invalid="ignore"):
        diff = np.where(x == y, 0.0, np.abs(x - y))  # equal infinities differ by 0
        rel = np.where(diff == 0, 0.0, diff / np.abs(y))
    return Comparison(
        max_abs=float(diff.max()) if diff.size else 0.0,
        max_rel=float(rel.max()) if rel.size else 0.0,
        pixels=int(x.size), nan_a=int(nan_a.sum()),
        nan_diff=int(np.count_nonzero(nan_a != nan_b)),
        above=int(np.count_nonzero(~(diff <= tol + rtol * np.abs(y)))), tol=tol, rtol=rtol,
    )


def compare_files(a: str | os.PathLike[str], b: str | os.PathLike[str], tol: float = 0.0,
                  rtol: float = 0.0) -> Comparison:
    """Compare two single-band GeoTIFFs (e.g. two backends' ``mean.tif``).

    Raises
    ------
    LabError
        A file missing or unreadable, sizes that differ, a negative tolerance.
    """
    from labkit.io import read_tile

    _check_tolerances(tol, rtol)
    arrays = []
    for path in (a, b):
        if not Path(path).is_file():
            raise LabError(f"cannot verify: file {path} does not exist")
        arrays.append(read_tile(path))
    x, y = arrays
    if x.shape != y.shape:
        raise LabError(f"cannot compare {a} ({x.shape[0]}x{x.shape[1]}) with {b} "
                       f"({y.shape[0]}x{y.shape[1]}): sizes differ")
    return compare_arrays(x, y, tol, rtol)
