"""Layer 4: the process and thread backends, reusable pools, faults (killed worker, Ctrl-C)."""

from __future__ import annotations

import glob
import os
import time

import faults
import numpy as np
import psutil
import pytest

from labkit import backends
from labkit.backends import Pool, compute, make_pool, run
from labkit.errors import LabError
from labkit.io import open_stack, read_tile, write_geotiff
from labkit.stats import reference

N, ROWS, COLS = 5, 37, 29
CASES = [  # (backend, strategy, bitwise equal to sequential with 2 workers)
    ("sequential", None, True),
    ("threads", None, True),
    ("mem", None, True),
    ("multiprocessing", "per-file", True),
    ("multiprocessing", "partitioned", False),  # split by dates: within 1 ulp
]


def sar_tiles(folder, n=N, rows=ROWS, cols=COLS, seed=0):
    """Write ``n`` float32 tiles with NaN edges, PS-like and constant pixels."""
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.0, 1.0, (n, rows, cols)).astype(np.float32)
    x[:, 3:6, 4:8] = (2e3 + rng.normal(0, 0.2, (n, 3, 4))).astype(np.float32)
    x[:, :, :2] = np.nan
    x[:, -1, :] = np.nan
    x[2, 9, 9] = np.nan
    x[:, 12, 12] = 4.5
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        write_geotiff(folder / f"202401{k + 1:02d}_int_crop.tif", x[k])
    return x


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiles")
    return folder, sar_tiles(folder)


@pytest.fixture(scope="module")
def seq(tiles):
    return {(ddof, mc): compute("sequential", tiles[0], ddof=ddof, min_count=mc)
            for ddof, mc in [(0, None), (1, None), (0, 3)]}


_before: set[int] = set()


@pytest.fixture(autouse=True)
def _existing_children():
    """Processes other tests left running (session fixtures) are not ours to count."""
    _before.clear()
    _before.update(c.pid for c in psutil.Process().children(recursive=True))


def workers_left():
    """Live descendant processes started by this test, except multiprocessing's own
    helpers (forkserver, resource tracker), which live as long as this test process."""
    me = psutil.Process()
    left = []
    for c in me.children(recursive=True):
        try:
            helper = c.ppid() == me.pid and "multiprocessing" in " ".join(c.cmdline())
            if not helper and c.pid not in _before and c.status() != psutil.STATUS_ZOMBIE:
                left.append(c)
        except psutil.NoSuchProcess:
            pass
    return left


def assert_no_workers(timeout=10.0):
    deadline = time.monotonic() + timeout
    while workers_left() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert workers_left() == []


def shm_left():
    return glob.glob(f"/dev/shm/labkit_{os.getpid()}_*")


def assert_close_to_reference(got, ref, rtol=1e-6):
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    assert np.all(np.abs(got[ok] - ref[ok]) <= rtol * np.abs(ref[ok]))


def assert_within_ulp(a, b):
    assert np.array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(a)
    tol = np.spacing(np.maximum(np.abs(a[ok]), np.abs(b[ok])))
    assert np.all(np.abs(a[ok] - b[ok]) <= tol)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("backend, strategy, bitwise", CASES)
def test_backend_equals_reference_and_sequential(tiles, seq, backend, strategy, bitwise,
                                                  workers):
    folder, x = tiles
    r = compute(backend, folder, workers=workers, strategy=strategy)
    ref_mean, ref_std = reference(x)
    assert r.mean.dtype == r.std.dtype == np.float32 and r.mean.shape == (ROWS, COLS)
    assert_close_to_reference(r.mean, ref_mean)
    assert_close_to_reference(r.std, ref_std)
    s = seq[(0, None)]
    if bitwise or workers == 1:
        assert np.array_equal(r.mean, s.mean, equal_nan=True)
        assert np.array_equal(r.std, s.std, equal_nan=True)
    else:
        assert_within_ulp(r.mean, s.mean)
        assert_within_ulp(r.std, s.std)
    assert r.std[12, 12] == 0.0
    assert r.bytes_read == x.nbytes
    for k in ("wall", "startup", "read", "compute", "merge"):
        assert r.timings[k] >= 0.0
    assert r.meta["workers"] == workers and r.meta["backend"] == backend
    if backend in ("mem", "multiprocessing"):
        assert r.timings["startup"] > 0.0 and r.meta["pool"] == "own"
    assert_no_workers()
    assert shm_left() == []


