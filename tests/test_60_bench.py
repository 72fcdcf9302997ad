"""Benchmark harness: CSV schema, atomic appends, floors, in-process and whole-process timing."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from labkit import bench
from labkit.errors import LabError


@pytest.fixture(scope="module")
def tiles(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from labkit.prep import ensure_tiles

    return ensure_tiles("tiny", root=tmp_path_factory.mktemp("data"), progress=False)


def _row(**kw):
    row = {k: "" for k in bench.CSV_COLUMNS}
    row.update(backend="sequential", workers=1, n_dates=4, tile="8x8", repeat=0,
               mode="in-process", wall_s=0.5, run_id="t", label="x")
    row.update(kw)
    return row


def test_run_bench_writes_well_formed_rows(tiles: Path, tmp_path: Path):
    csv = tmp_path / "b" / "resultados.csv"
    written = bench.run_bench(tiles, backends="sequential,threads", workers="1,2", repeat=2,
                              warmup=0, csv_path=csv, label="t", progress=False)
    rows = bench.read_csv(csv)
    assert len(rows) == len(written)
    header = csv.read_text().splitlines()[0]
    assert header == ",".join(bench.CSV_COLUMNS)
    floors = [r for r in rows if r["backend"] in bench.FLOOR_BACKENDS]
    assert {r["backend"] for r in floors} == {"floor-memory", "floor-read"}
    assert all(r["wall_s"] > 0 and r["gbps"] > 0 for r in floors)
    timed = [r for r in rows if r["backend"] not in bench.FLOOR_BACKENDS]
    # sequential once (1 worker) + threads at 1 and 2 workers, 2 repeats each
    assert sorted((r["backend"], r["workers"]) for r in timed) == [
        ("sequential", 1)] * 2 + [("threads", 1)] * 2 + [("threads", 2)] * 2
    for r in timed:
        assert r["n_dates"] == 4 and r["tile"] == "64x64"
        assert r["mode"] == "in-process" and r["label"] == "t"
        assert r["wall_s"] > 0 and r["bytes"] == 4 * 64 * 64 * 4
        assert r["gbps"] == pytest.approx(r["bytes"] / r["wall_s"] / 1e9, rel=1e-3)
        assert r["max_abs_diff"] == 0.0  # row split: bitwise equal to sequential
        assert r["cores_logical"] >= 1 and r["host"] and r["timestamp"]
        assert "numpy=" in r["versions"]
    assert len({r["run_id"] for r in rows}) == 1
    assert sorted(r["repeat"] for r in timed if r["backend"] == "sequential") == [0, 1]
    tsv = (csv.parent / "tiempos.tsv").read_text().splitlines()
    assert tsv[0] == "backend\ttiempo"
    names = [line.split("\t")[0] for line in tsv[1:]]
    assert names[0] == "sec" and {"thr1", "thr2"} <= set(names)
    assert all(float(line.split("\t")[1]) > 0 for line in tsv[1:])


def test_process_mode_times_fresh_processes(tiles: Path, tmp_path: Path):
    csv = tmp_path / "r.csv"
    bench.run_bench(tiles, backends="sequential", workers="1", repeat=1, warmup=0,
                    csv_path=csv, process=True, floors=False, progress=False)
    rows = bench.read_csv(csv)
    assert [r["mode"] for r in rows] == ["in-process", "process"]
    proc = rows[1]
    assert proc["wall_s"] > rows[0]["wall_s"]  # interpreter start + imports + writes
    assert proc["startup_s"] == pytest.approx(proc["wall_s"] - rows[0]["wall_s"], abs=1e-4)
    assert proc["max_abs_diff"] == 0.0  # the written GeoTIFFs equal the in-process result


def test_time_backend_and_row_from_result(tiles: Path):
    ref = bench.time_backend("sequential", tiles, repeat=1, warmup=0)[0]
    calls = []
    res = bench.time_backend("threads", tiles, workers=2, repeat=2, warmup=1, reference=ref,
                             progress=lambda d, t: calls.append((d, t)))
    assert len(res) == 2 and calls == [(1, 3), (2, 3), (3, 3)]
    assert all(r.meta["max_abs_diff"] == 0.0 for r in res)
    row = bench.row_from_result(res[0], repeat=0, label="demo")
    assert tuple(row) == bench.CSV_COLUMNS
    assert row["backend"] == "threads" and row["workers"] == 2 and row["tile"] == "64x64"
    assert row["max_abs_diff"] == 0.0 and row["label"] == "demo"
    with pytest.raises(LabError, match="mode"):
        bench.row_from_result(res[0], repeat=0, mode="bogus")
    with pytest.raises(LabError, match="repeat"):
        bench.time_backend("sequential", tiles, repeat=0)


def test_append_csv_refuses_other_header_and_unknown_columns(tmp_path: Path):
    p = tmp_path / "old.csv"
    p.write_text("backend\ttiempo\nsec\t1.06\n")
    with pytest.raises(LabError, match="different header"):
        bench.append_csv(p, [_row()])
    assert p.read_text() == "backend\ttiempo\nsec\t1.06\n"
    with pytest.raises(LabError, match="unknown columns"):
        bench.append_csv(tmp_path / "new.csv", [_row(color="red")])
    assert not (tmp_path / "new.csv").exists()
    with pytest.raises(LabError, match="does not exist"):
        bench.read_csv(tmp_path / "missing.csv")
    with pytest.raises(LabError, match="not a labkit benchmark CSV"):
        bench.read_csv(p)


def test_append_csv_concurrent_writers_never_mix_rows(tmp_path: Path):
    p = tmp_path / "c.csv"

    def writer(k: int) -> None:
        for i in range(25):
            bench.append_csv(p, [_row(repeat=i, label=f"w{k}", wall_s=k + i / 100)] * 3)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = bench.read_csv(p)
    assert len(rows) == 6 * 25 * 3
    assert p.read_text().count("backend,strategy") == 1  # one header
    for r in rows:
        k = int(r["label"][1:])
        assert r["wall_s"] == pytest.approx(k + r["repeat"] / 100)
    assert oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_parse_workers_and_backends():
    assert bench.parse_workers("4,1,2,2") == [1, 2, 4]
    assert bench.parse_workers("1-3") == [1, 2, 3]
    for bad in ("", "0", "1,x", "-1", "2.5"):
        with pytest.raises(LabError, match="whole numbers"):
            bench.parse_workers(bad)
    variants = bench.parse_backends("threads,multiprocessing,sequential")
    assert variants[0] == ("sequential", None, None)
    assert ("multiprocessing", "partitioned", None) in variants
    assert ("multiprocessing", "per-file", None) in variants
    assert bench.parse_backends("multiprocessing:per-file") == [
        ("multiprocessing", "per-file", None)]
    with pytest.raises(LabError, match="valid are sequential, multiprocessing"):
        bench.parse_backends("sequential,cuda")
    with pytest.raises(LabError, match="strategy"):
        bench.parse_backends("multiprocessing:diagonal")
    with pytest.raises(LabError, match="no variants"):
        bench.parse_backends("threads:fast")


def test_floors_and_max_abs_diff(tiles: Path):
    from labkit.io import open_stack

    stack = open_stack(tiles)
    rows = bench.measure_floors(stack, repeat=2)
    assert [r["backend"] for r in rows] == ["floor-memory"] * 2 + ["floor-read"] * 2
    assert all(r["bytes"] == stack.nbytes and r["wall_s"] > 0 for r in rows)
    a = np.array([[1.0, np.nan]], np.float32)

    class R:
        mean, std = a, a

    assert bench.max_abs_diff(R, (a + 0.5, a)) == 0.5
    assert bench.max_abs_diff(R, (np.array([[1.0, 2.0]], np.float32), a)) == float("inf")


def test_summarize_median_and_spread():
    rows = [_row(wall_s=w, repeat=i) for i, w in enumerate((3.0, 1.0, 2.0))]
    rows.append(_row(backend="sequential", workers=4, wall_s=5.0))  # sequential = 1 worker
    (s,) = bench.summarize(rows)
    assert s["n"] == 4 and s["wall"] == 2.5 and s["wall_min"] == 1.0 and s["wall_max"] == 5.0
    assert s["workers"] == 1 and s["variant"] == "sequential"


def test_cli_bench(tiles: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from labkit.cli import main

    csv = tmp_path / "cli.csv"
    cores = os.cpu_count() or 1
    code = main(["bench", str(tiles), "--backends", "sequential,threads", "--workers",
                 f"1,{cores + 1}", "--repeat", "1", "--warmup", "0", "--csv", str(csv)])
    out = capsys.readouterr()
    assert code == 0
    assert "oversubscription" in out.err  # more workers than cores: allowed, flagged
    assert "sequential" in out.out and str(csv) in out.out
    assert any(r["workers"] == cores + 1 for r in bench.read_csv(csv))
    assert main(["bench", str(tiles), "--backends", "opencl", "--csv", str(csv)]) == 2
    assert "unknown backend 'opencl': valid are" in capsys.readouterr().err
    assert main(["bench", str(tiles), "--workers", "0,1", "--csv", str(csv)]) == 2
    assert "whole numbers" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "nope"), "--csv", str(csv)]) == 2
