"""Layer 38: the gpu backend, run on Numba's CUDA simulator (no GPU needed).

The simulator (``NUMBA_ENABLE_CUDASIM=1``) runs the same CUDA kernels as Python threads,
slowly: the stacks are tiny (4 dates of 24×20). Results must equal sequential's within
1 float32 ulp (plain, with lee:3 and lee:5, blocks with halos, NaN rules, min_count,
ddof=1); in the simulator they are bitwise equal. Without a device and without the
simulator, ``labkit run gpu`` exits 2 with one line and writes nothing; importing the
backends or running another backend never loads the CUDA target.

The simulator is chosen when ``numba.cuda`` is first imported: this module sets
``NUMBA_ENABLE_CUDASIM=1`` unless the environment already says ``0`` (then a real GPU is
used, or the tests skip).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labkit.backends import BACKENDS, compute, summary_line
from labkit.backends.gpu import _block_rows, device_bytes_per_row
from labkit.backends.options import RunOptions
from labkit.errors import LabError
from labkit.io import geotiff_row_writer, open_stack, read_tile

N, ROWS, COLS = 4, 24, 20
DATES = ["20230105", "20230117", "20230129", "20230210"]
NO_CUDA = importlib.util.find_spec("numba.cuda") is None
needs_cuda = pytest.mark.skipif(NO_CUDA, reason="Numba has no CUDA target here (neither its "
                                "own nor numba-cuda: pip install -e .[gpu])")


def _stack_array(seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:ROWS, 0:COLS]
    scene = 0.05 + 0.5 * (np.sin(x / 4.0) + 1) * (y > ROWS // 3)
    a = (scene * rng.gamma(16, 1 / 16, (N, ROWS, COLS))).astype(np.float32)
    a[:, 12, 8] = 80.0  # a bright persistent scatterer: mean ≫ std
    a[2, 5, 3] = np.nan  # one missing date of a pixel
    a[0, 9, 15] = np.nan  # missing on the first date: the NaN-aware shift is 0 there
    a[:3, 20, 2] = np.nan  # only one valid date: NaN with min_count 2 or ddof 1
    return a


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> Path:
    """Tiles as `labkit prep` writes them, with their looks (LABKIT_LOOKS = 4x4)."""
    src = tmp_path_factory.mktemp("gpu")
    a = _stack_array()
    for k, date in enumerate(DATES):
        with geotiff_row_writer(src / f"{date}_int_crop.tif", ROWS, COLS,
                                {"LABKIT_LOOKS": "4x4"}) as write:
            write(0, a[k])
    return src


@pytest.fixture(scope="module")
def simulator():
    """The CUDA simulator for this process (unless NUMBA_ENABLE_CUDASIM=0 asks for a GPU)."""
    if NO_CUDA:
        pytest.skip("Numba has no CUDA target here: pip install -e .[gpu]")
    old = os.environ.get("NUMBA_ENABLE_CUDASIM")
    if old is None:
        if "numba.cuda" in sys.modules:
            pytest.skip("numba.cuda was imported before this module could pick the simulator")
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        from numba.core import config

        config.reload_config()  # Numba's own CUDA target reads it from numba's config
    try:
        from labkit.backends._cuda_kernels import open_device

        device = open_device()
    except LabError as exc:
        pytest.skip(str(exc))
    yield device
    if old is None:
        os.environ.pop("NUMBA_ENABLE_CUDASIM", None)


def _within_ulp(r, ref, bitwise: bool) -> None:
    for a, b in ((r.mean, ref.mean), (r.std, ref.std)):
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
        assert np.array_equal(np.isnan(a), np.isnan(b))
        ok = ~np.isnan(a)
        np.testing.assert_array_max_ulp(a[ok], b[ok], maxulp=1)
        if bitwise:  # same operations in the same order: the simulator gives the same bits
            assert np.array_equal(a, b, equal_nan=True)


CASES = [
    {},
    {"ddof": 1},
    {"min_count": 2},
    {"min_count": 3, "ddof": 1},
    {"filter": "lee:3"},
    {"filter": "lee:5", "block_rows": 7},  # 4 blocks, the last shorter, halos read
    {"filter": "lee:3", "min_count": 2, "ddof": 1},
]


@needs_cuda
@pytest.mark.parametrize("case", CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items())
                         or "plain")
def test_equals_sequential(tiles, simulator, case):
    ref = compute("sequential", tiles, **case)
    r = compute("gpu", tiles, **case)
    _within_ulp(r, ref, bitwise=simulator.simulator)
    assert r.meta["backend"] == "gpu" and r.meta["workers"] == 1
    if "min_count" in case or "ddof" in case:
        assert np.isnan(r.mean[20, 2]) and np.isnan(r.std[20, 2])  # one valid date
    if "min_count" in case:
        assert np.isfinite(r.mean[9, 15])  # first date missing, the other three count
    else:
        assert np.isnan(r.mean[5, 3]) and np.isnan(r.mean[9, 15])  # strict NaN


@needs_cuda
def test_timings_and_bytes_over_the_bus(tiles, simulator):
    r = compute("gpu", tiles, block_rows=10)  # blocks of 10, 10 and 4 rows
    t, m = r.timings, r.meta
    for phase in ("startup", "read", "h2d", "kernel", "d2h", "compute", "merge", "wall"):
        assert t[phase] >= 0.0, phase
    assert t["compute"] == t["kernel"] and t["merge"] == pytest.approx(t["h2d"] + t["d2h"])
    assert t["wall"] >= t["read"] + t["h2d"] + t["kernel"] + t["d2h"]
    assert m["blocks"] == 3 and m["block_rows"] == 10
    assert m["h2d_bytes"] == r.bytes_read == N * ROWS * COLS * 4  # the stack, once
    assert m["d2h_bytes"] == 2 * ROWS * COLS * 4  # mean and std
    assert m["bus_bytes"] == m["h2d_bytes"] + m["d2h_bytes"]
    assert m["simulator"] is simulator.simulator and m["device"] == simulator.name
    line = summary_line(r)
    assert "GB over the bus (h2d " in line and "kernel " in line and "d2h " in line
    lee = compute("gpu", tiles, filter="lee:5", block_rows=10)  # halo rows cross the bus too
    read_rows = 12 + 14 + 6  # rows 0-11, 8-21, 18-23: each block with its 2 halo rows
    assert lee.bytes_read == read_rows * N * COLS * 4
    index_bytes = (14 + 14 + 8) * 8 + (COLS + 4) * 8  # rows of each block, columns (int64)
    assert lee.meta["h2d_bytes"] == lee.bytes_read + index_bytes


@needs_cuda
def test_one_device_only(tiles, simulator):
    with pytest.raises(LabError, match="one device: workers must be 1"):
        compute("gpu", tiles, workers=2)


def test_block_rows_fit_the_device():
    stack = open_stack_like(rows=2048, cols=2048, dates=24)
    per_row = device_bytes_per_row(24, 2048, 9)
    assert per_row == (24 * (4 + 16 + 4) + 8) * 2048
    br = _block_rows(stack, RunOptions(filter="lee:9:16"), free=2 * 400 * per_row)
    assert br == 400 - 8  # half the free memory, less the 2·4 halo rows
    assert _block_rows(stack, RunOptions(), free=float("inf")) == 2048  # all in one block
    tall = open_stack_like(rows=20000, cols=2048, dates=24)  # but never over 2 GiB a block
    assert _block_rows(tall, RunOptions(), free=float("inf")) == int(
        2 * 2**30 // device_bytes_per_row(24, 2048))
    assert _block_rows(stack, RunOptions(block_rows=5000), free=1.0) == 2048
    assert _block_rows(stack, RunOptions(), free=1.0) == 1


def open_stack_like(rows: int, cols: int, dates: int):
    """A stand-in with a TileStack's sizes (no files: only the sizes are read)."""
    from types import SimpleNamespace

    return SimpleNamespace(rows=rows, cols=cols, n_dates=dates)


