"""Every notebook in a real JupyterLab and headless Chromium, with the tiny preset.

For each notebook, in order (01 … 06): open it, Run All Cells from the Run menu, wait for
the kernel, check no cell shows an exception; in each control panel move the workers
slider and the tile selector, click Run and check the table, the plot and the CSV; 05_mpi
starts and stops MPI engines; 06_analysis renders the informe and writes its HTML. In
02_sequential the student's part: a body typed into the exercise cell, run with its
checker cell, which must say right (and a wrong body, wrong). A
screenshot of every notebook goes to reports/screenshots/ (kept on failure), and after
each notebook its kernel is shut down and nothing it started may be left running.
"""

from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from e2e_lab import NOTEBOOKS, SHOTS, EngineWatch, describe
from e2e_page import (
    cell_errors,
    drive_panel,
    fill_exercise,
    open_notebook,
    prompts,
    run_all,
    run_in_terminal,
    save_notebook,
    screenshot,
    wait_until_done,
)

pytestmark = pytest.mark.e2e

NAMES = [p.stem for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]
RUN_TIMEOUT_S = 360  # seconds for Run All of one notebook (tiny preset)
NO_CSV = {"01_prep"}  # panels that prepare tiles: no benchmark rows
REPORT_TIMEOUT_S = 240  # seconds for `labkit report` run from a JupyterLab terminal
ENGINES = {"05_mpi"}  # notebooks that start ipyparallel MPI engines
# 02_sequential's exercise: what a student types (not the hidden solution's text)
EXERCISE = {"02_sequential": "# Exercise: the temporal mean and std"}
STUDENT_BODY = """def my_stats(paths):
    x = np.stack([read_tile(p) for p in paths]).astype(np.float64)
    return x.mean(axis=0).astype(np.float32), x.std(axis=0).astype(np.float32)
"""
WRONG_BODY = """# first try: float32, and a std a little off
def my_stats(paths):
    x = np.stack([read_tile(p) for p in paths])
    return x.mean(axis=0), x.std(axis=0) * 1.01
"""


