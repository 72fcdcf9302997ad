"""The informe: conclusions computed from the benchmark CSV, HTML export, ``labkit report``.

- :mod:`~labkit.report.analyze`: CSV rows → :class:`~labkit.report.facts.Facts`
  (numbers only);
- :mod:`~labkit.report.render`: facts → Markdown in English or Spanish from the Jinja
  templates in ``templates/<lang>/``, following the course's informe: Methodology,
  Results, Why, Limitations, Next steps, Reproduce, Closing;
- :mod:`~labkit.report.display`: sections and figures in ``notebooks/06_analysis.ipynb``;
- :mod:`~labkit.report.export`: the executed notebook → self-contained HTML;
- :mod:`~labkit.report.pipeline`: ``labkit report`` and ``make report`` (the whole lab).
"""

from labkit.report.analyze import analyze, maps_stats
from labkit.report.display import FIGURES, display_section, make_figures
from labkit.report.export import check_offline, export_html
from labkit.report.facts import Facts
from labkit.report.numbers import LANGS, fmt_s, fmt_x
from labkit.report.pipeline import build_report, ensure_results, full_report
from labkit.report.render import HEADINGS, SECTIONS, render_markdown, results_table, section
from labkit.report.stacks import find_data, scaled_stack

__all__ = [
    "FIGURES",
    "HEADINGS",
    "LANGS",
    "SECTIONS",
    "Facts",
    "analyze",
    "build_report",
    "check_offline",
    "display_section",
    "ensure_results",
    "export_html",
    "find_data",
    "fmt_s",
    "fmt_x",
    "full_report",
    "make_figures",
    "maps_stats",
    "render_markdown",
    "results_table",
    "scaled_stack",
    "section",
]
