"""Layer 36: the dask backend — Dask running the lab's kernel (bitwise), and the xarray way.

``dask/chunks`` on the threaded, multiprocessing and ``distributed`` schedulers must give
sequential's bits (with and without a Lee filter); a cluster started for a run leaves no
process behind, also after an error or a Ctrl-C; bad options are one-line errors; the
xarray way (rioxarray + ``.mean("time")``/``.std("time")`` in float64) is close to
sequential and shows up in ``labkit bench`` with its max |Δ|.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import psutil
import pytest
import test_97_ctrl_c as ctrl
from test_40_backends import assert_close_to_reference, sar_tiles

from labkit.backends import compute, make_pool
from labkit.errors import LabError
from labkit.io import open_stack, read_tile, write_geotiff
from labkit.stats import reference

pytest.importorskip("distributed")
pytest.importorskip("rioxarray")

pytestmark = pytest.mark.timeout(300)

SCHEDULERS = ("threads", "processes", "distributed")
ENL = 16.0


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask_tiles")
    return folder, sar_tiles(folder)


@pytest.fixture(scope="module")
def seq(tiles):
    return {(ddof, mc, f): compute("sequential", tiles[0], ddof=ddof, min_count=mc, filter=f)
            for ddof, mc, f in [(0, None, None), (1, None, None), (0, 3, None),
                                (0, None, f"lee:5:{ENL:g}")]}


def _children() -> list[psutil.Process]:
    """Live processes under this one, except multiprocessing's own helpers (forkserver,
    resource tracker), which live as long as the test process."""
    me = psutil.Process()
    left = []
    for c in me.children(recursive=True):
        try:
            helper = c.ppid() == me.pid and any(
                h in " ".join(c.cmdline()) for h in ("forkserver", "resource_tracker"))
            if not helper and c.status() != psutil.STATUS_ZOMBIE:
                left.append(c)
        except psutil.NoSuchProcess:
            pass
    return left


def _assert_no_children(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _children() == []


def _bitwise(r, ref) -> None:
    assert np.array_equal(r.mean, ref.mean, equal_nan=True)
    assert np.array_equal(r.std, ref.std, equal_nan=True)


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_chunks_bitwise_equal_to_sequential(tiles, seq, scheduler):
    folder, x = tiles
    r = compute("dask", folder, workers=2, scheduler=scheduler, block_rows=5)
    _bitwise(r, seq[(0, None, None)])
    ref_mean, ref_std = reference(x)
    assert_close_to_reference(r.mean, ref_mean)
    assert_close_to_reference(r.std, ref_std)
    m = r.meta
    assert (m["backend"], m["strategy"], m["scheduler"]) == ("dask", "chunks", scheduler)
    assert m["tasks"] == 8 and m["pool"] == "own" and r.bytes_read == x.nbytes
    for k in ("wall", "startup", "read", "compute", "merge"):
        assert r.timings[k] >= 0.0
    assert r.timings["startup"] > 0.0
    _assert_no_children()


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_chunks_with_the_lee_filter(tiles, seq, scheduler):
    """K//2 halo rows per chunk: sequential's bits whatever the chunk size."""
    folder, _ = tiles
    for br in (3, None):
        r = compute("dask", folder, workers=2, scheduler=scheduler, block_rows=br,
                    filter=f"lee:5:{ENL:g}")
        _bitwise(r, seq[(0, None, f"lee:5:{ENL:g}")])
    _assert_no_children()


@pytest.mark.parametrize("ddof, min_count", [(1, None), (0, 3)])
def test_chunks_options(tiles, seq, ddof, min_count):
    r = compute("dask", tiles[0], workers=2, ddof=ddof, min_count=min_count, block_rows=4)
    _bitwise(r, seq[(ddof, min_count, None)])


def test_reused_pools(tiles, seq):
    """make_pool("dask", n, scheduler=...): started once, its start-up not in the runs."""
    folder, _ = tiles
    for scheduler in SCHEDULERS:
        with make_pool("dask", 2, scheduler=scheduler) as pool:
            assert pool.startup > 0
            for strategy in ("chunks", "xarray"):
                r = compute("dask", folder, workers=2, pool=pool, strategy=strategy)
                assert r.timings["startup"] == 0.0 and r.meta["pool"] == "given"
                assert r.meta["scheduler"] == scheduler
            _bitwise(compute("dask", folder, workers=2, pool=pool), seq[(0, None, None)])
            other = "threads" if scheduler != "threads" else "processes"
            with pytest.raises(LabError, match="does not match the given pool"):
                compute("dask", folder, workers=2, pool=pool, scheduler=other)
        if scheduler == "distributed":
            assert pool.closed
            with pytest.raises(LabError, match="closed"):
                compute("dask", folder, workers=2, pool=pool)
    _assert_no_children()


