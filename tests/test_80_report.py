"""The informe: numbers quoted from the CSV, both languages, the student's cells and the
model answers, Karp–Flatt and the Amdahl fit, weak scaling, the xarray comparison, offline
HTML, the full pipeline."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest

from labkit import bench, report
from labkit.errors import LabError
from labkit.report.render import labels

HEADINGS = {
    "en": ["Question and hypothesis", "Method", "Results", "Discussion", "Conclusions",
           "Next steps", "Reproduce"],
    "es": ["Pregunta e hipótesis", "Método", "Resultados", "Discusión", "Conclusiones",
           "Próximos pasos", "Reproducir"],
}


def _rows(serial: float = 0.3) -> list[dict]:
    """Synthetic rows: sequential 1 s, mem following Amdahl (``serial``), a slow
    multiprocessing (start-up + merge), floors, whole-process times."""
    rows = []

    def add(backend, w, wall, mode="in-process", strategy="", **ph):
        for i, jitter in enumerate((0.99, 1.0, 1.02)):
            r = {k: "" for k in bench.CSV_COLUMNS}
            r.update(backend=backend, strategy=strategy, workers=w, n_dates=4, tile="64x64",
                     repeat=i, mode=mode, wall_s=wall * jitter, host="h", cpu_model="Test CPU",
                     cores_physical=2, cores_logical=2, label="main", bytes=65536,
                     max_abs_diff=0.0, run_id="r", startup_s=ph.get("startup", 0.0),
                     read_s=ph.get("read", 0.0), compute_s=ph.get("compute", 0.0),
                     merge_s=ph.get("merge", 0.0))
            rows.append(r)

    add("floor-read", 1, 0.05)
    add("floor-memory", 1, 0.0125)
    add("sequential", 1, 1.0, read=0.6, compute=0.35)
    add("sequential", 1, 1.8, mode="process")
    for w in (1, 2, 4):
        add("mem", w, serial + (1 - serial) / w, startup=0.05, read=0.4 / w, compute=0.3 / w)
        add("multiprocessing", w, 1.3 + 0.1 * w, strategy="partitioned", startup=0.3,
            merge=0.2, read=0.5, compute=0.3 / w)
    return rows


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    p = tmp_path / "resultados.csv"
    bench.append_csv(p, _rows())
    return p


def _seq_median(csv: Path) -> float:
    rows = bench.read_csv(csv)
    return statistics.median(r["wall_s"] for r in rows if r["backend"] == "sequential"
                             and r["mode"] == "in-process")


@pytest.mark.parametrize("lang", ["en", "es"])
def test_markdown_quotes_numbers_from_the_csv(csv: Path, lang: str):
    rows = bench.read_csv(csv)
    facts = report.analyze(rows, preset="tiny")
    md = report.render_markdown(facts, lang)
    positions = [md.index(f"## {h}\n") for h in HEADINGS[lang]]
    assert positions == sorted(positions)  # the course's order
    t_seq = _seq_median(csv)
    assert f"**{report.fmt_s(t_seq, lang)} s**" in md
    mem4 = statistics.median(r["wall_s"] for r in rows if r["backend"] == "mem"
                             and r["workers"] == 4 and r["mode"] == "in-process")
    assert report.fmt_x(t_seq / mem4, lang) in md  # mem ×4 speed-up, computed independently
    assert facts.variants["mem"].fit == pytest.approx(0.3, abs=0.03)
    # multiprocessing is slower: its start-up and its merge are quoted
    mp = facts.variants["multiprocessing/partitioned"].top
    assert mp.speedup < 1 and report.fmt_s(mp.merge, lang) in md
    assert report.fmt_s(mp.startup, lang) in md
    assert report.fmt_x(1 / mp.speedup, lang) in md
    zero = "0.0" if lang == "en" else "0,0"
    assert ("tiny" in md) and (f"|Δ| = {zero})" in md)  # preset named; max |Δ| = 0.0


def _scale_rows() -> list[dict]:
    """The scaled experiment: sequential, mem ×2 (pays from 8 × 64²) and multiprocessing."""
    rows = []
    for n_dates, side, t_seq in ((4, 32, 0.01), (8, 64, 0.1), (16, 128, 1.0)):
        for backend, strategy, workers, wall in (
                ("sequential", "", 1, t_seq), ("mem", "", 2, t_seq * (2 if side == 32 else 0.7)),
                ("multiprocessing", "partitioned", 2, 3 * t_seq)):
            r = {k: "" for k in bench.CSV_COLUMNS}
            r.update(backend=backend, strategy=strategy, workers=workers, n_dates=n_dates,
                     tile=f"{side}x{side}", repeat=0, mode="in-process", wall_s=wall, host="h",
                     cpu_model="Test CPU", cores_physical=2, cores_logical=2, label="scale",
                     bytes=1, max_abs_diff=0.0, run_id="r")
            rows.append(r)
    return rows


MAPS = {"threshold": 0.25, "n_dates": 4, "candidates": 300, "pixels": 4096, "true_ps": 12,
        "hits": 9}
NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:e[+-][0-9]+)?")
REPORT_DIR = Path(report.__file__).resolve().parent


def _numbers(markdown: str, lang: str) -> list[str]:
    """Every number of the prose and tables (code left out), written with a decimal point."""
    prose = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    prose = re.sub(r"`[^`]*`", " ", prose)
    if lang == "es":
        prose = re.sub(r"(?<=[0-9]),(?=[0-9])", ".", prose)
    return sorted(NUMBER.findall(prose))


def test_both_languages_carry_the_same_sections_and_numbers():
    rows = _rows()
    for r in rows:  # a variant off by rounding, whole-process times for it, thread settings
        r["threads_env"] = "OMP_NUM_THREADS=1;MKL_NUM_THREADS="
        if r["backend"] == "multiprocessing":
            r["max_abs_diff"] = 2.5e-7
    facts = report.analyze(rows + _scale_rows(), preset="tiny", tiles="data/tiny/intens_64x64",
                           maps=MAPS)
    assert facts.scale is not None and facts.maps is not None
    assert facts.correctness.worst_rounding is not None
    templates = {lang: sorted(p.name for p in (REPORT_DIR / "templates" / lang).iterdir())
                 for lang in report.LANGS}
    assert templates["en"] == templates["es"]
    assert set(report.HEADINGS["en"]) == set(report.HEADINGS["es"]) == set(report.SECTIONS[1:])
    for name in report.SECTIONS:
        en, es = (report.section(name, facts, lang) for lang in ("en", "es"))
        for md in (en, es):
            assert "{{" not in md and "{%" not in md and "{#" not in md, md
            assert md.strip() and not re.search(r"\n{3,}", md)
        assert _numbers(en, "en") == _numbers(es, "es"), name
        assert en != es
    es = report.render_markdown(facts, "es")
    assert "0,0625 MiB" in es and "0.0625 MiB" in report.render_markdown(facts, "en")
    assert f"**{report.fmt_s(facts.seq.wall, 'es')} s**" in es


def test_numbers_per_language():
    assert (report.fmt_s(0.012), report.fmt_s(0.012, "es")) == ("0.012", "0,012")
    assert (report.fmt_x(1.4949), report.fmt_x(1.4949, "es")) == ("1.49×", "1,49×")
    assert report.fmt_s(None) == report.fmt_s(float("nan")) == "—"
    with pytest.raises(LabError, match="language"):
        report.fmt_s(1.0, "fr")


def test_facts_are_frozen_and_typed():
    import dataclasses

    facts = report.analyze(_rows(), preset="tiny")
    assert isinstance(facts, report.Facts)
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts.cores = 64  # type: ignore[misc]
    assert facts.seq.backend == "sequential" and facts.seq.process_wall is not None
    assert facts.read_floor is not None and facts.memory_floor is not None


def test_no_prose_in_code_and_no_process_vocabulary():
    sources = {p: p.read_text(encoding="utf-8") for p in REPORT_DIR.rglob("*")
               if p.suffix in (".py", ".j2")}
    assert any(p.suffix == ".j2" for p in sources)
    for path, text in sources.items():
        assert "_t(" not in text and "_TEXT" not in text, path
    words = re.compile(r"issue \d|DESIGN §|(?:performance|perf) targets?|goals? met|"
                       r"reference VM", re.I)
    for path, text in sources.items():
        assert not words.search(text), (path, words.search(text))
    md = report.render_markdown(report.analyze(_rows() + _scale_rows(), maps=MAPS), "en")
    assert not words.search(md) and "Performance" not in md


def test_analyze_needs_a_sequential_baseline(tmp_path: Path):
    rows = [r for r in _rows() if r["backend"] != "sequential"]
    with pytest.raises(LabError, match="no sequential run"):
        report.analyze(rows)
    with pytest.raises(LabError, match="empty"):
        report.analyze([])
    with pytest.raises(LabError, match="language"):
        report.section("results", report.analyze(_rows()), "fr")


def test_check_offline_flags_remote_resources():
    assert report.check_offline('<script src="https://cdn.example/x.js"></script>')
    assert report.check_offline("<link rel=stylesheet href='//cdn.example/a.css'>")
    assert report.check_offline("<style>@import url(https://fonts.example/f.css);</style>")
    assert not report.check_offline('<img src="data:image/png;base64,AAAA"><a href="https://x">')


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_build_report_both_languages_offline(csv: Path, tmp_path: Path):
    for lang in ("en", "es"):
        t_seq = report.fmt_s(_seq_median(csv), lang)
        out = tmp_path / "rep" / f"informe_{lang}.html"
        report.build_report(csv, lang=lang, out=out, figures=tmp_path / "fig",
                            executed=tmp_path / f"06_{lang}.ipynb")
        html = out.read_text(encoding="utf-8")
        assert f'<html lang="{lang}">' in html
        for h in HEADINGS[lang]:
            assert h in html
        assert t_seq in html
        assert report.check_offline(html) == []
        assert not re.search(r"<script[^>]+src=", html)
        assert "MathJax.Hub" not in html and "require.js" not in html
        assert html.count("data:image/png;base64,") >= 4  # bars, speed-up, efficiency, phases
        assert "report.display_section" not in html  # code hidden
        assert "Learning objectives" not in html  # teaching cells stay in the notebook
        title = report.prompt("discussion", lang).split("**")[1]  # "Your discussion"
        assert f"<strong>{title}</strong>" in html  # the student's cells are exported
        folded = html[html.index("<details>"):]
        assert labels(lang).model_answer in folded[:300]
        assert folded.index("</details>") > folded.index("<li>")  # the answer is inside
    assert not [p for p in (tmp_path / "rep").iterdir() if p.name.startswith(".")]


def test_report_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from labkit.cli import main

    assert main(["report", "--csv", str(tmp_path / "none.csv"), "--out",
                 str(tmp_path / "x.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_full_report_quick_tiny_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))  # notebook kernels inherit it
    res = report.full_report("tiny", quick=True)
    en, es = res["reports"]
    assert en == tmp_path / "reports" / "informe.html" and es.name == "informe_es.html"
    rows = bench.read_csv(tmp_path / "benchmarks" / "resultados.csv")
    labels = {r["label"] for r in rows}
    assert {"main", "scale", "weak"} <= labels
    main = [r for r in rows if r["label"] == "main"]
    assert {r["mode"] for r in main} == {"in-process", "process"}
    assert {"floor-read", "floor-memory", "sequential"} <= {r["backend"] for r in main}
    timed = [r for r in main if r["backend"] not in bench.FLOOR_BACKENDS]
    assert all(r["max_abs_diff"] is not None and r["max_abs_diff"] <= 1e-5 for r in timed)
    scale = {(r["n_dates"], r["tile"]) for r in rows if r["label"] == "scale"}
    assert len(scale) == 3
    for name in ("t_barras", "speedup", "efficiency", "breakdown", "scaling", "weak", "maps",
                 "roofline", "speedup_k"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 2000
        assert (tmp_path / "figures" / "es" / f"{name}.png").stat().st_size > 2000
    assert (tmp_path / "benchmarks" / "tiempos.tsv").read_text().startswith("backend\ttiempo")
    t_seq = statistics.median(r["wall_s"] for r in timed if r["backend"] == "sequential"
                              and r["mode"] == "in-process")
    for path, lang in ((en, "en"), (es, "es")):
        html = path.read_text(encoding="utf-8")
        assert all(h in html for h in HEADINGS[lang]) and report.fmt_s(t_seq, lang) in html
        assert "Roofline" in html and ("Weak scaling" if lang == "en" else "Escalado débil") in html
        assert report.check_offline(html) == []
    assert (tmp_path / "reports" / "notebooks" / "06_analysis.ipynb").is_file()
    assert not res["failed"]


@pytest.mark.slow
def test_execute_notebook_injects_parameters(tmp_path: Path):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from labkit.nbrun import execute_notebook

    params = new_code_cell("x = 1\nname = 'a'")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_code_cell("import os\nstart = os.getcwd()"), params,
                             new_code_cell("y = x * 2\nassert y == 6, y\nprint(name, y)")])
    path = tmp_path / "p.ipynb"
    nbformat.write(nb, path)
    out = tmp_path / "out" / "p.ipynb"
    done = execute_notebook(path, {"x": 3, "name": "ñ"}, out_path=out, cwd=tmp_path)
    tags = [c.metadata.get("tags", []) for c in done.cells]
    assert tags[2] == ["injected-parameters"] and "x = 3" in done.cells[2].source
    assert done.cells[3].outputs[0]["text"] == "ñ 6\n"
    assert nbformat.read(out, as_version=4).cells[3].outputs  # executed copy written
    assert nbformat.read(path, as_version=4).cells[1].source == "x = 1\nname = 'a'"  # untouched
    with pytest.raises(LabError, match=r"p.ipynb: cell 3 failed with AssertionError: 2"):
        execute_notebook(path, {"x": 1}, out_path=out)
    failed = nbformat.read(out, as_version=4)  # kept for reading the traceback
    assert failed.cells[3].outputs[0]["output_type"] == "error"
    with pytest.raises(LabError, match="does not exist"):
        execute_notebook(tmp_path / "none.ipynb", {})
    with pytest.raises(LabError, match="not a Python name"):
        execute_notebook(path, {"bad-name": 1})


def _fewer_counts(rows: list[dict], keep: tuple[int, ...]) -> list[dict]:
    """``rows`` with the parallel variants kept only at the worker counts ``keep``."""
    return [r for r in rows if r["backend"] in ("sequential", *bench.FLOOR_BACKENDS)
            or r["workers"] in keep]


@pytest.mark.parametrize("lang", ["en", "es"])
def test_amdahl_needs_three_worker_counts_and_karp_flatt_is_quoted(lang: str):
    facts = report.analyze(_fewer_counts(_rows(), (1, 2)))
    mem = facts.variants["mem"]
    assert mem.counts == 2 and mem.fit_kind == "too_few"
    assert str(mem.fit) == "nan"
    md = report.model_answer("discussion", facts, lang)
    assert ("not a fit" if lang == "en" else "no es un ajuste") in md
    c2 = next(c for c in mem.configs if c.workers == 2)
    e = (1 / c2.speedup - 1 / 2) / (1 - 1 / 2)
    assert c2.karp_flatt == pytest.approx(e)
    fixed = f"{e:.2f}".replace(".", "," if lang == "es" else ".")
    assert fixed in md and fixed in report.results_table(facts, lang)
    full = report.analyze(_rows())  # 1, 2, 4 workers: a real fit, Karp–Flatt steady at s
    assert full.variants["mem"].fit_kind == "partial"
    assert full.variants["mem"].karp_flatt_trend == "steady"
    assert full.variants["multiprocessing/partitioned"].karp_flatt_trend == "above_one"


def test_kernel_phase_is_not_called_compute_bound_without_a_roofline():
    rows = _rows()
    for r in rows:
        if r["backend"] == "sequential":
            r["read_s"], r["compute_s"] = 0.2, 0.7  # the kernel phase dominates
    facts = report.analyze(rows)
    assert not facts.io_bound and facts.stats_bound == ""
    md = report.model_answer("discussion", facts, "en")
    assert "kernel phase dominates" in md and "compute-bound" not in md
    from labkit.report.facts import Roofline, RooflinePoint

    roof = Roofline(bandwidth=20.0, bandwidth_one=10.0, peak=80.0, peak_one=40.0, ridge=4.0,
                    points=(RooflinePoint("stats, threads ×2", 0.9, 3.0, 18.0),
                            RooflinePoint("lee:9, threads ×2", 9.0, 30.0, 80.0)))
    facts = report.analyze(rows, roofline=roof)
    assert facts.stats_bound == "memory"
    md = report.model_answer("discussion", facts, "en")
    assert "**memory-bound**" in md and "0.90 flop/byte" in md
    assert "compute-bound side" in md  # the Lee point, right of the ridge
    es = report.model_answer("discussion", facts, "es")
    assert "**limitado por memoria**" in es and "0,90 flop/byte" in es


def test_block_rows_are_part_of_a_configuration():
    rows = _rows()
    extra = []
    for r in rows:
        if r["backend"] == "mem" and r["workers"] == 2 and r["mode"] == "in-process":
            r["block_rows"] = 32
            extra.append({**r, "block_rows": 8, "wall_s": r["wall_s"] * 1.5})
    facts = report.analyze(rows + extra)
    names = {c.variant for c in facts.configs}
    assert {"mem (32 rows)", "mem (8 rows)"} <= names
    eight = next(c for c in facts.configs if c.variant == "mem (8 rows)")
    assert eight.block_rows == 8 and eight.repeats == 3
    assert "| mem (8 rows) | 2 | 8 |" in report.results_table(facts, "en")
    assert facts.block_rows["mem (8 rows)"] == (8,)


def test_method_says_which_runs_it_used():
    rows = _rows()
    for i, r in enumerate(rows):
        r["timestamp"] = f"2026-11-28T10:{i % 60:02d}:00+00:00"
        r["run_id"] = "a" if i < 10 else "b"
    facts = report.analyze(rows)
    assert facts.runs is not None and facts.runs.rows == len(rows)
    md = report.section("method", facts, "en")
    assert f"{len(rows)} timed rows from 2 sessions" in md and "experiment `main`" in md
    assert "2026-11-28 10:00 to 2026-11-28 10:" in md
    assert "sesiones" in report.section("method", facts, "es")


def _xarray_rows(wall: float) -> list[dict]:
    out = []
    for i, mode_wall in enumerate(((0.99, "in-process"), (1.0, "in-process"),
                                   (1.02, "in-process"))):
        r = {k: "" for k in bench.CSV_COLUMNS}
        r.update(backend="dask", strategy="xarray", workers=2, n_dates=4, tile="64x64",
                 repeat=i, mode=mode_wall[1], wall_s=wall * mode_wall[0], host="h",
                 cpu_model="Test CPU", cores_physical=2, cores_logical=2, label="main",
                 bytes=65536, max_abs_diff=3e-7, run_id="r")
        out.append(r)
    return out


@pytest.mark.parametrize("lang", ["en", "es"])
def test_xarray_way_is_compared_with_the_best_labkit_design(lang: str):
    facts = report.analyze(_rows() + _xarray_rows(4.75))
    xa = facts.xarray
    assert xa is not None and xa.best.variant == "mem" and xa.best.workers == 4
    assert xa.ratio == pytest.approx(4.75 / xa.best.wall)
    md = report.section("results", facts, lang)
    assert f"**{report.fmt_x(xa.ratio, lang)}**" in md
    assert ("float64" in md) and (report.fmt_s(xa.float64_mib, lang) in md)
    for word in (("task overhead", "extra passes", "float64 copies") if lang == "en" else
                 ("sobrecosto por tarea", "pasadas extra", "copias en float64")):
        assert word in md
    assert "dask/xarray" in facts.variants  # a variant like any other
    assert report.analyze(_rows()).xarray is None


def _weak_rows() -> list[dict]:
    """A weak-scaling run: threads keeps its time up to 2 workers, then slows (4 > 2 cores)."""
    rows = []
    for p, wall in ((1, 0.1), (2, 0.11), (4, 0.2)):
        for backend, w, t in (("sequential", 1, 0.1 * p), ("threads", p, wall)):
            for i in range(3):
                r = {k: "" for k in bench.CSV_COLUMNS}
                r.update(backend=backend, workers=w, n_dates=4 * p, tile="64x64", repeat=i,
                         mode="in-process", wall_s=t, host="h", cpu_model="Test CPU",
                         cores_physical=2, cores_logical=4, label="weak", bytes=1,
                         max_abs_diff=0.0, run_id="w")
                rows.append(r)
    return rows


def test_weak_scaling_efficiency_and_physical_cores(tmp_path: Path):
    from labkit import plots

    facts = report.analyze(_rows() + _weak_rows())
    wk = facts.weak
    assert wk is not None and wk.dates_per_worker == 4 and wk.workers == (1, 2, 4)
    (th,) = wk.series
    assert th.top.workers == 2 and th.top.efficiency == pytest.approx(0.1 / 0.11)
    assert th.past is not None and th.past.workers == 4 and th.past.efficiency == pytest.approx(0.5)
    assert th.top.scaled_speedup == pytest.approx(0.2 / 0.11)
    en = report.model_answer("discussion", facts, "en")
    assert "Past the 2 physical cores" in en and "0.50 at 4" in en
    assert "0,50 con 4" in report.model_answer("discussion", facts, "es")
    assert "**Weak scaling** (4 dates of 64x64 per worker" in report.section("results", facts)
    out = plots.plot_weak(_rows() + _weak_rows(), tmp_path / "weak.png", lang="es")
    assert out is not None and out.stat().st_size > 2000
    assert plots.plot_weak(_rows(), tmp_path / "none.png") is None
    assert {r["label"] for r in plots.select_main(_weak_rows() + [
        {**r, "label": "panel"} for r in _rows()])} == {"panel"}  # weak rows never main


def test_run_weak_grows_the_stack_with_the_workers(tmp_path: Path):
    from labkit.bench.weak import run_weak, weak_points
    from labkit.prep import ensure_tiles

    tiles = ensure_tiles("tiny", root=tmp_path / "data", progress=False)
    csv = tmp_path / "r.csv"
    rows = run_weak(tiles, backends="sequential,threads", workers=[2], dates_per_worker=2,
                    repeat=1, warmup=0, csv_path=csv, root=tmp_path / "weak")
    dates = {(r["backend"], r["workers"]): r["n_dates"] for r in rows}
    assert dates == {("sequential", 1): 4, ("threads", 1): 2, ("threads", 2): 4}
    assert {r["label"] for r in rows} == {"weak"}
    pts = weak_points(bench.read_csv(csv))
    assert [d["workers"] for d in pts["threads"]] == [1, 2]
    assert all(r["max_abs_diff"] == 0.0 for r in rows)
    with pytest.raises(LabError, match="dates per worker"):
        run_weak(tiles, backends="threads", workers=[1], dates_per_worker=0, csv_path=csv)


def test_student_cells_and_prompts_in_the_notebook():
    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parent.parent / "notebooks" / "06_analysis.ipynb",
                       as_version=4)
    cells = report.student_cells(nb)
    assert set(cells) == set(report.STUDENT_PARTS)
    for part, cell in cells.items():
        assert cell.source == report.prompt(part, "en")  # the same prompt the export swaps
        assert "no-report" not in cell.metadata.get("tags", [])
    for lang in report.LANGS:
        for part in report.STUDENT_PARTS:
            assert report.prompt(part, lang).startswith("✍️")
    assert "escribí" in report.prompt("hypothesis", "es")
    assert "Compará" in report.prompt("discussion", "es")
    html = report.model_answer_html("conclusions", report.analyze(_rows()), "es")
    assert html.startswith("<details>\n<summary><b>Respuesta modelo calculada con tus datos")
    assert html.rstrip().endswith("</details>") and "<li>" not in html.split("<details>")[0]


def test_model_answers_quote_the_same_numbers_in_both_languages():
    from labkit.report.facts import Roofline, RooflinePoint, Sweep, SweepPoint

    roof = Roofline(bandwidth=20.0, bandwidth_one=10.0, peak=80.0, peak_one=40.0, ridge=4.0,
                    points=(RooflinePoint("stats, threads ×2", 0.9, 3.0, 18.0),
                            RooflinePoint("lee:9, threads ×2", 9.0, 30.0, 80.0)))
    sweep = Sweep(points=(SweepPoint("threads", 0, 2, 1.1), SweepPoint("threads", 9, 2, 1.8)))
    facts = report.analyze(_rows() + _xarray_rows(4.75) + _weak_rows() + _scale_rows(),
                           preset="tiny", maps=MAPS, roofline=roof, sweep=sweep)
    assert facts.sweep is not None and facts.sweep.gain is not None
    for name in report.MODEL_ANSWERS:
        en, es = (report.model_answer(name, facts, lang) for lang in ("en", "es"))
        assert _numbers(en, "en") == _numbers(es, "es"), name
        assert "{{" not in en + es and not re.search(r"\n{3,}", en + es)
    for name in report.SECTIONS:
        assert _numbers(report.section(name, facts, "en"), "en") == _numbers(
            report.section(name, facts, "es"), "es"), name
    conclusions = report.model_answer("conclusions", facts, "en")
    assert "1.80× on 2 workers, against 1.10× for the statistics alone" in conclusions