@pytest.mark.parametrize("backend, strategy, bitwise", CASES[1:])
@pytest.mark.parametrize("ddof, min_count", [(1, None), (0, 3)])
def test_options_and_small_blocks(tiles, seq, backend, strategy, bitwise, ddof, min_count):
    folder, x = tiles
    r = compute(backend, folder, workers=2, strategy=strategy, ddof=ddof, min_count=min_count,
                block_rows=5)
    s = seq[(ddof, min_count)]
    check = ((lambda a, b: np.testing.assert_array_equal(a, b)) if bitwise
             else assert_within_ulp)
    check(r.mean, s.mean)
    check(r.std, s.std)
    ref_mean, ref_std = reference(x, ddof=ddof, min_count=min_count)
    assert_close_to_reference(r.mean, ref_mean)
    assert_close_to_reference(r.std, ref_std)
    if min_count is not None:
        assert np.isfinite(r.mean[9, 9])  # 4 of 5 dates valid ≥ 3


def test_process_pool_reused(tiles, seq):
    folder, _ = tiles
    with make_pool("mem", 2) as pool:
        assert isinstance(pool, Pool) and pool.kind == "process" and pool.startup > 0
        pids = sorted(pool.pids)
        assert len(pids) == 2
        runs = [compute("mem", folder, workers=2, pool=pool),
                compute("mem", folder, workers=2, pool=pool),
                compute("multiprocessing", folder, workers=2, pool=pool, strategy="per-file"),
                compute("multiprocessing", folder, workers=1, pool=pool)]
        assert sorted(pool.pids) == pids  # the same processes served every run
        for r in runs:
            assert r.timings["startup"] == 0.0 and r.meta["pool"] == "given"
            np.testing.assert_array_equal(r.mean, seq[(0, None)].mean)
        with pytest.raises(LabError, match="has 2 workers"):
            compute("mem", folder, workers=3, pool=pool)
        with pytest.raises(LabError, match="needs a thread pool"):
            compute("threads", folder, workers=2, pool=pool)
    assert pool.closed
    with pytest.raises(LabError, match="closed"):
        compute("mem", folder, workers=2, pool=pool)
    assert_no_workers()


def test_thread_pool_reused(tiles, seq):
    folder, _ = tiles
    pool = make_pool("threads", 2)
    try:
        for _ in range(2):
            r = compute("threads", folder, workers=2, pool=pool, block_rows=4)
            assert r.timings["startup"] == 0.0
            np.testing.assert_array_equal(r.std, seq[(0, None)].std)
        with pytest.raises(LabError, match="needs a process pool"):
            compute("mem", folder, workers=2, pool=pool)
    finally:
        pool.close()


def test_misspelt_option_names_it(tiles):
    with pytest.raises(LabError, match=r"unknown option 'wokers' for compute: valid are "
                                       r"workers, strategy, split, block_rows"):
        compute("sequential", tiles[0], wokers=2)
    with pytest.raises(LabError, match="unknown option 'blockrows' for run"):
        run("sequential", tiles[0], "m.tif", "s.tif", blockrows=4)
    opts = backends.RunOptions(workers=2, block_rows=8)
    assert np.array_equal(compute("threads", tiles[0], opts).mean,
                          compute("threads", tiles[0], workers=2, block_rows=8).mean,
                          equal_nan=True)
    assert compute("threads", tiles[0], opts, workers=1).meta["workers"] == 1
    with pytest.raises(LabError, match="unknown option 'wokers' for RunOptions.replace"):
        opts.replace(wokers=3)
    with pytest.raises(LabError, match="workers must be a whole number"):
        backends.RunOptions(workers=0)


def test_make_pool_names():
    assert make_pool("sequential", 1) is None
    with pytest.raises(LabError, match="unknown backend"):
        make_pool("opencl", 2)
    with pytest.raises(LabError, match="workers"):
        make_pool("mem", 0)


@pytest.mark.parametrize("backend, strategy", [
    ("mem", None), ("multiprocessing", "per-file"), ("multiprocessing", "partitioned")])
