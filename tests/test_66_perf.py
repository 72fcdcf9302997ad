"""Layer 66: the performance work is correct (no timing assertions here).

The fast paths give the same bits as the plain ones (threads, row ranges, prefetch, the
VRT stack reader, threaded prep), the course-style script and the process timers of
:mod:`labkit.bench` do what they claim, ``labkit run`` imports no notebook libraries, and
the developer script ``benchmarks/perf.py`` measures and writes what it says.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labkit import bench, config, prep, stats
from labkit.backends import compute, io_block_rows
from labkit.errors import LabError
from labkit.io import TILE_SUFFIX, StackReader, open_stack, read_block, read_tile, write_geotiff

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "perf.py"
NOTEBOOK_LIBRARIES = ("matplotlib", "ipywidgets", "jupyter")


def _stack(n=11, rows=23, cols=301, seed=0):
    """float32 stack with NaN, PS-like and constant pixels; 11 dates = 8 + 3 (the fused
    kernel's unrolled and remainder paths), 301 columns = 256 + 45 (its column chunks)."""
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.0, 1.0, (n, rows, cols)).astype(np.float32)
    x[:, :2] = (3e4 + rng.normal(0, 1, (n, 2, cols))).astype(np.float32)
    x[:, :, -3:] = np.nan
    x[min(4, n - 1), 3, 9] = np.nan
    x[:, 4, 10] = 2.5
    return x