def test_distributed_stays_on_loopback(tiles):
    """Every port the cluster listens on is on 127.0.0.1; no dashboard."""
    def listening(pids: set[int]) -> set:
        return {c.laddr for c in psutil.net_connections("tcp")
                if c.status == psutil.CONN_LISTEN and c.pid in pids}

    earlier = listening({os.getpid()})  # sockets other tests left in this process
    with make_pool("dask", 1, scheduler="distributed") as cluster:
        ports = listening({os.getpid(), *cluster.pids}) - earlier
        assert ports and all(a.ip == "127.0.0.1" for a in ports), ports
        port = cluster.cluster.scheduler.http_server.port  # health checks only
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10).status \
            == 200
        with pytest.raises(urllib.error.HTTPError, match="404"):  # no dashboard
            urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=10)
    _assert_no_children()


def test_error_in_a_task_stops_the_cluster(tmp_path, tiles):
    """A tile broken after validation: the task's LabError, as is; nothing left running."""
    folder = tmp_path / "t"
    sar_tiles(folder, n=3)
    stack = open_stack(folder)
    stack.paths[1].write_bytes(b"not a tiff any more")
    for scheduler in SCHEDULERS:
        with pytest.raises(LabError, match="cannot read tile .*20240102"):
            compute("dask", stack, workers=2, scheduler=scheduler)
    _assert_no_children()


def test_ctrl_c_in_process_stops_the_cluster(tiles):
    """KeyboardInterrupt in this process (from the progress callback): cluster stopped."""
    def interrupt(done, total):
        raise KeyboardInterrupt

    for scheduler in SCHEDULERS:
        with pytest.raises(KeyboardInterrupt):
            compute("dask", tiles[0], workers=2, scheduler=scheduler, block_rows=4,
                    progress=interrupt)
    _assert_no_children()


