"""The citation block of the book's first page, written from ``CITATION.cff`` when staging.

``book/intro.md`` holds the line ``MARKER``; :func:`fill_citation` replaces it in the staged
copy with the authors, the version, the repository and two BibTeX entries (this reproduction,
and the paper it reproduces), so that nothing in the block is typed twice.

The BibTeX pastes into a LaTeX document as it is: a person is "Family, Given", an
organisation's name is brace-protected (one name, not a surname "contributors"), TeX's special
characters are escaped outside URLs, every title is brace-protected (BibTeX styles lower-case
unprotected titles: "adam"), the entry has a year (the release date's, else the build's) and
a DOI when ``.zenodo.json`` or ``CITATION.cff`` has one.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from .sources import build_year

MARKER = "<!-- citation: written here from CITATION.cff when the book is rendered -->"


def _names(authors: list[dict]) -> list[str]:
    """The authors as a reader reads them: "Given Family", or an organisation's name."""
    names = []
    for a in authors or []:
        if "name" in a:
            names.append(a["name"])
        else:
            names.append(" ".join(filter(None, [a.get("given-names"), a.get("family-names")])))
    return names


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#",
                "$": r"\$"}


def tex_escape(text: str) -> str:
    """``text`` with TeX's special characters escaped (for every field but URLs)."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def _bibtex_names(authors: list[dict]) -> str:
    """BibTeX's author field: "Family, Given" per person, an organisation brace-protected."""
    names = []
    for a in authors or []:
        if "name" in a:
            names.append("{" + tex_escape(a["name"]) + "}")
        else:
            family, given = a.get("family-names", ""), a.get("given-names", "")
            names.append(tex_escape(f"{family}, {given}" if given else family))
    return " and ".join(names)


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _doi(cff: dict, zenodo: dict) -> str | None:
    for source in (zenodo, cff):
        doi = source.get("doi")
        if isinstance(doi, str) and doi.strip():
            return doi.strip()
    return None


def bibtex(cff: dict, zenodo: dict | None = None, *, year: int | None = None) -> str:
    """BibTeX for the software described by ``cff`` (with the DOI of ``zenodo``, the content
    of ``.zenodo.json``, if it has one) and for each reference it lists. ``year``: the entry's
    year when ``cff`` has no ``date-released`` (default: the build's, :func:`build_year`)."""
    entries = []
    released = str(cff.get("date-released", ""))[:4]
    version = cff.get("version")
    fields = [("title", _title(cff["title"])), ("author", _bibtex_names(cff.get("authors"))),
              ("year", released or year or build_year()), ("doi", _doi(cff, zenodo or {})),
              ("url", cff.get("repository-code") or cff.get("url")),
              ("note", (f"Version {version}; " if version else "")
               + "executable Jupyter Book and Python package bea_lib")]
    # @misc: every BibTeX style and biblatex know it (@software is biblatex's alone)
    entries.append(_entry("misc", f"bealib{_key(str(version or ''))}", fields))
    for ref in cff.get("references", []):
        first = (ref.get("authors") or [{}])[0]
        first = first.get("family-names") or first.get("name") or "anon"
        arxiv = next((i["value"] for i in ref.get("identifiers", [])
                      if str(i.get("value", "")).startswith("arXiv:")), None)
        fields = [("title", _title(ref["title"])),
                  ("author", _bibtex_names(ref.get("authors"))),
                  ("booktitle", ref.get("collection-title")),
                  ("volume", ref.get("volume")),
                  ("publisher", (ref.get("publisher") or {}).get("name")),
                  ("year", ref.get("year")), ("doi", ref.get("doi")),
                  ("eprint", arxiv and arxiv.split(":", 1)[1]),
                  ("archivePrefix", arxiv and "arXiv"), ("url", ref.get("url"))]
        kind = "inproceedings" if ref.get("type") == "conference-paper" else "misc"
        entries.append(_entry(kind, f"{_key(first)}{ref.get('year', '')}", fields))
    return "\n\n".join(entries)


class _Protected(str):
    """A field value already braced and escaped (a title, the author list)."""


def _title(text: str) -> _Protected:
    """A title brace-protected as a whole, so that no style changes its case."""
    return _Protected("{" + tex_escape(text) + "}")


_VERBATIM = ("url", "doi", "eprint")  # fields BibTeX and biblatex read as they are


def _entry(kind: str, key: str, fields: list[tuple]) -> str:
    lines = []
    for name, value in fields:
        if value is None or value == "":
            continue
        if isinstance(value, _Protected) or name in ("author",):
            text = str(value)
        elif name in _VERBATIM:
            text = str(value)
        else:
            text = tex_escape(value)
        lines.append(f"  {name} = {{{text}}}")
    return f"@{kind}{{{key},\n" + ",\n".join(lines) + "\n}"


def citation_markdown(cff: dict, zenodo: dict | None = None) -> str:
    """The block: who, which version, where, and the BibTeX in a copyable code block."""
    authors = ", ".join(_names(cff.get("authors")))
    doi = _doi(cff, zenodo or {})
    lines = [f"*{cff['title']}*, version {cff.get('version')}, by {authors}"
             + (f", doi:{doi}" if doi else "")
             + (f" ({cff['repository-code']})." if cff.get("repository-code") else "."),
             "", "```bibtex", bibtex(cff, zenodo), "```"]
    return "\n".join(lines)


def fill_citation(page: Path, cff_path: Path) -> bool:
    """Replace ``MARKER`` in ``page`` with the block; False when there is no such page or it
    has no marker."""
    if not Path(page).is_file():  # the first page is a chapter, staged later as a notebook
        return False
    text = Path(page).read_text(encoding="utf-8")
    if MARKER not in text:
        return False
    cff = yaml.safe_load(Path(cff_path).read_text(encoding="utf-8"))
    zenodo_path = Path(cff_path).with_name(".zenodo.json")
    zenodo = json.loads(zenodo_path.read_text(encoding="utf-8")) if zenodo_path.is_file() else {}
    Path(page).write_text(text.replace(MARKER, citation_markdown(cff, zenodo)), encoding="utf-8")
    return True
