"""The rerun banner: a staged chapter says which parameters its run used, in one place.

A run with a profile or ``-p`` overrides executes papermill's injected cell after the chapter's
``parameters`` cell, so the page would show the defaults and then, in a second cell, the values
that were really used. On the staged copy of the executed notebook (the run folder is left as
it is), :func:`mark_run_parameters` removes the injected cell from the page and puts a note
above the parameters cell naming the profile and every parameter whose value differs from the
default written below it: one view of the parameters, and a page that says how it was run.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from .params import declared_parameters, literal

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
    where = f"This page was executed with the `{profile}` profile"
    if changed:
        values = "; ".join(f"`{name} = {value!r}` (default `{default}`)"
                           for name, value, default in changed)
        lines.append(f"{where}. These parameters differ from the defaults shown in the cell "
                     f"below, and every result on the page was computed with them: {values}.")
    else:
        lines.append(f"{where}, whose values are those of the cell below.")
    return "\n".join([*lines, "```"])


def mark_run_parameters(notebook_path: Path, record: dict) -> list[tuple]:
    """Hide the injected parameters cell of the staged notebook and add the banner above the
    parameters cell; returns the changed parameters (name, value, default)."""
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
    where = next((i for i, c in enumerate(cells)
                  if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if text and where is not None:
        cells.insert(where, nbformat.v4.new_markdown_cell(text, metadata={"tags": [BANNER]}))
    notebook.cells = cells
    nbformat.write(notebook, notebook_path)
    return changed
