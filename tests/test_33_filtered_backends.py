"""Layer 33: the Lee filter in every backend (``filter="lee:K"``, ``--filter lee:K``).

Each date is filtered over a K×K window, then the temporal mean and std are computed as
without a filter. Space splits (sequential blocks, threads, mem, mpi --split rows with its
halo exchange on 2 and 3 ranks) must give sequential's bits; date splits (multiprocessing,
mpi --split dates) within 1 float32 ulp; sequential must match a direct per-date
``lee_reference`` + ``stats.reference`` computation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labkit import filters, stats
from labkit.backends import RunOptions, compute
from labkit.errors import LabError
from labkit.filters import LeeFilter
from labkit.io import geotiff_row_writer, read_tile, write_geotiff

N, ROWS, COLS = 5, 23, 17  # odd sizes
DATES = ["20230105", "20230117", "20230129", "20230210", "20230222"]
ENL = 16.0  # the tiles record 4x4 looks


def _stack_array(seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:ROWS, 0:COLS]
    scene = 0.05 + 0.5 * (np.sin(x / 5.0) + 1) * (y > ROWS // 3)
    a = (scene * rng.gamma(16, 1 / 16, (N, ROWS, COLS))).astype(np.float32)
    a[:, 12, 8] = 80.0  # a bright persistent scatterer
    a[2, 5, 3] = np.nan  # one missing pixel
    return a


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Tiles as `labkit prep` writes them: with their looks (LABKIT_LOOKS = 4x4)."""
    src = tmp_path_factory.mktemp("filtered")
    a = _stack_array()
    for k, date in enumerate(DATES):
        with geotiff_row_writer(src / f"{date}_int_crop.tif", ROWS, COLS,
                                {"LABKIT_LOOKS": "4x4"}) as write:
            write(0, a[k])
    return src, a


@pytest.fixture(scope="module")
def sequential(tiles):
    src = tiles[0]
    return {k: compute("sequential", src, filter=f"lee:{k}") for k in (3, 7)}


def _bitwise(r, ref) -> None:
    assert np.array_equal(r.mean, ref.mean, equal_nan=True)
    assert np.array_equal(r.std, ref.std, equal_nan=True)


def _within_ulp(r, ref) -> None:
    for a, b in ((r.mean, ref.mean), (r.std, ref.std)):
        assert a.dtype == b.dtype == np.float32
        assert np.array_equal(np.isnan(a), np.isnan(b))
        ok = ~np.isnan(a)
        np.testing.assert_array_max_ulp(a[ok], b[ok], maxulp=1)


@pytest.mark.parametrize("k", [3, 7])
def test_sequential_equals_direct_computation(tiles, sequential, k):
    _, a = tiles
    direct = np.stack([filters.lee_reference(d, k, ENL) for d in a])
    mean, std = stats.reference(direct)
    r = sequential[k]
    assert np.isnan(r.mean).any()  # the NaN pixel spreads over its window
    np.testing.assert_allclose(r.mean, mean, rtol=1e-6, atol=0, equal_nan=True)
    np.testing.assert_allclose(r.std, std, rtol=1e-6, atol=1e-7, equal_nan=True)
    assert r.meta["filter"] == f"lee:{k}:16"
    unfiltered = compute("sequential", tiles[0])
    assert not np.allclose(unfiltered.std, r.std, equal_nan=True)


@pytest.mark.parametrize("k", [3, 7])
def test_sequential_blocks_and_prefetch_are_bitwise(tiles, sequential, k):
    for br in (1, 4, 5):
        _bitwise(compute("sequential", tiles[0], filter=f"lee:{k}", block_rows=br,
                         prefetch=br == 5), sequential[k])


@pytest.mark.parametrize("backend", ["threads", "mem"])
@pytest.mark.parametrize("k", [3, 7])
def test_space_splits_are_bitwise(tiles, sequential, backend, k):
    for br in (3, 5, None):
        r = compute(backend, tiles[0], workers=2, block_rows=br, filter=f"lee:{k}")
        _bitwise(r, sequential[k])


@pytest.mark.parametrize("strategy", ["partitioned", "per-file"])
@pytest.mark.parametrize("k", [3, 7])
def test_multiprocessing_within_one_ulp(tiles, sequential, strategy, k):
    r = compute("multiprocessing", tiles[0], workers=2, strategy=strategy,
                filter=LeeFilter(k))
    _within_ulp(r, sequential[k])


