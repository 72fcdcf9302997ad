"""The instructor guide (docs/instructor.md) keeps up with the notebooks.

Every numbered notebook has its episode section in the guide; every question with a folded
solution in a notebook has an answer in that section ("*Exercise N:*"); every exercise
cell's function (the model answer's ``def``) is answered there by name; the glossary gives
each term a Spanish one; the README links the guide.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "instructor.md"
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
# the glossary must hold at least these (its first column), each with a Spanish term
GLOSSARY_TERMS = ("ulp", "Chan merge", "page cache", "forkserver", "ENL", "halo", "Amdahl",
                  "Karp–Flatt", "roofline", "arithmetic intensity", "memory-mapped",
                  "strong scaling", "weak scaling")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _section(text: str, number: str) -> str:
    """The guide's text from '## Episode NN' to the next '## ' heading."""
    m = re.search(rf"^## Episode {number}\b.*?(?=^## |\Z)", text, re.M | re.S)
    assert m, f"docs/instructor.md has no '## Episode {number}' section"
    return m.group(0)


def _questions(path: Path) -> set[int]:
    """Numbers of the questions whose solution is folded (<details>) in the notebook."""
    found = set()
    for cell in _cells(path):
        if cell["cell_type"] != "markdown":
            continue
        chunks = re.split(r"<details>", _source(cell))
        for before in chunks[:-1]:
            numbered = re.findall(r"^\s*(\d+)\.\s", before, re.M)
            if numbered:
                found.add(int(numbered[-1]))
    return found


def _exercise_functions(path: Path) -> list[str]:
    """The function each model answer (cell tagged solution) defines."""
    names = []
    for cell in _cells(path):
        if "solution" in _tags(cell):
            defs = re.findall(r"^def (\w+)\(", _source(cell), re.M)
            assert defs, f"{path.name}: a solution cell defines no function"
            names.append(defs[0])
    return names


@pytest.fixture(scope="module")
def guide() -> str:
    assert GUIDE.is_file(), "docs/instructor.md is missing"
    return GUIDE.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_has_its_episode(guide: str, path: Path):
    section = _section(guide, path.stem[:2])
    assert re.search(r"\*\*Minutes:\*\*\s*\d+ teaching \+ \d+ exercises", section), \
        f"episode {path.stem[:2]}: no '**Minutes:** N teaching + M exercises' line"
    for part in ("**Objectives.**", "**Where students get stuck.**", "**Answers.**"):
        assert part in section, f"episode {path.stem[:2]}: no {part}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_question_is_answered(guide: str, path: Path):
    section = _section(guide, path.stem[:2])
    answered = {int(n) for n in re.findall(r"\*Exercise (\d+):\*", section)}
    missing = sorted(_questions(path) - answered)
    assert not missing, f"{path.name}: questions {missing} have no '*Exercise N:*' answer " \
        "in the guide"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_exercise_cell_is_answered(guide: str, path: Path):
    section = _section(guide, path.stem[:2])
    for name in _exercise_functions(path):
        assert f"*`{name}`:*" in section, f"{path.name}: the exercise {name} has no " \
            f"'*`{name}`:*' answer in the guide"


def test_glossary_gives_the_spanish_terms(guide: str):
    glossary = guide.split("## Glossary", 1)
    assert len(glossary) == 2, "docs/instructor.md has no '## Glossary' section"
    rows = [r for r in glossary[1].splitlines() if r.startswith("| ")][2:]
    terms = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        terms[cells[0]] = cells[1]
    for term in GLOSSARY_TERMS:
        hit = [k for k in terms if term.lower() in k.lower()]
        assert hit, f"glossary: no row for {term!r}"
        assert all(terms[k].strip("* ") for k in hit), f"glossary: {term!r} has no Spanish"


def test_readme_links_the_guide():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "(docs/instructor.md)" in readme
