"""The book's build tool: run chapters with papermill, render them with Jupyter Book.

Needs the ``book`` extra. ``python -m bea_book --help``. Modules, in the order a build uses
them: :mod:`~bea_book.sources` (table of contents, chapters, profiles), :mod:`~bea_book.params`
(parameters and their checks), :mod:`~bea_book.inputs` (what a run depends on, hashed),
:mod:`~bea_book.store` (the build folder; runs as transactions, checked by their files'
hashes; one writer at a time), :mod:`~bea_book.processes` (workers and kernels end with the
command), :mod:`~bea_book.execute` (validate, then run or reuse), :mod:`~bea_book.report` and
:mod:`~bea_book.render` (the HTML), :mod:`~bea_book.adopt` (plain papermill),
:mod:`~bea_book.archive` (the deposit zip), :mod:`~bea_book.lock` (the lock file),
:mod:`~bea_book.sweep` (the networks' runs as jobs), :mod:`~bea_book.cli`.
"""
from .adopt import adopt
from .archive import make_archive
from .cli import main, run_chapter, run_chapters
from .params import check_overrides, load_params_file, parse_value
from .render import render, stage
from .report import report_markdown
from .sources import BookError, chapters, load_profiles, resolve_profile, toc_pages
from .store import read_report

__all__ = ["BookError", "adopt", "chapters", "check_overrides", "load_params_file",
           "load_profiles", "main", "make_archive", "parse_value", "read_report", "render",
           "report_markdown", "resolve_profile", "run_chapter", "run_chapters", "stage",
           "toc_pages"]
