"""labkit.sar.synth: the synthetic SAOCOM-like SLC stack in the ISCE2 layout."""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio

from labkit.cli import main
from labkit.errors import LabError
from labkit.sar import scene, synth

ROOT = Path(__file__).resolve().parent.parent
FLATTEN = ROOT / "data_prep" / "flatten_isce_tree.sh"


def _read(path: Path) -> tuple[np.ndarray, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning
        with rasterio.open(path) as ds:
            return ds.read(1), ds.driver


def _files(dest: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(dest)): p.read_bytes()
        for p in sorted(dest.rglob("*"))
        if p.is_file() and p.suffix != ".tif"
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth.write_stack(tmp_path_factory.mktemp("synth") / "tiny", "tiny", progress=False)


@pytest.fixture(scope="module")
def stack(tiny: Path) -> dict:
    """The tiny stack in memory: slc (dates, lines, samples), σ0, PS, manifest."""
    m = synth.read_manifest(tiny)
    slc = np.stack([_read(tiny / f)[0] for f in m["slc"]])
    sigma0, _ = _read(tiny / "truth" / "sigma0.tif")
    with open(tiny / "truth" / "ps.csv", newline="") as f:
        ps = [(int(r["line"]), int(r["sample"]), float(r["amplitude"])) for r in csv.DictReader(f)]
    return {"m": m, "slc": slc, "sigma0": sigma0, "ps": ps}


# -- layout and headers ------------------------------------------------------------------


def test_layout_and_gdal_reads_vrt_and_raw(tiny: Path) -> None:
    m = synth.read_manifest(tiny)
    assert sorted(p.name for p in tiny.iterdir()) == sorted([*m["dates"], "truth", "manifest.json"])
    for date in m["dates"]:
        folder = tiny / date
        assert sorted(p.name for p in folder.iterdir()) == [
            f"{date}.slc",
            f"{date}.slc.vrt",
            f"{date}.slc.xml",
        ]
        raw = folder / f"{date}.slc"
        via_vrt, drv_vrt = _read(folder / f"{date}.slc.vrt")
        via_isce, drv_isce = _read(raw)
        assert (drv_vrt, drv_isce) == ("VRT", "ISCE")
        assert via_vrt.dtype == via_isce.dtype == np.complex64
        assert via_vrt.shape == (256, 256)
        np.testing.assert_array_equal(via_vrt, via_isce)
        np.testing.assert_array_equal(via_vrt, np.fromfile(raw, "<c8").reshape(256, 256))


def test_xml_sidecar(tiny: Path) -> None:
    date = synth.read_manifest(tiny)["dates"][0]
    root = ET.parse(tiny / date / f"{date}.slc.xml").getroot()
    assert root.tag == "imageFile"
    props = {p.get("name"): p.findtext("value") for p in root.findall("property")}
    assert props["width"] == "256" and props["length"] == "256"
    assert props["data_type"] == "CFLOAT"
    assert props["scheme"] == "BIP"
    assert props["byte_order"] == "l"
    assert props["number_bands"] == "1"
    assert props["image_type"] == "slc"
    assert props["file_name"] == f"{date}.slc"
    comps = {c.get("name"): c for c in root.findall("component")}
    assert set(comps) == {"coordinate1", "coordinate2"}
    for c in comps.values():
        sub = {p.get("name"): p.findtext("value") for p in c.findall("property")}
        assert sub["size"] == "256" and sub["startingvalue"] == "0.0"


def test_vrt_header(tiny: Path) -> None:
    date = synth.read_manifest(tiny)["dates"][0]
    root = ET.parse(tiny / date / f"{date}.slc.vrt").getroot()
    assert root.tag == "VRTDataset"
    assert (root.get("rasterXSize"), root.get("rasterYSize")) == ("256", "256")
    band = root.find("VRTRasterBand")
    assert band is not None
    assert band.get("subClass") == "VRTRawRasterBand"
    assert band.get("dataType") == "CFloat32"
    src = band.find("SourceFilename")
    assert src is not None and src.text == f"{date}.slc" and src.get("relativeToVRT") == "1"
    assert band.findtext("ByteOrder") == "LSB"
    assert band.findtext("ImageOffset") == "0"
    assert band.findtext("PixelOffset") == "8"
    assert band.findtext("LineOffset") == str(8 * 256)


def test_manifest_and_truth(tiny: Path, stack: dict) -> None:
    m = stack["m"]
    assert m["preset"] == "tiny" and m["seed"] == synth.DEFAULT_SEED
    assert (m["lines"], m["samples"], m["looks"], m["tile"]) == (256, 256, [4, 4], 64)
    days = [dt.datetime.strptime(d, "%Y%m%d").date() for d in m["dates"]]
    assert len(days) == 4 and days[0] == dt.date(2023, 1, 5)
    assert all((b - a).days == 8 for a, b in zip(days, days[1:], strict=False))
    assert m["change"]["date"] == m["dates"][2] and len(m["change"]["box"]) == 4
    assert m["zero_strips"] and m["n_ps"] == len(stack["ps"]) and 20 <= m["n_ps"] <= 60
    assert json.loads((tiny / "truth" / "change.json").read_text()) == m["change"]
    with open(tiny / "truth" / "zero_strips.csv", newline="") as f:
        assert [r["date"] for r in csv.DictReader(f)] == [s["date"] for s in m["zero_strips"]]
    assert stack["sigma0"].dtype == np.float32 and stack["sigma0"].shape == (256, 256)


def test_presets() -> None:
    sizes = {n: (p.dates, p.lines, p.samples, p.tile, p.looks) for n, p in synth.PRESETS.items()}
    assert sizes == {
        "tiny": (4, 256, 256, 64, (4, 4)),
        "seed": (5, 4096, 4096, 1024, (4, 4)),
        "dates24": (24, 4096, 4096, 1024, (4, 4)),
        "large": (24, 8192, 8192, 2048, (4, 4)),
    }
    with pytest.raises(AttributeError):
        synth.PRESETS["tiny"].dates = 3  # type: ignore[misc]


# -- determinism ---------------------------------------------------------------------------


def test_deterministic_bytes(tmp_path: Path) -> None:
    kw = {"dates": 3, "size": (96, 160), "progress": False}
    a = synth.write_stack(tmp_path / "a", "seed", seed=7, **kw)
    b = synth.write_stack(tmp_path / "b", "seed", seed=7, **kw)
    c = synth.write_stack(tmp_path / "c", "seed", seed=8, **kw)
    fa, fb, fc = _files(a), _files(b), _files(c)
    assert fa == fb
    sig_a, sig_b = _read(a / "truth/sigma0.tif")[0], _read(b / "truth/sigma0.tif")[0]
    np.testing.assert_array_equal(sig_a, sig_b)
    slcs = [k for k in fa if k.endswith(".slc")]
    assert len(slcs) == 3 and all(fa[k] != fc[k] for k in slcs)
    assert synth.read_manifest(a)["tile"] == 24  # min(1024, 96 // 4, 160 // 4)


def test_sigma0_is_procedural_by_block() -> None:
    sc = scene.Scene(300, 200, 4, seed=1)
    whole = sc.sigma0(0, 300)
    parts = np.concatenate([sc.sigma0(r, min(300, r + 37)) for r in range(0, 300, 37)])
    np.testing.assert_array_equal(whole, parts)


# -- physics ---------------------------------------------------------------------------------


def _distributed_mask(stack: dict, d: int) -> np.ndarray:
    """Pixels of date d that are plain distributed scatterers with the static σ0."""
    m = stack["m"]
    ok = np.ones(stack["sigma0"].shape, bool)
    for line, sample, _ in stack["ps"]:
        ok[line, sample] = False
    for s in m["zero_strips"]:
        if s["date"] == m["dates"][d]:
            l0, l1, s0, s1 = s["box"]
            ok[l0:l1, s0:s1] = False
    if d >= m["dates"].index(m["change"]["date"]):
        l0, l1, s0, s1 = m["change"]["box"]
        ok[l0:l1, s0:s1] = False
    return ok


def test_speckle_intensity_is_exponential_with_mean_sigma0(stack: dict) -> None:
    ratios = []
    for d in range(len(stack["m"]["dates"])):
        ok = _distributed_mask(stack, d)
        ratios.append((np.abs(stack["slc"][d][ok]) ** 2 / stack["sigma0"][ok]).astype(np.float64))
    r = np.concatenate(ratios)
    assert r.mean() == pytest.approx(1.0, abs=0.02)
    assert (r**2).mean() == pytest.approx(2.0, rel=0.05)  # exponential: E[x²] = 2 E[x]²
    water = stack["sigma0"] == stack["sigma0"].min()
    assert water.sum() > 1000
    ok = _distributed_mask(stack, 0) & water
    iw = np.abs(stack["slc"][:, ok]) ** 2
    assert iw.mean() == pytest.approx(float(stack["sigma0"][ok][0]), rel=0.05)


def test_multilooked_intensity_follows_sigma0(stack: dict) -> None:
    i = (np.abs(stack["slc"][:2]) ** 2).mean(axis=0)  # dates before the change
    ml = i.reshape(64, 4, 64, 4).mean(axis=(1, 3))
    s0 = stack["sigma0"].reshape(64, 4, 64, 4).mean(axis=(1, 3))
    ok = ml > 0  # zero strips
    assert np.corrcoef(np.log(ml[ok]), np.log(s0[ok]))[0, 1] > 0.9
    assert s0.max() / s0.min() > 300  # urban vs water


def test_persistent_scatterers(stack: dict) -> None:
    amp = np.array([np.abs(stack["slc"][:, line, sample]) for line, sample, _ in stack["ps"]])
    truth = np.array([a for _, _, a in stack["ps"]])
    dispersion = amp.std(axis=1) / amp.mean(axis=1)
    assert 0.05 <= np.median(dispersion) <= 0.3
    err = np.abs(amp.mean(axis=1) / truth - 1)  # 4 dates: the mean is ±10 % (1σ)
    assert np.median(err) < 0.1 and err.max() < 0.4
    s0 = np.array([stack["sigma0"][line, sample] for line, sample, _ in stack["ps"]])
    assert np.all(truth**2 > 4 * s0)  # much brighter than their clutter


def test_zero_strips_where_the_manifest_says(stack: dict) -> None:
    m = stack["m"]
    strips = {s["date"]: s["box"] for s in m["zero_strips"]}
    assert m["dates"][0] not in strips  # the reference date is never resampled
    for d, date in enumerate(m["dates"]):
        zero = stack["slc"][d] == 0
        if date in strips:
            l0, l1, s0, s1 = strips[date]
            assert 8 <= min(l1 - l0, s1 - s0) <= 16  # tiny: 8-16 lines or columns
            assert zero[l0:l1, s0:s1].all()
            zero[l0:l1, s0:s1] = False
        assert not zero.any()


def test_change_area_differs_after_the_change_date(stack: dict) -> None:
    m = stack["m"]
    k = m["dates"].index(m["change"]["date"])
    l0, l1, s0, s1 = m["change"]["box"]
    ratio = np.abs(stack["slc"][:, l0:l1, s0:s1]) ** 2 / stack["sigma0"][l0:l1, s0:s1]
    before, after = ratio[:k].mean(), ratio[k:].mean()
    assert before == pytest.approx(1.0, rel=0.1)
    assert after == pytest.approx(m["change"]["factor"], rel=0.1)


# -- existing destinations, bad input, CLI ------------------------------------------------------


def test_same_stack_is_skipped(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {p: p.stat().st_mtime_ns for p in tiny.rglob("*")}
    assert synth.write_stack(tiny, "tiny", progress=False) == tiny
    assert main(["synth", str(tiny)]) == 0
    assert "already holds this stack" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in tiny.rglob("*")} == before


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"preset": "huge"}, "tiny, seed, dates24, large"),
        ({"size": (32, 256)}, "≥ 64"),
        ({"size": (256, 0)}, "≥ 64"),
        ({"size": (256,)}, "size must be"),
        ({"dates": 0}, "dates must be ≥ 1"),
        ({"seed": -1}, "seed must be ≥ 0"),
    ],
)
def test_bad_input(tmp_path: Path, kwargs: dict, words: str) -> None:
    with pytest.raises(LabError, match=words):
        synth.write_stack(tmp_path / "x", progress=False, **kwargs)
    assert not (tmp_path / "x").exists()