def test_bad_options(tiles, tmp_path):
    folder, _ = tiles
    with pytest.raises(LabError, match="unknown scheduler 'foo': valid are threads, "
                                       "processes, distributed"):
        compute("dask", folder, scheduler="foo")
    with pytest.raises(LabError, match="for the dask backend only"):
        compute("threads", folder, workers=2, scheduler="threads")
    with pytest.raises(LabError, match="for the dask backend only"):
        make_pool("threads", 2, scheduler="threads")
    with pytest.raises(LabError, match="unknown strategy 'rows' for dask: valid are "
                                       "chunks, xarray"):
        compute("dask", folder, strategy="rows")
    with pytest.raises(LabError, match="xarray strategy computes the plain statistics"):
        compute("dask", folder, strategy="xarray", filter=f"lee:5:{ENL:g}")
    assert list(tmp_path.iterdir()) == []


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labkit", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize("args, message", [
    (("--scheduler", "foo"), "unknown scheduler 'foo': valid are threads, processes, "
                             "distributed"),
    (("--strategy", "columns"), "unknown strategy 'columns' for dask"),
])
def test_cli_bad_options_one_line(tiles, tmp_path, args, message):
    p = _cli("run", "dask", str(tiles[0]), "m.tif", "s.tif", *args, cwd=tmp_path)
    assert p.returncode == 2, p
    assert p.stderr.strip().splitlines() == [f"labkit: error: {message}"] or (
        len(p.stderr.strip().splitlines()) == 1 and message in p.stderr), p.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_scheduler_on_another_backend(tiles, tmp_path):
    p = _cli("run", "threads", str(tiles[0]), "m.tif", "s.tif", "--scheduler", "threads",
             cwd=tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p
    assert "for the dask backend only" in p.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_distributed_run_bitwise(tiles, seq, tmp_path):
    folder, _ = tiles
    p = _cli("run", "dask", str(folder), "m.tif", "s.tif", "--workers", "2", "--scheduler",
             "distributed", "--filter", f"lee:5:{ENL:g}", cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == "", p
    assert p.stdout.startswith("dask/chunks x2: wall")
    ref = seq[(0, None, f"lee:5:{ENL:g}")]
    np.testing.assert_array_equal(read_tile(tmp_path / "m.tif"), ref.mean)
    np.testing.assert_array_equal(read_tile(tmp_path / "s.tif"), ref.std)


# ------------------------------------------------------------------------ the xarray way


@pytest.mark.parametrize("scheduler", ["threads", "distributed"])
def test_xarray_close_to_sequential(tiles, seq, scheduler):
    folder, _ = tiles
    r = compute("dask", folder, workers=2, strategy="xarray", scheduler=scheduler,
                block_rows=8)
    s = seq[(0, None, None)]
    assert r.mean.dtype == r.std.dtype == np.float32
    assert_close_to_reference(r.mean, s.mean, rtol=1e-6)
    assert_close_to_reference(r.std, s.std, rtol=1e-5)
    assert r.meta["dtype"] == "float64" and r.meta["tasks"] > 5 * 5  # dates × chunks
    _assert_no_children()


@pytest.mark.parametrize("ddof, min_count", [(1, None), (0, 3)])
def test_xarray_options(tiles, seq, ddof, min_count):
    r = compute("dask", tiles[0], workers=2, strategy="xarray", ddof=ddof, min_count=min_count)
    s = seq[(ddof, min_count, None)]
    assert_close_to_reference(r.mean, s.mean, rtol=1e-6)
    assert_close_to_reference(r.std, s.std, rtol=1e-5)


def test_xarray_row_in_bench(tiles, tmp_path):
    """``labkit bench --backends dask``: a dask/chunks row (max |Δ| 0) and a dask/xarray
    row whose max |Δ| against sequential is measured and small."""
    from labkit.bench import run_bench

    rows = run_bench(tiles[0], backends="dask", workers="2", repeat=1, warmup=0,
                     csv_path=tmp_path / "r.csv", floors=False, progress=False,
                     course_tsv=False)
    got = {(r["backend"], r["strategy"]): r for r in rows}
    assert set(got) == {("sequential", ""), ("dask", "chunks"), ("dask", "xarray")}
    assert got[("dask", "chunks")]["max_abs_diff"] == 0.0
    diff = got[("dask", "xarray")]["max_abs_diff"]
    assert isinstance(diff, float) and 0.0 <= diff < 1e-3
    _assert_no_children()


# ---------------------------------------------------------------- Ctrl-C from a terminal


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """12 dates of 1024²: a distributed run of about 2-3 s on 2 cores (mostly start-up)."""
    folder = tmp_path_factory.mktemp("dask_big")
    rng = np.random.default_rng(1)
    for k in range(12):
        write_geotiff(folder / f"202402{k + 1:02d}_int_crop.tif",
                      rng.random((1024, 1024), dtype=np.float32))
    return folder


@pytest.mark.parametrize("delay", [0.4, 1.0, 1.6, 2.2])
def test_ctrl_c_during_a_distributed_run(big, tmp_path, delay):
    """SIGINT to the process group (as a terminal's Ctrl-C): exit 130, one line, no
    traceback from any process (workers, nannies), no output, no process left."""
    out = tmp_path / "out"
    out.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(tmp_path))
    cmd = [sys.executable, "-m", "labkit", "run", "dask", str(big), str(out / "mean.tif"),
           str(out / "std.tif"), "--workers", "2", "--scheduler", "distributed",
           "--block-rows", "64"]
    run = ctrl.sigint_after(cmd, delay, cwd=tmp_path, env=env)
    took, stdout, stderr, left, seen = run.took, run.stdout, run.stderr, run.left, run.seen
    report = f"exit {run.code} after {took:.2f} s\nstderr:\n{stderr}\nstdout:\n{stdout}"
    assert "Traceback" not in stderr + stdout, report
    assert run.code == 130 or (run.code == 0 and not run.signalled), report
    if run.code == 130:
        assert stderr.strip().splitlines() == [
            "labkit: interrupted: stopped by Ctrl-C, no output written"], report
        assert list(out.iterdir()) == []
    assert took <= ctrl.LIMIT_S, report
    assert left == [], f"processes left: {left}\n{report}"
    assert len(seen) >= 2 or delay < 1.0, f"saw no worker processes: {seen}"