def _csv_rows(root: Path) -> list[dict[str, str]]:
    path = root / "benchmarks" / "resultados.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _saved_errors(path: Path) -> list[str]:
    """``ename: evalue`` of every error output in the saved notebook."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}"
            for i, c in enumerate(nb["cells"]) for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


def _check_panels(page: Any, lab: Any, name: str) -> None:
    panels = page.locator(".labkit-panel")
    if name.startswith("06"):
        return
    assert panels.count() >= 1, "no labkit control panel on screen"
    for i in range(panels.count()):
        panel = panels.nth(i)
        rows_csv = len(_csv_rows(lab.root))
        run = drive_panel(page, panel)
        assert "⚠" not in run.status, f"panel {i} shows an error: {run.status}"
        assert run.rows_after == run.rows_before + 1, f"panel {i}: table not updated: {run}"
        assert run.plot_changed, f"panel {i}: the plot did not change: {run}"
        assert run.tile is not None, f"panel {i}: no tile selector"
        if name in NO_CSV:
            continue
        new = _csv_rows(lab.root)[rows_csv:]
        assert new, f"panel {i}: no row appended to benchmarks/resultados.csv"
        for row in new:
            assert row["tile"] == f"{run.tile}x{run.tile}", row
            if run.workers is not None:
                assert int(row["workers"]) == run.workers, row


def _check_exercise(page: Any, name: str) -> None:
    """Type a wrong body, then a right one, into the exercise cell; the checker says so."""
    shown = fill_exercise(page, EXERCISE[name], WRONG_BODY)
    assert "✘ wrong" in shown and "max |Δ|" in shown, f"checker on a wrong body: {shown}"
    shown = fill_exercise(page, "# first try", STUDENT_BODY)
    assert "✔ right" in shown, f"checker on a right body: {shown}"
    assert "time: yours" in shown, shown


def _check_engines(page: Any, watch: EngineWatch) -> None:
    """The notebook started engines; Stop engines leaves none running."""
    assert watch.seen, "no ipyparallel engine process was seen during the run"
    stop = page.locator(".labkit-panel button.labkit-stop")
    assert stop.count() == 1, "no Stop engines button"
    stop.click()
    deadline = time.monotonic() + 30
    while watch.engines() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not watch.engines(), f"engines still running: {describe(watch.engines())}"
    page.locator(".labkit-panel", has_text="engines: stopped").wait_for(timeout=10000)


def _check_informe(page: Any, lab: Any, started: float) -> None:
    """The informe's title, its sections and figures are on screen; its HTML was written."""
    from labkit.report import HEADINGS

    out = page.locator(".jp-OutputArea-output")
    assert out.locator("h1", has_text="SAR HPC Lab").count() >= 1, "no informe title"
    shown = set(out.locator("h2").all_inner_texts())
    missing = [h for h in HEADINGS["en"].values() if h not in shown]
    assert not missing, f"informe sections not rendered: {missing}"
    assert out.locator("img").count() >= 1, "no figure in the informe"
    html = [p for p in (lab.root / "reports").glob("*.html") if p.stat().st_mtime >= started]
    if not html:  # the notebook prints its export command: run it as a student would
        printed = "\n".join(out.locator("pre").all_inner_texts())
        commands = list(re.finditer(r"^labkit report .*--out (\S+)$", printed, re.M))
        assert commands, "no HTML written and no `labkit report ... --out HTML` command shown"
        found = commands[-1]  # the export command the last cell prints
        term = run_in_terminal(page, found.group(0)).locator(".xterm-accessibility-tree")
        deadline = time.monotonic() + REPORT_TIMEOUT_S
        while "informe:" not in term.inner_text() and time.monotonic() < deadline:
            assert not re.search(r"not found|error|Traceback", term.inner_text()), \
                term.inner_text()[-2000:]
            page.wait_for_timeout(500)
        page.screenshot(path=str(SHOTS / "06_analysis-terminal.png"))
        page.locator(".lm-DockPanel .lm-TabBar-tab", has_text="06_analysis").click()
        html = [lab.root / found.group(1)]  # the terminal starts in the lab root
    assert html[0].is_file(), f"{html[0]} was not written"
    text = html[0].read_text(encoding="utf-8")
    assert "SAR HPC Lab" in text and "<img" in text, f"{html[0]} lacks the informe"
    assert "Traceback" not in text, f"{html[0]} shows a traceback"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_in_jupyterlab(lab: Any, page: Any, name: str) -> None:
    started = time.time()
    done = False
    try:
        with EngineWatch(lab.mark, active=name in ENGINES) as watch:
            open_notebook(page, lab.server.lab_url(f"{name}.ipynb"), f"{name}.ipynb")
            run_all(page)
            wait_until_done(page, RUN_TIMEOUT_S)
            errors = cell_errors(page)
            assert not errors, f"cells show errors:\n{errors[0][-2000:]}"
            unrun = [p for p in prompts(page) if not re.fullmatch(r"\[\d+\]:", p)]
            assert not unrun, f"cells not run: {unrun}"
            _check_panels(page, lab, name)
            if name in EXERCISE:
                _check_exercise(page, name)
            if name in ENGINES:
                _check_engines(page, watch)
            if name.startswith("06"):
                _check_informe(page, lab, started)
            assert not cell_errors(page), "a cell shows an error after the panel runs"
            save_notebook(page)
            saved = _saved_errors(lab.root / "notebooks" / f"{name}.ipynb")
            assert not saved, f"error outputs in the saved notebook: {saved}"
            screenshot(page, str(SHOTS / f"{name}.png"))
            screenshot(page, str(SHOTS / f"{name}-full.png"), full=True)
            done = True
    finally:
        if not done:
            try:
                screenshot(page, str(SHOTS / f"{name}-FAILED.png"), full=True)
            except Exception as exc:  # noqa: BLE001 - the test's own error matters more
                print(f"no screenshot of {name}: {exc}")
        lab.server.shutdown_kernels()
    deadline = time.monotonic() + 30
    while lab.server.others() and time.monotonic() < deadline:
        time.sleep(0.3)
    left = lab.server.others()
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    assert not left, f"left running after the kernel shut down: {describe(left)}"
