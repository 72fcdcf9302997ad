"""Where the lab keeps generated files (all git-ignored).

The root is the repository checkout (the folder holding ``pyproject.toml``), or the
``LABKIT_HOME`` environment variable when set (tests point it at a temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["bench_csv", "data_dir", "figures_dir", "home", "reports_dir", "results_dir"]


def home() -> Path:
    """The lab's root folder: ``$LABKIT_HOME`` or the repository checkout."""
    env = os.environ.get("LABKIT_HOME")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def data_dir() -> Path:
    """``<home>/data``: synthetic stacks and intensity tiles, one sub-folder per preset."""
    return home() / "data"


def results_dir() -> Path:
    """``<home>/results``: mean/std GeoTIFFs written by runs."""
    return home() / "results"


def bench_csv() -> Path:
    """``<home>/benchmarks/resultados.csv``: every timed run, one row each (its columns:
    :mod:`labkit.bench.schema`).
    """
    return home() / "benchmarks" / "resultados.csv"


def figures_dir() -> Path:
    """``<home>/figures``: generated plots."""
    return home() / "figures"


def reports_dir() -> Path:
    """``<home>/reports``: the informe and executed notebooks."""
    return home() / "reports"
