"""Figures: every PNG is written whole, the Amdahl fit, experiment selection, maps."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from labkit import bench, plots
from labkit.errors import LabError

PNG = b"\x89PNG\r\n\x1a\n"


def _rows(label="main", n_dates=4, tile="64x64", seq=1.0, serial=0.3, host="h", seed=0):
    """Synthetic benchmark rows: sequential, mem following Amdahl, a slow multiprocessing."""
    rnd = random.Random(seed)
    rows = []

    def add(backend, w, wall, mode="in-process", strategy="", **ph):
        for i in range(3):
            r = {k: "" for k in bench.CSV_COLUMNS}
            r.update(backend=backend, strategy=strategy, workers=w, n_dates=n_dates, tile=tile,
                     repeat=i, mode=mode, wall_s=wall * (1 + 0.02 * rnd.random()), host=host,
                     cpu_model="Test CPU", cores_physical=2, cores_logical=2, label=label,
                     bytes=n_dates * 64 * 64 * 4, max_abs_diff=0.0, run_id="r",
                     startup_s=ph.get("startup", 0.0), read_s=ph.get("read", 0.0),
                     compute_s=ph.get("compute", 0.0), merge_s=ph.get("merge", 0.0))
            rows.append(r)

    add("floor-read", 1, seq / 20)
    add("floor-memory", 1, seq / 80)
    add("sequential", 1, seq, read=0.6 * seq, compute=0.35 * seq)
    add("sequential", 1, seq + 0.8, mode="process")
    for w in (1, 2, 4):
        add("mem", w, seq * (serial + (1 - serial) / w), startup=0.05, read=0.4 / w,
            compute=0.3 / w)
        add("mem", w, seq * (serial + (1 - serial) / w) + 0.9, mode="process")
        add("multiprocessing", w, 1.3 * seq + 0.1 * w, strategy="partitioned", startup=0.3,
            merge=0.2, read=0.5, compute=0.3 / w)
    return rows


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    p = tmp_path / "resultados.csv"
    rows = _rows()
    for n, side, t_seq, t_par in ((4, 32, 0.05, 0.2), (12, 512, 1.0, 0.8), (24, 1024, 8, 4.5)):
        for backend, wall, w in (("sequential", t_seq, 1), ("mem", t_par, 2)):
            r = {k: "" for k in bench.CSV_COLUMNS}
            r.update(backend=backend, workers=w, n_dates=n, tile=f"{side}x{side}", repeat=0,
                     mode="in-process", wall_s=wall, host="h", label="scale", run_id="r")
            rows.append(r)
    bench.append_csv(p, rows)
    return p


def _is_png(p: Path) -> bool:
    return p.is_file() and p.stat().st_size > 2000 and p.read_bytes()[:8] == PNG


def test_plot_all_writes_every_figure(csv: Path, tmp_path: Path):
    out = tmp_path / "figs"
    written = plots.plot_all(csv, out)
    names = {p.name for p in written}
    assert names == {"t_barras.png", "speedup.png", "efficiency.png", "breakdown.png",
                     "scaling.png"}
    assert all(_is_png(p) for p in written)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_amdahl_fit_recovers_the_serial_fraction():
    p = np.array([1, 2, 3, 4, 6, 8])
    for s in (0.0, 0.05, 0.3, 0.7, 1.0):
        t = 2.0 * (s + (1 - s) / p)  # T(p) with T_sequential = 2 s
        assert plots.fit_amdahl(p, 2.0 / t) == pytest.approx(s, abs=1e-12)
    rng = np.random.default_rng(1)
    t = 2.0 * (0.25 + 0.75 / p) * (1 + 0.01 * rng.standard_normal(p.size))
    assert plots.fit_amdahl(p, 2.0 / t) == pytest.approx(0.25, abs=0.02)
    # a fixed start-up cost c (in units of T_sequential) counts as serial work
    c, s = 0.5, 0.2
    t = c + s + (1 - s) / p
    assert plots.fit_amdahl(p, 1 / t) == pytest.approx((c + s) / (c + 1), abs=1e-12)
    assert plots.fit_time_model(p, 1 / t) == pytest.approx((c + s, 1 - s))
    assert plots.fit_amdahl([1, 2, 4], [0.7, 0.6, 0.5]) == 1.0  # more workers, slower
    assert plots.fit_amdahl([1, 2, 4], [1.0, 2.0, 4.0]) == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(plots.fit_amdahl([1], [1.0]))
    assert np.isnan(plots.fit_amdahl([2, 2], [1.0, 1.1]))
    assert plots.amdahl(4, 0.25) == pytest.approx(1 / (0.25 + 0.75 / 4))
    with pytest.raises(LabError):
        plots.fit_amdahl([1, 2], [1.0])


def test_speedups_and_selection(csv: Path):
    rows = bench.read_csv(csv)
    panel = _rows(label="panel", tile="16x16", seed=2)  # appended later by a notebook panel
    main = plots.select_main(rows + panel)
    assert {r["label"] for r in main} == {"main"} and {r["tile"] for r in main} == {"64x64"}
    assert {r["tile"] for r in plots.select_main(panel)} == {"16x16"}
    sp = plots.speedups(bench.summarize(main))
    assert [d["workers"] for d in sp["mem"]] == [1, 2, 4]
    assert sp["mem"][2]["speedup"] > sp["mem"][0]["speedup"]
    assert sp["sequential"][0]["speedup"] == 1.0
    assert len(plots.scale_rows(rows)) == 6
    assert "Test CPU" in plots.caption(main) and "4 dates" in plots.caption(main)


def test_plot_cli(csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from labkit.cli import main

    assert main(["plot", str(csv), "--out", str(tmp_path / "f")]) == 0
    assert "t_barras.png" in capsys.readouterr().out
    assert main(["plot", str(csv), "--maps-slc", str(tmp_path)]) == 2
    assert "--maps-slc needs --maps-tiles" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "missing.csv")]) == 2
    empty = tmp_path / "empty.csv"
    bench.append_csv(empty, [])
    assert main(["plot", str(empty), "--out", str(tmp_path / "g")]) == 2
    assert "no rows" in capsys.readouterr().err


def test_plot_maps_with_ps_truth(tmp_path: Path):
    from labkit.prep import ensure_tiles

    tiles = ensure_tiles("tiny", root=tmp_path / "data", progress=False)
    slc = tiles.parent / "slc"
    out = plots.plot_maps(tiles, slc, tmp_path / "maps.png")
    assert _is_png(out)
    stats = json.loads((tmp_path / "maps.json").read_text())
    truth = plots.read_ps_truth(slc / "truth" / "ps.csv")
    assert stats["true_ps"] == len(truth) > 0
    assert 0 <= stats["hits"] <= stats["true_ps"] and stats["candidates"] >= stats["hits"]
    assert stats["pixels"] == 256 * 256 and stats["n_dates"] == 4
    da = plots.amplitude_dispersion(slc)
    assert da.shape == (256, 256) and np.nanmedian(da) > plots.PS_THRESHOLD  # speckle ≈ 0.52
    assert _is_png(plots.plot_maps(tiles, None, tmp_path / "maps3.png"))
    assert _is_png(plots.plot_maps(tiles, slc, tmp_path / "es" / "maps.png", lang="es"))


def test_read_ps_truth_rejects_bad_files(tmp_path: Path):
    bad = tmp_path / "ps.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(LabError, match="line and sample"):
        plots.read_ps_truth(bad)
    with pytest.raises(LabError, match="no PS truth"):
        plots.read_ps_truth(tmp_path / "none.csv")
    ok = tmp_path / "ok.csv"
    ok.write_text("row,col\n3,4\n5,6\n")
    assert plots.read_ps_truth(ok).tolist() == [[3, 4], [5, 6]]


def test_amdahl_is_not_fitted_through_two_worker_counts_and_karp_flatt():
    assert plots.FIT_MIN_COUNTS == 3
    assert np.isnan(plots.fit_amdahl([1, 2], [1.0, 1.6]))  # exact through 2 points: no fit
    assert all(np.isnan(v) for v in plots.fit_time_model([1, 2, 2], [1.0, 1.6, 1.7]))
    s = 0.25
    for p in (2, 4, 8):  # an Amdahl-following design has a constant Karp–Flatt e = s
        assert plots.karp_flatt(plots.amdahl(p, s), p) == pytest.approx(s)
    assert np.isnan(plots.karp_flatt(1.0, 1))


def test_figures_speak_the_informe_language(csv: Path, tmp_path: Path):
    from labkit.plots.labels import num, say

    assert say("efficiency_axis", "es") == "eficiencia E = S / p"
    assert say("phase_merge", "es") == "combinación de parciales"
    assert (num(0.0123), num(0.0123, "es")) == ("0.0123", "0,0123")
    with pytest.raises(LabError, match="language"):
        say("ideal", "fr")
    rows = bench.read_csv(csv)
    assert "núcleos físicos" in plots.caption(rows, lang="es")
    written = plots.plot_all(csv, tmp_path / "es", lang="es")
    assert all(_is_png(p) for p in written) and len(written) == 5


def test_speedups_compare_a_filtered_run_with_sequential_under_that_filter():
    def row(backend: str, workers: int, wall: float, filt: str | None) -> dict:
        return {"backend": backend, "mode": "in-process", "workers": workers, "wall": wall,
                "filter": filt, "variant": backend + (f" + {filt}" if filt else "")}

    summary = [row("sequential", 1, 0.01, None), row("sequential", 1, 0.40, "lee:9:16"),
               row("threads", 2, 0.006, None), row("threads", 2, 0.20, "lee:9:16"),
               row("mem", 2, 0.30, "lee:5:16")]  # no sequential run under lee:5
    sp = plots.speedups(summary)
    assert sp["threads"][0]["speedup"] == pytest.approx(0.01 / 0.006)
    assert sp["threads + lee:9:16"][0]["speedup"] == pytest.approx(2.0)
    assert sp["sequential + lee:9:16"][0]["speedup"] == 1.0
    assert "mem + lee:5:16" not in sp


def test_spanish_figures_tick_numbers_with_a_decimal_comma(csv: Path, tmp_path: Path):
    from labkit.plots._figure import decimal_mark, pyplot

    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0.0, 0.5, 1.0], [0.01, 0.02, 0.03])
    ax.set_xticks([0, 1], ["sequential", "threads"])  # category texts stay as they are
    decimal_mark(fig, "es")
    fig.canvas.draw()
    ys = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert ys and all("." not in t for t in ys) and any("," in t for t in ys), ys
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sequential", "threads"]
    plt.close(fig)
    assert plots.plot_all(csv, tmp_path / "es", lang="es")  # every figure still draws
