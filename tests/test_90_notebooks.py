"""Every notebook: committed clean (no outputs, tagged parameters, objectives, solutions),
and executed end to end with the tiny preset, in order (01 … 06), in a temporary lab."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
PARAMETERS = {"preset": "tiny", "workers": 2, "repeats": 1}
EXPECTED = ["01_prep", "02_sequential", "03_multiprocessing", "04_mem", "05_mpi"]
PANEL_LABELS = {"02_sequential", "03_multiprocessing", "04_mem", "05_mpi"}  # write CSV rows
WITH_EXERCISES = {"02_sequential", "03_multiprocessing", "04_mem", "05_mpi"}  # student code


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _parameter_names(cell: dict) -> set[str]:
    return set(re.findall(r"^([A-Za-z_]\w*)\s*=", _source(cell), re.M))


def _parameters(path: Path, home: Path) -> dict[str, object]:
    """Tiny-preset values for the names the notebook's parameters cell defines; paths
    (06_analysis) pointed into the temporary lab."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    names = _parameter_names(first)
    values: dict[str, object] = {
        **PARAMETERS,
        "csv": str(home / "benchmarks" / "resultados.csv"),
        "figures": str(home / "figures"),
        "out": str(home / "reports" / "informe.html"),
    }
    return {k: v for k, v in values.items() if k in names}


def test_the_numbered_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    assert set(EXPECTED) <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_clean_and_structured(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "no code cells"
    for c in code:
        assert c.get("outputs") == [], f"outputs left in: {_source(c)[:60]!r}"
        assert c.get("execution_count") is None
    assert "parameters" in _tags(code[0]), "first code cell must be tagged parameters"
    names = _parameter_names(code[0])
    need = ("preset", "workers", "repeats") if path.stem in EXPECTED else ("preset",)
    for name in need:
        assert name in names, f"parameters cell lacks {name}"
    text = "\n".join(_source(c) for c in nb["cells"] if c["cell_type"] == "markdown")
    assert re.search(r"learning objectives", text, re.I)
    assert re.search(r"predict before you run", text, re.I)
    assert re.search(r"takeaways", text, re.I)
    assert re.search(r"<details>\s*<summary>\s*Solution", text), "no hidden solution"
    _assert_exercises_well_formed(path, nb["cells"])


def _assert_exercises_well_formed(path: Path, cells: list[dict]) -> None:
    """exercise (skeleton with ... blanks), a cell calling check.exercise, then a hidden
    solution cell (same function, first line '# Solution (hidden): ...')."""
    exercises = [i for i, c in enumerate(cells) if "exercise" in _tags(c)]
    if path.stem in WITH_EXERCISES:
        assert exercises, "no exercise cell (tagged exercise) for the student"
    for i in exercises:
        skeleton = _source(cells[i])
        assert cells[i]["cell_type"] == "code" and "..." in skeleton, f"exercise {i}: no blanks"
        checker = _source(cells[i + 1])
        assert "check.exercise(" in checker, f"exercise {i}: no check.exercise call after it"
        sol = next((c for c in cells[i + 1:] if "solution" in _tags(c)), None)
        assert sol is not None, f"exercise {i}: no solution cell after it"
        assert sol.get("metadata", {}).get("jupyter", {}).get("source_hidden") is True
        assert _source(sol).startswith("# Solution (hidden)")
        names = re.findall(r"^def (\w+)", skeleton, re.M)
        assert names and all(re.search(rf"^def {n}\b", _source(sol), re.M) for n in names), \
            f"exercise {i}: the solution does not define {names}"


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_executes_with_the_tiny_preset(path: Path, lab_home: Path):
    from labkit import bench, paths
    from labkit.nbrun import execute_notebook

    out = lab_home / "executed" / path.name
    params = _parameters(path, lab_home)
    nb = execute_notebook(path, params, timeout=300, out_path=out)
    errors = [o for c in nb.cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, errors
    injected = [c for c in nb.cells if "injected-parameters" in _tags(c)]
    assert len(injected) == 1 and "preset = 'tiny'" in _source(injected[0])
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    # every exercise ran its model answer (labkit.nbrun fills it in) and the checker said so
    for i, c in enumerate(nb.cells):
        if i and "exercise" in _tags(nb.cells[i - 1]):
            shown = " ".join(o.get("data", {}).get("text/plain", "") for o in c.get("outputs", []))
            assert shown.startswith("✔ right"), f"cell {i}: {shown[:400]}"
    # panels raise on failure in the notebooks; their runs land in the lab's CSV
    if path.stem in PANEL_LABELS:
        rows = bench.read_csv(paths.bench_csv())
        mine = [r for r in rows if r["label"] == path.stem]
        assert mine, f"no CSV rows labelled {path.stem}"
        assert all(r["tile"] == "64x64" and r["n_dates"] == 4 for r in mine)
        assert all(r["max_abs_diff"] is not None and r["max_abs_diff"] < 1e-4 for r in mine)
    if path.stem == "05_mpi":
        _assert_no_engines_left(lab_home)


def _assert_no_engines_left(home: Path) -> None:
    """No ipyparallel engine/controller or mpiexec started from this lab is still alive."""
    import psutil

    left = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        if not any(k in cmd for k in ("ipengine", "ipyparallel", "ipcontroller", "mpiexec")):
            continue
        try:
            env = p.environ()
        except psutil.Error:
            continue
        if env.get("LABKIT_HOME") == str(home):  # started by this test's notebooks
            left.append((p.info["pid"], cmd[:100]))
    assert not left, f"MPI engines left running: {left}"
