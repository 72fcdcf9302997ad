"""Layer 20: prep — SLC → |S|² → multilook → crop → float32 GeoTIFF tiles.

Every output is compared with a float64 NumPy reference (relative error ≤ 1e-6, same NaN
pixels); every SRC layout gives the same tiles; bad input exits 2 with one line and
writes nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import faults
import numpy as np
import pytest
import rasterio

from labkit import config, prep
from labkit.cli import main
from labkit.errors import LabError
from labkit.sar.discovery import find_slcs
from labkit.sar.isce import write_isce_slc
from labkit.sar.slc import open_slc_checked

REPO = Path(__file__).resolve().parent.parent
DATES = ("20230105", "20230113", "20230121")
LINES, SAMPLES = 60, 90  # SLC size of the test stacks


def reference(slc: np.ndarray, crop, looks) -> np.ndarray:
    """Float64 reference: |S|², NaN at no-data (0 or non-finite), mean per cell, crop."""
    w, h, r0, c0 = crop
    laz, lrg = looks
    s = slc[r0 * laz:(r0 + h) * laz, c0 * lrg:(c0 + w) * lrg].astype(np.complex128)
    inten = s.real**2 + s.imag**2
    inten[(s == 0) | ~np.isfinite(s)] = np.nan
    return inten.reshape(h, laz, w, lrg).mean(axis=(1, 3))


def assert_close(out: np.ndarray, ref: np.ndarray) -> None:
    assert out.dtype == np.float32 and out.shape == ref.shape
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert ok.any()
    assert np.max(np.abs(out[ok] - ref[ok]) / ref[ok]) <= 1e-6


def random_slc(rng, lines=LINES, samples=SAMPLES, scale=1.0) -> np.ndarray:
    a = rng.standard_normal((lines, samples, 2), dtype=np.float32) * np.float32(scale)
    return a.view(np.complex64)[..., 0]


def make_dates(seed=0, lines=LINES, samples=SAMPLES) -> dict[str, np.ndarray]:
    """Random dates with zero-filled edges and non-finite samples (no-data)."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, d in enumerate(DATES):
        a = random_slc(rng, lines, samples, scale=10.0 ** (k - 1))
        a[:, :5] = 0  # zero-filled range edge (5 samples: cuts through a 4-look cell)
        a[-3:, :] = 0  # zero-filled azimuth edge
        a[10, 20] = np.nan
        a[21, 33] = np.inf
        a[30, 41] = complex(1.0, -np.inf)
        a[40, 50] = 0  # a single zero sample
        out[d] = a
    return out


