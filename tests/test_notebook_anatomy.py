"""Every notebook of notebooks/ has the same anatomy (issue 11, thin notebooks): its question as an
H1 first, the papermill ``parameters`` cell second, a setup cell that starts the session, sections,
``nb.finish()`` last; short code cells with no lambda, no recording loop, no pivot chain and no
raw table: display and recording helpers live in the package, every input is an analysis dataset
of the session. Generic: a notebook added later is checked the same way."""

from __future__ import annotations

import ast

import nbformat
import pytest

from respine_nb import config

NOTEBOOKS = sorted(config.NOTEBOOKS_DIR.glob("*.ipynb"))
MAX_LINES = 15  # lines of a code cell, blank lines included
FORBIDDEN = {  # text in a code cell -> why not
    "lambda": "a lambda (write a named helper in the package)",
    "nb.tables": "the raw tables (read the session's analysis datasets: nb.adsl, nb.adeff, ...)",
    "nb.data.": "the raw dataset (read the session's analysis datasets)",
    ".pivot(": "a pivot (a display helper of the package builds the table)",
    ".pivot_table(": "a pivot (a display helper of the package builds the table)",
    ".unstack(": "an unstack (a display helper of the package builds the table)",
}


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 6


@pytest.fixture(params=NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def notebook(request):
    return request.param.stem, nbformat.read(request.param, as_version=4)


def test_question_first_then_parameters_then_setup(notebook):
    name, nb = notebook
    first = nb.cells[0]
    assert first.cell_type == "markdown", name
    title = first.source.lstrip().splitlines()[0]
    assert title.startswith("# ") and "?" in title, f"{name}: the first cell opens with its question as an H1, not {title!r}"
    second = nb.cells[1]
    assert second.cell_type == "code" and "parameters" in second.metadata.get("tags", []), f"{name}: parameters cell second"
    setup = code_cells(nb)[1]
    assert "session.start(" in setup.source, f"{name}: the first code cell after the parameters starts the session"


def test_sections_and_finish_last(notebook):
    name, nb = notebook
    headings = [c for c in nb.cells if c.cell_type == "markdown" and c.source.lstrip().startswith("## ")]
    assert len(headings) >= 2, f"{name}: one section (## heading) per analysis"
    last = nb.cells[-1]
    assert last.cell_type == "code", name
    lines = [ln for ln in last.source.strip().splitlines() if ln.strip()]
    assert lines[-1].strip() == "nb.finish()", f"{name}: the last cell ends with nb.finish()"


def test_code_cells_are_thin(notebook):
    name, nb = notebook
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        src = cell.source
        n = len(src.strip("\n").splitlines())
        if n > MAX_LINES:
            problems.append(f"cell {i} ({cell.get('id')}): {n} lines > {MAX_LINES}")
        problems += [f"cell {i} ({cell.get('id')}): {why}" for text, why in FORBIDDEN.items() if text in src]
        tree = ast.parse(src)
        for loop in (n for n in ast.walk(tree) if isinstance(n, (ast.For, ast.While, ast.comprehension))):
            body = loop if not isinstance(loop, ast.comprehension) else loop.iter
            calls = [c for c in ast.walk(body) if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)]
            if any(c.func.attr.startswith("record") for c in calls):
                problems.append(f"cell {i} ({cell.get('id')}): a recording loop (use nb.record_each)")
    assert not problems, f"{name}: " + "; ".join(problems)
