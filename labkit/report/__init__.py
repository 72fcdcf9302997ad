"""The informe: conclusions computed from the benchmark CSV, HTML export, ``labkit report``.

- :mod:`~labkit.report.analyze`: CSV rows → :class:`~labkit.report.facts.Facts`
  (numbers only);
- :mod:`~labkit.report.measure`: the roofline and the speed-up against the Lee window K,
  measured when the informe is built;
- :mod:`~labkit.report.render`: facts → Markdown in English or Spanish from the Jinja
  templates in ``templates/<lang>/``: question and hypothesis, method, results,
  discussion, conclusions, next steps, reproduce — the hypothesis, discussion and
  conclusions written by the student, the analysis from the data kept as a model answer;
- :mod:`~labkit.report.display`: sections, figures with captions and the folded model
  answers in ``notebooks/06_analysis.ipynb``;
- :mod:`~labkit.report.export`: the executed notebook → self-contained HTML (the
  student's cells included);
- :mod:`~labkit.report.pipeline`: ``labkit report`` and ``make report`` (the whole lab).
"""

from labkit.report.analyze import analyze, maps_stats
from labkit.report.display import (
    FIGURES,
    display_model_answer,
    display_section,
    figure_dir,
    make_figures,
    model_answer_html,
)
from labkit.report.export import STUDENT_TAG, check_offline, export_html, student_cells
from labkit.report.facts import Facts
from labkit.report.measure import Extras, measure_extras
from labkit.report.numbers import LANGS, fmt_s, fmt_x
from labkit.report.pipeline import build_report, ensure_results, ensure_weak, full_report
from labkit.report.render import (
    HEADINGS,
    MODEL_ANSWERS,
    SECTIONS,
    STUDENT_PARTS,
    model_answer,
    prompt,
    render_markdown,
    results_table,
    section,
)
from labkit.report.stacks import find_data, scaled_stack

__all__ = [
    "FIGURES",
    "HEADINGS",
    "LANGS",
    "MODEL_ANSWERS",
    "SECTIONS",
    "STUDENT_PARTS",
    "STUDENT_TAG",
    "Extras",
    "Facts",
    "analyze",
    "build_report",
    "check_offline",
    "display_model_answer",
    "display_section",
    "ensure_results",
    "ensure_weak",
    "export_html",
    "figure_dir",
    "find_data",
    "fmt_s",
    "fmt_x",
    "full_report",
    "make_figures",
    "maps_stats",
    "measure_extras",
    "model_answer",
    "model_answer_html",
    "prompt",
    "render_markdown",
    "results_table",
    "scaled_stack",
    "section",
    "student_cells",
]
