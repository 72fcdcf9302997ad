"""The informe inside ``notebooks/06_analysis.ipynb``: figures, then each section shown."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from labkit.report.facts import Facts
from labkit.report.render import labels, section

__all__ = ["FIGURES", "display_section", "make_figures"]

FIGURES = {  # figure -> the section it illustrates
    "t_barras": "results", "speedup": "results", "efficiency": "results",
    "scaling": "results", "maps": "results", "breakdown": "why",
}


def make_figures(csv_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                 tiles: str | os.PathLike[str] | None = None,
                 slc: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Write every figure of a benchmark CSV (see :mod:`labkit.plots`).

    Parameters
    ----------
    csv_path : path
        Benchmark CSV.
    out_dir : path
        Folder for the PNGs.
    tiles, slc : path, optional
        Tile folder and SLC stack for ``maps.png`` (and its PS counts).

    Returns
    -------
    dict
        ``{name: path}`` of the figures written (``name`` is the file's stem).
    """
    from labkit.plots import plot_all

    written = plot_all(csv_path, out_dir, maps_tiles=tiles, maps_slc=slc)
    return {p.stem: p for p in written}


def display_section(name: str, facts: Facts, lang: str = "en",
                    figures: Mapping[str, str | os.PathLike[str]] | None = None) -> None:
    """Show one section in a notebook: its Markdown, then the figures that belong to it.

    Parameters
    ----------
    name : str
        Section (:data:`labkit.report.SECTIONS`).
    facts : Facts
        :func:`labkit.report.analyze` output.
    lang : {"en", "es"}
        Language of the text.
    figures : dict, optional
        :func:`make_figures` output; figures missing on disk are skipped.
    """
    from IPython.display import Image, Markdown, display

    display(Markdown(section(name, facts, lang)))
    alt = labels(lang).figure_alt
    for figure, where in FIGURES.items():
        path = Path(figures[figure]) if figures and figure in figures else None
        if where == name and path is not None and path.is_file():
            display(Image(filename=str(path), metadata={"alt": alt.get(figure, figure)}))
