"""The citation block of the book's first page, written from ``CITATION.cff`` when staging.

``book/intro.md`` holds the line ``MARKER``; :func:`fill_citation` replaces it in the staged
copy with the authors, the version, the repository and two BibTeX entries (this reproduction,
and the paper it reproduces), so that nothing in the block is typed twice.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

MARKER = "<!-- citation: written here from CITATION.cff when the book is rendered -->"


def _names(authors: list[dict]) -> list[str]:
    names = []
    for a in authors or []:
        if "name" in a:
            names.append(a["name"])
        else:
            names.append(f"{a.get('family-names', '')}, {a.get('given-names', '')}".strip(", "))
    return names


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def bibtex(cff: dict) -> str:
    """BibTeX for the software described by ``cff`` and for each reference it lists."""
    entries = []
    authors = " and ".join("{" + n + "}" if " " in n and "," not in n else n
                           for n in _names(cff.get("authors")))
    year = str(cff.get("date-released", ""))[:4]
    fields = [("title", "{" + cff["title"] + "}"), ("author", authors),
              ("version", cff.get("version")), ("year", year or None),
              ("url", cff.get("repository-code") or cff.get("url")),
              ("note", "Executable Jupyter Book and Python package bea_lib")]
    entries.append(_entry("software", f"bealib{_key(str(cff.get('version', '')))}", fields))
    for ref in cff.get("references", []):
        first = _names(ref.get("authors"))[0].split(",")[0] if ref.get("authors") else "anon"
        arxiv = next((i["value"] for i in ref.get("identifiers", [])
                      if str(i.get("value", "")).startswith("arXiv:")), None)
        fields = [("title", "{" + ref["title"] + "}"),
                  ("author", " and ".join(_names(ref.get("authors")))),
                  ("booktitle", ref.get("collection-title")),
                  ("volume", ref.get("volume")),
                  ("publisher", (ref.get("publisher") or {}).get("name")),
                  ("year", ref.get("year")), ("eprint", arxiv and arxiv.split(":", 1)[1]),
                  ("archivePrefix", arxiv and "arXiv"), ("url", ref.get("url"))]
        kind = "inproceedings" if ref.get("type") == "conference-paper" else "misc"
        entries.append(_entry(kind, f"{_key(first)}{ref.get('year', '')}", fields))
    return "\n\n".join(entries)


def _entry(kind: str, key: str, fields: list[tuple]) -> str:
    body = ",\n".join(f"  {name} = {{{value}}}" if not str(value).startswith("{")
                      else f"  {name} = {value}" for name, value in fields if value)
    return f"@{kind}{{{key},\n{body}\n}}"


def citation_markdown(cff: dict) -> str:
    """The block: who, which version, where, and the BibTeX in a copyable code block."""
    authors = ", ".join(_names(cff.get("authors")))
    lines = [f"*{cff['title']}*, version {cff.get('version')}, by {authors}"
             + (f" ({cff['repository-code']})." if cff.get("repository-code") else "."),
             "", "```bibtex", bibtex(cff), "```"]
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
    Path(page).write_text(text.replace(MARKER, citation_markdown(cff)), encoding="utf-8")
    return True
