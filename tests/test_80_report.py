"""The informe: numbers quoted from the CSV, both languages, offline HTML, the full pipeline."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import pytest

from labkit import bench, report
from labkit.errors import LabError

HEADINGS = {
    "en": ["Methodology", "Results", "Why", "Limitations", "Next steps", "Reproduce", "Closing"],
    "es": ["Metodología", "Resultados", "Por qué", "Limitaciones", "Próximos pasos",
           "Reproducir", "Cierre"],
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
    # multiprocessing is slower: its overhead (start-up + merge) is quoted
    mp = facts.variants["multiprocessing/partitioned"].top
    assert mp.speedup < 1 and report.fmt_s(mp.overhead, lang) in md
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
    assert {"main", "scale"} <= labels
    main = [r for r in rows if r["label"] == "main"]
    assert {r["mode"] for r in main} == {"in-process", "process"}
    assert {"floor-read", "floor-memory", "sequential"} <= {r["backend"] for r in main}
    timed = [r for r in main if r["backend"] not in bench.FLOOR_BACKENDS]
    assert all(r["max_abs_diff"] is not None and r["max_abs_diff"] <= 1e-5 for r in timed)
    scale = {(r["n_dates"], r["tile"]) for r in rows if r["label"] == "scale"}
    assert len(scale) == 3
    for name in ("t_barras", "speedup", "efficiency", "breakdown", "scaling", "maps"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 2000
    assert (tmp_path / "benchmarks" / "tiempos.tsv").read_text().startswith("backend\ttiempo")
    t_seq = statistics.median(r["wall_s"] for r in timed if r["backend"] == "sequential"
                              and r["mode"] == "in-process")
    for path, heading, lang in ((en, "Methodology", "en"), (es, "Metodología", "es")):
        html = path.read_text(encoding="utf-8")
        assert heading in html and report.fmt_s(t_seq, lang) in html
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
