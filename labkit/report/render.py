"""The informe's Markdown: Jinja templates per language filled from the facts.

The informe is the student's: a question and their hypothesis, the method, the results
(figures with captions, one table), their discussion and conclusions, next steps. The
student writes the hypothesis, discussion and conclusions in notebook cells tagged
``student`` (:data:`STUDENT_PARTS`, prompts from :func:`prompt`); the analysis computed
from the data is kept as a hidden *model answer* (:func:`model_answer`).

Each language has a folder ``templates/<lang>/`` with one template per section
(``<section>.md.j2``), the model answers (``<part>_model.md.j2``), shared phrases
(``_phrases.j2``), the results table (``_results_table.md.j2``) and short labels
(``_labels.j2``: page title, headings, figure descriptions and captions, the student
prompts). Numbers are written by the filters of
:mod:`labkit.report.numbers` (``{{ seq.wall|s }}``), so each language uses its own
decimal mark. Templates wrap their prose freely: :func:`tidy` joins wrapped lines so
each paragraph, list item and table row is one Markdown line.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from labkit.errors import LabError
from labkit.report.facts import Facts
from labkit.report.numbers import LANGS, check_lang, filters

__all__ = ["HEADINGS", "LANGS", "MODEL_ANSWERS", "SECTIONS", "STUDENT_PARTS", "TEMPLATES",
           "Labels", "labels", "model_answer", "prompt", "render_markdown", "results_table",
           "section", "tidy"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
SECTIONS = ("title", "question", "method", "results", "discussion", "conclusions", "next",
            "reproduce")
STUDENT_PARTS = {"hypothesis": "question", "discussion": "discussion",
                 "conclusions": "conclusions"}  # student's cell -> the section it closes
MODEL_ANSWERS = ("discussion", "conclusions")  # parts with a model answer from the data
_EMPTY_SECTIONS = ("discussion", "conclusions")  # heading only: the student writes them
_BLOCK_START = ("#", "- ", "|", "```")  # lines that never continue the previous one
_SPACES = re.compile(r"(?<=\S) {2,}")


@dataclass(frozen=True)
class Labels:
    """Short texts of one language (from its ``_labels.j2``)."""

    page_title: str
    headings: dict[str, str]  # section name -> heading (every section but "title")
    figure_alt: dict[str, str]  # figure name -> description for screen readers
    figure_caption: dict[str, str]  # figure name -> caption under it
    figure_word: str  # "Figure"
    model_answer: str  # summary line of the hidden model answer
    prompts: dict[str, str]  # student part -> the prompt the student replaces


@functools.cache
def environment(lang: str) -> jinja2.Environment:
    """The Jinja environment of one language: its template folder and number filters.

    Undefined names raise (``StrictUndefined``); nothing is HTML-escaped (the output is
    Markdown); block tags alone on a line leave no blank line behind.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES / check_lang(lang)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(filters(lang))
    return env


def _template(lang: str, name: str) -> jinja2.Template:
    """Template ``name`` of language ``lang``; a :class:`LabError` when it is missing."""
    try:
        return environment(lang).get_template(name)
    except jinja2.TemplateNotFound:
        raise LabError(f"the informe template {lang}/{name} is missing from {TEMPLATES}: "
                       "reinstall labkit") from None


@functools.cache
def labels(lang: str) -> Labels:
    """Page title, headings, figure texts and student prompts in ``lang``."""
    module = _template(lang, "_labels.j2").module
    names: Any = module  # the template's {% set %} names
    return Labels(page_title=names.page_title, headings=dict(names.headings),
                  figure_alt=dict(names.figure_alt),
                  figure_caption=dict(names.figure_caption), figure_word=names.figure_word,
                  model_answer=names.model_answer, prompts=dict(names.prompts))


HEADINGS = {lang: labels(lang).headings for lang in LANGS}


def tidy(markdown: str) -> str:
    """One line per paragraph, list item or table row; one blank line between blocks.

    A line continues the previous one unless either is blank or the line starts a block
    (heading, list item, table row, code fence). Code blocks are kept as they are.
    """
    out: list[str] = []
    in_code = False
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if line.startswith("```"):
            in_code = not in_code
            out.append(line)
            continue
        if in_code:
            out.append(line)
            continue
        line = _SPACES.sub(" ", line.strip())
        continues = (line and out and out[-1] and not line.startswith(_BLOCK_START)
                     and not out[-1].startswith(("#", "|", "```")))
        if continues:
            out[-1] = f"{out[-1]} {line}"
        elif line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def _render(template: str, facts: Facts, lang: str) -> str:
    """Template ``template`` of ``lang`` filled from ``facts``, tidied (:func:`tidy`)."""
    return tidy(_template(lang, template).render(facts=facts))


def section(name: str, facts: Facts, lang: str = "en") -> str:
    """Markdown of one informe section (with its ``##`` heading, except ``title``).

    Parameters
    ----------
    name : str
        One of :data:`SECTIONS`.
    facts : Facts
        :func:`labkit.report.analyze` output.
    lang : {"en", "es"}
        Language of the text.
    """
    check_lang(lang)
    if name not in SECTIONS:
        raise LabError(f"unknown section {name!r}: valid are {', '.join(SECTIONS)}")
    body = _render(f"{name}.md.j2", facts, lang) if name not in _EMPTY_SECTIONS else ""
    if name == "title":
        return body
    heading = f"## {HEADINGS[lang][name]}\n"
    return f"{heading}\n{body}" if body else heading


def model_answer(name: str, facts: Facts, lang: str = "en") -> str:
    """Markdown of the model answer of ``name`` (one of :data:`MODEL_ANSWERS`),
    computed from the facts: what a student's discussion or conclusions could say.
    """
    check_lang(lang)
    if name not in MODEL_ANSWERS:
        raise LabError(f"no model answer for {name!r}: valid are {', '.join(MODEL_ANSWERS)}")
    return _render(f"{name}_model.md.j2", facts, lang)


def prompt(part: str, lang: str = "en") -> str:
    """The prompt of the student's cell ``part`` (:data:`STUDENT_PARTS`) in ``lang``."""
    prompts = labels(check_lang(lang)).prompts
    if part not in prompts:
        raise LabError(f"unknown student part {part!r}: valid are {', '.join(prompts)}")
    return prompts[part]


def render_markdown(facts: Facts, lang: str = "en") -> str:
    """The whole informe as one Markdown document (no figures): each section, the student
    prompts where the student writes, and the model answers under their own headings.
    """
    names = labels(lang)
    parts = []
    for name in SECTIONS:
        parts.append(section(name, facts, lang))
        for part, after in STUDENT_PARTS.items():
            if after == name:
                parts.append(f"> {prompt(part, lang)}\n")
        if name in MODEL_ANSWERS:
            parts.append(f"### {names.model_answer}\n\n{model_answer(name, facts, lang)}")
    return "\n".join(parts)


def results_table(facts: Facts, lang: str = "en") -> str:
    """Markdown table: one line per configuration (in-process and whole-process times)."""
    return _render("_results_table.md.j2", facts, check_lang(lang))
