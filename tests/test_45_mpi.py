"""Layer 4: the MPI backend under mpiexec (CLI), as one rank, and through the launcher.

Split by rows must equal sequential bitwise; split by dates within 1 float32 ulp; both
within 1e-6 (relative) of the float64 reference. Bad input and a dying rank end the job
with a non-zero exit code, no hang and no process left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import faults
import numpy as np
import pytest

from labkit import stats
from labkit.backends import compute
from labkit.backends.mpi._world import THREAD_ENV, mpiexec_path
from labkit.errors import LabError
from labkit.io import read_tile, write_geotiff

TIMEOUT = 60  # s for any one mpiexec job: far above the ~1 s they take


def _stack_array(n: int = 6, rows: int = 45, cols: int = 37, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.0, 100.0, (n, rows, cols)).astype(np.float32)
    x[:, :4] = 5e4 + rng.normal(0, 3, (n, 4, cols)).astype(np.float32)  # PS-like rows
    x[:, :, :2] = np.nan  # NaN edge in every date (zero-filled SLC border)
    x[:, -1, :] = np.nan
    x[1, 10, 10] = np.nan  # one missing date
    x[4, 11, 12] = np.nan
    x[:, 20, 20] = 7.0  # constant pixel
    return x


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> tuple[Path, np.ndarray]:
    src = tmp_path_factory.mktemp("tiles")
    x = _stack_array()
    for k, date in enumerate(["20230105", "20230117", "20230129", "20230210", "20230222",
                              "20230306"]):
        write_geotiff(src / f"{date}_int_crop.tif", x[k])
    return src, x


@pytest.fixture(scope="module")
def sequential(tiles):
    return compute("sequential", tiles[0])


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **THREAD_ENV, **extra}
    for var in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"):
        env.pop(var, None)
    return env


def _labkit(n: int | None, *args: str, env: dict[str, str] | None = None,
            fault: str | None = None) -> subprocess.CompletedProcess:
    """``[mpiexec -n N] python -m labkit ...`` in its own process group; no group left.

    ``fault``: run it with that fault in place (:mod:`faults`).
    """
    cmd = faults.command(fault, *args) if fault else [sys.executable, "-m", "labkit", *args]
    if n is not None:
        cmd = [mpiexec_path(), "-n", str(n), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or _env(), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        pytest.fail(f"{' '.join(cmd)} hung for {TIMEOUT} s")
    with pytest.raises(ProcessLookupError):  # every rank and proxy has exited
        os.killpg(proc.pid, 0)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _assert_within_ulp(a: np.ndarray, b: np.ndarray, maxulp: int = 1) -> None:
    assert a.dtype == b.dtype == np.float32
    assert np.array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(a)
    np.testing.assert_array_max_ulp(a[ok], b[ok], maxulp=maxulp)


def _check(mean: np.ndarray, std: np.ndarray, split: str, seq, x: np.ndarray,
           ddof: int = 0, min_count: int | None = None) -> None:
    if split == "rows":
        assert np.array_equal(mean, seq.mean, equal_nan=True)
        assert np.array_equal(std, seq.std, equal_nan=True)
    else:
        _assert_within_ulp(mean, seq.mean)
        _assert_within_ulp(std, seq.std)
    ref_mean, ref_std = stats.reference(x, ddof=ddof, min_count=min_count)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-6, atol=0, equal_nan=True)
    np.testing.assert_allclose(std, ref_std, rtol=1e-6, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("split", ["rows", "dates"])
@pytest.mark.parametrize("n", [2, 1, None], ids=["mpiexec-n2", "mpiexec-n1", "no-mpiexec"])
def test_cli_under_mpiexec(tiles, sequential, tmp_path, split, n):
    src, x = tiles
    mean, std = tmp_path / "mean.tif", tmp_path / "std.tif"
    res = _labkit(n, "run", "mpi", str(src), str(mean), str(std), "--split", split)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("mpi/") == 1  # one summary line, from rank 0 only
    assert f"x{n or 1}" in res.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mean.tif", "std.tif"]
    _check(read_tile(mean), read_tile(std), split, sequential, x)


def test_cli_launcher_without_mpiexec(tiles, sequential, tmp_path):
    src, x = tiles
    mean, std = tmp_path / "m.tif", tmp_path / "s.tif"
    res = _labkit(None, "run", "mpi", str(src), str(mean), str(std), "--workers", "2")
    assert res.returncode == 0, res.stderr
    assert "x2" in res.stdout
    _check(read_tile(mean), read_tile(std), "rows", sequential, x)


@pytest.mark.parametrize("split", ["rows", "dates"])
def test_in_process_launcher(tiles, sequential, split):
    src, x = tiles
    r = compute("mpi", src, workers=2, split=split)
    _check(r.mean, r.std, split, sequential, x)
    assert r.meta["size"] == 2 and r.meta["rank"] == 0 and r.meta["split"] == split
    per_rank = r.meta["per_rank"]
    assert [d["rank"] for d in per_rank] == [0, 1]
    assert len({d["pid"] for d in per_rank}) == 2
    for d in per_rank:
        assert {"startup", "read", "compute", "wait", "merge", "wall"} <= set(d)
    assert r.bytes_read == sum(d["bytes_read"] for d in per_rank) == x.nbytes
    assert r.timings["startup"] > 0 and r.timings["wall"] >= r.timings["startup"]
    assert "mpiexec -n 2" in r.meta["command"]


def test_one_rank_in_process_is_bitwise_sequential(tiles, sequential):
    r = compute("mpi", tiles[0], workers=1, split="dates")
    assert np.array_equal(r.mean, sequential.mean, equal_nan=True)
    assert np.array_equal(r.std, sequential.std, equal_nan=True)
    assert r.meta["size"] == 1 and len(r.meta["per_rank"]) == 1
    assert "command" not in r.meta  # ran in this process, no mpiexec


@pytest.mark.parametrize("split", ["rows", "dates"])
def test_nan_aware_and_sample_std(tiles, split):
    src, x = tiles
    seq = compute("sequential", src, ddof=1, min_count=4)
    r = compute("mpi", src, workers=2, split=split, ddof=1, min_count=4, block_rows=7)
    _check(r.mean, r.std, split, seq, x, ddof=1, min_count=4)
    assert np.isfinite(r.mean[10, 10]) and np.isfinite(r.std[11, 12])  # 5 of 6 dates valid


def test_bad_input_one_line_exit_2(tmp_path):
    res = _labkit(2, "run", "mpi", str(tmp_path / "nope"), str(tmp_path / "m.tif"),
                  str(tmp_path / "s.tif"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labkit: error: tile folder")
    res = _labkit(2, "run", "mpi", str(tmp_path), "m.tif", "s.tif", "--split", "cols")
    assert res.returncode == 2 and res.stderr.count("labkit: error:") == 1
    assert not list(tmp_path.iterdir())


def _corrupt_copy(src: Path, dest: Path) -> Path:
    """Copy the stack; rewrite its last date as a compressed tile, then truncate it.

    The header still opens (open_stack passes on every rank); reading the data fails, so
    only the rank(s) that read the last date meet the error.
    """
    import shutil

    import rasterio

    shutil.copytree(src, dest)
    last = sorted(dest.iterdir())[-1]
    a = read_tile(last)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning
        with rasterio.open(last, "w", driver="GTiff", dtype="float32", count=1,
                           height=a.shape[0], width=a.shape[1], compress="deflate",
                           tiled=True, blockxsize=16, blockysize=16) as ds:
            ds.write(np.random.default_rng(0).random(a.shape, np.float32), 1)
    os.truncate(last, last.stat().st_size * 2 // 3)
    return dest


def test_error_on_one_rank_reaches_all(tiles, tmp_path):
    bad = _corrupt_copy(tiles[0], tmp_path / "bad")
    out = tmp_path / "out"
    out.mkdir()
    res = _labkit(2, "run", "mpi", str(bad), str(out / "m.tif"), str(out / "s.tif"),
                  "--split", "dates")
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labkit: error: rank 1: cannot read tile")
    assert not list(out.iterdir())
    with pytest.raises(LabError, match="rank 1: cannot read tile"):
        compute("mpi", bad, workers=2, split="dates")


def test_killed_rank_ends_the_job(tiles, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    res = _labkit(2, "run", "mpi", str(tiles[0]), str(out / "m.tif"), str(out / "s.tif"),
                  "--block-rows", "8", fault="kill-rank")  # rank 1 SIGKILLed mid-run
    assert res.returncode != 0
    assert not list(out.iterdir())
    faults.inject("kill-rank", monkeypatch)  # on the ranks labkit's launcher starts
    with pytest.raises(LabError, match="MPI rank died"):
        compute("mpi", tiles[0], workers=2, split="dates", block_rows=8)
