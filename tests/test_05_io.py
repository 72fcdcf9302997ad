"""Layer 0: labkit.io — dates from names, atomic GeoTIFF writes, tile-stack validation."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from labkit.errors import LabError
from labkit.io import date_from_name, open_stack, read_tile, write_geotiff, write_geotiffs


def _tiles(folder, n=3, shape=(20, 30), seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    data = rng.gamma(1.0, 1.0, (n, *shape)).astype(np.float32)
    for k in range(n):
        write_geotiff(folder / f"2023010{k + 1}_int_crop.tif", data[k])
    return data


@pytest.mark.parametrize("name, date", [
    ("20230105.slc.vrt", "20230105"),
    ("20230105_int_crop.tif", "20230105"),
    ("SAOCOM_1A_20230113T101010.slc", "20230113"),
])
def test_date_from_name(name, date):
    assert date_from_name(name) == date


def test_date_missing_is_lab_error():
    with pytest.raises(LabError, match="YYYYMMDD"):
        date_from_name("image.slc.vrt")


def test_write_read_roundtrip_float32_nan_nodata(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    a[0, 0] = np.nan
    write_geotiff(tmp_path / "x.tif", a)
    with rasterio.open(tmp_path / "x.tif") as ds:
        assert ds.driver == "GTiff" and ds.dtypes[0] == "float32" and np.isnan(ds.nodata)
    assert np.array_equal(read_tile(tmp_path / "x.tif"), a, equal_nan=True)
    assert np.array_equal(read_tile(tmp_path / "x.tif", 1, 2), a[1:3])
    assert [p.name for p in tmp_path.iterdir()] == ["x.tif"]  # no temporaries left


def test_failed_group_write_leaves_old_outputs(tmp_path):
    write_geotiff(tmp_path / "mean.tif", np.ones((2, 2), np.float32))
    before = (tmp_path / "mean.tif").read_bytes()
    with pytest.raises(LabError):
        write_geotiffs({tmp_path / "mean.tif": np.zeros((2, 2)), tmp_path / "std.tif": np.zeros(3)})
    assert (tmp_path / "mean.tif").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mean.tif"]


def test_unwritable_destination(tmp_path):
    with pytest.raises(LabError, match="does not exist"):
        write_geotiff(tmp_path / "nope" / "x.tif", np.ones((2, 2)))
    with pytest.raises(LabError, match="is a folder"):
        write_geotiff(tmp_path, np.ones((2, 2)))


def test_open_stack_sorted_and_sized(tmp_path):
    data = _tiles(tmp_path / "t")
    st = open_stack(tmp_path / "t")
    assert st.shape == data.shape and st.dtype == "float32"
    assert st.dates == ["20230101", "20230102", "20230103"]
    assert st.nbytes == data.nbytes


def test_open_stack_errors(tmp_path):
    with pytest.raises(LabError, match="does not exist"):
        open_stack(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabError, match="no tiles"):
        open_stack(tmp_path / "empty")
    _tiles(tmp_path / "mixed")
    write_geotiff(tmp_path / "mixed" / "20230109_int_crop.tif", np.ones((5, 5), np.float32))
    with pytest.raises(LabError, match="differ in shape"):
        open_stack(tmp_path / "mixed")
    _tiles(tmp_path / "corrupt")
    bad = tmp_path / "corrupt" / "20230102_int_crop.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(LabError, match="20230102_int_crop.tif"):
        open_stack(tmp_path / "corrupt")
    _tiles(tmp_path / "trunc", shape=(64, 64))
    bad = tmp_path / "trunc" / "20230103_int_crop.tif"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    with pytest.raises(LabError, match="20230103_int_crop.tif"):
        open_stack(tmp_path / "trunc")


def test_open_stack_rejects_integer_tiles(tmp_path):
    (tmp_path / "int").mkdir()
    profile = dict(driver="GTiff", dtype="uint16", count=1, width=4, height=4)
    with rasterio.open(tmp_path / "int" / "20230101_int_crop.tif", "w", **profile) as ds:
        ds.write(np.ones((1, 4, 4), np.uint16))
    with pytest.raises(LabError, match="expected float32"):
        open_stack(tmp_path / "int")
