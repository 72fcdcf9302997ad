"""Layer 0: packaging — the conda environment and pyproject agree; the CLI starts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parent.parent
# pip name -> conda-forge name where they differ; pip-only packages.
CONDA_NAME = {"mpich": "mpich"}
BUILD_ONLY = {"c-compiler"}  # conda-only build tools (not Python dependencies)


def _name(req: str) -> str:
    return re.split(r"[<>=!;\[ ]", req, maxsplit=1)[0].strip().lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_matches_pyproject():
    deps = {_name(d) for d in _pyproject()["project"]["dependencies"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    pip_items = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert pip_items and "-e ." in pip_items[0]["pip"], "environment.yml must pip install -e ."
    assert {CONDA_NAME.get(d, d) for d in deps} <= conda, (
        f"missing in environment.yml: {sorted({CONDA_NAME.get(d, d) for d in deps} - conda)}"
    )
    extra = conda - {CONDA_NAME.get(d, d) for d in deps} - {"python", "pip"} - BUILD_ONLY
    assert not extra, f"environment.yml has packages pyproject lacks: {sorted(extra)}"
    assert "conda-forge" in env["channels"]


def test_python_floor_agrees():
    floor = _pyproject()["project"]["requires-python"]
    env = (ROOT / "environment.yml").read_text()
    assert f"python{floor}" in env


def test_console_script_and_module_entry():
    assert _pyproject()["project"]["scripts"]["labkit"] == "labkit.cli:run"
    out = subprocess.run([sys.executable, "-m", "labkit", "--help"], capture_output=True,
                         text=True, check=True)
    for cmd in ("synth", "prep", "run", "verify", "info", "bench", "plot", "report"):
        assert cmd in out.stdout


def test_bad_subcommand_is_one_line_exit_2():
    out = subprocess.run([sys.executable, "-m", "labkit", "nope"], capture_output=True,
                         text=True)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("labkit: error:")


def test_ci_calls_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make report" in readme
