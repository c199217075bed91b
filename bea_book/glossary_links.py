"""Sphinx extension: every glossary term is linked to its definition on its first use on a page.

The book's glossary (a ``{glossary}`` directive, ``book/glossary.md``) is the one list of terms.
After the pages are read, this post-transform walks each page's text in reading order and turns
the first occurrence of each glossary entry (any of its term lines: "validity gate" or "gate")
into a ``{term}`` reference, so that a chapter, a generated Findings row or a claim line links
its terms without marking them by hand. Text in titles, code, math, links and the glossary
itself is left alone; matching ignores case and respects word boundaries; the longest term wins
("f₀ gate" before "gate").

Terms that are also ordinary words ("opposite") are linked only where a page marks them with
``{term}``: list them under ``sphinx: config: bea_glossary_manual`` in ``_config.yml``.
Enable the extension under ``sphinx: extra_extensions``.
"""
from __future__ import annotations

import re

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform

# ancestors whose text is never linked: headings, code, math, links, the glossary's own terms
SKIP = (nodes.title, nodes.subtitle, nodes.rubric, nodes.reference, addnodes.pending_xref,
        nodes.literal, nodes.literal_block, nodes.math, nodes.math_block, nodes.raw,
        nodes.comment, nodes.target, nodes.term, nodes.citation_reference,
        nodes.footnote_reference, addnodes.desc_signature, addnodes.toctree)


def _plain(text: str) -> str:
    """Text as matched: lower case, typographic apostrophes straight (Sphinx's smart quotes)."""
    return text.lower().replace("’", "'")


def glossary_entries(env) -> dict[str, list[str]]:
    """entry id -> the keys of its term lines (as Sphinx's ``term`` role looks them up), for
    every glossary of the book, read from the doctrees of the pages that define terms. The
    entry id is the first term's label."""
    std = env.get_domain("std")
    by_label = {(docname, label): key for key, (docname, label) in std._terms.items()}
    entries: dict[str, list[str]] = {}
    for page in sorted({docname for docname, _ in std._terms.values()}):
        for item in env.get_doctree(page).findall(nodes.definition_list_item):
            ids = [i for t in item.findall(nodes.term) for i in t.get("ids", [])]
            keys = [by_label[page, i] for i in ids if (page, i) in by_label]
            if keys:
                entries[ids[0]] = keys
    return entries


def _pattern(forms: list[str]) -> re.Pattern:
    """One pattern for all ``forms``, longest first, not inside a word."""
    alternatives = "|".join(re.escape(f).replace("'", "['’]")
                            for f in sorted(forms, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)


class LinkFirstUse(SphinxPostTransform):
    """Link the first use of each glossary entry on the page (see the module docstring)."""

    default_priority = 5  # before Sphinx's ReferencesResolver (10) resolves the new xrefs

    def run(self, **kwargs) -> None:
        std = self.env.get_domain("std")
        defined_on = {docname for docname, _ in std._terms.values()}
        if not defined_on or self.env.docname in defined_on:
            return
        entries = self._entries()
        manual = {_plain(t) for t in self.config.bea_glossary_manual}
        form_entry = {_plain(key): entry for entry, keys in entries.items()
                      for key in keys if _plain(key) not in manual}
        if not form_entry:
            return
        done: set[str] = set()
        for text in list(self.document.findall(nodes.Text)):
            if len(done) == len(entries):
                break
            if self._skipped(text):
                continue
            self._link(text, form_entry, done)

    def _entries(self) -> dict[str, list[str]]:
        cache = getattr(self.app, "_bea_glossary_entries", None)
        if cache is None:
            cache = self.app._bea_glossary_entries = glossary_entries(self.env)
        return cache

    @staticmethod
    def _skipped(text: nodes.Text) -> bool:
        parent = text.parent
        while parent is not None:
            if isinstance(parent, SKIP):
                return True
            parent = parent.parent
        return False

    def _link(self, text: nodes.Text, form_entry: dict[str, str], done: set[str]) -> None:
        forms = [f for f, entry in form_entry.items() if entry not in done]
        if not forms:
            return
        source = str(text)
        pieces, start = [], 0
        pattern = _pattern(forms)
        while True:
            found = pattern.search(source, start)
            if found is None:
                break
            entry = form_entry[_plain(found.group(0))]
            if entry in done:  # another form of an entry linked earlier in this text
                start = found.end()
                continue
            done.add(entry)
            pieces += [nodes.Text(source[start:found.start()]),
                       self._xref(found.group(0), _plain(found.group(0)))]
            start = found.end()
            rest = [f for f, e in form_entry.items() if e not in done]
            if not rest:
                break
            pattern = _pattern(rest)
        if not pieces:
            return
        pieces.append(nodes.Text(source[start:]))
        text.parent.replace(text, [p for p in pieces if not (isinstance(p, nodes.Text)
                                                             and not str(p))])

    def _xref(self, shown: str, key: str) -> addnodes.pending_xref:
        xref = addnodes.pending_xref("", refdomain="std", reftype="term", reftarget=key,
                                     refexplicit=True, refwarn=True, refdoc=self.env.docname)
        xref += nodes.inline(shown, shown, classes=["xref", "std", "std-term", "bea-term"])
        return xref


def setup(app):
    app.add_config_value("bea_glossary_manual", [], "env")
    app.add_post_transform(LinkFirstUse)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
