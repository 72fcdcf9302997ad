"""Layer 21: prep's compiled kernel and raw reads — bit for bit the NumPy/GDAL path.

``labkit._prepkernel`` (|S|² + multilook in one pass, GIL released) must give exactly
the bits of ``multilook(intensity(slc), looks)``, for any looks, column offset and
special samples (0, NaN, ±inf, underflow, overflow); raw ``pread`` reads of ISCE2 SLCs
must give the tiles GDAL reads give; ``LABKIT_PREP_KERNEL`` switches kernels.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio

from labkit import config, prep
from labkit.errors import LabError
from labkit.prep import date as prep_date_module
from labkit.prep import kernel as prep_kernel
from labkit.sar.isce import write_isce_slc
from labkit.sar.slc import RawLayout, open_slc_checked

LOOKS = [(1, 1), (4, 4), (2, 8), (3, 5), (8, 1)]
DATE = "20230105"


@pytest.fixture(scope="module")
def ck():
    mod = prep_kernel.c_module()
    if mod is None:
        pytest.fail("labkit._prepkernel is not built: reinstall with `make venv` "
                    "(pip install -e . needs a C compiler)")
    return mod


def special_slc(seed: int, lines: int, samples: int) -> np.ndarray:
    """Random complex64 with zeros, NaN, ±inf, tiny (|S|² underflows to 0) and huge
    (|S|² overflows to inf, or a mean above float32's range) samples."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((lines, 2 * samples), dtype=np.float32)
    v *= np.float32(10.0) ** rng.integers(-3, 4, v.shape).astype(np.float32)
    specials = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-30, 3e-23, 1e-45,
                         1.8e19, 1.9e19, 3e19, -2.6e19], np.float32)
    pick = rng.random(v.shape) < 0.06
    v[pick] = rng.choice(specials, pick.sum())
    slc = v.view(np.complex64)
    slc[rng.random(slc.shape) < 0.03] = 0  # whole samples 0 (no-data)
    slc[:, :3] = 0  # zero-filled range edge
    return slc


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


@pytest.mark.parametrize("looks", LOOKS, ids=lambda lk: f"{lk[0]}x{lk[1]}")
@pytest.mark.parametrize("cell0", [0, 1, 3])
def test_c_multilook_is_bitwise_numpy(ck, looks, cell0):
    laz, lrg = looks
    slc = special_slc(laz * 10 + lrg + cell0, 8 * laz + laz - 1, 37 * lrg + 5)  # partial cells
    col0 = cell0 * lrg
    rows, cols = slc.shape[0] // laz, (slc.shape[1] - col0) // lrg
    out = np.full((rows, cols), 7, np.float32)
    with np.errstate(all="ignore"):
        ck.multilook(slc, out, rows, cols, slc.shape[1], col0, laz, lrg)
        ref = prep.multilook(prep.intensity(slc[:, col0:]), looks)
        kern = prep_kernel.Kernel(rows, cols, looks, "numpy")
        kern.slc[...] = slc[: rows * laz, col0:col0 + cols * lrg]
        run = kern.run(rows)
    assert np.array_equal(bits(out), bits(ref))
    assert np.array_equal(bits(run), bits(ref))
    assert np.isnan(out).any() and (~np.isnan(out)).any()


def test_c_multilook_checks_its_arguments(ck):
    slc = np.ones((4, 8), np.complex64)
    out = np.empty((1, 2), np.float32)
    with pytest.raises(ValueError):
        ck.multilook(slc, out, 1, 3, 8, 0, 4, 4)  # 3 cells of 4 samples > 8 samples
    with pytest.raises(ValueError):
        ck.multilook(slc, out, 2, 2, 8, 0, 4, 4)  # 8 lines needed, 4 given
    with pytest.raises(ValueError):
        ck.multilook(slc, out, 1, 2, 8, 0, 0, 4)
    with pytest.raises(TypeError):
        ck.multilook(slc, b"read-only", 1, 2, 8, 0, 4, 4)


def write_raw(path: Path, slc: np.ndarray, offset: int, pad: int) -> RawLayout:
    """A raw file: ``offset`` junk bytes, then lines of samples + ``pad`` junk bytes."""
    line_bytes = slc.shape[1] * 8 + pad
    rng = np.random.default_rng(1)
    buf = bytearray(rng.integers(0, 256, offset + line_bytes * slc.shape[0], np.uint8))
    for k, line in enumerate(np.asarray(slc, "<c8")):
        start = offset + k * line_bytes
        buf[start:start + slc.shape[1] * 8] = line.tobytes()
    path.write_bytes(bytes(buf))
    return RawLayout(path, offset, line_bytes)


@pytest.mark.parametrize("crop,looks", [((30, 9, 1, 2), (4, 4)),  # wide: one read per group
                                        ((3, 5, 2, 20), (3, 5)),  # narrow: a read per line
                                        ((9, 70, 0, 0), (1, 1))])
