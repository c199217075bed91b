"""The rerun banner: a staged chapter says which parameters its run used, in one place.

A run with a profile or ``-p`` overrides executes papermill's injected cell after the chapter's
``parameters`` cell, so the page would show the defaults and then, in a second cell, the values
that were really used. On the staged copy of the executed notebook (the run folder is left as
it is), :func:`mark_run_parameters` removes the injected cell from the page and puts a note at
the top of the page, right under its title, naming the profile and every parameter whose value
differs from the default written in the parameters cell: one view of the parameters, and a
page that says how it was run before the reader reads any result.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from .params import declared_parameters, literal
from .sources import PAPERMILL_LABEL

INJECTED = "injected-parameters"  # papermill's tag on the cell it adds
REMOVE = "remove-cell"            # myst-nb leaves a cell with this tag off the page
BANNER = "rerun-banner"           # our tag on the note, so that staging twice adds one note


def changed_parameters(used: dict, defaults: dict[str, str], order=None) -> list[tuple]:
    """(name, value used, default as written) of each parameter whose value is not the default,
    in the order of ``order`` (the parameters cell's), then any others."""
    names = [n for n in (order or []) if n in used] + [n for n in used if n not in (order or [])]
    return [(name, used[name], defaults[name]) for name in names
            if name in defaults and literal(defaults[name]) != used[name]]


def banner_markdown(profile: str, changed: list[tuple]) -> str:
    """The note above the parameters cell; empty for a run at the defaults."""
    if profile == "default" and not changed:
        return ""
    lines = ["```{admonition} Parameters of this run", ":class: note", ""]
    where = (f"This page was executed with {PAPERMILL_LABEL}: plain papermill, then "
             "`python -m bea_book adopt`" if profile == PAPERMILL_LABEL else
             f"This page was executed with the `{profile}` profile")
    if changed:
        values = "; ".join(f"`{name} = {value!r}` (default `{default}`)"
                           for name, value, default in changed)
        lines.append(f"{where}. These parameters differ from the defaults shown in the cell "
                     f"of parameters below, and every result on the page was computed with "
                     f"them: {values}.")
    else:
        lines.append(f"{where}, whose values are those of the cell of parameters below.")
    return "\n".join([*lines, "```"])


def _split_title(cells: list) -> int:
    """Index right under the page's title: the first Markdown cell with a ``# `` heading is
    split after that line (once; staging twice finds it split). 0 without a title."""
    for i, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        at = next((k for k, line in enumerate(lines) if line.startswith("# ")), None)
        if at is None:
            continue
        rest = "\n".join(lines[at + 1:]).strip("\n")
        cell.source = "\n".join(lines[:at + 1])
        if rest:
            cells.insert(i + 1, nbformat.v4.new_markdown_cell(rest))
        return i + 1
    return 0


def mark_run_parameters(notebook_path: Path, record: dict) -> list[tuple]:
    """Hide the injected parameters cell of the staged notebook and add the banner at the top
    of the page, under its title; returns the changed parameters (name, value, default)."""
    notebook_path = Path(notebook_path)
    notebook = nbformat.read(notebook_path, as_version=4)
    defaults = declared_parameters(notebook_path)
    changed = changed_parameters(record.get("parameters", {}), defaults,
                                 record.get("parameter_order"))
    text = banner_markdown(record.get("profile", "default"), changed)
    cells = [c for c in notebook.cells if BANNER not in c.get("metadata", {}).get("tags", [])]
    for cell in cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if INJECTED in tags and REMOVE not in tags:
            tags.append(REMOVE)
    if text:
        cells.insert(_split_title(cells),
                     nbformat.v4.new_markdown_cell(text, metadata={"tags": [BANNER]}))
    notebook.cells = cells
    nbformat.write(notebook, notebook_path)
    return changed