def read(path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            assert ds.driver == "GTiff" and ds.count == 1 and np.isnan(ds.nodata)
            return ds.read(1)


def write_tree(root: Path, dates: dict[str, np.ndarray]) -> Path:
    for d, a in dates.items():
        write_isce_slc(root, d, a)
    return root


def write_flat(tree: Path, flat: Path) -> Path:
    """The course's SLC_FINE_LOCAL: symlinks to the tree's *.slc.vrt."""
    flat.mkdir()
    for vrt in sorted(tree.glob("*/*.slc.vrt")):
        (flat / vrt.name).symlink_to(vrt)
    return flat


def write_raw(root: Path, dates: dict[str, np.ndarray]) -> Path:
    """Raw .slc + .xml only (GDAL's ISCE driver)."""
    write_tree(root, dates)
    for vrt in root.glob("*/*.slc.vrt"):
        vrt.unlink()
    return root


def write_gtiff(root: Path, dates: dict[str, np.ndarray]) -> Path:
    root.mkdir()
    for d, a in dates.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(root / f"S1_{d}.tif", "w", driver="GTiff", dtype="complex64",
                               count=1, width=a.shape[1], height=a.shape[0]) as ds:
                ds.write(a, 1)
    return root


@pytest.fixture(scope="module")
def data():
    return make_dates()


@pytest.fixture
def tree(tmp_path, data):
    return write_tree(tmp_path / "tree", data)


def cli(argv, capsys) -> tuple[int, str]:
    """Run ``labkit ...``; (exit code, stderr). Parser errors exit via SystemExit."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    return rc, capsys.readouterr().err


# -- kernel ------------------------------------------------------------------------------


def test_intensity_and_multilook_match_float64_reference(data):
    a = data["20230113"]
    inten = prep.intensity(a)
    assert inten.dtype == np.float32 and inten.shape == a.shape
    assert np.isnan(inten[:, :5]).all() and np.isnan(inten[10, 20]) and np.isnan(inten[21, 33])
    for looks in [(4, 4), (2, 3), (1, 1), (3, 1)]:
        ml = prep.multilook(inten, looks)
        h, w = LINES // looks[0], SAMPLES // looks[1]
        assert ml.shape == (h, w)
        assert_close(ml, reference(a, (w, h, 0, 0), looks))
    assert prep.multilook(inten, 4).shape == prep.multilook(inten, (4, 4)).shape


def test_intensity_rejects_real_input_and_bad_looks():
    with pytest.raises(LabError, match="complex"):
        prep.intensity(np.ones((2, 2), np.float32))
    with pytest.raises(LabError, match="≥ 1"):
        prep.multilook(np.ones((4, 4), np.float32), (0, 4))


# -- prep_stack against the reference ---------------------------------------------------


@pytest.mark.parametrize("crop, looks", [
    ((20, 14, 0, 0), (4, 4)),  # the whole multilooked image (60/4 = 15 rows → 14 + 1)
    ((7, 5, 3, 2), (4, 4)),  # non-square with offsets
    ((30, 20, 1, 0), (2, 3)),  # 2×3 looks, up to the last column
    ((11, 9, 4, 6), (3, 2)),
])
def test_prep_stack_matches_reference(tmp_path, tree, data, monkeypatch, crop, looks):
    monkeypatch.setattr(config, "PREP_BLOCK_BYTES", 5000)  # several row blocks + a partial one
    s = prep.prep_stack(tree, tmp_path / "out", crop, looks, progress=False)
    w, h = crop[:2]
    assert s.n_dates == 3 and s.skipped == 0
    assert s.bytes_read == 3 * h * looks[0] * w * looks[1] * 8  # only the crop's window
    assert [p.name for p in s.outputs] == [f"{d}_int_crop.tif" for d in DATES]
    for d, p in zip(DATES, s.outputs, strict=True):
        assert_close(read(p), reference(data[d], crop, looks))
    assert sorted(os.listdir(tmp_path / "out")) == [p.name for p in s.outputs]  # no temps


def test_zero_edges_and_non_finite_samples_are_nan(tmp_path, tree, data):
    s = prep.prep_stack(tree, tmp_path / "out", (20, 14, 0, 0), (4, 4), progress=False)
    out = read(s.outputs[0])
    assert np.isnan(out[:, :2]).all()  # samples 0-4 are zero: cells 0 and 1 touch them
    assert not np.isnan(out[:14, 2:]).all()
    assert np.isnan(out[10 // 4, 20 // 4]) and np.isnan(out[21 // 4, 33 // 4])
    assert np.isnan(out[30 // 4, 41 // 4]) and np.isnan(out[40 // 4, 50 // 4])
    assert np.isnan(out[14 - 1, 2:]).sum() == 0  # line 56..59: only 57-59 are zero → row 14


def test_prep_date_and_bitwise_equal_to_public_kernel(tmp_path, tree, data):
    vrt = tree / DATES[0] / f"{DATES[0]}.slc.vrt"
    n = prep.prep_date(vrt, tmp_path / "one.tif", (9, 6, 2, 3), (2, 3))
    assert n == 6 * 2 * 9 * 3 * 8
    full = prep.multilook(prep.intensity(data[DATES[0]]), (2, 3))
    assert np.array_equal(read(tmp_path / "one.tif"), full[2:8, 3:12], equal_nan=True)


# -- SRC layouts ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["nested", "flat-symlinks", "raw-slc-xml", "geotiff"])
def test_every_src_layout_gives_the_same_tiles(tmp_path, data, layout):
    tree = write_tree(tmp_path / "tree", data)
    src = {
        "nested": lambda: tree,
        "flat-symlinks": lambda: write_flat(tree, tmp_path / "SLC_FINE_LOCAL"),
        "raw-slc-xml": lambda: write_raw(tmp_path / "raw", data),
        "geotiff": lambda: write_gtiff(tmp_path / "tifs", data),
    }[layout]()
    files = find_slcs(src)
    assert len(files) == 3
    crop, looks = (10, 7, 2, 4), (4, 3)
    s = prep.prep_stack(src, tmp_path / "out", crop, looks, progress=False)
    for d, p in zip(DATES, s.outputs, strict=True):
        assert_close(read(p), reference(data[d], crop, looks))


def test_complex_int16_geotiff(tmp_path):
    rng = np.random.default_rng(5)
    re, im = rng.integers(-300, 300, (2, 24, 36)).astype(np.int16)
    re[0, :3] = im[0, :3] = 0
    src = tmp_path / "cint16"
    src.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(src / "20230105.tif", "w", driver="GTiff", dtype="complex_int16",
                           count=1, width=36, height=24) as ds:
            ds.write((re + 1j * im).astype(np.complex64), 1)
    s = prep.prep_stack(src, tmp_path / "o", (12, 6, 0, 0), (4, 3), progress=False)
    assert s.bytes_read == 24 * 36 * 4  # 4 bytes per CInt16 sample on disk
    assert_close(read(s.outputs[0]), reference(re + 1j * im, (12, 6, 0, 0), (4, 3)))


def test_find_slcs_prefers_the_vrt_and_ignores_other_files(tree):
    (tree / "truth").mkdir()
    shutil.copy(tree / DATES[0] / f"{DATES[0]}.slc.vrt", tree / "truth" / "notes.vrt")
    (tree / "manifest.json").write_text("{}")
    (tree / f"{DATES[0]}_int_crop.tif").write_text("")  # prep's own output: never input
    files = find_slcs(tree)
    assert [f.name for f in files] == [f"{d}.slc.vrt" for d in DATES]
    info = open_slc_checked(files[0])
    assert (info.date, info.lines, info.samples, info.dtype) == (DATES[0], LINES, SAMPLES,
                                                                 "complex64")
    assert info.raw == tree / DATES[0] / f"{DATES[0]}.slc"


# -- parallel, CLI, overwrite -----------------------------------------------------------


def test_jobs_2_equals_jobs_1_bitwise(tmp_path, tree, capsys):
    for jobs, out in [(1, "j1"), (2, "j2")]:
        rc, err = cli(["prep", tree, tmp_path / out, "--crop", "12,10,1,2", "--looks", "4x6",
                       "--jobs", jobs], capsys)
        assert rc == 0, err
    for d in DATES:
        name = f"{d}_int_crop.tif"
        assert (tmp_path / "j1" / name).read_bytes() == (tmp_path / "j2" / name).read_bytes()


def test_cli_prints_throughput(tmp_path, tree, capsys):
    assert main(["prep", str(tree), str(tmp_path / "o"), "--crop", "5,5,0,0"]) == 0
    line = capsys.readouterr().out.strip()
    assert "3 of 3 dates" in line and "MB/s" in line


def test_overwrite_false_keeps_up_to_date_tiles(tmp_path, tree):
    out = tmp_path / "o"
    prep.prep_stack(tree, out, (5, 5, 0, 0), progress=False)
    first = out / f"{DATES[0]}_int_crop.tif"
    stamp = first.stat().st_mtime_ns
    (out / f"{DATES[1]}_int_crop.tif").unlink()
    s = prep.prep_stack(tree, out, (5, 5, 0, 0), progress=False, overwrite=False)
    assert s.skipped == 2 and s.bytes_read == 5 * 4 * 5 * 4 * 8
    assert first.stat().st_mtime_ns == stamp
    s = prep.prep_stack(tree, out, (6, 5, 0, 0), progress=False, overwrite=False)
    assert s.skipped == 0  # a different crop size is not up to date
    s = prep.prep_stack(tree, out, (6, 5, 1, 0), progress=False, overwrite=False)
    assert s.skipped == 0  # nor a different offset (the tiles' tags tell)
    s = prep.prep_stack(tree, out, (6, 5, 1, 0), (4, 4), progress=False, overwrite=False)
    assert s.skipped == 3
    with rasterio.open(first) as ds:
        assert ds.tags()["LABKIT_CROP"] == "6,5,1,0" and ds.tags()["LABKIT_LOOKS"] == "4x4"


def test_a_dying_worker_is_a_clean_error(tmp_path, tree, capsys, monkeypatch):
    faults.inject("kill-workers", monkeypatch)  # every worker SIGKILLs itself
    rc, err = cli(["prep", tree, tmp_path / "o", "--crop", "5,5,0,0", "--jobs", "2"], capsys)
    assert rc == 2 and err.startswith("labkit: error: a prep worker died")
    assert not (tmp_path / "o").exists()  # no tile finished: the folder it made is gone


# -- bad input: exit 2, one line, nothing written ---------------------------------------


def _bad(kind: str, tmp_path: Path, data) -> tuple[list, str]:
    """(argv after `labkit prep`, expected text in the message) for one bad input."""
    tree = tmp_path / "tree"
    small = {d: a[:40, :60] for d, a in data.items()}
    dest = tmp_path / "dest"
    if kind == "missing-src":
        return [tmp_path / "nope", dest, "--crop", "5,5,0,0"], "does not exist"
    if kind == "empty-src":
        (tmp_path / "empty").mkdir()
        return [tmp_path / "empty", dest, "--crop", "5,5,0,0"], "is empty"
    if kind == "no-slcs":
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "readme.txt").write_text("x")
        return [tmp_path / "docs", dest, "--crop", "5,5,0,0"], "*.slc.vrt, *.slc"
    write_tree(tree, small)
    vrt0 = tree / DATES[0] / f"{DATES[0]}.slc.vrt"
    if kind == "crop-too-big":
        return [tree, dest, "--crop", "16,10,0,0"], "largest crop is W=15, H=10"
    if kind == "crop-start-outside":
        return [tree, dest, "--crop", "2,2,10,0"], "R0 must be < 10"
    if kind == "crop-offset-too-big":
        return [tree, dest, "--crop", "16,8,3,6", "--looks", "2x3"], "W=14, H=17"
    if kind == "crop-not-numeric":
        return [tree, dest, "--crop", "a,b,0,0"], "W,H,R0,C0"
    if kind == "crop-zero":
        return [tree, dest, "--crop", "0,5,0,0"], "≥ 1"
    if kind == "looks-zero":
        return [tree, dest, "--crop", "5,5,0,0", "--looks", "0"], "≥ 1"
    if kind == "jobs-zero":
        return [tree, dest, "--crop", "5,5,0,0", "--jobs", "0"], "≥ 1"
    if kind == "not-complex":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(tree / f"{DATES[0]}_real.tif", "w", driver="GTiff",
                               dtype="float32", count=1, width=60, height=40) as ds:
                ds.write(np.ones((40, 60), np.float32), 1)
        shutil.rmtree(tree / DATES[0])
        return [tree, dest, "--crop", "5,5,0,0"], "expected a complex SLC"
    if kind == "sizes-differ":
        shutil.rmtree(tree / DATES[1])
        write_isce_slc(tree, DATES[1], data[DATES[1]][:44, :60])
        return [tree, dest, "--crop", "5,5,0,0"], "differ in size"
    if kind == "raw-missing":
        (tree / DATES[1] / f"{DATES[1]}.slc").unlink()
        (tree / DATES[1] / f"{DATES[1]}.slc.xml").unlink()
        return [tree, dest, "--crop", "5,5,0,0"], "does not exist"
    if kind == "raw-truncated-vrt":
        raw = tree / DATES[2] / f"{DATES[2]}.slc"
        raw.write_bytes(raw.read_bytes()[:-8])
        return [tree, dest, "--crop", "5,5,0,0"], "truncated"
    if kind == "raw-truncated-xml":
        for d in DATES:
            (tree / d / f"{d}.slc.vrt").unlink()
        raw = tree / DATES[1] / f"{DATES[1]}.slc"
        raw.write_bytes(raw.read_bytes()[:1000])
        return [tree, dest, "--crop", "5,5,0,0"], "truncated"
    if kind == "raw-no-header":
        (tree / DATES[1] / f"{DATES[1]}.slc.vrt").unlink()
        (tree / DATES[1] / f"{DATES[1]}.slc.xml").unlink()
        return [tree, dest, "--crop", "5,5,0,0"], "has no header"
    if kind == "two-files-one-date":
        shutil.copy(vrt0, tree / f"{DATES[0]}_copy.slc.vrt")
        return [tree, dest, "--crop", "5,5,0,0"], f"two SLCs for date {DATES[0]}"
    if kind == "dangling-symlink":
        flat = write_flat(tree, tmp_path / "flat")
        (flat / "20230201.slc.vrt").symlink_to(tmp_path / "gone" / "20230201.slc.vrt")
        return [flat, dest, "--crop", "5,5,0,0"], "dangling symlink"
    if kind == "dest-parent-missing":
        return [tree, tmp_path / "no" / "dest", "--crop", "5,5,0,0"], "does not exist"
    if kind == "dest-is-file":
        dest.write_text("x")
        return [tree, dest, "--crop", "5,5,0,0"], "is a file"
    raise AssertionError(kind)


BAD = ["missing-src", "empty-src", "no-slcs", "crop-too-big", "crop-start-outside",
       "crop-offset-too-big", "crop-not-numeric", "crop-zero", "looks-zero", "jobs-zero",
       "not-complex", "sizes-differ", "raw-missing", "raw-truncated-vrt",
       "raw-truncated-xml", "raw-no-header", "two-files-one-date", "dangling-symlink",
       "dest-parent-missing",
       "dest-is-file"]


@pytest.mark.parametrize("kind", BAD)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, data, capsys, kind):
    argv, expect = _bad(kind, tmp_path, data)
    dest = Path(argv[1])
    before = dest.read_bytes() if dest.is_file() else None
    rc, err = cli(["prep", *argv], capsys)
    assert rc == 2
    assert err.startswith("labkit: error:") and err.count("\n") == 1, err
    assert expect in err, err
    if before is None:
        assert not dest.exists()
    else:
        assert dest.read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_dest(tmp_path, tree, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, err = cli(["prep", tree, ro / "dest", "--crop", "5,5,0,0"], capsys)
        assert rc == 2 and "not writable" in err and not (ro / "dest").exists()
    finally:
        ro.chmod(0o755)


def test_bad_api_arguments(tree, tmp_path):
    with pytest.raises(LabError, match="looks"):
        prep.prep_stack(tree, tmp_path / "o", (5, 5, 0, 0), (0, 2), progress=False)
    with pytest.raises(LabError, match="jobs"):
        prep.prep_stack(tree, tmp_path / "o", (5, 5, 0, 0), jobs=0, progress=False)
    assert not (tmp_path / "o").exists()


# -- the course's script and the data helpers -------------------------------------------


def test_course_script_runs(tmp_path, tree):
    script = REPO / "data_prep" / "make_intensity_and_crop.py"
    flat = write_flat(tree, tmp_path / "SLC_FINE_LOCAL")
    r = subprocess.run([sys.executable, script, flat, tmp_path / "intens", "15,10,0,0",
                        "True", "4", "True"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ref = prep.prep_stack(tree, tmp_path / "ref", (15, 10, 0, 0), (4, 4), progress=False)
    for p in ref.outputs:
        assert (tmp_path / "intens" / p.name).read_bytes() == p.read_bytes()
    r = subprocess.run([sys.executable, script, flat, tmp_path / "x", "1000,10,0,0", "True",
                        "4", "True"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "largest crop" in r.stderr
    assert not (tmp_path / "x").exists()


def test_course_script_without_multilook(tmp_path, tree, data):
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("mic", REPO / "data_prep" / "make_intensity_and_crop.py")
    mod = module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([str(tree), str(tmp_path / "o"), "12,8,1,2", "False", "4", "False"]) == 0
    out = read(tmp_path / "o" / f"{DATES[2]}_int_crop.tif")
    assert_close(out, reference(data[DATES[2]], (12, 8, 1, 2), (1, 1)))


def test_tile_sizes():
    assert prep.tile_sizes("tiny") == [16, 32, 64]
    assert prep.tile_sizes("seed") == [256, 512, 1024]
    assert prep.tile_sizes("large") == [512, 1024, 2048]
    with pytest.raises(LabError, match="valid presets"):
        prep.tile_sizes("huge")


def test_ensure_tiles_tiny(tmp_path, capsys):
    from labkit.io import open_stack

    folder = prep.ensure_tiles("tiny", root=tmp_path, progress=False)
    assert folder == tmp_path / "tiny" / "intens_64x64"
    stack = open_stack(folder)
    assert stack.shape == (4, 64, 64)
    stamps = [p.stat().st_mtime_ns for p in stack.paths]
    assert prep.ensure_tiles("tiny", root=tmp_path, progress=False) == folder  # no-op
    assert [p.stat().st_mtime_ns for p in stack.paths] == stamps
    assert open_stack(prep.ensure_tiles("tiny", 32, root=tmp_path, progress=False)).rows == 32
    with pytest.raises(LabError, match="valid sides are 16, 32, 64"):
        prep.ensure_tiles("tiny", 128, root=tmp_path, progress=False)
    assert main(["data", "--preset", "tiny", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == str(folder)
