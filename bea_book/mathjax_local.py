"""Sphinx extension: serve MathJax 3 from the book's own static files, never from a CDN.

The rendered book must show its formulas when it is opened from disk, from an archive or
behind a firewall. MathJax is therefore installed from PyPI with the book's dependencies
(the wheel ``django-static-mathjax==3.2.2.1`` carries MathJax 3.2.2 under
``mathjax/static/mathjax/``; pip is what ``make setup`` already uses, so no second package
manager is needed), and this extension

- copies the browser build that a page needs (``es5/tex-mml-chtml.js`` and the components it
  loads on demand: TeX extensions, CHTML fonts, menu and accessibility modules) into
  ``_static/mathjax/`` of the HTML output;
- sets Sphinx's ``mathjax_path`` to that file, relative, so that every page loads it from
  ``_static`` at whatever depth the page sits;
- drops from every page the two scripts that Jupyter Book's ``sphinx_thebe`` adds whether or
  not live code is used: a constant naming thebe's CDN address (unpkg.com), declared twice so
  that the browser reports an error. The book offers no live code (it would need that CDN);
  launch buttons to Binder or Colab are plain links and are not affected;
- gives the theme's colour mode the default ``auto``, which the theme otherwise leaves empty
  and then reports as a console error on a first visit.

Enable it in ``_config.yml``::

    sphinx:
      extra_extensions: [bea_book.mathjax_local]
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

MATHJAX_VERSION = "3.2.2"  # what the pinned wheel holds; checked when the files are found
ENTRY = "es5/tex-mml-chtml.js"  # TeX and MathML input, CommonHTML output (Sphinx's default)
# Parts of es5/ that tex-mml-chtml.js loads at run time: autoloaded TeX packages, the CHTML
# fonts, the context menu, and the accessibility explorer with its speech rules (sre).
PARTS = (ENTRY, "es5/input", "es5/output/chtml", "es5/ui", "es5/a11y", "es5/sre",
         "es5/adaptors", "LICENSE")
STATIC_DIR = "mathjax"  # under _static/


class MathJaxNotInstalled(RuntimeError):
    """The MathJax wheel is missing or is not the pinned version."""


def mathjax_root() -> Path:
    """The installed MathJax distribution (the folder holding ``es5/`` and ``package.json``)."""
    hint = "install it with `pip install django-static-mathjax==3.2.2.1` (make setup does this)"
    try:
        import mathjax  # the django-static-mathjax wheel
    except ImportError:
        raise MathJaxNotInstalled(f"MathJax is not installed; {hint}") from None
    root = Path(mathjax.__file__).parent / "static" / "mathjax"
    package = root / "package.json"
    if not (root / ENTRY).is_file() or not package.is_file():
        raise MathJaxNotInstalled(f"no {ENTRY} under {root}; {hint}")
    version = json.loads(package.read_text()).get("version")
    if version != MATHJAX_VERSION:
        raise MathJaxNotInstalled(f"MathJax {version} found under {root}, "
                                  f"{MATHJAX_VERSION} expected; {hint}")
    return root


def copy_mathjax(static_dir: Path) -> Path:
    """Copy the parts of MathJax a page loads into ``static_dir/mathjax``; return the entry."""
    source, target = mathjax_root(), Path(static_dir) / STATIC_DIR
    for part in PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, target / part)
    return target / ENTRY


def _config_inited(app, config) -> None:
    mathjax_root()  # fail the build at once, with the install command, if MathJax is missing
    # relative: Sphinx resolves it against _static/ from each page's own depth
    config.mathjax_path = f"{STATIC_DIR}/{ENTRY}"


def _is_thebe(script) -> bool:
    body = getattr(script, "attributes", {}).get("body", "")
    return "thebe" in (getattr(script, "filename", None) or "") or "THEBE_JS_URL" in body


def _page_context(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if isinstance(scripts, list):  # in place: Sphinx restores its own list before each page
        scripts[:] = [script for script in scripts if not _is_thebe(script)]
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def _build_finished(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        copy_mathjax(Path(app.outdir) / "_static")


def setup(app):
    app.setup_extension("sphinx.ext.mathjax")
    # after the defaults and the user's conf are read, so that nothing points back to the CDN
    app.connect("config-inited", _config_inited, priority=900)
    app.connect("html-page-context", _page_context, priority=900)
    app.connect("build-finished", _build_finished)
    return {"version": MATHJAX_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