def test_killed_worker_is_a_clean_error(tiles, tmp_path, monkeypatch, backend, strategy):
    folder, _ = tiles
    mean, std = tmp_path / "mean.tif", tmp_path / "std.tif"
    write_geotiff(mean, np.zeros((2, 2), np.float32))
    before = mean.read_bytes()
    faults.inject("kill-workers", monkeypatch)  # each worker dies at its first task
    with pytest.raises(LabError, match="worker process died"):
        run(backend, folder, mean, std, workers=2, strategy=strategy)
    assert_no_workers()
    assert shm_left() == []
    assert mean.read_bytes() == before and not std.exists()


def test_killed_worker_closes_a_given_pool(tiles, monkeypatch):
    folder, _ = tiles
    pool = make_pool("multiprocessing", 2)
    faults.inject("kill-second-task", monkeypatch)  # a worker dies after the first task
    with pytest.raises(LabError, match="worker process died"):
        compute("multiprocessing", folder, workers=2, pool=pool, strategy="per-file")
    assert pool.closed
    with pytest.raises(LabError, match="closed"):
        compute("multiprocessing", folder, workers=2, pool=pool)
    assert_no_workers()


@pytest.mark.parametrize("backend, strategy", [
    ("mem", None), ("multiprocessing", "per-file"), ("threads", None)])
@pytest.mark.parametrize("given", [False, True])
def test_ctrl_c_terminates_workers(tiles, backend, strategy, given):
    """KeyboardInterrupt in the parent (raised from the progress callback) stops the run."""
    folder, _ = tiles

    def interrupt(done, total):
        raise KeyboardInterrupt

    pool = make_pool(backend, 2) if given else None
    with pytest.raises(KeyboardInterrupt):
        compute(backend, folder, workers=2, strategy=strategy, block_rows=4, pool=pool,
                progress=interrupt)
    assert_no_workers()
    assert shm_left() == []
    if pool is not None:
        if backend == "threads":  # threads cannot be killed: the pool stays usable
            assert not pool.closed
            compute(backend, folder, workers=2, pool=pool)
        assert pool.closed or pool.close() is None


def test_worker_error_keeps_a_given_pool(tmp_path, tiles):
    """An ordinary error in a task (a tile broken after validation) is re-raised as is."""
    folder = tmp_path / "t"
    sar_tiles(folder, n=3)
    stack = open_stack(folder)
    stack.paths[1].write_bytes(b"not a tiff any more")
    with make_pool("multiprocessing", 2) as pool:
        with pytest.raises(LabError, match="cannot read tile .*20240102"):
            compute("multiprocessing", stack, workers=2, pool=pool)
        assert not pool.closed
        r = compute("multiprocessing", tiles[0], workers=2, pool=pool)
        assert r.mean.shape == (ROWS, COLS)
    assert_no_workers()


def test_mem_refuses_a_stack_too_big(tiles, tmp_path, monkeypatch):
    folder, _ = tiles

    class VM:
        available = 1000  # bytes
        total = 2000

    monkeypatch.setattr(psutil, "virtual_memory", lambda: VM())
    with pytest.raises(LabError, match=r"stack needs .* GiB, .* GiB available: use threads or "
                                       r"sequential"):
        run("mem", folder, tmp_path / "m.tif", tmp_path / "s.tif", workers=2)
    assert list(tmp_path.iterdir()) == [] and shm_left() == [] and workers_left() == []


def test_mem_result_written_by_run(tiles, tmp_path, seq):
    folder, _ = tiles
    r = run("mem", folder, tmp_path / "m.tif", tmp_path / "s.tif", workers=2)
    assert r.timings["write"] > 0
    np.testing.assert_array_equal(read_tile(tmp_path / "m.tif"), seq[(0, None)].mean)
    np.testing.assert_array_equal(read_tile(tmp_path / "s.tif"), seq[(0, None)].std)


def test_workers_beyond_dates(tiles, seq):
    """More workers than dates: partitioned uses at most one chunk per date."""
    folder, _ = tiles
    r = compute("multiprocessing", folder, workers=N + 2, strategy="partitioned")
    assert r.meta["tasks"] == N
    assert_within_ulp(r.mean, seq[(0, None)].mean)
    assert backends.resolve("multiprocessing") == ("multiprocessing", "partitioned", None)