def test_c_read_multilook_equals_numpy(ck, tmp_path, crop, looks):
    slc = special_slc(3, 80, 136)
    layout = write_raw(tmp_path / "x.raw", slc, offset=24, pad=16)
    w, h, r0, c0 = crop
    laz, lrg = looks
    out = np.empty((h, w), np.float32)
    fd = os.open(layout.path, os.O_RDONLY)
    try:
        ck.read_multilook(fd, layout.offset + r0 * laz * layout.line_bytes, layout.line_bytes,
                          out, h, w, c0 * lrg, laz, lrg)
        with pytest.raises(EOFError):  # one row past the end of the file
            ck.read_multilook(fd, layout.offset + (80 // laz - h + 1) * laz * layout.line_bytes,
                              layout.line_bytes, out, h, w, c0 * lrg, laz, lrg)
    finally:
        os.close(fd)
    with np.errstate(all="ignore"):
        ref = prep.multilook(prep.intensity(
            slc[r0 * laz:(r0 + h) * laz, c0 * lrg:(c0 + w) * lrg]), looks)
    assert np.array_equal(bits(out), bits(ref))


# -- whole tiles: kernels and readers ---------------------------------------------------


@pytest.fixture(scope="module")
def isce_slc(tmp_path_factory) -> Path:
    """An ISCE2 date (.slc + .slc.vrt + .slc.xml) with special samples: 83 x 150."""
    root = tmp_path_factory.mktemp("isce")
    return write_isce_slc(root, DATE, special_slc(5, 83, 150))


def tile(path: Path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return ds.read(1)


CASES = [((36, 19, 1, 1), (4, 4)), ((16, 40, 0, 2), (2, 8)), ((5, 11, 3, 20), (3, 5))]


@pytest.mark.parametrize("crop,looks", CASES)
def test_tile_is_the_same_for_every_kernel_and_reader(tmp_path, monkeypatch, isce_slc, crop,
                                                      looks):
    monkeypatch.setattr(config, "PREP_BLOCK_BYTES", 6000)  # several blocks + a partial one
    vrt = isce_slc.with_name(isce_slc.name + ".vrt")
    raw = open_slc_checked(vrt)
    assert raw.layout == RawLayout(isce_slc, 0, 150 * 8)
    assert open_slc_checked(isce_slc).layout == raw.layout  # the .slc.xml says the same
    gdal = dataclasses.replace(raw, layout=None)  # force rasterio reads
    tiles = {}
    with np.errstate(all="ignore"):
        for kernel in ("numpy", "c"):
            monkeypatch.setenv("LABKIT_PREP_KERNEL", kernel)
            for name, info in (("raw", raw), ("gdal", gdal)):
                for threads in (1, 2):
                    out = tmp_path / f"{kernel}-{name}-{threads}.tif"
                    prep_date_module.prep_one(info, out, crop, looks, threads)
                    tiles[out.stem] = tile(out)
        w, h, r0, c0 = crop
        laz, lrg = looks
        slc = np.fromfile(isce_slc, "<c8").reshape(83, 150)
        ref = prep.multilook(prep.intensity(
            slc[r0 * laz:(r0 + h) * laz, c0 * lrg:(c0 + w) * lrg]), looks)
    for name, t in tiles.items():
        assert np.array_equal(bits(t), bits(ref)), name


def test_prep_date_with_either_kernel(tmp_path, monkeypatch, isce_slc):
    outs = []
    for kernel in ("numpy", "c", "auto"):
        monkeypatch.setenv("LABKIT_PREP_KERNEL", kernel)
        prep.prep_date(isce_slc, tmp_path / f"{kernel}.tif", (30, 20, 0, 1), 4)
        outs.append(tile(tmp_path / f"{kernel}.tif"))
    assert np.array_equal(bits(outs[0]), bits(outs[1]))
    assert np.array_equal(bits(outs[0]), bits(outs[2]))


def test_big_endian_isce_goes_through_gdal(tmp_path, isce_slc):
    slc = np.fromfile(isce_slc, "<c8").reshape(83, 150)
    be = tmp_path / DATE / f"{DATE}.slc"
    be.parent.mkdir()
    slc.astype(">c8").tofile(be)
    xml = isce_slc.with_name(isce_slc.name + ".xml").read_text()
    be.with_name(be.name + ".xml").write_text(xml.replace("<value>l</value>", "<value>b</value>"))
    info = open_slc_checked(be)
    assert info.layout is None and info.dtype == "complex64"
    prep.prep_date(be, tmp_path / "be.tif", (30, 20, 0, 0), 4)
    prep.prep_date(isce_slc, tmp_path / "le.tif", (30, 20, 0, 0), 4)
    assert np.array_equal(bits(tile(tmp_path / "be.tif")), bits(tile(tmp_path / "le.tif")))


@pytest.mark.parametrize("kernel", ["numpy", "c"])
def test_raw_file_truncated_while_running_is_one_line(tmp_path, monkeypatch, isce_slc, kernel):
    monkeypatch.setenv("LABKIT_PREP_KERNEL", kernel)
    copy = tmp_path / DATE / f"{DATE}.slc"
    copy.parent.mkdir()
    for suffix in ("", ".xml"):
        copy.with_name(copy.name + suffix).write_bytes(
            isce_slc.with_name(isce_slc.name + suffix).read_bytes())
    info = open_slc_checked(copy)
    with open(copy, "r+b") as fh:  # cut after validation, before the read
        fh.truncate(40 * 150 * 8)
    out = tmp_path / "t.tif"
    with pytest.raises(LabError, match="ends before the last line") as exc:
        prep_date_module.prep_one(info, out, (30, 20, 0, 0), (4, 4), 2)
    assert "\n" not in str(exc.value)
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_kernel_switch(monkeypatch):
    monkeypatch.setenv("LABKIT_PREP_KERNEL", "numpy")
    assert prep.kernel_name() == "numpy"
    monkeypatch.setenv("LABKIT_PREP_KERNEL", "fortran")
    with pytest.raises(LabError, match="auto, c or numpy"):
        prep.kernel_name()
    monkeypatch.setattr(prep_kernel, "c_module", lambda: None)  # as if it were not built
    monkeypatch.setenv("LABKIT_PREP_KERNEL", "auto")
    assert prep.kernel_name() == "numpy"
    monkeypatch.setenv("LABKIT_PREP_KERNEL", "c")
    with pytest.raises(LabError, match="not built"):
        prep.kernel_name()
