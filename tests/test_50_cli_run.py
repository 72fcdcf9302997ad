"""Layer 5: `labkit run`, `labkit verify`, `labkit info` as a user runs them (subprocess)."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
import warnings

import faults
import numpy as np
import psutil
import pytest
import rasterio
from rasterio.transform import Affine

from labkit.backends import compute
from labkit.cli import main
from labkit.io import read_tile, write_geotiff
from labkit.sysinfo import INFO_KEYS, system_info

N, ROWS, COLS = 4, 24, 20


def labkit(*args, env=None, timeout=120, fault=None):
    """``python -m labkit ARGS`` (with ``fault`` in place: :mod:`faults`)."""
    cmd = faults.command(fault, *args) if fault else [sys.executable, "-m", "labkit", *args]
    return subprocess.run(list(map(str, cmd)),
                          capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})


def tiles(folder, n=N, rows=ROWS, cols=COLS, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.0, 1.0, (n, rows, cols)).astype(np.float32)
    x[:, :, 0] = np.nan
    x[:, 2:4, 2:4] = (900 + rng.normal(0, 0.1, (n, 2, 2))).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        write_geotiff(folder / f"202402{k + 1:02d}_int_crop.tif", x[k])
    return x


def raw_tif(path, array):
    """A GeoTIFF of any dtype (labkit only writes float32)."""
    profile = dict(driver="GTiff", dtype=str(array.dtype), count=1, height=array.shape[0],
                   width=array.shape[1], transform=Affine.identity())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NotGeoreferencedWarning
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(array, 1)


def assert_one_line_error(p, *fragments, code=2):
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labkit: error: "), p.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "tiles"
    tiles(folder)
    return folder


@pytest.fixture(scope="module")
def seq_out(src):
    out = src.parent / "seq"
    out.mkdir()
    p = labkit("run", "sequential", src, out / "mean.tif", out / "std.tif")
    assert p.returncode == 0, p.stderr
    return out


@pytest.mark.parametrize("backend, extra, bitwise", [
    ("threads", [], True),
    ("mem", [], True),
    ("multiprocessing", ["--strategy", "per-file"], True),
    ("multiprocessing", ["--strategy", "partitioned", "--block-rows", "7"], False),
])
def test_run_backends_then_verify(src, seq_out, tmp_path, backend, extra, bitwise):
    mean, std = tmp_path / "mean.tif", tmp_path / "std.tif"
    p = labkit("run", backend, src, mean, std, "--workers", 2, *extra)
    assert p.returncode == 0, p.stderr
    line, = p.stdout.strip().splitlines()
    assert line.startswith(backend) and " x2: wall " in line and "GB/s" in line, line
    assert p.stderr == ""
    tol = [] if bitwise else ["--rtol", "2e-7"]  # dates merged: within 1 float32 ulp
    for ours, theirs in ((mean, seq_out / "mean.tif"), (std, seq_out / "std.tif")):
        v = labkit("verify", ours, theirs, *tol)
        assert v.returncode == 0, v.stdout + v.stderr
        assert "NaN positions match" in v.stdout and ": OK" in v.stdout


def test_run_quiet_and_options(src, tmp_path):
    mean, std = tmp_path / "m.tif", tmp_path / "s.tif"
    p = labkit("run", "threads", src, mean, std, "--ddof", 1, "--min-count", 2, "--quiet")
    assert p.returncode == 0 and p.stdout == "" and p.stderr == ""
    assert np.isfinite(read_tile(mean)[:, 1:]).all() and np.isnan(read_tile(std)[:, 0]).all()


def test_verify_reports_and_fails(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = a.copy()
    b[1, 1] += 0.5
    c = a.copy()
    c[0, 0] = np.nan
    for name, arr in (("a", a), ("b", b), ("c", c)):
        write_geotiff(tmp_path / f"{name}.tif", arr)
    p = labkit("verify", tmp_path / "a.tif", tmp_path / "b.tif")
    assert p.returncode == 1 and "max |Δ| = 0.5" in p.stdout and "FAIL" in p.stdout
    assert labkit("verify", tmp_path / "a.tif", tmp_path / "b.tif", "--tol", 0.5).returncode == 0
    assert labkit("verify", tmp_path / "a.tif", tmp_path / "b.tif", "--rtol", 0.01).returncode == 1
    assert labkit("verify", tmp_path / "a.tif", tmp_path / "b.tif", "--rtol", 0.1).returncode == 0
    p = labkit("verify", tmp_path / "a.tif", tmp_path / "c.tif", "--tol", 1)
    assert p.returncode == 1 and "NaN positions differ at 1 pixels" in p.stdout


def test_verify_bad_input(tmp_path):
    write_geotiff(tmp_path / "a.tif", np.zeros((3, 4), np.float32))
    write_geotiff(tmp_path / "b.tif", np.zeros((4, 3), np.float32))
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    assert_one_line_error(labkit("verify", tmp_path / "a.tif", tmp_path / "b.tif"),
                          "sizes differ")
    assert_one_line_error(labkit("verify", tmp_path / "a.tif", tmp_path / "nope.tif"),
                          "nope.tif does not exist")
    assert_one_line_error(labkit("verify", tmp_path / "a.tif", tmp_path / "bad.tif"), "bad.tif")
    assert_one_line_error(labkit("verify", tmp_path / "a.tif", tmp_path / "a.tif", "--tol", -1),
                          "--tol")


def test_info():
    p = labkit("info")
    assert p.returncode == 0, p.stderr
    for key in ("cores_physical", "mem_available_gib", "mpi_library", "numpy", "threads_env"):
        assert key in p.stdout
    info = system_info()
    assert tuple(info) == INFO_KEYS
    assert isinstance(info["cores_logical"], int) and info["mem_total_gib"] > 0
    assert info["numpy"] == np.__version__ and info["gdal"]
    assert "OMP_NUM_THREADS=" in info["threads_env"]


# ---- bad input: exit 2, one line, no output written --------------------------------------

def _bad_src(kind, tmp_path):
    """Make a broken tile folder; returns (src, expected message fragments)."""
    d = tmp_path / kind
    if kind == "missing":
        return d, ["does not exist"]
    d.mkdir()
    if kind == "empty":
        return d, ["no tiles in"]
    if kind == "file":
        f = tmp_path / "20240201_int_crop.tif"
        write_geotiff(f, np.zeros((2, 2), np.float32))
        return f, ["is a file"]
    tiles(d, n=2)
    third = d / "20240209_int_crop.tif"
    if kind == "shapes":
        write_geotiff(third, np.zeros((ROWS + 1, COLS), np.float32))
        return d, ["differ in shape"]
    if kind == "dtypes":
        raw_tif(third, np.zeros((ROWS, COLS), np.float64))
        return d, ["differ in shape or dtype"]
    if kind == "int":
        for f in d.iterdir():
            f.unlink()
        raw_tif(third, np.zeros((ROWS, COLS), np.int16))
        return d, ["int16", "expected float32"]
    if kind == "corrupt":
        third.write_bytes(b"II*\x00" + b"\x17" * 300)
        return d, ["20240209_int_crop.tif", "corrupt"]
    if kind == "truncated":
        write_geotiff(third, np.ones((ROWS, COLS), np.float32))
        third.write_bytes(third.read_bytes()[:600])
        return d, ["20240209_int_crop.tif", "truncated"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "empty", "file", "shapes", "dtypes", "int",
                                  "corrupt", "truncated"])
@pytest.mark.parametrize("backend", ["mem", "threads"])
def test_bad_sources(tmp_path, kind, backend):
    src, fragments = _bad_src(kind, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    write_geotiff(out / "mean.tif", np.ones((2, 2), np.float32))
    before = (out / "mean.tif").read_bytes()
    p = labkit("run", backend, src, out / "mean.tif", out / "std.tif", "--workers", 2)
    assert_one_line_error(p, *fragments)
    assert (out / "mean.tif").read_bytes() == before and not (out / "std.tif").exists()
    assert sorted(x.name for x in out.iterdir()) == ["mean.tif"]  # no temporaries


@pytest.mark.parametrize("args, fragments", [
    (["opencl"], ["unknown backend 'opencl'", "sequential, multiprocessing, mem, threads, mpi"]),
    (["multiprocessing", "--strategy", "chunks"], ["unknown strategy 'chunks'",
                                                   "partitioned, per-file"]),
    (["mem", "--strategy", "per-file"], ["mem takes no --strategy"]),
    (["threads", "--split", "rows"], ["threads takes no --split"]),
    (["mpi", "--split", "tiles"], ["unknown split 'tiles'", "rows, dates"]),
    (["mem", "--workers", "0"], ["--workers", "0 is not ≥ 1"]),
    (["threads", "--block-rows", "-3"], ["--block-rows"]),
    (["mem", "--ddof", "4"], ["ddof=4", "0..3"]),
    (["threads", "--min-count", "9"], ["min_count=9", "1..4"]),
])
def test_bad_options(src, tmp_path, args, fragments):
    backend, *rest = args
    p = labkit("run", backend, src, tmp_path / "m.tif", tmp_path / "s.tif", *rest)
    assert_one_line_error(p, *fragments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", ["mem", "threads"])
def test_run_passes_its_choices_without_the_environment(src, tmp_path, monkeypatch, backend):
    """The kernel a one-shot run chooses reaches its workers as an argument: the run
    leaves os.environ as it found it."""
    monkeypatch.delenv("LABKIT_KERNEL", raising=False)
    before = dict(os.environ)
    rc = main(["run", backend, str(src), str(tmp_path / "m.tif"), str(tmp_path / "s.tif"),
               "--workers", "2", "--quiet"])
    assert rc == 0 and dict(os.environ) == before
    assert np.array_equal(read_tile(tmp_path / "m.tif"),
                          compute("sequential", src).mean, equal_nan=True)


def test_misspelt_option_is_one_line(src, tmp_path):
    p = labkit("run", "sequential", src, tmp_path / "m.tif", tmp_path / "s.tif",
               "--wokers", "2")
    assert_one_line_error(p, "--wokers")
    assert list(tmp_path.iterdir()) == []


def test_bad_outputs(src, tmp_path):
    p = labkit("run", "mem", src, tmp_path / "no" / "m.tif", tmp_path / "s.tif")
    assert_one_line_error(p, "does not exist")
    p = labkit("run", "mem", src, tmp_path, tmp_path / "s.tif")
    assert_one_line_error(p, "is a folder")
    p = labkit("run", "threads", src, tmp_path / "x.tif", tmp_path / "x.tif")
    assert_one_line_error(p, "same file")
    tile = sorted(src.iterdir())[0]
    p = labkit("run", "threads", src, tile, tmp_path / "s.tif")
    assert_one_line_error(p, "one of the input tiles")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", ["mem", "multiprocessing"])
def test_killed_worker_exit_2(src, tmp_path, backend):
    p = labkit("run", backend, src, tmp_path / "m.tif", tmp_path / "s.tif", "--workers", 2,
               fault="kill-workers")  # each worker SIGKILLed at its first task
    assert_one_line_error(p, "a worker process died (killed?) during the run; no output")
    assert list(tmp_path.iterdir()) == []


def test_mem_stack_too_big(src, tmp_path, monkeypatch, capsys):
    class VM:
        available = 4096  # bytes
        total = 8192

    monkeypatch.setattr(psutil, "virtual_memory", lambda: VM())
    rc = main(["run", "mem", str(src), str(tmp_path / "m.tif"), str(tmp_path / "s.tif")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "stack needs" in err[0] and "use threads or sequential" in err[0]
    assert list(tmp_path.iterdir()) == []


# ---- Ctrl-C: exit 130, no children, no output ----------------------------------------------

def _alive(pids):
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.parametrize("backend, extra", [
    ("mem", []), ("multiprocessing", ["--strategy", "per-file"])])
def test_sigint_exits_130_and_cleans_up(src, tmp_path, backend, extra):
    mean, std = tmp_path / "m.tif", tmp_path / "s.tif"
    proc = subprocess.Popen(  # the tasks sleep: the run is caught in the middle
        faults.command("slow-tasks", "run", backend, src, mean, std, "--workers", "2",
                       *extra),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for 2 workers (children of the forkserver)
            kids = parent.children(recursive=True)
            workers = [k for k in kids if k.ppid() != proc.pid]
            if len(workers) >= 2 and (backend != "mem" or glob.glob(
                    f"/dev/shm/labkit_{proc.pid}_*")):
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        else:
            pytest.fail("workers did not start")
        time.sleep(0.5)  # tasks submitted and sleeping
        pids = [k.pid for k in parent.children(recursive=True)]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # a hang: end the whole group, or its helpers keep the pipes
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labkit: interrupted"), err
    assert out == "" and list(tmp_path.iterdir()) == []
    deadline = time.monotonic() + 10
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _alive(pids) == []
    assert glob.glob(f"/dev/shm/labkit_{proc.pid}_*") == []
