"""Layer 0: labkit.io.mapped — tiles read through a memory map, bit for bit as rasterio
reads them: in-order strips, strips stored out of order, both byte orders, BigTIFF; and
the layouts a memory map cannot serve refused with one line."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
import rasterio

from labkit.errors import LabError
from labkit.io import StackReader, write_geotiff
from labkit.io.mapped import MappedStackReader, MappedTile, read_mapped, tiff_layout


def _image(rows: int = 37, cols: int = 23, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.gamma(1.0, 1.0, (rows, cols)).astype(np.float32)
    a[3, 4] = np.nan
    a[-1, -1] = np.inf
    a[5, :3] = -0.0
    return a


def _rasterio(path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return ds.read(1)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float32 and a.shape == b.shape and \
        np.array_equal(a.view(np.uint32), b.view(np.uint32))


def _handmade_tiff(path, image: np.ndarray, rows_per_strip: int, order: list[int],
                   byteorder: str = "<") -> None:
    """A classic TIFF (float32, one band, uncompressed) whose strips are stored in the
    file in the order ``order`` (strip numbers), not necessarily top to bottom."""
    rows, cols = image.shape
    strips = -(-rows // rows_per_strip)
    assert sorted(order) == list(range(strips))
    data = image.astype(np.dtype(byteorder + "f4"))
    chunks = {s: data[s * rows_per_strip:(s + 1) * rows_per_strip].tobytes()
              for s in range(strips)}
    n_tags = 10
    ifd_at = 8
    arrays_at = ifd_at + 2 + 12 * n_tags + 4
    offsets_at, counts_at = arrays_at, arrays_at + 4 * strips
    pos = counts_at + 4 * strips
    where = {}
    for s in order:  # the strips' bytes, in the file order asked for
        where[s] = pos
        pos += len(chunks[s])
    bo = byteorder

    def entry(tag: int, typ: int, count: int, value: int) -> bytes:
        if typ == 3 and count == 1:  # a SHORT sits left-justified in the value field
            return struct.pack(bo + "HHIHH", tag, typ, count, value, 0)
        return struct.pack(bo + "HHII", tag, typ, count, value)

    one_strip = strips == 1
    tags = [entry(256, 4, 1, cols), entry(257, 4, 1, rows), entry(258, 3, 1, 32),
            entry(259, 3, 1, 1), entry(262, 3, 1, 1),
            entry(273, 4, strips, where[0] if one_strip else offsets_at),
            entry(277, 3, 1, 1), entry(278, 4, 1, rows_per_strip),
            entry(279, 4, strips, len(chunks[0]) if one_strip else counts_at),
            entry(339, 3, 1, 3)]
    assert len(tags) == n_tags
    head = (b"II" if bo == "<" else b"MM") + struct.pack(bo + "HI", 42, ifd_at)
    body = struct.pack(bo + "H", n_tags) + b"".join(tags) + struct.pack(bo + "I", 0)
    body += struct.pack(bo + f"{strips}I", *[where[s] for s in range(strips)])
    body += struct.pack(bo + f"{strips}I", *[len(chunks[s]) for s in range(strips)])
    path.write_bytes(head + body + b"".join(chunks[s] for s in order))


def test_lab_tile_in_order_is_one_run_and_equal_to_rasterio(tmp_path):
    a = _image()
    p = tmp_path / "20230101_int_crop.tif"
    write_geotiff(p, a)
    lay = tiff_layout(p)
    assert (lay.rows, lay.cols, lay.dtype) == (37, 23, np.dtype("<f4"))
    assert lay.in_order and lay.runs[0][:2] == (0, 37)
    ref = _rasterio(p)
    assert _same_bits(read_mapped(p), ref)
    with MappedTile(p) as tile:
        assert _same_bits(np.asarray(tile.view()).astype(np.float32), ref)
        assert not tile.view().flags.writeable  # the map is read-only
        for r0, n in [(0, 1), (5, 7), (36, 1), (10, 0)]:
            assert _same_bits(tile.read(r0, n), ref[r0:r0 + n])
        out = np.full((4, 23), 7.0, np.float32)
        assert tile.read(30, 4, out=out) is out and _same_bits(out, ref[30:34])


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("rows_per_strip, order", [
    (4, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]),  # reversed; the last strip is short (1 row)
    (4, [2, 0, 1, 3, 4, 5, 6, 8, 7, 9]),  # a few swapped
    (37, [0]),  # one strip
    (5, [0, 1, 2, 3, 4, 5, 6, 7]),  # in order, written by hand
])
def test_handmade_strips_in_any_order_read_like_rasterio(tmp_path, byteorder,
                                                         rows_per_strip, order):
    a = _image()
    p = tmp_path / "x.tif"
    _handmade_tiff(p, a, rows_per_strip, order, byteorder)
    ref = _rasterio(p)
    assert _same_bits(ref, a)  # GDAL reads the handmade file as the image we meant
    lay = tiff_layout(p)
    assert lay.in_order == (order == sorted(order))
    assert lay.dtype == np.dtype(byteorder + "f4")
    assert len(lay.row_offsets) == 37
    assert _same_bits(read_mapped(p), ref)
    with MappedTile(p) as tile:
        for r0, n in [(0, 37), (3, 9), (7, 1), (33, 4), (0, 0)]:
            assert _same_bits(tile.read(r0, n), ref[r0:r0 + n])
        if not lay.in_order:
            with pytest.raises(LabError, match="out of order"):
                tile.view()


def test_row_offsets_follow_the_strip_table(tmp_path):
    a = _image(10, 6)
    p = tmp_path / "x.tif"
    _handmade_tiff(p, a, 4, [2, 1, 0])
    lay = tiff_layout(p)
    row = 6 * 4  # bytes
    assert lay.runs == ((0, 4, lay.row_offsets[0]), (4, 4, lay.row_offsets[4]),
                        (8, 2, lay.row_offsets[8]))
    assert lay.row_offsets[8] + 2 * row == lay.row_offsets[4]  # strip 2 first in the file
    assert lay.row_offsets[4] + 4 * row == lay.row_offsets[0]
    assert np.all(np.diff(lay.row_offsets[:4]) == row)


def test_bigtiff_and_gdal_row_blocks(tmp_path):
    a = _image(40, 17)
    p = tmp_path / "big.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(p, "w", driver="GTiff", dtype="float32", count=1, height=40,
                           width=17, BIGTIFF="YES", blockysize=3) as dst:
            for r0 in (30, 0, 12, 21, 3, 33, 6, 9, 15, 18, 24, 27, 36, 39):  # any order
                dst.write(a[r0:r0 + 3], 1, window=((r0, min(40, r0 + 3)), (0, 17)))
    assert open(p, "rb").read(4)[2:4] == b"\x2b\x00"  # BigTIFF magic 43
    assert _same_bits(read_mapped(p), _rasterio(p))


def test_stack_reader_equals_the_gdal_stack_reader(tmp_path):
    imgs = [_image(29, 31, seed=k) for k in range(3)]
    paths = []
    for k, img in enumerate(imgs):
        p = tmp_path / f"2023010{k + 1}_int_crop.tif"
        if k == 1:
            _handmade_tiff(p, img, 4, list(range(8))[::-1])
        else:
            write_geotiff(p, img)
        paths.append(p)
    with StackReader(paths) as gdal, MappedStackReader(paths) as mapped:
        assert (mapped.rows, mapped.width) == (gdal.rows, gdal.width) == (29, 31)
        for r0, n in [(0, 29), (4, 9), (28, 1)]:
            want = gdal.read(r0, n)
            got = mapped.read(r0, n)
            assert got.shape == want.shape == (3, n, 31)
            assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    with pytest.raises(LabError, match="closed"):
        mapped.read(0, 1)


def test_compressed_tiled_and_multiband_are_refused_with_what_is_valid(tmp_path):
    a = _image(32, 32)
    base = {"driver": "GTiff", "dtype": "float32", "height": 32, "width": 32}
    cases = {"deflate.tif": ({"count": 1, "compress": "deflate"}, r"compressed \(DEFLATE\)"),
             "lzw.tif": ({"count": 1, "compress": "lzw"}, r"compressed \(LZW\)"),
             "tiled.tif": ({"count": 1, "tiled": True, "blockxsize": 16, "blockysize": 16},
                           r"tiled \(16×16 tiles\)"),
             "rgb.tif": ({"count": 3, "interleave": "pixel"}, "3 samples per pixel")}
    for name, (extra, why) in cases.items():
        p = tmp_path / name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(p, "w", **base, **extra) as dst:
                dst.write(np.stack([a] * extra["count"]))
        with pytest.raises(LabError, match=why) as info:
            read_mapped(p)
        msg = str(info.value)
        assert "\n" not in msg and "uncompressed, strip-organised" in msg and name in msg


def test_not_a_tiff_truncated_missing_and_bad_rows(tmp_path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"hello, not a tiff at all")
    with pytest.raises(LabError, match="not a TIFF"):
        tiff_layout(junk)
    p = tmp_path / "20230101_int_crop.tif"
    write_geotiff(p, _image())
    cut = tmp_path / "cut.tif"
    cut.write_bytes(p.read_bytes()[:-200])
    with pytest.raises(LabError, match="truncated"):
        MappedTile(cut)
    with pytest.raises(LabError, match="cannot read"):
        tiff_layout(tmp_path / "missing.tif")
    with MappedTile(p) as tile:
        with pytest.raises(LabError, match="outside the tile"):
            tile.read(30, 10)
    with pytest.raises(LabError, match="closed"):
        tile.read()
    q = tmp_path / "small.tif"
    write_geotiff(q, _image(8, 6))
    with pytest.raises(LabError, match="all dates must match"):
        MappedStackReader([p, q])


def test_stack_reader_maps_the_lab_tiles_and_falls_back_to_gdal(tmp_path):
    imgs = [_image(21, 19, seed=k) for k in range(2)]
    plain = [tmp_path / f"2023010{k + 1}_int_crop.tif" for k in range(2)]
    for p, img in zip(plain, imgs, strict=True):
        write_geotiff(p, img)
    packed = tmp_path / "packed"
    packed.mkdir()
    zipped = packed / "20230103_int_crop.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(zipped, "w", driver="GTiff", dtype="float32", count=1, height=21,
                           width=19, compress="deflate") as dst:
            dst.write(imgs[0], 1)
    with StackReader(plain) as auto, StackReader(plain, mapped=False) as gdal:
        assert auto.mapped and not gdal.mapped
        assert np.array_equal(auto.read(3, 11).view(np.uint32),
                              gdal.read(3, 11).view(np.uint32))
    with StackReader([plain[0], zipped]) as mixed:  # one tile cannot be mapped: GDAL
        assert not mixed.mapped
        assert np.array_equal(mixed.read(0, 21)[1], imgs[0], equal_nan=True)
    with pytest.raises(LabError, match=r"compressed \(DEFLATE\)"):
        StackReader([zipped], mapped=True)


def test_compare_reads_times_every_variant_and_describes_them(tmp_path):
    from labkit.bench.mapped import compare_reads, describe_reads

    for k in range(3):
        write_geotiff(tmp_path / f"2023010{k + 1}_int_crop.tif", _image(40, 32, seed=k))
    cmp = compare_reads(tmp_path, repeats=2, block_rows=16)
    assert cmp.nbytes == 3 * 40 * 32 * 4 and cmp.block_rows == 16
    caches = ["warm", "cold"] if hasattr(__import__("os"), "posix_fadvise") else ["warm"]
    assert list(cmp.times) == caches
    for cache in caches:
        assert len(cmp.times[cache]) == 6
        assert all(len(t) == 2 and min(t) > 0 for t in cmp.times[cache].values())
    text = describe_reads(cmp)
    assert "read() into a buffer" in text and "GB/s" in text and "StackReader, mapped" in text
    warm_only = compare_reads(tmp_path, repeats=1, cold=False)
    assert list(warm_only.times) == ["warm"] and "not asked for" in describe_reads(warm_only)
    packed = tmp_path / "packed"
    packed.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(packed / "20230101_int_crop.tif", "w", driver="GTiff",
                           dtype="float32", count=1, height=8, width=8, tiled=True,
                           blockxsize=16, blockysize=16) as dst:
            dst.write(np.ones((8, 8), np.float32), 1)
    with pytest.raises(LabError, match="tiled"):
        compare_reads(packed, repeats=1)


def test_an_open_reader_pins_the_tiles_so_cold_is_refused(tmp_path):
    import os

    from labkit.bench.mapped import compare_reads, describe_reads, resident_fraction
    from labkit.io import cached_reader

    if not hasattr(os, "posix_fadvise") or resident_fraction([__file__]) is None:
        pytest.skip("needs posix_fadvise and mincore (Linux)")
    from labkit.ui.plots import evict_page_cache

    paths = [tmp_path / f"2023010{k + 1}_int_crop.tif" for k in range(2)]
    for k, p in enumerate(paths):
        write_geotiff(p, _image(64, 64, seed=k))
    evict_page_cache(paths)
    if resident_fraction(paths) > 0.05:
        pytest.skip(f"{tmp_path} cannot drop pages from the page cache (tmpfs?)")
    pinned = StackReader(paths)  # mapped: its pages cannot be dropped from the page cache
    pinned.read(0, 64)
    cached_reader(paths).read(0, 8)  # this thread's cached reader: compare_reads closes it
    try:
        cmp = compare_reads(tmp_path, repeats=1)
        assert list(cmp.times) == ["warm"] and "stayed in the page cache" in cmp.cold_note
        assert "panel.close()" in describe_reads(cmp)
    finally:
        pinned.close()
    cmp = compare_reads(tmp_path, repeats=1)
    assert list(cmp.times) == ["warm", "cold"] and not cmp.cold_note
    assert 0.0 <= resident_fraction(paths) <= 1.0
