"""The informe inside ``notebooks/06_analysis.ipynb``: sections, figures with captions, and
the model answers folded away under ``<details>``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from labkit.report.facts import Facts
from labkit.report.numbers import check_lang
from labkit.report.render import labels, model_answer, section

__all__ = ["FIGURES", "display_model_answer", "display_section", "figure_dir",
           "make_figures", "model_answer_html"]

FIGURES = {  # figure -> the section it illustrates, in the order they are numbered
    "t_barras": "results", "speedup": "results", "efficiency": "results",
    "breakdown": "results", "weak": "results", "scaling": "results",
    "roofline": "results", "speedup_k": "results", "maps": "results",
}


def figure_dir(out_dir: str | os.PathLike[str], lang: str = "en") -> Path:
    """Where the figures of ``lang`` go: ``out_dir`` for English, ``out_dir/<lang>`` else."""
    out = Path(out_dir)
    return out if check_lang(lang) == "en" else out / lang


def make_figures(csv_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                 tiles: str | os.PathLike[str] | None = None,
                 slc: str | os.PathLike[str] | None = None,
                 lang: str = "en") -> dict[str, Path]:
    """Write every figure of a benchmark CSV (see :mod:`labkit.plots`), labels in ``lang``.

    Parameters
    ----------
    csv_path : path
        Benchmark CSV.
    out_dir : path
        Folder for the PNGs (Spanish figures go to its ``es/`` sub-folder).
    tiles, slc : path, optional
        Tile folder and SLC stack for ``maps.png`` (and its PS counts).
    lang : {"en", "es"}
        Language of the axis labels, titles and legends.

    Returns
    -------
    dict
        ``{name: path}`` of the figures written (``name`` is the file's stem).
    """
    from labkit.plots import plot_all

    written = plot_all(csv_path, figure_dir(out_dir, lang), maps_tiles=tiles, maps_slc=slc,
                       lang=lang)
    return {p.stem: p for p in written}


def _present(figures: Mapping[str, str | os.PathLike[str]] | None) -> list[tuple[str, Path]]:
    """The figures of :data:`FIGURES` that exist on disk, in their order."""
    out = []
    for name in FIGURES:
        path = Path(figures[name]) if figures and name in figures else None
        if path is not None and path.is_file():
            out.append((name, path))
    return out


def display_section(name: str, facts: Facts, lang: str = "en",
                    figures: Mapping[str, str | os.PathLike[str]] | None = None) -> None:
    """Show one section in a notebook: its Markdown, then its figures, each with a caption.

    Parameters
    ----------
    name : str
        Section (:data:`labkit.report.SECTIONS`).
    facts : Facts
        :func:`labkit.report.analyze` output.
    lang : {"en", "es"}
        Language of the text.
    figures : dict, optional
        ``{name: path}`` (:func:`make_figures`, plus the roofline's); figures missing on
        disk are skipped. Figures are numbered in the order of :data:`FIGURES`.
    """
    from IPython.display import Image, Markdown, display

    display(Markdown(section(name, facts, lang)))
    words = labels(lang)
    for number, (figure, path) in enumerate(_present(figures), start=1):
        if FIGURES[figure] != name:
            continue
        display(Image(filename=str(path), metadata={"alt": words.figure_alt.get(figure, figure)}))
        display(Markdown(f"*{words.figure_word} {number}.* "
                         f"{words.figure_caption.get(figure, '')}"))


def model_answer_html(name: str, facts: Facts, lang: str = "en") -> str:
    """The model answer of ``name`` as HTML folded in a closed ``<details>``.

    The Markdown is converted here (mistune), so the fold holds in JupyterLab and in the
    exported HTML alike (a Markdown renderer would close ``<details>`` at the first blank
    line).
    """
    import mistune

    summary = labels(lang).model_answer
    body = mistune.html(model_answer(name, facts, lang))
    return f"<details>\n<summary><b>{summary}</b></summary>\n{body}</details>\n"


def display_model_answer(name: str, facts: Facts, lang: str = "en") -> None:
    """Show the model answer of ``name`` (``discussion`` or ``conclusions``) folded away:
    the student writes their own first, then opens it to compare.
    """
    from IPython.display import HTML, display

    display(HTML(model_answer_html(name, facts, lang)))