def test_bad_destinations(tmp_path: Path, tiny: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(LabError, match="is a file"):
        synth.write_stack(tmp_path / "file", progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(LabError, match="not a synthetic stack"):
        synth.write_stack(tmp_path / "mine", progress=False)
    with pytest.raises(LabError, match="different synthetic stack"):
        synth.write_stack(tiny, "tiny", seed=99, progress=False)
    with pytest.raises(LabError, match="no synthetic stack"):
        synth.read_manifest(tmp_path)


def test_not_enough_disk_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda _: SimpleNamespace(total=1, used=1, free=0))
    with pytest.raises(LabError, match="not enough disk space"):
        synth.write_stack(tmp_path / "s", progress=False)
    assert not any((tmp_path / "s").iterdir())


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "cli"
    assert main(["synth", str(dest), "--size", "64x96", "--dates", "2", "--seed", "5"]) == 0
    assert "wrote" in capsys.readouterr().out
    m = synth.read_manifest(dest)
    assert (m["lines"], m["samples"], len(m["dates"]), m["seed"]) == (64, 96, 2, 5)
    for argv in (
        ["synth", str(tmp_path / "y"), "--preset", "nope"],
        ["synth", str(tmp_path / "y"), "--size", "10x10"],
        ["synth", str(tmp_path / "y"), "--dates", "0"],  # refused by the parser
    ):
        assert _exit_code(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("labkit: error:") and err.count("\n") == 1
    assert not (tmp_path / "y").exists()


def _exit_code(argv: list[str]) -> int | str | None:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_interrupted_run_leaves_whole_dates_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kw = {"dates": 4, "size": (64, 64), "seed": 3, "progress": False}
    real = scene.Scene.block

    def dying(self: scene.Scene, d: int, b: int, buf: np.ndarray) -> np.ndarray:
        if d == 2:
            raise KeyboardInterrupt
        return real(self, d, b, buf)

    monkeypatch.setattr(scene.Scene, "block", dying)
    with pytest.raises(KeyboardInterrupt):
        synth.write_stack(tmp_path / "s", "tiny", **kw)
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert names == [".synth-pending.json", "20230105", "20230113"]  # no partial date
    with pytest.raises(LabError, match="no synthetic stack"):
        synth.read_manifest(tmp_path / "s")
    with pytest.raises(LabError, match="unfinished, different"):
        synth.write_stack(tmp_path / "s", "tiny", **{**kw, "seed": 4})
    monkeypatch.setattr(scene.Scene, "block", real)
    synth.write_stack(tmp_path / "s", "tiny", **kw)
    synth.write_stack(tmp_path / "fresh", "tiny", **kw)
    assert _files(tmp_path / "s") == _files(tmp_path / "fresh")


# -- data_prep scripts ---------------------------------------------------------------------------


def test_make_synthetic_stack_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location(
        "make_synthetic_stack", ROOT / "data_prep" / "make_synthetic_stack.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([str(tmp_path / "s"), "--size", "64x64", "--dates", "2", "--quiet"]) == 0
    assert len(synth.read_manifest(tmp_path / "s")["dates"]) == 2
    assert mod.main([str(tmp_path / "t"), "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_flatten_script_links_vrts_gdal_can_open(tmp_path: Path, tiny: Path) -> None:
    work = tmp_path / "my work"
    shutil.copytree(tiny, work / "Coarse dir")
    run = subprocess.run(
        ["bash", str(FLATTEN), "Coarse dir", "SLC FINE"],  # relative paths with spaces
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    flat = work / "SLC FINE"
    links = sorted(flat.iterdir())
    dates = synth.read_manifest(tiny)["dates"]
    assert [p.name for p in links] == [f"{d}.slc.vrt" for d in dates]
    for p, d in zip(links, dates, strict=True):
        assert p.is_symlink() and os.path.isabs(os.readlink(p))
        data, driver = _read(p)
        assert driver == "VRT"
        np.testing.assert_array_equal(data, _read(tiny / d / f"{d}.slc")[0])
    bad = subprocess.run(["bash", str(FLATTEN), str(tmp_path / "none")], capture_output=True)
    assert bad.returncode == 2 and b"does not exist" in bad.stderr
    usage = subprocess.run(["bash", str(FLATTEN), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "usage:" in usage.stdout