@pytest.mark.parametrize("k", [3, 7])
@pytest.mark.parametrize("workers", [2, 3])
def test_mpi_rows_halo_exchange_is_bitwise(tiles, sequential, workers, k):
    r = compute("mpi", tiles[0], workers=workers, split="rows", block_rows=4,
                filter=f"lee:{k}")
    _bitwise(r, sequential[k])
    assert r.meta["size"] == workers and r.meta["filter"] == f"lee:{k}:16"


@pytest.mark.parametrize("k", [3, 7])
def test_mpi_dates_within_one_ulp(tiles, sequential, k):
    _within_ulp(compute("mpi", tiles[0], workers=2, split="dates", filter=f"lee:{k}"),
                sequential[k])


def test_mpi_one_rank_in_process(tiles, sequential):
    _bitwise(compute("mpi", tiles[0], workers=1, split="rows", filter="lee:7"), sequential[7])


def test_mpi_slab_thinner_than_halo_is_refused(tiles):
    with pytest.raises(LabError, match=r"needs 15 halo rows .* 3 ranks get only 7 rows"):
        compute("mpi", tiles[0], workers=3, split="rows", filter="lee:31")


def test_explicit_enl_and_options(tiles, sequential):
    _bitwise(compute("sequential", tiles[0], filter="lee:7:16"), sequential[7])
    assert RunOptions(filter="lee:5").filter == LeeFilter(5)
    assert RunOptions(filter="none").filter is None
    with pytest.raises(LabError, match=r"K odd, 3\.\.31"):
        compute("sequential", tiles[0], filter="lee:4")
    with pytest.raises(LabError, match=r"K odd, 3\.\.31"):
        RunOptions().replace(filter="gauss:3")


def test_tiles_without_looks_need_the_enl(tmp_path, tiles):
    a = tiles[1]
    for k, date in enumerate(DATES):
        write_geotiff(tmp_path / f"{date}_int_crop.tif", a[k])  # no LABKIT_LOOKS tag
    with pytest.raises(LabError, match=r"does not record its looks .* lee:7:16") as err:
        compute("sequential", tmp_path, filter="lee:7")
    assert "\n" not in str(err.value)
    r = compute("threads", tmp_path, workers=2, filter="lee:7:16")
    assert r.meta["filter"] == "lee:7:16"


def _labkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labkit", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_cli_filter_runs(tiles, sequential, tmp_path):
    mean, std = tmp_path / "m.tif", tmp_path / "s.tif"
    p = _labkit("run", "threads", tiles[0], mean, std, "--workers", "2", "--block-rows", "3",
                "--filter", "lee:7")
    assert p.returncode == 0, p.stderr
    assert np.array_equal(read_tile(mean), sequential[7].mean, equal_nan=True)
    assert np.array_equal(read_tile(std), sequential[7].std, equal_nan=True)


def test_cli_mpi_three_ranks(tiles, sequential, tmp_path):
    mean, std = tmp_path / "m.tif", tmp_path / "s.tif"
    p = _labkit("run", "mpi", tiles[0], mean, std, "--workers", "3", "--filter", "lee:3")
    assert p.returncode == 0, p.stderr
    assert np.array_equal(read_tile(mean), sequential[3].mean, equal_nan=True)
    assert np.array_equal(read_tile(std), sequential[3].std, equal_nan=True)


@pytest.mark.parametrize("spec", ["lee:4", "lee:0", "lee:x", "gauss:3", "lee:5:0"])
def test_cli_bad_specs(tiles, tmp_path, spec):
    mean, std = tmp_path / "m.tif", tmp_path / "s.tif"
    p = _labkit("run", "sequential", tiles[0], mean, std, "--filter", spec)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labkit: error: "), p.stderr
    assert "--filter" in lines[0] and "lee:K:ENL" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_cli_tiles_without_looks(tmp_path, tiles):
    src = tmp_path / "plain"
    src.mkdir()
    for k, date in enumerate(DATES):
        write_geotiff(src / f"{date}_int_crop.tif", tiles[1][k])
    mean, std = tmp_path / "m.tif", tmp_path / "s.tif"
    p = _labkit("run", "sequential", src, mean, std, "--filter", "lee:5")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "lee:5:16" in lines[0], p.stderr
    assert not mean.exists() and not std.exists()
