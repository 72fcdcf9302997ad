"""Layer 22: real SLC stacks as ISCE2, isce3/OPERA, Sentinel-1 tools and GDAL lay them out.

Each fixture is built here: ISCE2 stripmapStack and topsStack trees, ENVI files as
``gdal_translate -of ENVI`` writes them, padded lines, file headers and line prefixes,
two-band ``renderVRT`` output, big-endian and integer samples, VRT mosaics, HDF5 and
netCDF subdatasets named by a VRT, OPERA and Sentinel-1 file names. Every tile is
compared with a float64 reference of what GDAL reads; every refusal is one line, exit 2,
and nothing created.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from test_20_prep import DATES, assert_close, cli, make_dates, read, reference

from labkit.io import date_from_name
from labkit.prep import date as prep_date_module
from labkit.prep import readers
from labkit.sar import discovery, isce, slc

REPO = Path(__file__).resolve().parent.parent
FLATTEN = REPO / "data_prep" / "flatten_isce_tree.sh"
CROP, LOOKS = (22, 14, 0, 0), (4, 4)  # the whole 60 × 90 SLC, multilooked (last row cut)

Builder = Callable[[Path, dict], Path]


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return make_dates(seed=3)


@pytest.fixture(scope="module")
def int_data() -> dict[str, np.ndarray]:
    """Integer-valued samples (for CInt16/CInt32), with a zero-filled edge."""
    rng = np.random.default_rng(4)
    out = {}
    for d in DATES:
        a = rng.integers(-3000, 3000, (60, 90, 2)).astype(np.float32).view(np.complex64)[..., 0]
        a[:, :5] = 0
        out[d] = a
    return out


def quiet_write(path: Path, arrays: list[np.ndarray], driver: str = "GTiff", **opts) -> None:
    """Write bands with rasterio (dtype of the first array), warnings off."""
    a = arrays[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", driver=driver, dtype=opts.pop("dtype", a.dtype.name),
                           count=len(arrays), width=a.shape[1], height=a.shape[0],
                           **opts) as ds:
            for k, b in enumerate(arrays, 1):
                ds.write(b, k)


def raw_vrt(vrt: Path, raw: str, lines: int, samples: int, bands: list[dict]) -> None:
    """A VRT of VRTRawRasterBands (keys: dtype, offset, pixel, line, order)."""
    body = "".join(
        f'<VRTRasterBand dataType="{b.get("dtype", "CFloat32")}" band="{k}" '
        f'subClass="VRTRawRasterBand"><SourceFilename relativeToVRT="1">{raw}'
        f'</SourceFilename><ByteOrder>{b.get("order", "LSB")}</ByteOrder>'
        f'<ImageOffset>{b["offset"]}</ImageOffset><PixelOffset>{b["pixel"]}</PixelOffset>'
        f'<LineOffset>{b["line"]}</LineOffset></VRTRasterBand>'
        for k, b in enumerate(bands, 1)
    )
    vrt.write_text(f'<VRTDataset rasterXSize="{samples}" rasterYSize="{lines}">{body}'
                   "</VRTDataset>")


def isce_tree(root: Path, data: dict, dates=DATES) -> Path:
    for d in dates:
        isce.write_isce_slc(root, d, data[d])
    return root


# -- layouts that must give the reference tiles -------------------------------------------


def stripmap_root(tmp: Path, data: dict) -> Path:
    """ISCE2 stripmapStack: <root>/coregSLC/Coarse/DATE/DATE.slc(.vrt, .xml) + others."""
    isce_tree(tmp / "proj" / "coregSLC" / "Coarse", data)
    (tmp / "proj" / "configs").mkdir()
    (tmp / "proj" / "configs" / "config_reference").write_text("x")
    return tmp / "proj"


def tops_root(tmp: Path, data: dict) -> Path:
    """topsStack: merged/SLC/DATE/DATE.slc.full(.vrt, .xml); undated bursts elsewhere;
    an interferogram pair folder."""
    merged = tmp / "proj" / "merged" / "SLC"
    for d in DATES:
        path = isce.write_isce_slc(merged, d, data[d])
        for suffix in ("", ".vrt", ".xml"):
            os.rename(f"{path}{suffix}", f"{path}.full{suffix}")
        vrt = Path(f"{path}.full.vrt")
        vrt.write_text(vrt.read_text().replace(f">{d}.slc<", f">{d}.slc.full<"))
        xml = Path(f"{path}.full.xml")
        xml.write_text(xml.read_text().replace(f">{d}.slc<", f">{d}.slc.full<"))
    burst = tmp / "proj" / "coreg_secondarys" / DATES[1] / "IW1"
    isce.write_isce_slc(burst, "x", data[DATES[1]][:8, :8])
    for f in (burst / "x").iterdir():
        f.rename(burst / f.name.replace("x", "burst_01"))
    ifg = tmp / "proj" / "interferograms" / f"{DATES[0]}_{DATES[1]}"
    ifg.mkdir(parents=True)
    quiet_write(ifg / f"{DATES[0]}_{DATES[1]}.int.tif", [data[DATES[0]]])
    return tmp / "proj"


def slc_full_xml_only(tmp: Path, data: dict) -> Path:
    root = tops_root(tmp, data) / "merged" / "SLC"
    for vrt in root.glob("*/*.slc.full.vrt"):
        vrt.unlink()
    return root


def envi_bin(tmp: Path, data: dict) -> Path:
    """ENVI raw + .hdr, as gdal_translate -of ENVI writes it."""
    (tmp / "envi").mkdir()
    for d in DATES:
        quiet_write(tmp / "envi" / f"{d}.bin", [data[d]], driver="ENVI")
        assert (tmp / "envi" / f"{d}.hdr").is_file()
    return tmp / "envi"


def envi_named_slc(tmp: Path, data: dict) -> Path:
    """ENVI data named DATE.slc with DATE.hdr (no ISCE .xml)."""
    src = envi_bin(tmp, data)
    for d in DATES:
        (src / f"{d}.bin").rename(src / f"{d}.slc")
    return src


def envi_big_endian(tmp: Path, data: dict) -> Path:
    (tmp / "be").mkdir()
    for d in DATES:
        data[d].astype(">c8").tofile(tmp / "be" / f"{d}.dat")
        (tmp / "be" / f"{d}.hdr").write_text(
            "ENVI\nsamples = 90\nlines = 60\nbands = 1\nheader offset = 0\n"
            "file type = ENVI Standard\ndata type = 6\ninterleave = bsq\nbyte order = 1\n")
    return tmp / "be"


def envi_interleave(interleave: str) -> Builder:
    def build(tmp: Path, data: dict) -> Path:
        (tmp / interleave).mkdir()
        for d in DATES:
            quiet_write(tmp / interleave / f"{d}.img", [data[d], data[d][::-1].copy()],
                        driver="ENVI", interleave=interleave.upper())
        assert "interleave = " + interleave in (tmp / interleave / f"{DATES[0]}.hdr"
                                                ).read_text()
        return tmp / interleave
    return build


def vrt_msb(tmp: Path, data: dict) -> Path:
    (tmp / "msb").mkdir()
    for d in DATES:
        data[d].astype(">c8").tofile(tmp / "msb" / f"{d}.raw")
        raw_vrt(tmp / "msb" / f"{d}.vrt", f"{d}.raw", 60, 90,
                [dict(offset=0, pixel=8, line=720, order="MSB")])
    return tmp / "msb"


def padded(header: int, prefix: int, pad: int) -> Builder:
    """Raw lines with a file header, a prefix before and padding after each line, and
    nothing after the last sample of the last line (GDAL reads that)."""
    def build(tmp: Path, data: dict) -> Path:
        src = tmp / "padded"
        src.mkdir()
        line = prefix + 8 * 90 + pad
        for d in DATES:
            buf = np.full(header + line * 60, 0x5A, np.uint8)
            rows = buf[header:].reshape(60, line)
            rows[:, prefix:prefix + 720] = data[d].astype("<c8").view(np.uint8).reshape(60, 720)
            buf[: header + line * 59 + prefix + 720].tofile(src / f"{d}.slc")
            raw_vrt(src / f"{d}.slc.vrt", f"{d}.slc", 60, 90,
                    [dict(offset=header + prefix, pixel=8, line=line)])
        return src
    return build


def render_vrt_two_bands(scheme: str) -> Builder:
    """ISCE renderVRT of a two-band CFloat32 file (BIL or BIP); band 1 is the SLC."""
    def build(tmp: Path, data: dict) -> Path:
        src = tmp / f"two-{scheme}"
        src.mkdir()
        for d in DATES:
            a, b = data[d].astype("<c8"), data[d].conj().astype("<c8")
            both = np.stack([a, b], axis=1 if scheme == "bil" else 2)  # lines, ..., ...
            both.tofile(src / f"{d}.slc")
            if scheme == "bil":
                bands = [dict(offset=0, pixel=8, line=1440), dict(offset=720, pixel=8, line=1440)]
            else:
                bands = [dict(offset=0, pixel=16, line=1440), dict(offset=8, pixel=16, line=1440)]
            raw_vrt(src / f"{d}.slc.vrt", f"{d}.slc", 60, 90, bands)
        return src
    return build


def int_vrt(dtype: str) -> Builder:
    def build(tmp: Path, data: dict) -> Path:
        src = tmp / dtype
        src.mkdir()
        np_type, nbytes = {"CInt16": ("<i2", 4), "CInt32": ("<i4", 8)}[dtype]
        for d in DATES:
            a = data[d].view(np.float32).astype(np_type)  # re, im interleaved
            a.tofile(src / f"{d}.cint")
            raw_vrt(src / f"{d}.vrt", f"{d}.cint", 60, 90,
                    [dict(dtype=dtype, offset=0, pixel=nbytes, line=nbytes * 90)])
        return src
    return build


def cfloat64_tiff(tmp: Path, data: dict) -> Path:
    (tmp / "c128").mkdir()
    for d in DATES:
        quiet_write(tmp / "c128" / f"{d}.tif", [data[d].astype(np.complex128)])
    return tmp / "c128"


def mosaic_vrt(tmp: Path, data: dict) -> Path:
    """Each date a VRT mosaic (SimpleSource) of two GeoTIFF halves."""
    src = tmp / "mosaic"
    (src / "parts").mkdir(parents=True)
    for d in DATES:
        quiet_write(src / "parts" / f"{d}_a.tif", [data[d][:, :50].copy()])
        quiet_write(src / "parts" / f"{d}_b.tif", [data[d][:, 50:].copy()])
        sources = "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="1">parts/{d}_{part}.tif'
            f'</SourceFilename><SourceBand>1</SourceBand><SrcRect xOff="0" yOff="0" '
            f'xSize="{w}" ySize="60"/><DstRect xOff="{x0}" yOff="0" xSize="{w}" ySize="60"/>'
            "</SimpleSource>"
            for part, x0, w in (("a", 0, 50), ("b", 50, 40)))
        (src / f"{d}.vrt").write_text(
            f'<VRTDataset rasterXSize="90" rasterYSize="60"><VRTRasterBand '
            f'dataType="CFloat32" band="1">{sources}</VRTRasterBand></VRTDataset>')
    return src


def subdataset_vrt(kind: str) -> Builder:
    """An HDF5 / netCDF-4 file per date holding a complex dataset, named by a VRT."""
    def build(tmp: Path, data: dict) -> Path:
        h5py = pytest.importorskip("h5py")
        src = tmp / kind
        src.mkdir()
        for d in DATES:
            name = f"{d}.{'h5' if kind == 'hdf5' else 'nc'}"
            with h5py.File(src / name, "w") as f:
                if kind == "hdf5":
                    f.create_dataset("science/SLC", data=data[d])
                    conn = f'HDF5:"{name}"://science/SLC'
                else:  # netCDF-4: dimension scales make it a netCDF variable
                    f["y"], f["x"] = np.arange(60.0), np.arange(90.0)
                    f["y"].make_scale("y")
                    f["x"].make_scale("x")
                    v = f.create_dataset("SLC", data=data[d])
                    v.dims[0].attach_scale(f["y"])
                    v.dims[1].attach_scale(f["x"])
                    conn = f'NETCDF:"{name}":SLC'
            (src / f"{d}.vrt").write_text(
                '<VRTDataset rasterXSize="90" rasterYSize="60"><VRTRasterBand '
                f'dataType="CFloat32" band="1"><SimpleSource><SourceFilename '
                f'relativeToVRT="1">{conn}</SourceFilename><SourceBand>1</SourceBand>'
                "</SimpleSource></VRTRasterBand></VRTDataset>")
        return src
    return build


def opera_names(tmp: Path, data: dict) -> Path:
    """OPERA CSLC names: acquisition time, then the (later, shared) production time."""
    (tmp / "opera").mkdir()
    for d in DATES:
        quiet_write(tmp / "opera" / f"OPERA_L2_CSLC-S1_T064-135518-IW1_{d}T015035Z_"
                    "20240625T000000Z_S1A_VV_v1.1.tif", [data[d]])
    return tmp / "opera"


def s1_names(tmp: Path, data: dict) -> Path:
    """Sentinel-1 names: start, then stop (here the next day: a pass over midnight)."""
    (tmp / "s1").mkdir()
    stops = {DATES[0]: DATES[1], DATES[1]: DATES[2], DATES[2]: "20230201"}
    for d in DATES:
        quiet_write(tmp / "s1" / f"s1a-iw1-slc-vv-{d}t235950-{stops[d]}t000015-043000-"
                    "052000-004.tiff", [data[d]])
    return tmp / "s1"


LAYOUTS: dict[str, Builder] = {
    "stripmap-root": stripmap_root,
    "tops-root": tops_root,
    "slc-full-with-xml-only": slc_full_xml_only,
    "envi-bin": envi_bin,
    "envi-named-slc": envi_named_slc,
    "envi-big-endian": envi_big_endian,
    "envi-bil": envi_interleave("bil"),
    "envi-bip": envi_interleave("bip"),
    "envi-bsq": envi_interleave("bsq"),
    "vrt-big-endian": vrt_msb,
    "vrt-line-padding": padded(0, 0, 24),
    "vrt-header-and-line-prefix": padded(720, 12, 0),
    "render-vrt-two-bands-bil": render_vrt_two_bands("bil"),
    "render-vrt-two-bands-bip": render_vrt_two_bands("bip"),
    "vrt-mosaic": mosaic_vrt,
    "cfloat64-geotiff": cfloat64_tiff,
    "hdf5-subdataset": subdataset_vrt("hdf5"),
    "netcdf-subdataset": subdataset_vrt("netcdf"),
    "opera-names": opera_names,
    "sentinel1-names": s1_names,
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_gives_the_reference_tiles(tmp_path, data, layout, capsys):
    src = LAYOUTS[layout](tmp_path, data)
    files = discovery.find_slcs(src)
    assert [slc.open_slc_checked(f).date for f in files] == list(DATES)
    rc, err = cli(["prep", src, tmp_path / "out", "--crop", ",".join(map(str, CROP))], capsys)
    assert rc == 0, err
    for d in DATES:
        want = data[d]
        if layout == "netcdf-subdataset":  # whatever orientation GDAL's netCDF driver gives
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with rasterio.open(f'NETCDF:"{src / d}.nc":SLC') as ds:
                    want = ds.read(1)
        assert_close(read(tmp_path / "out" / f"{d}_int_crop.tif"), reference(want, CROP, LOOKS))


@pytest.mark.parametrize("dtype", ["CInt16", "CInt32"])
def test_integer_samples(tmp_path, int_data, dtype, capsys):
    src = int_vrt(dtype)(tmp_path, int_data)
    rc, err = cli(["prep", src, tmp_path / "out", "--crop", "22,14,0,0"], capsys)
    assert rc == 0, err
    for d in DATES:
        assert_close(read(tmp_path / "out" / f"{d}_int_crop.tif"),
                     reference(int_data[d], CROP, LOOKS))


def test_raw_fast_path_takes_padded_lines_and_equals_gdal(tmp_path, data, monkeypatch):
    """Padded lines without padding after the last one are read raw (pread), and give
    the bits GDAL gives."""
    src = padded(720, 12, 24)(tmp_path, data)
    info = slc.open_slc_checked(src / f"{DATES[0]}.slc.vrt")
    assert info.layout is not None and info.layout.offset == 732
    prep_date_module.prep_date(info.path, tmp_path / "raw.tif", CROP, LOOKS)
    monkeypatch.setattr(readers, "raw_layout", lambda info: None)  # force GDAL's reader
    prep_date_module.prep_date(info.path, tmp_path / "gdal.tif", CROP, LOOKS)
    assert np.array_equal(read(tmp_path / "raw.tif"), read(tmp_path / "gdal.tif"),
                          equal_nan=True)


def test_truncated_second_band_is_refused_by_gdals_rule(tmp_path, data, capsys):
    src = render_vrt_two_bands("bil")(tmp_path, data)
    raw = src / f"{DATES[1]}.slc"
    os.truncate(raw, raw.stat().st_size - 8)  # band 2's last sample is missing
    rc, err = cli(["prep", src, tmp_path / "out", "--crop", "5,5,0,0"], capsys)
    assert rc == 2 and "is truncated" in err and str(raw) in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, date", [
    ("OPERA_L2_CSLC-S1_T064-135518-IW1_20220501T015035Z_20240625T000000Z_S1A_VV_v1.1.h5",
     "20220501"),
    ("s1a-iw1-slc-vv-20220501t235950-20220502t000015-043000-052000-004.tiff", "20220501"),
    ("20230105.slc.full.vrt", "20230105"),
])
def test_the_acquisition_date_is_the_first_in_the_name(name, date):
    assert date_from_name(name) == date


# -- refusals: one line, exit 2, nothing created ------------------------------------------


def coarse_and_fine(tmp: Path, data: dict) -> Path:
    isce_tree(tmp / "proj" / "coregSLC" / "Coarse", data)
    isce_tree(tmp / "proj" / "coregSLC" / "Fine", data, DATES[1:])
    return tmp / "proj"


def slc_and_coregslc(tmp: Path, data: dict) -> Path:
    isce_tree(tmp / "proj" / "SLC", data)
    isce_tree(tmp / "proj" / "coregSLC" / "Coarse", data, DATES[1:])
    return tmp / "proj"


def bursts_only(tmp: Path, data: dict) -> Path:
    for k in (1, 2):
        path = isce.write_isce_slc(tmp / "proj" / "reference" / "IW1", "x", data[DATES[0]])
        for f in path.parent.iterdir():
            f.rename(path.parent.parent / f.name.replace("x", f"burst_0{k}"))
    return tmp / "proj"


def mosaic_source_missing(tmp: Path, data: dict) -> Path:
    src = mosaic_vrt(tmp, data)
    (src / "parts" / f"{DATES[2]}_b.tif").unlink()
    return src


def same_acquisition_twice(tmp: Path, data: dict) -> Path:
    src = opera_names(tmp, data)
    shutil.copy(next(src.glob(f"*_{DATES[0]}T*")),
                src / f"OPERA_L2_CSLC-S1_T064-135518-IW1_{DATES[0]}T015035Z_"
                      "20240701T000000Z_S1A_VV_v1.1.tif")
    return src


REFUSALS: dict[str, tuple[Builder, list[str]]] = {
    "coarse-and-fine": (coarse_and_fine, ["holds 2 SLC stacks", "coregSLC/Coarse (3 dates)",
                                          "coregSLC/Fine (2 dates)", "pass one"]),
    "slc-and-coregslc": (slc_and_coregslc, ["SLC (3 dates)", "coregSLC/Coarse (2 dates)"]),
    "undated-bursts-only": (bursts_only, ["no SLCs in", "no date in the name",
                                          "burst_0"]),
    "mosaic-source-missing": (mosaic_source_missing, [f"parts/{DATES[2]}_b.tif",
                                                      "does not exist"]),
    "same-acquisition-twice": (same_acquisition_twice, [f"two SLCs for date {DATES[0]}"]),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusal_is_one_line_and_creates_nothing(tmp_path, data, case, capsys):
    build, texts = REFUSALS[case]
    src = build(tmp_path, data)
    before = sorted(p for p in tmp_path.rglob("*"))
    rc, err = cli(["prep", src, tmp_path / "out", "--crop", "5,5,0,0"], capsys)
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("labkit: error: ")
    for text in texts:
        assert text in err
    assert sorted(p for p in tmp_path.rglob("*")) == before  # no destination folder


def test_each_candidate_stack_alone_is_accepted(tmp_path, data, capsys):
    proj = coarse_and_fine(tmp_path, data)
    for stack, n in (("Coarse", 3), ("Fine", 2)):
        files = discovery.find_slcs(proj / "coregSLC" / stack)
        assert len(files) == n


def test_a_read_error_names_gdals_cause(tmp_path, data, capsys, monkeypatch):
    """If a mosaic's source disappears after validation, GDAL's own cause reaches the
    user (not "Read failed. See previous exception for details.")."""
    src = mosaic_vrt(tmp_path, data)
    monkeypatch.setattr(slc, "_check_sources", lambda path, root: None)
    (src / "parts" / f"{DATES[1]}_a.tif").unlink()
    rc, err = cli(["prep", src, tmp_path / "out", "--crop", "5,5,0,0"], capsys)
    assert rc == 2 and f"{DATES[1]}_a.tif" in err and "previous exception" not in err


def test_all_nan_tiles_warn_once_and_exit_0(tmp_path, data, capsys):
    zero = dict(data)
    zero[DATES[1]] = np.zeros_like(data[DATES[1]])  # an all-zero SLC
    src = isce_tree(tmp_path / "tree", zero)
    rc, err = cli(["prep", src, tmp_path / "out", "--crop", "5,5,0,0", "--jobs", "2"], capsys)
    assert rc == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labkit: warning: ")
    assert DATES[1] in lines[0] and DATES[0] not in lines[0] and "entirely NaN" in lines[0]
    assert np.isnan(read(tmp_path / "out" / f"{DATES[1]}_int_crop.tif")).all()
    rc, err = cli(["prep", src, tmp_path / "out2", "--crop", "1,5,0,0"], capsys)  # zero edge
    assert rc == 0 and "the tiles of " + ", ".join(DATES) + " are entirely NaN" in err


# -- flatten_isce_tree.sh -------------------------------------------------------------------


def flatten(src: Path, flat: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(FLATTEN), str(src), str(flat)], capture_output=True,
                          text=True, check=False, timeout=60)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_flatten_links_the_coregistered_dates_and_says_what_it_skipped(tmp_path, data, capsys):
    proj = tmp_path / "proj"
    isce_tree(proj / "SLC", data)  # before coregistration: never linked
    isce_tree(proj / "coregSLC" / "Coarse", data, DATES[1:])
    burst = isce.write_isce_slc(proj / "coregSLC" / "Coarse" / DATES[1] / "IW1", "x",
                                data[DATES[0]][:8, :8])
    for f in burst.parent.iterdir():
        f.rename(burst.parent / f.name.replace("x", "burst_01"))
    run = flatten(proj, tmp_path / "flat")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == [
        f"{d}.slc.vrt" for d in DATES[1:]]
    assert "linked 2 SLC VRTs" in run.stdout and "skipped 4" in run.stdout
    assert run.stderr.count("SLC/ holds the dates before coregistration") == 3
    assert "burst_01.slc.vrt: no YYYYMMDD date" in run.stderr
    rc, err = cli(["prep", tmp_path / "flat", tmp_path / "tiles", "--crop", "5,5,0,0"], capsys)
    assert rc == 0, err


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_flatten_knows_slc_full_vrt_and_refuses_two_stacks(tmp_path, data):
    proj = tops_root(tmp_path, data)
    run = flatten(proj, tmp_path / "flat")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "flat").iterdir()) == [
        f"{d}.slc.full.vrt" for d in DATES]
    assert "burst_01.slc.vrt" in run.stderr
    two = coarse_and_fine(tmp_path / "two", data)
    run = flatten(two, tmp_path / "flat2")
    assert run.returncode == 2 and "more than one stack" in run.stderr
    assert "coregSLC/Coarse (3 dates)" in run.stderr and "coregSLC/Fine (2 dates)" in run.stderr
    assert not (tmp_path / "flat2").exists()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_flatten_exits_1_when_nothing_useful_is_linked(tmp_path, data):
    isce_tree(tmp_path / "proj" / "SLC", data)
    run = flatten(tmp_path / "proj", tmp_path / "flat")
    assert run.returncode == 1 and "no dated, coregistered" in run.stderr