def test_registry_and_cli_list_gpu():
    assert BACKENDS["gpu"] == ("labkit.backends.gpu", (), ())
    p = _labkit("run", "--help")
    assert p.returncode == 0 and "gpu" in p.stdout


def _labkit(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labkit", *map(str, args)],
                          capture_output=True, text=True, timeout=180, env=env)


def _env(**changes: str | None) -> dict:
    env = dict(os.environ)
    for k, v in changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def test_no_device_exits_2_and_writes_nothing(tiles, tmp_path):
    mean, std = tmp_path / "m.tif", tmp_path / "s.tif"
    # no simulator, and no GPU visible even on a machine that has one
    p = _labkit("run", "gpu", tiles, mean, std, "--filter", "lee:3",
                env=_env(NUMBA_ENABLE_CUDASIM=None, CUDA_VISIBLE_DEVICES=""))
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labkit: error: "), p.stderr
    if NO_CUDA:
        assert "pip install -e .[gpu]" in lines[0]
    else:
        assert "no CUDA device was found" in lines[0]
        assert "NUMBA_ENABLE_CUDASIM=1" in lines[0] and "pip install -e .[gpu]" in lines[0]
    assert list(tmp_path.iterdir()) == []


@needs_cuda
def test_cli_on_the_simulator(tiles, tmp_path):
    mean, std = tmp_path / "m.tif", tmp_path / "s.tif"
    p = _labkit("run", "gpu", tiles, mean, std, "--filter", "lee:3", "--block-rows", "9",
                env=_env(NUMBA_ENABLE_CUDASIM="1"))
    assert p.returncode == 0, p.stderr
    assert "gpu x1: wall" in p.stdout and "GB over the bus" in p.stdout
    ref = compute("sequential", tiles, filter="lee:3")
    assert np.array_equal(read_tile(mean), ref.mean, equal_nan=True)
    assert np.array_equal(read_tile(std), ref.std, equal_nan=True)


