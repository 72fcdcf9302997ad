"""The executed ``06_analysis`` notebook → one self-contained HTML file (nothing remote)."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

from labkit.errors import LabError
from labkit.report.numbers import check_lang
from labkit.report.render import STUDENT_PARTS, TEMPLATES, labels, prompt

__all__ = ["REPORT_SKIP_TAGS", "STUDENT_TAG", "check_offline", "export_html", "student_cells"]

REPORT_SKIP_TAGS = ("no-report", "parameters", "injected-parameters")
STUDENT_TAG = "student"  # markdown cells the student writes (exported into the informe)
OFFLINE_TEMPLATE = TEMPLATES / "nbconvert" / "labkit_offline.html.j2"
_REMOTE = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I)
_REMOTE_CSS = re.compile(r"@import\s+(?:url\()?[\"']?(?:https?:)?//|url\([\"']?(?:https?:)?//",
                         re.I)


def check_offline(html: str) -> list[str]:
    """Remote resources an HTML page would load (scripts, styles, images, CSS imports)."""
    tags = [m.group(0) for m in _REMOTE.finditer(html)]
    return tags + [m.group(0) for m in _REMOTE_CSS.finditer(html)]


def student_cells(nb: Any) -> dict[str, Any]:
    """The student's cells of a notebook by part (``hypothesis``, ``discussion``, …).

    A cell is the student's when tagged ``student``; its part is
    ``metadata.labkit.part``.
    """
    out = {}
    for c in nb.cells:
        if c.cell_type == "markdown" and STUDENT_TAG in c.get("metadata", {}).get("tags", []):
            part = c.metadata.get("labkit", {}).get("part")
            if part in STUDENT_PARTS:
                out[part] = c
    return out


def _localize_prompts(nb: Any, lang: str) -> None:
    """A student cell still holding the English prompt gets the prompt of ``lang``."""
    for part, cell in student_cells(nb).items():
        if cell.source.strip() == prompt(part, "en").strip():
            cell.source = prompt(part, lang)


def _report_cells(nb: Any, lang: str = "en") -> Any:
    """A copy of ``nb`` without teaching cells, parameters, stderr and widget state; the
    student's cells kept (unwritten prompts in ``lang``).
    """
    nb = copy.deepcopy(nb)
    _localize_prompts(nb, lang)
    nb.cells = [c for c in nb.cells
                if not set(c.get("metadata", {}).get("tags", [])) & set(REPORT_SKIP_TAGS)]
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs = [o for o in c.get("outputs", [])
                         if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
    nb.metadata.pop("widgets", None)
    return nb


def export_html(nb: Any, out: str | os.PathLike[str], *, lang: str = "en",
                title: str | None = None) -> Path:
    """Export an executed notebook to a self-contained HTML file (atomically).

    Code cells are hidden; cells tagged ``no-report``, ``parameters`` or
    ``injected-parameters`` and stderr outputs are left out; the student's cells (tagged
    ``student``) are kept, a prompt not yet replaced shown in ``lang``; images are embedded
    (base64 PNG); no script, style or font is fetched from the network (checked).

    Parameters
    ----------
    nb : nbformat.NotebookNode
        The executed notebook (left unchanged).
    out : path
        The HTML file.
    lang : {"en", "es"}
        Page language (``<html lang>``) and default title.
    title : str, optional
        Page title (default: the informe's title in ``lang``).

    Returns
    -------
    Path
        ``out``.
    """
    import jinja2
    from nbconvert import HTMLExporter

    from labkit.io import write_text_atomic

    check_lang(lang)
    nb = _report_cells(nb, lang)
    nb.metadata["title"] = title or labels(lang).page_title
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[jinja2.FileSystemLoader(OFFLINE_TEMPLATE.parent)],
        template_file=OFFLINE_TEMPLATE.name,
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
        embed_images=True,
    )
    html, _ = exporter.from_notebook_node(nb, resources={"language_code": lang})
    html = html.replace('<html lang="en">', f'<html lang="{lang}">', 1)
    remote = check_offline(html)
    if remote:
        raise LabError(f"the HTML would load {remote[0]!r} from the network: not exported")
    return write_text_atomic(out, html)
