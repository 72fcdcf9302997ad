"""05_mpi on a machine without MPI: it says how to get MPI and skips its MPI cells.

The kernel runs with an ``mpi4py`` that cannot be imported (a package on PYTHONPATH that
raises ImportError, as a broken or library-less install does), so the notebook's own check
finds MPI missing exactly as it would on such a machine; nothing in labkit is told."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "05_mpi.ipynb"


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _text(cell) -> str:
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append(o.get("text", ""))
        elif "data" in o:
            out.append(o["data"].get("text/plain", ""))
    return "".join(out)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_05_without_mpi_says_how_to_get_it_and_skips(tmp_path, monkeypatch):
    from labkit import bench, paths, prep
    from labkit.nbrun import execute_notebook

    broken = tmp_path / "site" / "mpi4py"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        'raise ImportError("libmpi.so.12: cannot open shared object file")\n')
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(broken.parent) + (os.pathsep + old if old else ""))
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "lab"))
    prep.ensure_tiles("tiny", progress=False)

    nb = execute_notebook(NOTEBOOK, {"preset": "tiny", "workers": 2, "repeats": 1},
                          timeout=120, out_path=tmp_path / "05_mpi.ipynb")
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    check = next(c for c in code if "def mpi_missing" in _source(c))
    said = _text(check)
    assert "MPI is missing here: mpi4py is installed but cannot load an MPI library" in said
    assert "environment.yml" in said and "WSL2" in said and "no mpich wheel for Windows" in said
    guarded = [c for c in code if _source(c).startswith("%%needs_mpi")]
    assert len(guarded) >= 8
    for c in guarded:
        assert _text(c).startswith("skipped: MPI is missing here"), _source(c)[:80]
    rows = bench.read_csv(paths.bench_csv()) if paths.bench_csv().exists() else []
    assert not [r for r in rows if r["label"] == "05_mpi"]  # no engine was started
    assert not (paths.results_dir() / "mpi_stats.py").exists()
