"""The Kaggle notebook: `notebook_template.py` (package data, jupytext percent format) turned into an nbformat v4
notebook with the package's values baked in.

Choices: the template keeps one config line (`ARCSOLVER_CONFIG = {}`) that is replaced by the package's values
(competition, dataset, wheel, deadline, margin); every other line is generic and reviewable in
`arcsolver/kaggle/notebook_template.py`, shipped in the wheel so an installed arcsolver packages too. The percent
format is parsed here (a dozen lines) rather than with jupytext, one dependency less; every code cell must parse, and
cell ids are stable, so the same package gives the same notebook.
"""

from __future__ import annotations

import ast
import pprint
from pathlib import Path
from typing import Any

from arcsolver.runtime.errors import InputError

TEMPLATE = Path(__file__).resolve().parent / "notebook_template.py"
CONFIG_LINE = "ARCSOLVER_CONFIG: dict = {}  # filled in by arcsolver.kaggle.package"


def template_cells(text: str) -> list[tuple[str, str]]:
    """(cell_type, source) pairs from a jupytext percent-format file; text before the first `# %%` is dropped."""
    cells: list[tuple[str, str]] = []
    kind: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if kind is None:
            return
        if kind == "markdown":
            body = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines]
        else:
            body = lines
        src = "\n".join(body).strip("\n")
        if src:
            cells.append((kind, src))

    for line in text.splitlines():
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def render_notebook(config: dict, template: Path = TEMPLATE) -> Any:
    """The notebook (an nbformat v4 NotebookNode, validated) with `config` baked into the config line."""
    import nbformat  # the `kaggle` extra: imported where a notebook is made, so the core install runs without it
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    if not template.is_file():
        raise InputError("notebook template not found (a broken install? reinstall arcsolver)", file=str(template))
    text = template.read_text(encoding="utf-8")
    if text.count(CONFIG_LINE) != 1:
        raise InputError(f"the template must contain the line {CONFIG_LINE!r} exactly once", file=str(template))
    text = text.replace(CONFIG_LINE, "ARCSOLVER_CONFIG: dict = " + pprint.pformat(config, sort_dicts=False,
                                                                                   width=100))
    cells = []
    for i, (kind, src) in enumerate(template_cells(text)):
        if kind == "code":
            try:
                ast.parse(src)
            except SyntaxError as e:
                raise InputError(f"code cell {i} does not parse: {e}", file=str(template)) from None
            cell = new_code_cell(src)
        else:
            cell = new_markdown_cell(src)
        cell["id"] = f"cell-{i}"  # stable ids: the same package gives the same notebook
        cells.append(cell)
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(nb)
    return nb
