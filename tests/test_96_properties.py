"""Layer 9.6: property tests of the readers and the kernel against float64 NumPy references.

Random shapes, looks, crops and NaN/zero/inf patterns (hypothesis):

* ``prep.intensity`` and ``prep.multilook`` against a float64 reference;
* ``prep.prep_date`` on small random SLCs written in the ISCE2 layout
  (:func:`labkit.sar.isce.write_isce_slc`): the tile equals the public kernel bit for bit and
  the float64 reference within 1e-6; a crop that does not fit is refused, nothing written;
* ``stats.reduce_stack``: the fused kernel and ``LABKIT_KERNEL=numpy`` agree to the bit,
  both within 1e-6 of :func:`labkit.stats.reference`;
* merges of random date splits (:class:`~labkit.stats.Accumulator` per chunk,
  :func:`~labkit.stats.merge` in order) against :func:`labkit.stats.reference`, strict
  and NaN-aware.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from labkit import prep, stats
from labkit.errors import LabError
from labkit.sar.isce import write_isce_slc

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
RTOL = 1e-6  # relative error allowed against the float64 references


# ---------------------------------------------------------------------------- references


def ref_intensity(slc: np.ndarray) -> np.ndarray:
    """float64 |S|², NaN where the sample is 0 or not finite (the lab's no-data rule)."""
    s = slc.astype(np.complex128)
    with np.errstate(invalid="ignore", over="ignore"):
        out = s.real**2 + s.imag**2
    out[(s == 0) | ~np.isfinite(s)] = np.nan
    return out


def ref_multilook(inten: np.ndarray, laz: int, lrg: int) -> np.ndarray:
    """float64 mean of each laz × lrg cell (trailing partial cells dropped), NaN if any."""
    rows, cols = inten.shape[0] // laz, inten.shape[1] // lrg
    a = inten[:rows * laz, :cols * lrg].astype(np.float64)
    return a.reshape(rows, laz, cols, lrg).mean(axis=(1, 3))


def assert_close(got: np.ndarray, ref: np.ndarray, rtol: float = RTOL) -> None:
    """float32 ``got`` within ``rtol`` of float64 ``ref`` (relative), same NaN pixels."""
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    err = np.abs(got[ok].astype(np.float64) - ref[ok])
    assert np.all(err <= rtol * np.abs(ref[ok]) + 1e-30), err.max(initial=0)


# ---------------------------------------------------------------------------- strategies

# magnitudes where float32 |S|² neither underflows (< ~1e-22) nor overflows (> ~1e19)
_part = st.one_of(st.just(0.0), st.floats(1e-6, 1e6), st.floats(-1e6, -1e-6))


@st.composite
def slcs(draw: st.DrawFn, max_side: int = 24) -> np.ndarray:
    """A complex64 (lines, samples) SLC with zero-filled edges and non-finite samples."""
    shape = (draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    re = draw(hnp.arrays(np.float32, shape, elements=_part))
    im = draw(hnp.arrays(np.float32, shape, elements=_part))
    slc = (re + 1j * im).astype(np.complex64)
    if draw(st.booleans()):  # a zero-filled resampling edge
        slc[:, :draw(st.integers(0, shape[1]))] = 0
    for value in draw(st.lists(st.sampled_from([np.nan, np.inf, complex(1, -np.inf), 0]),
                               max_size=3)):
        slc[draw(st.integers(0, shape[0] - 1)), draw(st.integers(0, shape[1] - 1))] = value
    return slc


_looks = st.tuples(st.integers(1, 5), st.integers(1, 5))
_values = st.one_of(st.just(0.0), st.floats(2.0**-10, 1e4, width=32),
                    st.floats(1e5, 1e6, width=32))  # speckle and PS-like magnitudes


@st.composite
def stacks(draw: st.DrawFn) -> np.ndarray:
    """(dates, rows, cols) float32 with zeros, NaN pixels/dates, PS-like and constant."""
    shape = (draw(st.integers(1, 7)), draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    x = draw(hnp.arrays(np.float32, shape, elements=_values))
    pattern = draw(st.sampled_from(["none", "pixels", "dates", "edge", "all"]))
    if pattern == "pixels":
        x[draw(hnp.arrays(np.bool_, shape, elements=st.booleans()))] = np.nan
    elif pattern == "dates":
        x[draw(st.integers(0, shape[0] - 1))] = np.nan
    elif pattern == "edge":
        x[:, :, 0] = np.nan
    elif pattern == "all":
        x[...] = np.nan
    if draw(st.booleans()):  # a PS-like pixel: mean ≫ std
        x[:, 0, 0] = np.float32(5e5) + np.arange(shape[0], dtype=np.float32) * np.float32(0.25)
    if draw(st.booleans()):  # a constant pixel: std exactly 0
        x[:, -1, -1] = np.float32(3.5)
    return x


# ---------------------------------------------------------------------------- prep


@SETTINGS
@given(slcs())
def test_intensity_matches_float64_reference(slc: np.ndarray) -> None:
    got = prep.intensity(slc)
    assert_close(got, ref_intensity(slc))


@SETTINGS
@given(slcs(), _looks)
def test_multilook_matches_float64_reference(slc: np.ndarray, looks: tuple[int, int]) -> None:
    inten = prep.intensity(slc)
    got = prep.multilook(inten, looks)
    assert_close(got, ref_multilook(inten, *looks))


@st.composite
def prep_cases(draw: st.DrawFn) -> tuple[np.ndarray, tuple[int, int], tuple[int, ...]]:
    """An SLC, looks, and a crop W,H,R0,C0 (mostly inside the multilooked image)."""
    looks = draw(_looks)
    slc = draw(slcs(max_side=40))
    rows, cols = slc.shape[0] // looks[0], slc.shape[1] // looks[1]
    assume(rows >= 1 and cols >= 1)
    if draw(st.integers(0, 2)) == 0:  # sometimes anywhere, fitting or not
        crop = tuple(draw(st.integers(0, 12)) for _ in range(4))
        crop = (max(1, crop[0]), max(1, crop[1]), crop[2], crop[3])
    else:
        w, h = draw(st.integers(1, cols)), draw(st.integers(1, rows))
        crop = (w, h, draw(st.integers(0, rows - h)), draw(st.integers(0, cols - w)))
    return slc, looks, crop


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prep_cases())
def test_prep_date_on_isce_slcs(case: tuple[np.ndarray, tuple[int, int], tuple[int, ...]]
                                ) -> None:
    slc, looks, (w, h, r0, c0) = case
    laz, lrg = looks
    rows, cols = slc.shape[0] // laz, slc.shape[1] // lrg
    with tempfile.TemporaryDirectory(prefix="labkit-prop-") as tmp:
        raw = write_isce_slc(tmp, "20230105", slc)
        out = Path(tmp) / "20230105_int_crop.tif"
        fits = r0 + h <= rows and c0 + w <= cols
        event("crop fits" if fits else "crop refused")
        if not fits:  # refused, nothing written
            with pytest.raises(LabError, match=r"crop .* (does not fit|starts outside)"):
                prep.prep_date(raw.with_name(raw.name + ".vrt"), out, (w, h, r0, c0), looks)
            assert not out.exists()
            return
        nbytes = prep.prep_date(raw.with_name(raw.name + ".vrt"), out, (w, h, r0, c0), looks)
        assert nbytes == h * laz * w * lrg * 8
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(out) as ds:
                assert (ds.driver, ds.dtypes[0], ds.count) == ("GTiff", "float32", 1)
                assert np.isnan(ds.nodata)
                tile = ds.read(1)
        assert sorted(os.listdir(tmp)) == ["20230105", "20230105_int_crop.tif"]  # no temps
    public = prep.multilook(prep.intensity(slc), looks)[r0:r0 + h, c0:c0 + w]
    assert np.array_equal(tile, public, equal_nan=True)  # streaming == public kernel, bitwise
    crop = slc[r0 * laz:(r0 + h) * laz, c0 * lrg:(c0 + w) * lrg]
    assert_close(tile, ref_multilook(ref_intensity(crop), laz, lrg))


# ---------------------------------------------------------------------------- kernel


def _reduce(x: np.ndarray, kernel: str, **kw: object) -> tuple[np.ndarray, np.ndarray]:
    old = os.environ.get("LABKIT_KERNEL")
    os.environ["LABKIT_KERNEL"] = kernel
    try:
        assert stats.kernel_name(x, kw.get("min_count")) == (  # type: ignore[arg-type]
            "numpy" if kernel == "numpy" or kw.get("min_count") is not None else "numba")
        return stats.reduce_stack(x, **kw)  # type: ignore[arg-type]
    finally:
        if old is None:
            os.environ.pop("LABKIT_KERNEL", None)
        else:
            os.environ["LABKIT_KERNEL"] = old


@SETTINGS
@given(stacks(), st.data())
def test_both_kernels_bitwise_and_match_reference(x: np.ndarray, data: st.DataObject) -> None:
    ddof = data.draw(st.integers(0, len(x) - 1), label="ddof")
    block_rows = data.draw(st.one_of(st.none(), st.integers(1, 9)), label="block_rows")
    fused = _reduce(x, "numba", ddof=ddof, block_rows=block_rows)
    plain = _reduce(x, "numpy", ddof=ddof, block_rows=block_rows)
    for a, b in zip(fused, plain, strict=True):
        assert a.dtype == b.dtype == np.float32
        assert np.array_equal(a, b, equal_nan=True)  # same IEEE operations, same order
    ref_mean, ref_std = stats.reference(x, ddof=ddof)
    assert_close(fused[0], ref_mean)
    assert_close(fused[1], ref_std)
    const = np.all(x == x[:1], axis=0)  # equal dates (NaN compares unequal): std exactly 0
    assert np.all(fused[1][const] == 0)


@SETTINGS
@given(stacks(), st.data())
def test_merge_of_random_date_splits_matches_reference(x: np.ndarray, data: st.DataObject
                                                       ) -> None:
    n = len(x)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=4),
                                label="cuts")))
    cuts = [c for c in cuts if 0 < c < n]
    min_count = data.draw(st.one_of(st.none(), st.integers(1, n)), label="min_count")
    ddof = data.draw(st.integers(0, n - 1), label="ddof")
    total = None
    for a, b in zip([0, *cuts], [*cuts, n], strict=True):
        acc = stats.Accumulator(x.shape[1:], nan_aware=min_count is not None)
        for k in range(a, b):
            acc.add(x[k])
        part = acc.partial()
        total = part if total is None else stats.merge(total, part)
    assert total is not None
    mean, std = stats.finalize(total, ddof, min_count)
    ref_mean, ref_std = stats.reference(x, ddof=ddof, min_count=min_count)
    assert_close(mean, ref_mean)
    assert_close(std, ref_std, rtol=4e-6)  # M2 merged from float64 partials
    seq = stats.reduce_stack(x, ddof=ddof, min_count=min_count)
    for a, b in zip((mean, std), seq, strict=True):  # and within 1 float32 ulp of sequential
        assert np.array_equal(np.isnan(a), np.isnan(b))
        ok = ~np.isnan(a)
        tol = np.spacing(np.maximum(np.abs(a[ok]), np.abs(b[ok])))
        assert np.all(np.abs(a[ok].astype(np.float64) - b[ok]) <= tol)
