"""Sphinx extension: the book's own figures, tables and equations are numbered by chapter with a
``B`` ("Fig. B2.1", "(B2.3)"), so that no number of the book can be taken for one of the paper's
(its Figure 1, its equation (2.3)).

Sphinx numbers every captioned figure and every labelled equation through the whole book
("Fig. 6" on the second page; equations (1)–(17)). After it has, this handler renumbers each
page's items in their order on the page as (``B<chapter>``, n), the chapter being the page's
place in the root table of contents (the first chapter is 1; the introduction, the root, is 0).
Captions, ``{numref}`` and ``{eq}`` references and the equation numbers beside the formulas all
read these numbers. Enable it under ``sphinx: extra_extensions`` in ``_config.yml``.
"""
from __future__ import annotations

PREFIX = "B"  # "book": what tells the book's numbers from the paper's


def chapter_numbers(env) -> dict[str, int]:
    """docname -> its chapter number: its place in the root's table of contents (root: 0)."""
    root = env.config.root_doc
    numbers, queue = {root: 0}, list(env.toctree_includes.get(root, []))
    for docname in queue:
        numbers.setdefault(docname, len(numbers))
    return numbers


def book_number(chapter: int, n: int) -> tuple[str, int]:
    """The number of the ``n``-th item of its kind in chapter ``chapter``: ("B2", 1) reads
    "B2.1" wherever Sphinx prints it."""
    return (f"{PREFIX}{chapter}", n)


def renumber(app, env) -> list[str]:
    """Number each page's figures, tables and equations by chapter (module docstring); the pages
    to write again (all that have any)."""
    chapters = chapter_numbers(env)
    changed = []
    for docname, kinds in env.toc_fignumbers.items():
        chapter = chapters.get(docname)
        if chapter is None:
            continue
        for kind, numbers in kinds.items():
            in_order = sorted(numbers, key=lambda item: numbers[item])
            kinds[kind] = {item: book_number(chapter, n) for n, item in enumerate(in_order, 1)}
        changed.append(docname)
    return changed


def setup(app):
    app.connect("env-get-updated", renumber, priority=900)  # after Sphinx numbers them (500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