def _imported(*args: str) -> tuple[list[str], subprocess.CompletedProcess]:
    """Modules a ``python -X importtime ARGS`` process imported, and the process."""
    p = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True,
                       text=True, timeout=120)
    return [line.rsplit("|", 1)[-1].strip() for line in p.stderr.splitlines()
            if line.startswith("import time:")], p


def test_other_backends_never_load_cuda(tiles, tmp_path):
    # what the interpreter loads by itself (numba-cuda's path hooks, when installed)
    baseline = {m for m in _imported("-c", "pass")[0] if "cuda" in m}
    imported, _ = _imported("-c", "import labkit.backends, labkit.cli, labkit.backends.gpu")
    assert {m for m in imported if "cuda" in m} == baseline
    imported, p = _imported("-m", "labkit", "run", "sequential", str(tiles),
                            str(tmp_path / "m.tif"), str(tmp_path / "s.tif"), "--filter",
                            "lee:3")
    assert p.returncode == 0, p.stderr
    assert "numba" in imported  # the CPU kernels, yes
    assert {m for m in imported if "cuda" in m} == baseline


def test_open_stack_like_matches_a_real_stack(tiles):
    s = open_stack(tiles)
    fake = open_stack_like(s.rows, s.cols, s.n_dates)
    assert _block_rows(s, RunOptions(block_rows=7), 1e12) == _block_rows(
        fake, RunOptions(block_rows=7), 1e12) == 7


@needs_cuda
def test_counted_bus_bytes_match_the_backend(tiles, simulator):
    from labkit.bench.bus import bus_bytes

    for k in (0, 5):
        r = compute("gpu", tiles, filter=f"lee:{k}" if k else None)  # one block
        assert r.meta["blocks"] == 1
        assert r.meta["bus_bytes"] == bus_bytes(N, ROWS, COLS, k)


def test_bus_table_without_a_gpu(tiles, monkeypatch):
    from labkit.bench import bus

    monkeypatch.setattr("labkit.backends.gpu.device_present", lambda: False)
    table = bus.bus_table(open_stack(tiles), ks=(0, 3), bus_gbps=10.0, repeats=1)
    stats_only, lee = table
    assert stats_only.flops == 4 * N * ROWS * COLS and stats_only.gpu is None
    assert lee.flops > stats_only.flops and lee.intensity > stats_only.intensity
    for row in table:
        assert row.cpu_s > 0 and row.cpu_all_s > 0 and row.workers >= 1
        assert row.bus_s == pytest.approx(row.bus_bytes / 10e9)
        assert row.ratio == pytest.approx(row.cpu_all_s / row.bus_s)
    lines = bus.describe_bus(table, 10.0)
    assert len(lines) == 3 and "assumed 10 GB/s" in lines[0]
    assert lines[1].startswith("stats alone") and lines[2].startswith("lee:3 + stats")


@needs_cuda
def test_ctrl_c_on_the_simulator(tmp_path):
    import signal
    import time

    src = tmp_path / "big"
    src.mkdir()
    rng = np.random.default_rng(1)
    for date in DATES:  # 128² with lee:9 keeps the simulator busy for many seconds
        with geotiff_row_writer(src / f"{date}_int_crop.tif", 128, 128,
                                {"LABKIT_LOOKS": "4x4"}) as write:
            write(0, rng.gamma(16, 1 / 16, (128, 128)).astype(np.float32))
    mean, std = tmp_path / "m.tif", tmp_path / "s.tif"
    p = subprocess.Popen(
        [sys.executable, "-m", "labkit", "run", "gpu", str(src), str(mean), str(std),
         "--filter", "lee:9"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=_env(NUMBA_ENABLE_CUDASIM="1"), start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(3.0)  # imports done, the kernels running
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    assert p.returncode == 130, (out, err)
    assert err == "labkit: interrupted: stopped by Ctrl-C, no output written\n"
    assert not mean.exists() and not std.exists() and list(tmp_path.iterdir()) == [src]
    with pytest.raises(ProcessLookupError):
        os.killpg(p.pid, 0)  # no process of the run is left


@needs_cuda
def test_the_roofline_gets_gpu_points_when_a_device_is_present(tiles, simulator, monkeypatch):
    """With a device (here the simulator standing in for one), the informe's roofline
    places the gpu backend's kernels too, counted like the CPU points; without one, none.
    """
    from labkit.backends import gpu
    from labkit.bench import roofline
    from labkit.report.measure import gpu_points

    monkeypatch.setattr(gpu, "device_present", lambda: False)
    assert gpu_points(tiles, repeat=1) == []
    monkeypatch.setattr(gpu, "device_present", lambda: True)
    points = gpu_points(tiles, repeat=1)
    assert [(p.kernel, p.backend, p.workers) for p in points] == [
        ("stats", "gpu", 1), ("lee:9", "gpu", 1)]
    assert points[1].flops == roofline.count_flops(N, ROWS, COLS, "lee:9:16", ROWS)
    assert all(p.compute_s > 0 and p.intensity > 0 for p in points)