def _equal(a, b):
    return all(np.array_equal(p, q, equal_nan=True) for p, q in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny preset (synthetic SLCs + 64×64 tiles)."""
    root = tmp_path_factory.mktemp("data")
    return prep.ensure_tiles("tiny", root=root, progress=False)


def _random_tiles(dest: Path, n_dates: int, side: int, seed: int) -> Path:
    """``n_dates`` random float32 tiles of ``side``² in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(n_dates):
        name = f"{dt.date(2021, 1, 5) + dt.timedelta(days=8 * k):%Y%m%d}{TILE_SUFFIX}"
        write_geotiff(dest / name, rng.standard_exponential((side, side), dtype=np.float32))
    return dest


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    return _random_tiles(tmp_path_factory.mktemp("rand"), n_dates=10, side=48, seed=3)


@pytest.fixture(scope="module")
def script():
    """``benchmarks/perf.py`` imported by path (it finds its sibling modules itself)."""
    spec = importlib.util.spec_from_file_location("perf_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- kernels: threads, row ranges, both kernels ----------------------------------------


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
@pytest.mark.parametrize("ddof", [0, 1])
def test_threads_and_row_ranges_are_bitwise(monkeypatch, kernel, ddof):
    x = _stack()
    monkeypatch.setenv("LABKIT_KERNEL", kernel)
    one = stats.reduce_stack(x, ddof=ddof)
    assert _equal(stats.reduce_stack(x, ddof=ddof, threads=2), one)
    assert _equal(stats.reduce_stack(x, ddof=ddof, threads=5), one)
    part = stats.reduce_stack(x, ddof=ddof, rows=(5, 17))
    assert _equal(part, (one[0][5:17], one[1][5:17]))
    part = stats.reduce_stack(x, ddof=ddof, rows=(3, 20), threads=2)
    assert _equal(part, (one[0][3:20], one[1][3:20]))
    monkeypatch.setenv("LABKIT_KERNEL", "numpy" if kernel == "numba" else "numba")
    assert _equal(stats.reduce_stack(x, ddof=ddof, threads=2), one)  # kernels agree


def test_fused_kernel_date_counts_and_views(monkeypatch):
    """Every date count around the 8-date unroll, contiguous or strided, same bits."""
    for n in (1, 2, 7, 8, 9, 16, 17):
        x = _stack(n=n, rows=5, cols=260, seed=n)
        ddof = 0 if n == 1 else 1
        monkeypatch.setenv("LABKIT_KERNEL", "numpy")
        plain = stats.reduce_stack(x, ddof=ddof)
        monkeypatch.setenv("LABKIT_KERNEL", "numba")
        assert _equal(stats.reduce_stack(x, ddof=ddof), plain), n
        big = np.concatenate([x, x], axis=2)
        assert _equal(stats.reduce_stack(big[:, :, 3:263], ddof=ddof),
                      stats.reduce_stack(np.ascontiguousarray(big[:, :, 3:263]), ddof=ddof))


def test_rows_out_of_range():
    with pytest.raises(LabError, match="rows 3:99 out of range"):
        stats.reduce_stack(_stack(), rows=(3, 99))


def test_one_shot_kernel_by_size(monkeypatch):
    monkeypatch.delenv("LABKIT_KERNEL", raising=False)
    monkeypatch.setattr(stats, "_NUMBA_KERNEL", None)
    assert stats.one_shot_kernel(10_000) == "numpy"
    monkeypatch.setenv("LABKIT_KERNEL", "auto")
    assert stats.one_shot_kernel(stats.JIT_PAYS_BYTES) == "numba"
    monkeypatch.setenv("LABKIT_KERNEL", "numba")  # the user's choice wins
    assert stats.one_shot_kernel(10) == "numba"


# -- reading: the VRT stack reader ------------------------------------------------------


def test_stack_reader_equals_tile_reads(tiles):
    stack = open_stack(tiles)
    full = np.stack([read_tile(p) for p in stack.paths])
    with StackReader(stack.paths) as reader:
        assert reader.width == stack.cols and reader.rows == stack.rows
        assert np.array_equal(reader.read(0, stack.rows), full)
        out = np.empty((stack.n_dates, 7, stack.cols), np.float32)
        assert reader.read(20, 7, out=out) is out
        assert np.array_equal(out, full[:, 20:27])
    assert np.array_equal(read_block(stack.paths, 41, 7), full[:, 41:48])


def test_stack_reader_names_a_corrupt_tile(tmp_path, tiles):
    paths = sorted(Path(tiles).glob("*.tif"))
    bad = tmp_path / "20990101_int_crop.tif"
    data = paths[1].read_bytes()
    bad.write_bytes(data[:len(data) // 2])  # header intact, samples cut
    with pytest.raises(LabError, match="20990101_int_crop.tif"):
        read_block([paths[0], bad], 0, 48)


def test_block_rows_fit_the_cache():
    assert io_block_rows(24, 2048) * 24 * 2048 * 4 <= 8 * 2**20
    assert io_block_rows(5, 64) == 256 and io_block_rows(10**6, 10**6) == 1


# -- backends: prefetch, threads -------------------------------------------------------


@pytest.mark.parametrize("kernel", ["numba", "numpy"])
def test_prefetch_and_threads_are_bitwise(monkeypatch, tiles, kernel):
    monkeypatch.setenv("LABKIT_KERNEL", kernel)
    base = compute("sequential", tiles, block_rows=5)
    pre = compute("sequential", tiles, block_rows=5, prefetch=True)
    assert pre.meta["prefetch"] and pre.meta["compute_total"] > 0
    assert _equal((pre.mean, pre.std), (base.mean, base.std))
    thr = compute("threads", tiles, workers=2, block_rows=7)
    assert _equal((thr.mean, thr.std), (base.mean, base.std))
    ref = stats.reference(np.stack([read_tile(p) for p in open_stack(tiles).paths]))
    ok = ~np.isnan(ref[0])
    assert np.allclose(base.mean[ok], ref[0][ok], rtol=1e-6)


def test_compare_prefetch(tiles):
    runs = bench.compare_prefetch(tiles, repeats=1, kernel="numpy")
    assert [len(runs["off"]), len(runs["on"])] == [1, 1]
    assert runs["on"][0].meta["prefetch"] and not runs["off"][0].meta["prefetch"]


def test_kernel_rates_and_describe_prefetch(tiles):
    rates = bench.kernel_rates(tiles, repeats=1)
    assert set(rates) == {"numpy.sum (memory floor)", "NumPy kernel", "fused kernel",
                          "fused kernel, 2 threads"}
    assert all(v > 0 for v in rates.values())  # GB/s
    text = bench.describe_prefetch(bench.compare_prefetch(tiles, repeats=1))
    assert text.startswith("without prefetch:") and text.splitlines()[-1].endswith("x")


# -- prep: threads ---------------------------------------------------------------------


def test_threaded_prep_is_bitwise(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "PREP_BLOCK_BYTES", 4096)  # many small blocks
    from labkit.sar import synth

    slc = synth.write_stack(tmp_path / "slc", "tiny", dates=1, progress=False)
    vrt = next(slc.rglob("*.slc.vrt"))
    for threads in (1, 2, 3):
        prep.prep_date(vrt, tmp_path / f"t{threads}.tif", (60, 50, 2, 1), 4, threads=threads)
    one = read_tile(tmp_path / "t1.tif")
    assert np.array_equal(one, read_tile(tmp_path / "t2.tif"), equal_nan=True)
    assert np.array_equal(one, read_tile(tmp_path / "t3.tif"), equal_nan=True)


# -- labkit.bench: the course-style script, process timing, alternation -----------------


def test_course_script_and_read_and_sum(tmp_path, tiles):
    x = np.stack([read_tile(p) for p in open_stack(tiles).paths]).astype(np.float64)
    assert bench.read_and_sum(str(tiles)) == pytest.approx(x.sum(), rel=1e-9)
    mean, std = tmp_path / "m.tif", tmp_path / "s.tif"
    wall = bench.time_command(bench.python_call("course_script", str(tiles), str(mean),
                                                str(std)))
    assert wall > 0
    assert np.allclose(read_tile(mean), x.mean(axis=0), rtol=1e-6)
    assert np.allclose(read_tile(std), x.std(axis=0), rtol=1e-4)


def test_process_timers_and_their_errors():
    code = "import sys; print('boom', file=sys.stderr); sys.exit(3)"
    with pytest.raises(LabError, match="failed .exit 3.: boom"):
        bench.time_command([sys.executable, "-c", code])
    wall, peak = bench.peak_rss([sys.executable, "-c", "x = bytearray(60 * 2**20)"])
    assert wall > 0 and peak > 60 * 2**20
    wall, out, _ = bench.run_command([sys.executable, "-c", "import os; print(os.environ['X'])"],
                                     env={"X": "seen"})
    assert out.strip() == "seen"
    with pytest.raises(LabError, match="took longer than 0 s: stopped"):
        bench.time_command([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.3)


def test_alternate_and_forced_kernel(monkeypatch):
    calls = []
    t = bench.alternate({"a": lambda: calls.append("a") or 1.0,
                         "b": lambda: calls.append("b") or 2.0}, repeats=2, warmup=1)
    assert calls == ["a", "b"] * 3 and t == {"a": [1.0, 1.0], "b": [2.0, 2.0]}
    assert bench.median([3.0, 1.0, 2.0]) == 2.0
    monkeypatch.setenv("LABKIT_KERNEL", "numpy")
    with bench.forced_kernel("numba"):
        assert stats.one_shot_kernel(10) == "numba"
    assert stats.one_shot_kernel(10) == "numpy"


def test_labkit_run_imports_no_notebook_libraries(tmp_path, tiny):
    code = ("import sys; from labkit.cli import main; "
            f"rc = main(['run', 'sequential', {str(tiny)!r}, {str(tmp_path / 'm.tif')!r}, "
            f"{str(tmp_path / 's.tif')!r}, '--quiet']); "
            "print(rc, sorted(m for m in sys.modules if m.split('.')[0].startswith("
            f"{NOTEBOOK_LIBRARIES!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip().split(maxsplit=1)
    assert out == ["0", "[]"]


# -- benchmarks/perf.py: the developer script -----------------------------------------


def test_script_make_tiles_is_kept(script, tmp_path):
    folder = script.make_tiles(tmp_path / "t", n_dates=4, side=16, seed=3)
    files = sorted(folder.glob("*_int_crop.tif"))
    assert len(files) == 4 and read_tile(files[0]).shape == (16, 16)
    before = [f.stat().st_mtime_ns for f in files]
    script.make_tiles(folder, n_dates=4, side=16, seed=3)
    assert [f.stat().st_mtime_ns for f in files] == before


def test_script_import_report(script):
    import _perf_cases

    text = ("import time: self [us] | cumulative | imported package\n"
            "import time:       100 |        100 |   numpy.core\n"
            "import time:      2000 |       5000 | numpy\n"
            "import time:        10 |         10 | labkit.io\n")
    names, top = _perf_cases.import_report(text, top=2)
    assert names == ["numpy.core", "numpy", "labkit.io"]
    assert top[0].split() == ["5.0", "2.0", "numpy"] and len(top) == 2
    assert _perf_cases.FORBIDDEN_IMPORTS == NOTEBOOK_LIBRARIES


def test_script_groups_small(script, tmp_path, tiny, tiles):
    import _perf_cases
    import _perf_parallel

    rows = _perf_cases.measure_startup(tiny, repeats=1, text_path=tmp_path / "importtime.txt")
    assert rows[0]["case"] == "imports" and "notebook libraries: none" in rows[0]["a_label"]
    assert "notebook libraries imported" in (tmp_path / "importtime.txt").read_text()
    rows += _perf_cases.measure_prefetch(tiles, repeats=1)
    rows += _perf_parallel.measure_parallel(tiny, tiny, repeats=1,
                                            backends=[("threads", None, None)])
    assert {r["case"] for r in rows} >= {"imports", "prefetch", "speedup", "seed", "scaling"}
    assert len([r for r in rows if r["case"] == "scaling"]) == 3
    for r in rows:
        assert set(r) == set(_perf_cases.PERF_COLUMNS)
        assert r["a_median_s"] is None or r["a_median_s"] > 0
        if r["ratio"] is not None:  # always median A / median B
            assert r["ratio"] == pytest.approx(r["a_median_s"] / r["b_median_s"])
    csv_path = tmp_path / "perf.csv"
    script.write_perf_csv(csv_path, rows)
    again = script.read_perf_csv(csv_path)
    assert [r["group"] for r in again] == sorted((r["group"] for r in rows),
                                                 key=script.GROUPS.index)
    script.write_perf_csv(csv_path, rows[:1])  # re-measuring a group replaces only its rows
    assert len(script.read_perf_csv(csv_path)) == len(rows)
    assert "startup" in script.format_rows(again) and "A/B" in script.format_rows(again)


def test_script_prep_small(script, tmp_path):
    import _perf_cases

    from labkit.sar import synth

    slc = synth.write_stack(tmp_path / "slc", "tiny", dates=1, progress=False)
    rows = _perf_cases.measure_prep(slc, repeats=1)
    assert {r["case"] for r in rows} == {"in-process", "peak-rss", "cat"}
    rss = next(r for r in rows if r["case"] == "peak-rss")
    assert "peak RSS" in rss["a_label"] and rss["ratio"] is None
    assert all(r["ratio"] > 0 for r in rows if r["case"] != "peak-rss")


def test_script_runs_and_prints_its_command(tmp_path, tiny):
    """The script as a developer runs it, on the tiny tiles (built under --root)."""
    root = tiny.parent.parent
    out_csv = tmp_path / "out" / "perf.csv"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out_csv), "--groups",
                           "startup", "--repeat", "1", "--root", str(root)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert "perf.py --out" in first and "--groups startup" in first
    assert "ratio = median A / median B" in proc.stdout and "startup" in proc.stdout
    text = out_csv.read_text()
    assert text.splitlines()[0].startswith("group,case,a_label") and first in text
    assert (out_csv.parent / "importtime.txt").is_file()
    for word in ("goal", "target"):
        assert word not in proc.stdout.lower()
    bad = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out_csv), "--groups",
                          "gpu", "--root", str(root)], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown groups gpu: valid are kernel" in bad.stderr


def test_perf_is_not_a_labkit_command():
    """The performance suite is a developer script, not part of the student's CLI."""
    from labkit.cli import HANDLERS, build_parser

    assert "perf" not in HANDLERS
    with pytest.raises(SystemExit):
        build_parser().parse_args(["perf"])
    assert importlib.util.find_spec("labkit.perf") is None


def test_cached_reader_sees_rewritten_tiles(tmp_path):
    folder = _random_tiles(tmp_path / "t", n_dates=3, side=16, seed=1)
    paths = open_stack(folder).paths
    first = compute("sequential", folder).mean
    again = compute("threads", folder, workers=2).mean  # both keep their open tiles
    assert np.array_equal(first, again, equal_nan=True)
    from labkit.io import cached_reader, write_geotiff

    assert cached_reader(paths) is cached_reader(paths)
    write_geotiff(paths[1], np.full((16, 16), 1e3, np.float32))  # atomic: a new file
    x = np.stack([read_tile(p) for p in paths])
    for backend in ("sequential", "threads"):
        got = compute(backend, folder, workers=2 if backend == "threads" else 1).mean
        assert np.allclose(got, x.mean(axis=0), rtol=1e-6), backend



def test_script_filter_group_small(script, tiles):
    """The filter group on the small random tiles (no looks tag: the ENL is given)."""
    pytest.importorskip("scipy")
    import _perf_cases
    import _perf_filter

    from labkit.filters import lee

    assert "filter" in script.GROUPS and "filter" not in script.DEFAULT_GROUPS
    rows = _perf_filter.measure_filter(tiles, repeats=1, backends=[("threads", None, None)])
    assert {r["group"] for r in rows} == {"filter"}
    for r in rows:
        assert set(r) == set(_perf_cases.PERF_COLUMNS)
        if r["ratio"] is not None:  # always median A / median B
            assert r["ratio"] == pytest.approx(r["a_median_s"] / r["b_median_s"])
    rows = [r for r in rows if r["case"] != "pool-startup"]
    assert [r["case"] for r in rows] == ["lee-speedup", "lee-vs-scipy", "stats-speedup",
                                         "scaling", "stats-vs-copy"]
    assert "lee:9:16" in rows[0]["a_label"] and "best: threads" in rows[2]["a_label"]
    assert "copy within RAM" in rows[3]["a_label"]
    # the last row: the stats speed-up / the copy scaling
    assert rows[4]["ratio"] == pytest.approx(rows[2]["ratio"] / rows[3]["ratio"])
    img = read_tile(open_stack(tiles).paths[0])
    assert np.allclose(lee(img, 9, 16.0), _perf_filter.scipy_lee(img, 9, 16.0), rtol=1e-5)
