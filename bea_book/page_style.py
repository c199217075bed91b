"""Sphinx extension: the book's own page style (``static/code.css``), served from ``_static``.

Code cells wrap at the page width rather than scroll sideways. Enable it in ``_config.yml``
under ``sphinx: extra_extensions``.
"""
from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"


def _add_static(app, config) -> None:
    config.html_static_path = [*config.html_static_path, str(STATIC)]


def setup(app):
    app.connect("config-inited", _add_static)
    app.add_css_file("code.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
