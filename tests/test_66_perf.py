"""Layer 66: the performance work is correct (no timing assertions here).

The fast paths give the same bits as the plain ones (threads, row ranges, prefetch, the
VRT stack reader, threaded prep), the reference scripts compute what they claim, the
perf harness measures and reports what it says, and ``labkit run`` imports no notebook
libraries.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labkit import perf, prep, stats
from labkit.backends import compute, io_block_rows
from labkit.errors import LabError
from labkit.io import StackReader, open_stack, read_block, read_tile


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


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    return perf.make_tiles(tmp_path_factory.mktemp("rand"), n_dates=10, side=48, seed=3)


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
    runs = perf.compare_prefetch(tiles, repeats=1, kernel="numpy")
    assert [len(runs["off"]), len(runs["on"])] == [1, 1]
    assert runs["on"][0].meta["prefetch"] and not runs["off"][0].meta["prefetch"]


# -- prep: threads ---------------------------------------------------------------------


def test_threaded_prep_is_bitwise(tmp_path, monkeypatch):
    monkeypatch.setattr(prep, "BLOCK_BYTES", 4096)  # many small blocks
    from labkit import synth

    slc = synth.write_stack(tmp_path / "slc", "tiny", dates=1, progress=False)
    vrt = next(slc.rglob("*.slc.vrt"))
    for threads in (1, 2, 3):
        prep.prep_date(vrt, tmp_path / f"t{threads}.tif", (60, 50, 2, 1), 4, threads=threads)
    one = read_tile(tmp_path / "t1.tif")
    assert np.array_equal(one, read_tile(tmp_path / "t2.tif"), equal_nan=True)
    assert np.array_equal(one, read_tile(tmp_path / "t3.tif"), equal_nan=True)


# -- reference scripts -----------------------------------------------------------------


def test_make_tiles_is_kept(tiles):
    files = sorted(Path(tiles).glob("*_int_crop.tif"))
    assert len(files) == 10 and read_tile(files[0]).shape == (48, 48)
    before = [f.stat().st_mtime_ns for f in files]
    perf.make_tiles(tiles, n_dates=10, side=48, seed=3)
    assert [f.stat().st_mtime_ns for f in files] == before


def test_reference_scripts(tmp_path, tiles):
    x = np.stack([read_tile(p) for p in open_stack(tiles).paths]).astype(np.float64)
    assert perf.read_and_sum(str(tiles)) == pytest.approx(x.sum(), rel=1e-9)
    mean, std = tmp_path / "m.tif", tmp_path / "s.tif"
    wall = perf.time_command(perf.python_call("course_script", str(tiles), str(mean), str(std)))
    assert wall > 0
    assert np.allclose(read_tile(mean), x.mean(axis=0), rtol=1e-6)
    assert np.allclose(read_tile(std), x.std(axis=0), rtol=1e-4)


def test_time_command_errors_are_one_line(tmp_path):
    code = "import sys; print('boom', file=sys.stderr); sys.exit(3)"
    with pytest.raises(LabError, match="failed .exit 3.: boom"):
        perf.time_command([sys.executable, "-c", code])
    wall, peak = perf.peak_rss([sys.executable, "-c", "x = bytearray(60 * 2**20)"])
    assert wall > 0 and peak > 60 * 2**20


# -- harness ---------------------------------------------------------------------------


def test_met_and_alternate():
    assert perf.met(0.6, ">= 0.5") == "yes" and perf.met(0.4, ">= 0.5") == "no"
    assert perf.met(1.3, "<= 1.25") == "no" and perf.met(None, ">= 1") == ""
    assert perf.met(2.0, "info") == ""
    calls = []
    t = perf.alternate({"a": lambda: calls.append("a") or 1.0,
                        "b": lambda: calls.append("b") or 2.0}, repeats=2, warmup=1)
    assert calls == ["a", "b"] * 3 and t == {"a": [1.0, 1.0], "b": [2.0, 2.0]}


def test_import_report():
    text = ("import time: self [us] | cumulative | imported package\n"
            "import time:       100 |        100 |   numpy.core\n"
            "import time:      2000 |       5000 | numpy\n"
            "import time:        10 |         10 | labkit.io\n")
    names, top = perf.import_report(text, top=2)
    assert names == ["numpy.core", "numpy", "labkit.io"]
    assert top[0].split() == ["5.0", "2.0", "numpy"] and len(top) == 2


def test_labkit_run_imports_no_notebook_libraries(tmp_path, tiny):
    code = ("import sys; from labkit.cli import main; "
            f"rc = main(['run', 'sequential', {str(tiny)!r}, {str(tmp_path / 'm.tif')!r}, "
            f"{str(tmp_path / 's.tif')!r}, '--quiet']); "
            "print(rc, sorted(m for m in sys.modules if m.split('.')[0].startswith("
            f"{perf.FORBIDDEN_IMPORTS!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip().split(maxsplit=1)
    assert out == ["0", "[]"]


def test_targets_small(tmp_path, tiny, tiles):
    rows = perf.target_startup(tiny, repeats=1, text_path=tmp_path / "importtime.txt")
    assert rows[0]["target"] == "5-imports" and rows[0]["met"] == "yes"
    assert "forbidden" in (tmp_path / "importtime.txt").read_text()
    rows += perf.target_prefetch(tiles, repeats=1)
    rows += perf.target_parallel(tiny, tiny, repeats=1, backends=[("threads", None, None)])
    assert {r["target"] for r in rows} >= {"5-imports", "6-prefetch", "3-speedup", "3-seed",
                                           "3-scaling"}
    assert len([r for r in rows if r["target"] == "3-scaling"]) == 3
    for r in rows:
        assert set(r) == set(perf.PERF_COLUMNS)
        assert r["a_median_s"] is None or r["a_median_s"] > 0
    csv_path = tmp_path / "perf.csv"
    perf.write_perf_csv(csv_path, rows)
    again = perf.read_perf_csv(csv_path)
    assert [r["target"] for r in again] == sorted((r["target"] for r in rows),
                                                   key=lambda t: t.split("-")[0])
    perf.write_perf_csv(csv_path, rows[:1])  # re-measuring group 5 replaces only its rows
    assert len(perf.read_perf_csv(csv_path)) == len(rows)


def test_target_prep_small(tmp_path):
    from labkit import synth

    slc = synth.write_stack(tmp_path / "slc", "tiny", dates=1, progress=False)
    rows = perf.target_prep(slc, repeats=1)
    by = {r["target"]: r for r in rows}
    assert set(by) == {"4-prep", "4-rss", "4-cat"}
    assert 1 < by["4-rss"]["ratio"] < 2000  # MiB
    assert by["4-cat"]["ratio"] > 0


def test_perf_section(tmp_path):
    rows = [perf.make_row("1-kernel", "fused ×2", "numpy.sum", [0.02, 0.022], [0.017], 0.8,
                          ">= 0.5"),
            perf.make_row("1-jit", "load", "compile", [0.35], 1.5, None),
            perf.make_row("2-readsum", "best", "read-and-sum", [0.5], [0.44], 1.14, "<= 1.25"),
            perf.make_row("4-cat", "cat", "labkit prep", [0.1], [0.5], 0.2, ">= 0.4"),
            perf.make_row("5-imports", "labkit run", "imports", [0.3], [0.25], 1.2, "none")]
    rows[-1]["met"] = "yes"
    path = perf.write_perf_csv(tmp_path / "perf.csv", rows)
    en = perf.perf_section(path)
    assert "## Performance targets" in en and "| 1-kernel |" in en
    assert "80% of NumPy's streaming `sum`" in en and "3 of 4 goals met" in en
    assert "4-cat (0.2, >= 0.4)" in en and "0.25 s to start" in en.replace("≈", "")
    es = perf.perf_section(path, lang="es")
    assert "Objetivos de rendimiento" in es and "Se cumplen 3 de 4 metas" in es
    with pytest.raises(LabError, match="language 'fr'"):
        perf.perf_section(path, lang="fr")
    # target 3: the speed-up is explained by the scaling of each part and the overheads
    rows += [perf.make_row("3-speedup", "best ×1", "×2", [0.02], [0.014], 1.43, ">= 1.7"),
             perf.make_row("3-seed", "sequential", "mem ×2", [0.005], [0.006], 0.83, ">= 1.0")]
    rows += [perf.make_row("3-scaling", f"{name}, 1 thread (dates24)", "2 threads", [0.01],
                           [0.01 / r], r)
             for name, r in (("read from the page cache", 1.1), ("copy within RAM", 1.9),
                             ("fused kernel", 1.8))]
    rows += [perf.make_row("3-overhead", name, "", [t], None, None)
             for name, t in (("process pool ×2: two empty tasks", 0.001),
                             ("process pool ×2: two 1024×1024 float32 images back (pickle)",
                              0.013), ("MPI engines ×2 (ipyparallel): one empty task each",
                                       0.008))]
    path = perf.write_perf_csv(tmp_path / "perf3.csv", rows)
    en = perf.perf_section(path)
    assert "reading the tiles from the page cache ran 1.10× faster" in en
    assert "whole sequential job takes 5.0 ms" in en and "MPI engines 8.0 ms" in en
    assert "in this run: mem ×2 0.83×" in en
    es = perf.perf_section(path, lang="es")
    assert "leer los tiles desde la caché de páginas fue 1.10×" in es
    with pytest.raises(LabError, match="does not exist"):
        perf.perf_section(tmp_path / "nope.csv")


def test_cli_perf_parses():
    from labkit.cli import HANDLERS, build_parser

    args = build_parser().parse_args(["perf", "--targets", "5", "--repeat", "2"])
    assert args.command == "perf" and args.targets == "5" and args.repeat == 2
    assert HANDLERS["perf"] == "labkit.perf:cli_main"
    with pytest.raises(LabError, match="unknown targets 9"):
        perf.run_perf("x.csv", targets=["9"])



def test_cached_reader_sees_rewritten_tiles(tmp_path):
    folder = perf.make_tiles(tmp_path / "t", n_dates=3, side=16, seed=1)
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
